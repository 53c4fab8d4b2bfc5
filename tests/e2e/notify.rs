//! Notifications (SPEC §5 `[notify]`) from the real binary to a real HTTP receiver on
//! 127.0.0.1: what a failed cycle, a stranded stack and a crash recovery send; that a plain
//! success sends only the ping; that a receiver that is down or never answers delays nothing;
//! that no notify URL nor the token shows in the log.

use std::time::Duration;

use chrono::{DateTime, Utc};
use felhom_devagent::Fault;
use felhom_e2e::{container, run_controller, Agent, Controller, Env, StackSpec};
use felhom_marker::Outcome;

use crate::receiver::{down_url, Receiver};
use crate::{assert_run_again, running_apps};

#[test]
fn a_failed_cycle_is_posted_once_the_stacks_run_and_pings_fail() {
    let mut env = Env::new("nfl");
    let (apps, before) = running_apps(&mut env);
    let probe_apps = apps.clone();
    // Each request notes whether every app ran when it arrived.
    let receiver =
        Receiver::answering_with(move || probe_apps.iter().all(|a| container(a).running));
    let agent = Agent::start(&env, |c| c.faults = vec![Fault::Unavailable]);
    let config = env
        .config(&agent.access())
        .set("notify.webhook", receiver.url("/hook"))
        .set("notify.ping", receiver.url("/ping/check-1"))
        .write();
    let once = run_controller(&config, &["once", "--force"]);
    assert_eq!(once.code, Some(1), "{once}");
    let record = once.record();
    assert_eq!(record.outcome, Outcome::Failed, "{once}");
    assert_run_again(&before, "after the failed cycle");

    let hook = receiver.wait_for("the webhook's POST", |r| r.path == "/hook");
    assert_eq!(hook.method, "POST");
    assert!(
        hook.apps_ran,
        "the event was sent before the stacks ran again"
    );
    let event = hook.json();
    assert_eq!(event["event"], "failed", "{event}");
    assert_eq!(event["cycle_id"], record.cycle_id.as_str(), "{event}");
    assert_eq!(event["outcome"], "failed", "{event}");
    assert_eq!(event["stacks"], serde_json::json!(apps), "{event}");
    assert_eq!(event["stranded"], serde_json::json!([]), "{event}");
    assert!(
        !event["host"].as_str().unwrap_or_default().is_empty(),
        "{event}"
    );
    let at = event["at"].as_str().expect("at is a string");
    DateTime::parse_from_rfc3339(at).unwrap_or_else(|e| panic!("at {at:?}: {e}"));
    assert!(
        event["message"]
            .as_str()
            .unwrap_or_default()
            .contains("failed"),
        "{event}"
    );
    let ping = receiver.wait_for("the failure ping", |r| r.path == "/ping/check-1/fail");
    assert_eq!(ping.method, "GET");
    assert_eq!(receiver.requests().len(), 2, "{:#?}", receiver.requests());
}

