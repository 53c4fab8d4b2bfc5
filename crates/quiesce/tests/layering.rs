//! SPEC §6: the quiesce crate sees the agent, the engine and the config only through traits and
//! plain values, so it compiles no HTTP, no TLS, no Docker client and no config parser — and
//! neither does a tool that embeds it with the other crates' fakes (`examples/embed`). A
//! dependency that drags one in (a default feature of a leaf crate turned back on, a helper
//! added for convenience) fails this test rather than slipping in unnoticed.

use std::process::Command;

/// Crates that must never be in `felhom-quiesce`'s normal dependency tree.
const FORBIDDEN: [&str; 5] = ["hyper", "rustls", "bollard", "figment", "reqwest"];

#[test]
fn the_quiesce_crate_compiles_no_http_tls_docker_or_config_parser() {
    assert_no_forbidden_dependency("felhom-quiesce");
}

/// The embedding example wires a cycle from quiesce, the marker crate's real state directory
/// and the agent's and the stacks' fakes: what another tool would compile.
#[test]
fn an_embedding_tool_compiles_no_http_tls_docker_or_config_parser() {
    assert_no_forbidden_dependency("felhom-embed-example");
}

/// Reads `package`'s normal dependency tree (its own features, as built alone) and fails on a
/// crate of [`FORBIDDEN`].
fn assert_no_forbidden_dependency(package: &str) {
    // `CARGO` is the cargo that runs this test; the manifest dir pins the workspace.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "tree",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).expect("cargo tree prints UTF-8");
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(
        names.contains(&"felhom-agentapi") && names.contains(&"tokio"),
        "the tree does not look like {package}'s: {tree}"
    );
    let found: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| {
            FORBIDDEN
                .iter()
                .any(|f| name == f || name.starts_with(&format!("{f}-")))
        })
        .collect();
    assert!(
        found.is_empty(),
        "{package} depends on {found:?}; it must see them only through traits (SPEC §6)"
    );
}

/// The trait-only tree is what an embedder compiles: no tokio support for signals, sockets or
/// child processes in it, which the quiesce crate never uses (the binary and the stacks
/// crate's `engine` feature ask for them themselves). The workspace's tokio turns on no
/// feature, so that one crate's needs do not leak into every other's tree.
#[test]
fn the_quiesce_crate_compiles_no_tokio_signal_net_or_process() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "felhom-quiesce",
            // What an embedder compiles: normal dependencies (a test helper among the
            // dev-dependencies may need sockets).
            "-e",
            "normal,features",
            "-i",
            "tokio",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).expect("cargo tree prints UTF-8");
    let features: std::collections::BTreeSet<&str> = tree
        .lines()
        .filter_map(|line| line.strip_prefix("tokio feature \""))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(
        features.contains("time") && features.contains("rt"),
        "the tree does not look like felhom-quiesce's tokio features: {tree}"
    );
    let found: Vec<&str> = features
        .iter()
        .copied()
        .filter(|f| ["signal", "net", "process"].contains(f))
        .collect();
    assert!(
        found.is_empty(),
        "felhom-quiesce's tree turns on tokio's {found:?}; a crate that needs them must ask \
         for them itself, not the workspace dependency: {tree}"
    );
}
