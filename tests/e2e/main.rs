//! End-to-end tests: the real `felhom-controller` binary against the development agent and
//! real compose stacks (SPEC §7). The harness is the `felhom_e2e` library (`tests/lib.rs`).
//!
//! Build the binaries first, with the same target directory:
//! `cargo build -p felhom-controller -p felhom-devagent && cargo test -p felhom-e2e -- --test-threads=2`.

mod access;
mod config;
mod crash;
mod faults;
mod happy_path;
mod hooks;
mod hostile;
mod inflight;
mod logs;
mod metrics;
mod notify;
mod receiver;
mod record;
mod secrets;
mod signals;
mod single_flight;
mod strand;

use std::collections::BTreeMap;

use felhom_e2e::{container, ContainerState};

/// Each stack's container, keyed by stack name.
type States = BTreeMap<String, ContainerState>;

/// Deploys and starts two app stacks (`notes`, `photos`): their names, and their containers
/// as they are before the cycle.
fn running_apps(env: &mut felhom_e2e::Env) -> (Vec<String>, States) {
    let apps = vec![
        env.deploy("notes", &felhom_e2e::StackSpec::app()),
        env.deploy("photos", &felhom_e2e::StackSpec::app()),
    ];
    for name in &apps {
        env.up(name);
    }
    let before = states(&apps);
    (apps, before)
}

/// Starts the daemon (`run`) against `agent` with the status endpoint on a port the kernel
/// picks, and waits until its first cycle finished `done`: the daemon, and the endpoint's port.
fn daemon_after_a_cycle(
    env: &felhom_e2e::Env,
    agent: &felhom_e2e::Access,
) -> (felhom_e2e::Controller, u16) {
    let config = env
        .config(agent)
        .set("status.listen", "127.0.0.1:0")
        .write();
    let mut run = felhom_e2e::Controller::spawn(&config, &["run"]);
    let port = run.endpoint_port();
    let finished = run.wait_log("cycle finished");
    assert_eq!(
        finished.field("outcome").as_deref(),
        Some("Done"),
        "{}",
        finished.raw
    );
    (run, port)
}

/// The containers of `names`, e.g. before a cycle.
fn states(names: &[String]) -> States {
    names.iter().map(|n| (n.clone(), container(n))).collect()
}

/// Every stack of `before` runs again, in the same container (compose `start`, not a
/// recreating `up`), started after it was seen before.
fn assert_run_again(before: &States, context: &str) {
    for (name, was) in before {
        let now = container(name);
        assert!(now.running, "{context}: {name} does not run: {now:?}");
        assert_eq!(
            now.id, was.id,
            "{context}: {name} was recreated instead of started"
        );
    }
}

/// A stack the controller must never stop: same container, same start, still running.
fn assert_untouched(name: &str, was: &ContainerState, context: &str) {
    let now = container(name);
    assert_eq!(
        &now, was,
        "{context}: {name} was stopped or touched, and must not be"
    );
    assert!(now.running, "{context}: {name} does not run");
}
