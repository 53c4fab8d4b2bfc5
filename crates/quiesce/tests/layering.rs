//! SPEC §6: the quiesce crate sees the agent, the engine and the config only through traits and
//! plain values, so it compiles no HTTP, no TLS, no Docker client and no config parser. A
//! dependency that drags one in (a default feature of a leaf crate turned back on, a helper
//! added for convenience) fails this test rather than slipping in unnoticed.

use std::process::Command;

/// Crates that must never be in `felhom-quiesce`'s normal dependency tree.
const FORBIDDEN: [&str; 5] = ["hyper", "rustls", "bollard", "figment", "reqwest"];

#[test]
fn the_quiesce_crate_compiles_no_http_tls_docker_or_config_parser() {
    // `CARGO` is the cargo that runs this test; the manifest dir pins the workspace.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "felhom-quiesce",
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
        "the tree does not look like felhom-quiesce's: {tree}"
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
        "felhom-quiesce depends on {found:?}; it must see them only through traits (SPEC §6)"
    );
}