#[test]
fn a_plain_success_sends_only_the_ping() {
    let mut env = Env::new("nok");
    let (_apps, before) = running_apps(&mut env);
    let receiver = Receiver::answering();
    let agent = Agent::start(&env, |_| {});
    let config = env
        .config(&agent.access())
        .set("notify.webhook", receiver.url("/hook"))
        .set("notify.ntfy", receiver.url("/topic"))
        .set("notify.ping", receiver.url("/ping/check-2"))
        .write();
    let once = run_controller(&config, &["once", "--force"]);
    assert_eq!(once.code, Some(0), "{once}");
    assert_run_again(&before, "after the cycle");
    // `once` waits for its deliveries before it exits: what arrived is all there is.
    let got = receiver.requests();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/ping/check-2"], "{got:#?}");
}

#[test]
fn a_crash_recovery_and_its_stranded_stack_are_posted() {
    let mut env = Env::new("nrc");
    let app = env.deploy("app", &StackSpec::app());
    env.up(&app);
    env.stop(&app);
    // A stack the marker names that no longer exists anywhere: it cannot come back.
    let ghost = env.name("ghost");
    write_marker(&env, "c-crashed", &[&app, &ghost]);
    let receiver = Receiver::answering();
    let agent = Agent::start(&env, |_| {});
    let config = env
        .config(&agent.access())
        .set("notify.webhook", receiver.url("/hook"))
        .set("notify.ping", receiver.url("/ping/check-3"))
        .write();
    let recover = run_controller(&config, &["recover"]);
    assert_eq!(
        recover.code,
        Some(1),
        "a stranded stack fails the command: {recover}"
    );
    let record = recover.record();
    assert_eq!(record.stranded, std::slice::from_ref(&ghost), "{recover}");
    assert!(container(&app).running, "{recover}");

    let events: Vec<serde_json::Value> = receiver
        .requests()
        .iter()
        .filter(|r| r.path == "/hook")
        .map(|r| r.json())
        .collect();
    let of = |kind: &str| {
        events
            .iter()
            .find(|e| e["event"] == kind)
            .unwrap_or_else(|| panic!("no {kind} event in {events:#?}"))
            .clone()
    };
    let stranded = of("stranded");
    assert_eq!(stranded["cycle_id"], "c-crashed", "{stranded}");
    assert_eq!(
        stranded["stranded"],
        serde_json::json!([ghost]),
        "{stranded}"
    );
    assert_eq!(
        stranded["stacks"],
        serde_json::json!([app, ghost]),
        "{stranded}"
    );
    let recovered = of("recovered");
    assert_eq!(recovered["cycle_id"], "c-crashed", "{recovered}");
    assert_eq!(recovered["outcome"], "recovered", "{recovered}");
    assert_eq!(events.len(), 2, "{events:#?}");
    // A recovered cycle took no backup: the dead-man's switch hears a failure.
    let pings: Vec<String> = receiver
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/ping/"))
        .map(|r| r.path)
        .collect();
    assert_eq!(pings, ["/ping/check-3/fail"]);
}

#[test]
fn receivers_down_or_silent_delay_nothing_and_no_secret_is_logged() {
    let mut env = Env::new("nsl");
    let (_apps, before) = running_apps(&mut env);
    let silent = Receiver::silent();
    let secret_path = "s3cr3t-hook-path-4f1d";
    let secret_query = "tok-9a8b7c6d";
    let agent = Agent::start(&env, |c| c.faults = vec![Fault::Unavailable]);
    let access = agent.access();
    let config = env
        .config(&access)
        // A delivery that waited for its answer would hold the command for 3 × 20 s.
        .set("notify.timeout", "20s")
        .set(
            "notify.webhook",
            silent.url(&format!("/{secret_path}?token={secret_query}")),
        )
        .set("notify.ntfy", down_url(&format!("/{secret_path}-ntfy")))
        .set("notify.ping", down_url(&format!("/ping/{secret_path}")))
        .write();
    let mut once = Controller::spawn(&config, &["once", "--force"]);
    let finished_line = once.wait_log("cycle finished");
    let once = once.wait();
    let exited = Utc::now();
    assert_eq!(once.code, Some(1), "{once}");
    assert_run_again(&before, "after the cycle");
    silent.wait_for("the webhook's POST", |r| r.method == "POST");

    // The command waits a bounded while for its deliveries (5 s), never for the receivers.
    let finished: DateTime<Utc> = finished_line
        .timestamp()
        .expect("JSON log lines carry their time");
    let lingered = (exited - finished).to_std().unwrap_or_default();
    assert!(
        lingered < Duration::from_secs(20),
        "the command lingered {lingered:?} after the cycle for its notifications: {once}"
    );

    let all = format!("{}\n{}", once.stdout, once.stderr);
    assert!(
        all.contains("notification not delivered"),
        "the refused deliveries are warned about: {all}"
    );
    for secret in [secret_path, secret_query, access.token.as_str()] {
        assert!(
            !all.contains(secret),
            "{secret:?} shows in the output: {all}"
        );
    }
}

/// A marker as a controller that died mid-cycle leaves it, naming `stacks` (service `app`).
fn write_marker(env: &Env, cycle_id: &str, stacks: &[&str]) {
    let state = env.state_dir();
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&state)
        .expect("state dir");
    let stacks: Vec<serde_json::Value> = stacks
        .iter()
        .map(|name| serde_json::json!({ "name": name, "services": ["app"], "restart_attempts": 0 }))
        .collect();
    let marker = serde_json::json!({
        "version": 1,
        "cycle_id": cycle_id,
        "phase": "backing_up",
        "started_at": Utc::now().to_rfc3339(),
        "pid": 999_999,
        "backup_id": null,
        "stacks": stacks,
    });
    std::fs::write(env.marker_path(), marker.to_string()).expect("marker");
}
