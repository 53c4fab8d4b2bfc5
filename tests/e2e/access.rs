//! Reaching the agent: a wrong pin or token stops nothing; `check` says what it found.

use felhom_devagent::EventKind;
use felhom_e2e::{container, run_controller, Access, Agent, Env, StackSpec};

use crate::assert_untouched;

/// A pin of the right form that is not the agent's.
fn other_pin(pin: &str) -> String {
    let other = if pin.starts_with("ab") { "cd" } else { "ab" };
    vec![other; 32].join(":")
}

/// `once --force` with a bad `[agent]`: exit 1 with `needle` on stderr, nothing stopped, no
/// marker, no backup asked for.
fn once_stops_nothing(tag: &str, access: impl FnOnce(Access) -> Access, needle: &str) {
    let mut env = Env::new(tag);
    let app = env.deploy("notes", &StackSpec::app());
    env.up(&app);
    let before = container(&app);
    let agent = Agent::start(&env, |_| {});
    let config = env.config(&access(agent.access())).write();
    let once = run_controller(&config, &["once", "--force"]);
    assert_eq!(once.code, Some(1), "{once}");
    assert!(
        once.stderr.contains(needle),
        "stderr should say {needle:?}: {once}"
    );
    assert_untouched(&app, &before, "a refused agent");
    assert!(env.marker().is_none(), "no marker: {once}");
    assert!(env.history().is_empty(), "no cycle: {once}");
    let events = agent.events();
    assert!(
        !events.iter().any(|e| match &e.kind {
            EventKind::BackupRequested { .. } => true,
            EventKind::Request { path, .. } => path == "/backup",
            _ => false,
        }),
        "no backup was asked for: {events:#?}"
    );
}

#[test]
fn a_wrong_pin_stops_nothing() {
    once_stops_nothing(
        "pin",
        |a| Access {
            pin: other_pin(&a.pin),
            ..a
        },
        "certificate pin mismatch",
    );
}

#[test]
fn a_wrong_token_stops_nothing() {
    once_stops_nothing(
        "tok",
        |a| Access {
            token: "not-the-token".into(),
            ..a
        },
        "refused the token (401 Unauthorized)",
    );
}

#[test]
fn check_reaches_the_agent_and_lists_what_a_cycle_would_stop() {
    let mut env = Env::new("chk");
    let app = env.deploy("notes", &StackSpec::app());
    let proxy = env.deploy_protected("proxy");
    env.up(&app);
    env.up(&proxy);
    let (app_before, proxy_before) = (container(&app), container(&proxy));
    let agent = Agent::start(&env, |_| {});

    let good = env.config(&agent.access()).write();
    let check = run_controller(&good, &["check"]);
    assert_eq!(check.code, Some(0), "{check}");
    assert!(check.stdout.contains("pin and token accepted"), "{check}");
    let would_stop = check
        .stdout
        .split("a cycle would stop:")
        .nth(1)
        .unwrap_or_else(|| panic!("check lists what a cycle would stop: {check}"));
    assert!(would_stop.contains(&app), "{check}");
    assert!(
        !would_stop.contains(&proxy),
        "a protected stack is never stopped: {check}"
    );

    let wrong = env
        .config(&Access {
            pin: other_pin(&agent.access().pin),
            ..agent.access()
        })
        .named("wrong-pin.toml")
        .write();
    let check = run_controller(&wrong, &["check"]);
    assert_eq!(check.code, Some(1), "{check}");
    assert!(check.stdout.contains("certificate pin mismatch"), "{check}");

    assert_untouched(&app, &app_before, "check stops nothing");
    assert_untouched(&proxy, &proxy_before, "check stops nothing");
    assert!(env.marker().is_none());
}
