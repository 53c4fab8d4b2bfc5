//! What an embedding program hears through [`Observer`]: every phase change, a tick at least
//! every [`TICK`] while the loop waits on anything, and notices once the stacks are back.
//! Paused tokio time; the recording fakes of the other crates stand in for the collaborators.

use chrono::Utc;
use felhom_agentapi::fake::{Answer, FakeAgent};
use felhom_agentapi::BackupPhase;
use felhom_marker::fake::FakeState;
use felhom_marker::{MarkedStack, Marker};
use felhom_quiesce::machine::Phase;
use felhom_quiesce::testing::{CallLog, Recorder};
use felhom_quiesce::{CancellationToken, Collaborators, Controller, CycleConfig, NoticeKind, TICK};
use felhom_stacks::fake::{FakeStacks, Trouble};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

fn config() -> CycleConfig {
    CycleConfig {
        max_quiesce: Duration::from_secs(600),
        restart_attempts: 2,
        ..CycleConfig::default()
    }
}

/// A controller over `agent`, `stacks` and `state`, observed by a recorder that watches the
/// stacks' calls (to see what had happened when each notice came).
fn controller(
    agent: FakeAgent,
    stacks: FakeStacks,
    state: FakeState,
) -> (Controller, Arc<Recorder>, CallLog) {
    let calls = CallLog::default();
    let recorder = Arc::new(Recorder::watching(calls.clone()));
    let stacks = Arc::new(stacks.log_into(calls.clone()));
    let parts = Collaborators {
        observer: recorder.clone(),
        ..Collaborators::in_memory(Some(Arc::new(agent)), stacks, Arc::new(state))
    };
    (Controller::new(parts, config()), recorder, calls)
}

#[tokio::test(start_paused = true)]
async fn every_phase_change_is_told_and_a_done_cycle_ends_with_done() {
    let agent = FakeAgent::answering([BackupPhase::Running, BackupPhase::Done]);
    let stacks = FakeStacks::running([("alpha", &["app"][..])]);
    let (c, rec, _) = controller(agent, stacks, FakeState::default());
    let record = c.run_cycle(&CancellationToken::new()).await.expect("cycle");
    let phases = rec.phases();
    assert_eq!(
        phases,
        [
            Some(Phase::Quiescing),
            Some(Phase::BackingUp),
            Some(Phase::Resuming {
                outcome: Some(record.outcome)
            }),
            Some(Phase::Finished(record.outcome)),
            None,
        ]
    );
    let notices = rec.notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let notice = &notices[0];
    assert_eq!(notice.event, NoticeKind::Done);
    assert_eq!(notice.cycle_id.as_deref(), Some(record.cycle_id.as_str()));
    assert_eq!(notice.outcome.as_deref(), Some("done"));
    assert_eq!(notice.stacks, ["alpha"]);
    let json = serde_json::to_value(notice).expect("serialises");
    assert_eq!(json["event"], "done");
}

#[tokio::test(start_paused = true)]
async fn a_stranded_stack_is_told_after_the_resume_then_the_cycle_fails() {
    let agent = FakeAgent::answering([BackupPhase::Done]);
    let stacks = FakeStacks::running([("alpha", &["app"][..]), ("beta", &["db"][..])])
        .start_trouble(
            "beta",
            Trouble::Fail("exited; its last log lines: password=hunter2".into()),
        );
    let (c, rec, calls) = controller(agent, stacks, FakeState::default());
    let record = c.run_cycle(&CancellationToken::new()).await.expect("cycle");
    assert_eq!(record.stranded, ["beta"]);
    assert_eq!(rec.kinds(), [NoticeKind::Stranded, NoticeKind::Failed]);
    // The record keeps the errors; no notice quotes one (it may go to a public topic).
    assert!(
        record.errors.iter().any(|e| e.contains("hunter2")),
        "{:?}",
        record.errors
    );
    let failed = &rec.notices()[1];
    assert_eq!(
        failed.message,
        format!(
            "backup cycle ended done; stranded: beta; {} error(s), in the cycle's record",
            record.errors.len()
        )
    );
    for notice in rec.notices() {
        assert!(!notice.message.contains("hunter2"), "{notice:?}");
    }
    // Told only once every start had been tried (both attempts of beta, alpha's one).
    let calls = calls.lock().expect("calls").clone();
    let starts = calls.iter().filter(|c| c.starts_with("start ")).count();
    assert_eq!(starts, 3, "{calls:?}");
    assert!(
        rec.calls_at_notices()
            .iter()
            .all(|seen| *seen == calls.len()),
        "{:?}",
        rec.notices()
    );
    assert_eq!(rec.notices()[0].stranded, ["beta"]);
}

#[tokio::test(start_paused = true)]
async fn a_bounded_cycle_is_failed_and_a_recovery_is_recovered() {
    let (c, rec, _) = controller(
        FakeAgent::answering([BackupPhase::Running]),
        FakeStacks::running([("alpha", &["app"][..])]),
        FakeState::default(),
    );
    c.run_cycle(&CancellationToken::new()).await.expect("cycle");
    let left = Marker::new(
        "c-crashed",
        Utc::now(),
        vec![MarkedStack::new("alpha", vec!["app".into()], vec![])],
    );
    let (r, rec2, _) = controller(
        FakeAgent::answering([BackupPhase::Done]),
        FakeStacks::running([("alpha", &["app"][..])]),
        FakeState::with_marker(left),
    );
    r.recover(&CancellationToken::new())
        .await
        .expect("recovers")
        .record
        .expect("a marker");
    let first = rec.notices();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].event, NoticeKind::Failed);
    assert_eq!(first[0].outcome.as_deref(), Some("bounded"));
    let second = rec2.notices();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].event, NoticeKind::Recovered);
    assert_eq!(second[0].cycle_id.as_deref(), Some("c-crashed"));
}

/// The loop ticks through its due sleeps, a cycle's waits (a backup that runs for minutes)
/// and a resume's retries: never more than [`TICK`] apart.
#[tokio::test(start_paused = true)]
async fn the_loop_ticks_whatever_it_waits_for() {
    let mut answers = vec![Answer::Phase(BackupPhase::Running); 150];
    answers.push(Answer::Error);
    answers.push(Answer::Phase(BackupPhase::Done));
    let agent = FakeAgent::scripted(answers);
    let stacks = FakeStacks::running([("alpha", &["app"][..])])
        .start_trouble("alpha", Trouble::FailTimes(1));
    let (c, rec, calls) = controller(agent, stacks, FakeState::default());
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    let begin = Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
        stopper.cancel();
    });
    c.run(&cancel).await;
    let ticks = rec.ticks();
    let calls = calls.lock().expect("calls").clone();
    assert!(
        calls
            .iter()
            .filter(|c| c.starts_with("start alpha"))
            .count()
            >= 2,
        "a retried start happened: {calls:?}"
    );
    assert!(
        ticks.first().is_some_and(|t| *t == begin),
        "ticks from the start"
    );
    let longest = ticks
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .expect("many ticks");
    assert!(longest <= TICK, "a gap of {longest:?} between ticks");
    let last = ticks.last().copied().expect("ticks");
    assert!(
        begin + Duration::from_secs(3 * 3600) - last <= TICK,
        "ticked until the end"
    );
}
