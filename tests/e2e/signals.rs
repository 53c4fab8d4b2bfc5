//! The daemon (`run`): one cycle when due, then idle; SIGTERM when idle. Every ending signal
//! (SIGTERM, SIGHUP, SIGQUIT) while stacks are down, to `run` and `once`: resumed first.

use std::thread;
use std::time::{Duration, Instant};

use chrono::Utc;
use felhom_devagent::{EventKind, Fault};
use felhom_e2e::{container, http_get, Agent, AgentProcess, Controller, Env, WAIT};
use felhom_marker::Outcome;

use crate::{assert_run_again, daemon_after_a_cycle, running_apps};

#[test]
fn run_does_one_cycle_when_due_then_exits_on_sigterm() {
    let mut env = Env::new("run");
    let (_, before) = running_apps(&mut env);
    // Always due: only min_cycle_interval (1h) keeps the daemon from a second cycle.
    let agent = AgentProcess::spawn(&env, &["--due", "always"]);
    let (run, port) = daemon_after_a_cycle(&env, &agent.access());
    assert_run_again(&before, "after the daemon's cycle");

    // The status endpoint: the cycle, and the next look at the agent an hour away (polled:
    // the loop sets it just after the cycle's end).
    let an_hour_away = |s: &serde_json::Value| {
        serde_json::from_value::<chrono::DateTime<Utc>>(s["next_check_at"].clone())
            .is_ok_and(|next| next > Utc::now() + chrono::Duration::minutes(30))
    };
    let deadline = Instant::now() + WAIT;
    let status = loop {
        let status = http_get(port, "/status")
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok());
        match status {
            Some(s) if an_hour_away(&s) => break s,
            other => assert!(
                Instant::now() < deadline,
                "after a cycle the daemon waits min_cycle_interval (1h) before it asks again; \
                 /status on port {port}: {other:?}"
            ),
        }
        thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["last"]["outcome"], "done", "{status}");
    let metrics = http_get(port, "/metrics").expect("/metrics answers");
    assert!(
        metrics.contains("felhom_cycles_total{outcome=\"done\"} 1"),
        "{metrics}"
    );

    run.terminate();
    let end = run.wait();
    assert_eq!(
        end.code,
        Some(0),
        "SIGTERM when idle is a clean exit: {end}"
    );
    let backups = agent
        .events()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::BackupRequested { .. }))
        .count();
    assert_eq!(backups, 1, "exactly one backup: {:#?}", agent.events());
    let history = env.history();
    assert_eq!(history.len(), 1, "{history:#?}");
    assert_eq!(history[0].outcome, Outcome::Done);
    assert_run_again(&before, "after the daemon's exit");
}

#[test]
fn sigterm_while_the_stacks_are_down_resumes_them_before_the_exit() {
    signal_while_down("term", &["run"], &["TERM"], 0);
}

#[test]
fn a_hang_up_of_once_mid_quiesce_resumes_the_stacks_before_the_exit() {
    // The SSH session drops: the shell's hang-up reaches the command, then another one. The
    // cycle did not complete normally: exit 1.
    signal_while_down("hup", &["once", "--force"], &["HUP", "HUP"], 1);
}

#[test]
fn sigquit_of_the_daemon_mid_quiesce_resumes_the_stacks_before_the_exit() {
    signal_while_down("quit", &["run"], &["QUIT"], 0);
}

/// The controller `args` gets `signals` while the backup holds the stacks down: it starts
/// them again before it exits with `code`, the marker is cleared, the cycle is `cancelled`.
fn signal_while_down(tag: &str, args: &[&str], signals: &[&str], code: i32) {
    let mut env = Env::new(tag);
    let (apps, before) = running_apps(&mut env);
    let agent = Agent::start(&env, |c| c.faults = vec![Fault::Hang]);
    let config = env.config(&agent.access()).write();
    let mut run = Controller::spawn(&config, args);
    run.wait_log("backup started");
    for name in &apps {
        assert!(!container(name).running, "{name} is down during the backup");
    }

    for signal in signals {
        run.signal(signal);
    }
    let end = run.wait();
    assert_eq!(end.code, Some(code), "{end}");
    // The process logged each stack back up before it ended, and they run now.
    let logs = end.logs();
    for name in &apps {
        assert!(
            logs.iter().any(|l| l.message == "stack runs again"
                && l.field("stack").as_deref() == Some(name.as_str())),
            "{name} was not started again before the exit: {end}"
        );
    }
    assert_run_again(&before, "right after the exit");
    assert!(!env.marker_path().exists(), "the marker is cleared");
    let last = env.history().pop().expect("the cycle is recorded");
    assert_eq!(last.outcome, Outcome::Cancelled, "{last:#?}");
}
