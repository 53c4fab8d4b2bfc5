//! Bounded child processes: a command past its bound is killed and named, a failing one says
//! why.

use std::process::Command;
use std::time::{Duration, Instant};

use felhom_testsupport::process::{checked, run, signal, tail, terminate, ProcessError};

#[test]
fn a_command_past_its_bound_is_killed_and_named() {
    let mut cmd = Command::new("sleep");
    cmd.arg("30");
    let begin = Instant::now();
    let err = run(&mut cmd, Duration::from_millis(200)).expect_err("sleep 30 outlives 200ms");
    assert!(matches!(err, ProcessError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("sleep 30"), "{err}");
    assert!(begin.elapsed() < Duration::from_secs(20), "not killed");
}

#[test]
fn a_failing_command_is_an_error_with_its_stderr() {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo out; echo broken >&2; exit 3"]);
    let err = checked(&mut cmd, Duration::from_secs(20)).expect_err("exit 3");
    match &err {
        ProcessError::Failed { stdout, .. } => assert_eq!(stdout, "out\n"),
        other => panic!("expected Failed, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("broken") && msg.contains('3'), "{msg}");
    let mut ok = Command::new("sh");
    ok.args(["-c", "echo out"]);
    assert_eq!(
        checked(&mut ok, Duration::from_secs(20)).expect("sh runs"),
        "out\n"
    );
}

#[test]
fn a_command_that_cannot_start_is_named() {
    let mut cmd = Command::new("/nonexistent/felhom-no-such-tool");
    let err = run(&mut cmd, Duration::from_secs(5)).expect_err("no such program");
    assert!(matches!(err, ProcessError::Spawn { .. }), "{err:?}");
    assert!(err.to_string().contains("felhom-no-such-tool"), "{err}");
}

#[test]
fn terminate_kills_a_child_that_ignores_sigterm() {
    let mut child = Command::new("sh")
        .args(["-c", "trap '' TERM; exec sleep 30"])
        .spawn()
        .expect("sh starts");
    let begin = Instant::now();
    terminate(&mut child, Duration::from_millis(300));
    assert!(
        child.try_wait().expect("waitable").is_some(),
        "the child is gone"
    );
    assert!(begin.elapsed() < Duration::from_secs(20), "not killed");
}

#[test]
fn a_signal_reaches_its_process() {
    let mut child = Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("sleep starts");
    signal(child.id(), "TERM", false);
    let status = felhom_testsupport::process::wait_bounded(&mut child, Duration::from_secs(20))
        .expect("sleep ends on SIGTERM");
    assert!(!status.success());
}

#[test]
fn tail_keeps_the_last_lines() {
    assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
    assert_eq!(tail("a", 5), "a");
    assert_eq!(tail("", 5), "");
}
