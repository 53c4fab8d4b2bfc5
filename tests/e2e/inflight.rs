//! A stop that was under way when the cycle lost track of it. The engine goes on shutting a
//! container down once it has sent SIGTERM, whatever happens to the `docker compose stop` that
//! asked for it — and a container shutting down still shows as running. A `start` then is a
//! no-op, the wait sees it running, the marker is cleared, and a moment later the app exits:
//! stranded down, with nobody told. These tests make the app take seconds to shut down and end
//! the cycle's view of the stop in the three ways it can end.

use std::time::Duration;

use felhom_devagent::{DueMode, Fault};
use felhom_e2e::{container, run_controller, Agent, Controller, Env, StackSpec};
use felhom_marker::Outcome;

use crate::{assert_run_again, states};

/// The app's own shutdown time: longer than the cycle's view of its stop lasts.
const STOP_DELAY: &str = "4s";
/// Past the app's shutdown, so a stop that was still under way has surely ended.
const SETTLED: Duration = Duration::from_secs(6);

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

    let mut run = Controller::spawn(&config, &["run"]);
    run.wait_log("cycle started: marker written");
    // compose has asked the engine to stop the app, which takes STOP_DELAY to shut down.
    std::thread::sleep(Duration::from_millis(1500));
    kill(&mut run);
    agent.set_due(DueMode::Never);
    let recover = run_controller(&config, &["recover"]);
    assert_eq!(recover.code, Some(0), "{recover}");
    std::thread::sleep(SETTLED);
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
    let once = run_controller(&config, &["once", "--force"]);
    assert_eq!(once.code, Some(1), "{once}");
    assert_eq!(once.record().outcome, Outcome::Bounded, "{once}");
    std::thread::sleep(SETTLED);
    assert_run_again(&before, "after a bound that ended the wait mid-stop");
    assert!(container(&app).running);
}
