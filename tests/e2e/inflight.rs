//! A stop that was under way when the cycle lost track of it. The engine goes on shutting a
//! container down once it has sent SIGTERM, whatever happens to the `docker compose stop` that
//! asked for it — and a container shutting down still shows as running. A `start` then is a
//! no-op, the wait sees it running, the marker is cleared, and a moment later the app exits:
//! stranded down, with nobody told. These tests make the app take seconds to shut down and end
//! the cycle's view of the stop in the three ways it can end.

use std::time::{Duration, Instant};

use felhom_devagent::{DueMode, Fault};
use felhom_e2e::{container, run_controller, Agent, Controller, Env, StackSpec, WAIT};
use felhom_marker::Outcome;

use crate::{assert_run_again, states};

/// The app's own shutdown time: longer than the cycle's view of its stop lasts.
const STOP_DELAY: &str = "4s";

/// The lines of the app's own log (`<data>/<app>/log`: `<time> <message>`).
fn app_log(env: &Env, app: &str) -> Vec<String> {
    env.app_log(app).lines().map(str::to_owned).collect()
}

/// Waits (bounded by `WAIT`) until the app's log, past its first `from` lines, satisfies
/// `done`; the lines past `from`.
fn wait_app_log(env: &Env, app: &str, from: usize, what: &str, done: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let lines = app_log(env, app);
        let new = lines.get(from..).unwrap_or_default();
        if done(new) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{app}: {what} within {WAIT:?}: {new:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The app got its stop signal: the engine is shutting it down.
fn stopping(lines: &[String]) -> bool {
    lines.iter().any(|l| l.ends_with(" stopping"))
}

/// Waits until the shutdown under way since the app's first `from` log lines ended and the
/// app started again after it.
fn wait_shut_down_and_back(env: &Env, app: &str, from: usize) {
    let what = "the end of its shutdown, then a start";
    wait_app_log(env, app, from, what, shut_down_and_back);
}

/// The shutdown that was under way ended, and the app started again after it: no stop is
/// left that could take it down once it looks back.
fn shut_down_and_back(lines: &[String]) -> bool {
    let Some(down) = lines.iter().position(|l| l.ends_with(" shut down cleanly")) else {
        return false;
    };
    lines[down..].iter().any(|l| {
        l.ends_with(" clean start") || l.ends_with(" recovering after an unclean shutdown")
    })
}

#[test]
fn kill_9_of_the_controller_alone_mid_stop_leaves_no_stack_down() {
    // The controller dies; its `docker compose stop` lives on as an orphan.
    kill_mid_stop(
        "kal",
        "a kill of the controller alone",
        Controller::kill_alone,
    );
}

#[test]
fn kill_9_of_the_process_group_mid_stop_leaves_no_stack_down() {
    // compose dies too, but the engine goes on shutting the app down.
    kill_mid_stop("kgs", "a kill of the process group", Controller::kill_group);
}

/// Kills `run` with `kill` while compose is stopping a slow app, then recovers: once every
/// shutdown under way has surely ended, the app runs, in the same container.
fn kill_mid_stop(tag: &str, what: &str, kill: fn(&mut Controller)) {
    let mut env = Env::new(tag);
    let app = env.deploy("a", &StackSpec::app().stop_delay(STOP_DELAY));
    env.up(&app);
    let before = states(std::slice::from_ref(&app));
    let agent = Agent::start(&env, |_| {});
    let config = env.config(&agent.access()).write();

    let logged = app_log(&env, &app).len();
    let mut run = Controller::spawn(&config, &["run"]);
    run.wait_log("cycle started: marker written");
    // The engine has told the app to stop, which takes it STOP_DELAY to do.
    wait_app_log(&env, &app, logged, "the stop signal", stopping);
    kill(&mut run);
    agent.set_due(DueMode::Never);
    let recover = run_controller(&config, &["recover"]);
    assert_eq!(recover.code, Some(0), "{recover}");
    wait_shut_down_and_back(&env, &app, logged);
    assert_run_again(&before, &format!("after recovering from {what}"));
    assert!(env.marker().is_none());
}

#[test]
fn the_bound_during_a_slow_stop_leaves_no_stack_down() {
    let mut env = Env::new("bss");
    let app = env.deploy("a", &StackSpec::app().stop_delay(STOP_DELAY));
    env.up(&app);
    let before = states(std::slice::from_ref(&app));
    let agent = Agent::start(&env, |c| c.faults = vec![Fault::Hang]);
    // The bound passes while the app is still shutting down.
    let config = env
        .config(&agent.access())
        .set("quiesce.max_quiesce", "1500ms")
        .write();
    let logged = app_log(&env, &app).len();
    let once = run_controller(&config, &["once", "--force"]);
    assert_eq!(once.code, Some(1), "{once}");
    assert_eq!(once.record().outcome, Outcome::Bounded, "{once}");
    wait_shut_down_and_back(&env, &app, logged);
    assert_run_again(&before, "after a bound that ended the wait mid-stop");
    assert!(container(&app).running);
}
