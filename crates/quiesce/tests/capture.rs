//! SPEC §2 rule 10, the record tells the truth: every path to each capture verdict, from the
//! engine's evidence as the stacks fake scripts it (`Fact`), and what the verdicts and the
//! stacks' fates make of the cycle's end — the notice, the success, the stranded notice's
//! outcome. Paused tokio time.

use chrono::Utc;
use felhom_agentapi::fake::FakeAgent;
use felhom_agentapi::{AgentError, Answered, BackupPhase, BackupStart, BackupStatus, MockAgentApi};
use felhom_marker::fake::FakeState;
use felhom_marker::{
    Capture, CycleRecord, Fact as Seen, Marker, MarkerError, MarkerStore, Outcome,
};
use felhom_quiesce::testing::Recorder;
use felhom_quiesce::{CancellationToken, Collaborators, Controller, CycleConfig, NoticeKind};
use felhom_stacks::fake::{Fact, FakeStacks, Trouble};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn config() -> CycleConfig {
    CycleConfig {
        max_quiesce: Duration::from_secs(600),
        restart_attempts: 3,
        restart_backoff: Duration::from_secs(1),
        parallelism: 1,
        ..CycleConfig::default()
    }
}

/// The outcome of one cycle: its record, what was told, and the stacks as they are after it.
struct Ran {
    record: CycleRecord,
    recorder: Arc<Recorder>,
    stacks: Arc<FakeStacks>,
}

impl Ran {
    fn capture(&self, stack: &str) -> Capture {
        self.record
            .stacks
            .iter()
            .find(|s| s.name == stack)
            .map(|s| s.capture)
            .unwrap_or_else(|| panic!("{stack} in {:?}", self.record))
    }

    fn facts(&self, stack: &str) -> Vec<(String, Seen)> {
        self.record
            .stacks
            .iter()
            .find(|s| s.name == stack)
            .map(|s| {
                s.facts
                    .iter()
                    .map(|f| (f.container.clone(), f.fact))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One cycle of `stacks` against `agent` (which answers `snapshotted`, then `done` by
/// default), over `marker` (the in-memory state by default).
async fn cycle_with(
    stacks: FakeStacks,
    agent: Arc<dyn felhom_agentapi::AgentApi>,
    marker: Option<Arc<dyn MarkerStore>>,
    config: CycleConfig,
) -> Ran {
    let stacks = Arc::new(stacks);
    let recorder = Arc::new(Recorder::default());
    let state = Arc::new(FakeState::default());
    let mut parts = Collaborators {
        observer: recorder.clone(),
        ..Collaborators::in_memory(Some(agent), stacks.clone(), state)
    };
    if let Some(marker) = marker {
        parts.marker = marker;
    }
    let record = Controller::new(parts, config)
        .run_cycle(&CancellationToken::new())
        .await
        .expect("the cycle runs");
    Ran {
        record,
        recorder,
        stacks,
    }
}

async fn cycle(stacks: FakeStacks) -> Ran {
    let agent = Arc::new(FakeAgent::answering([
        BackupPhase::Snapshotted,
        BackupPhase::Done,
    ]));
    cycle_with(stacks, agent, None, config()).await
}

fn two() -> FakeStacks {
    FakeStacks::running([("alpha", &["app", "db"][..]), ("beta", &["web"][..])])
}

#[tokio::test(start_paused = true)]
async fn a_clean_cycle_is_clean_and_done() {
    let ran = cycle(two()).await;
    assert_eq!(ran.capture("alpha"), Capture::Clean);
    assert_eq!(ran.capture("beta"), Capture::Clean);
    assert!(ran.record.succeeded());
    assert_eq!(ran.recorder.kinds(), [NoticeKind::Done]);
}

#[tokio::test(start_paused = true)]
async fn a_container_killed_at_the_end_of_its_grace_is_killed_and_the_cycle_inconsistent() {
    let ran = cycle(two().fact("alpha", "db", Fact::Killed)).await;
    assert_eq!(ran.capture("alpha"), Capture::Killed);
    assert_eq!(
        ran.facts("alpha"),
        [("alpha-db-1".to_owned(), Seen::Killed)]
    );
    assert_eq!(ran.capture("beta"), Capture::Clean);
    assert_eq!(ran.record.outcome, Outcome::Done);
    assert!(!ran.record.succeeded());
    // `inconsistent` instead of `done`, naming the stack, its verdict and its container.
    assert_eq!(ran.recorder.kinds(), [NoticeKind::Inconsistent]);
    let notice = &ran.recorder.notices()[0];
    assert!(
        notice.message.contains("alpha (killed: alpha-db-1 killed)"),
        "{}",
        notice.message
    );
    assert_eq!(notice.outcome.as_deref(), Some("done"));
}

#[tokio::test(start_paused = true)]
async fn a_container_restarted_after_its_stop_is_stopped_again_and_can_stay_clean() {
    let ran = cycle(two().fact("alpha", "db", Fact::RestartedAfterStop)).await;
    // Seen running right after the stop: stopped again, and down from then on.
    assert_eq!(ran.capture("alpha"), Capture::Clean);
    assert_eq!(
        ran.facts("alpha"),
        [("alpha-db-1".to_owned(), Seen::CameBack)]
    );
    let stops = ran
        .stacks
        .calls()
        .iter()
        .filter(|c| *c == "stop alpha")
        .count();
    assert_eq!(stops, 2, "{:?}", ran.stacks.calls());
    assert!(ran.record.succeeded(), "{:?}", ran.record);
}

#[tokio::test(start_paused = true)]
async fn a_container_restarted_during_the_backup_is_live() {
    // It starts again after each of its stops: the three of the stack's stop, and the one
    // before `POST /backup`. After that last one it runs through the backup.
    let mut stacks = two();
    for _ in 0..4 {
        stacks = stacks.fact("alpha", "db", Fact::RestartedAfterStop);
    }
    let ran = cycle(stacks).await;
    assert_eq!(ran.capture("alpha"), Capture::Live);
    let facts = ran.facts("alpha");
    assert!(
        facts.contains(&("alpha-db-1".to_owned(), Seen::Ran)),
        "{facts:?}"
    );
    assert_eq!(ran.capture("beta"), Capture::Clean);
    assert!(!ran.record.succeeded());
    assert_eq!(ran.recorder.kinds(), [NoticeKind::Inconsistent]);
}

#[tokio::test(start_paused = true)]
async fn a_new_container_that_appears_during_the_backup_is_live_and_is_stopped_and_started() {
    let mut stacks = two();
    for _ in 0..4 {
        stacks = stacks.fact("beta", "web", Fact::AppearsAfterStop);
    }
    let ran = cycle(stacks).await;
    assert_eq!(ran.capture("beta"), Capture::Live);
    assert!(
        ran.facts("beta").iter().any(|(_, f)| *f == Seen::Appeared),
        "{:?}",
        ran.facts("beta")
    );
    // The ones that appeared before the backup were recorded and stopped: they are started
    // again with the stack.
    assert!(ran.stacks.running_now("beta").len() >= 4);
}

#[tokio::test(start_paused = true)]
async fn the_engine_away_at_the_check_is_unknown_and_does_not_keep_the_stack_down() {
    let ran = cycle(two().check_trouble("alpha", Trouble::EngineAway)).await;
    assert_eq!(ran.capture("alpha"), Capture::Unknown);
    assert_eq!(ran.capture("beta"), Capture::Clean);
    assert_eq!(
        ran.stacks.running_now("alpha").len(),
        2,
        "started all the same"
    );
    assert!(
        ran.record.succeeded(),
        "unknown is no failure: {:?}",
        ran.record
    );
    assert!(
        ran.record
            .errors
            .iter()
            .any(|e| e.contains("alpha") && e.contains("cannot be told")),
        "{:?}",
        ran.record.errors
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_snapshot_nothing_can_be_told() {
    let agent = Arc::new(FakeAgent::answering([BackupPhase::Failed]));
    let ran = cycle_with(two(), agent, None, config()).await;
    assert_eq!(ran.record.outcome, Outcome::Failed);
    assert!(ran
        .record
        .stacks
        .iter()
        .all(|s| s.capture == Capture::Unknown));
}

#[tokio::test(start_paused = true)]
async fn a_death_in_the_settle_window_is_retried_and_a_lasting_one_stranded_never_done() {
    // Once: the retry brings it back.
    let ran = cycle(two().fact("beta", "web", Fact::DiesAfterStart)).await;
    assert!(ran.record.stranded.is_empty());
    assert!(ran.record.succeeded(), "{:?}", ran.record);
    // Every attempt: stranded, failed, no `done`.
    let mut stacks = two();
    for _ in 0..3 {
        stacks = stacks.fact("beta", "web", Fact::DiesAfterStart);
    }
    let ran = cycle(stacks).await;
    assert_eq!(ran.record.stranded, ["beta"]);
    assert!(!ran.record.succeeded());
    assert_eq!(
        ran.recorder.kinds(),
        [NoticeKind::Stranded, NoticeKind::Failed]
    );
    assert!(ran.stacks.running_now("beta").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_stop_left_in_flight_is_waited_for_and_never_signalled_again() {
    let agent = Arc::new(FakeAgent::answering([BackupPhase::Running]));
    let stacks = two().fact("alpha", "db", Fact::StopInFlight);
    let ran = cycle_with(
        stacks,
        agent,
        None,
        CycleConfig {
            max_quiesce: Duration::from_secs(60),
            ..config()
        },
    )
    .await;
    assert_eq!(ran.record.outcome, Outcome::Bounded);
    // The stop hung until the bound; the start waited for it, then started alpha: it runs.
    assert_eq!(ran.stacks.running_now("alpha").len(), 2);
    let calls = ran.stacks.calls();
    assert_eq!(
        calls.iter().filter(|c| *c == "stop alpha").count(),
        1,
        "{calls:?}"
    );
    assert_eq!(ran.capture("alpha"), Capture::Unknown);
    // beta's stop never began (parallelism 1): left alone, and running.
    assert_eq!(ran.stacks.running_now("beta").len(), 1);
    assert!(
        !calls.iter().any(|c| c.starts_with("start beta")),
        "{calls:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_adopted_backup_that_began_before_the_stops_is_live() {
    let began = Utc::now() - chrono::Duration::minutes(10);
    let mut agent = MockAgentApi::new();
    agent.expect_start_backup().returning(|_| {
        Ok(BackupStart {
            id: "b-old".into(),
            adopted: true,
        })
    });
    let phases = Arc::new(AtomicUsize::new(0));
    agent.expect_backup_status_wait().returning(move |_, _| {
        let phase = match phases.fetch_add(1, Ordering::SeqCst) {
            0 => BackupPhase::Snapshotted,
            _ => BackupPhase::Done,
        };
        Ok(Answered::complete(BackupStatus {
            id: Some("b-old".into()),
            phase,
            started_at: Some(began),
            snapshot_at: None,
            finished_at: None,
            error: None,
        }))
    });
    let ran = cycle_with(two(), Arc::new(agent), None, config()).await;
    assert_eq!(ran.record.outcome, Outcome::Done);
    assert_eq!(ran.capture("alpha"), Capture::Live);
    assert_eq!(ran.capture("beta"), Capture::Live);
    assert_eq!(ran.recorder.kinds(), [NoticeKind::Inconsistent]);
}

/// A marker store whose `n`-th save (1-based) fails.
struct FailingSave {
    inner: FakeState,
    n: usize,
    saves: AtomicUsize,
}

impl MarkerStore for FailingSave {
    fn load(&self) -> Result<Option<Marker>, MarkerError> {
        self.inner.load()
    }
    fn save(&self, marker: &Marker) -> Result<(), MarkerError> {
        if self.saves.fetch_add(1, Ordering::SeqCst) + 1 == self.n {
            return Err(MarkerError::Io {
                action: "writing the marker",
                path: "/state/marker.json".into(),
                source: std::io::Error::other("No space left on device"),
            });
        }
        self.inner.save(marker)
    }
    fn clear(&self) -> Result<(), MarkerError> {
        self.inner.clear()
    }
}

#[tokio::test(start_paused = true)]
async fn a_stack_whose_containers_cannot_be_recorded_is_not_stopped_and_is_live() {
    // Save 1 is the cycle's marker, save 2 records alpha's containers: it fails.
    let disk = Arc::new(FailingSave {
        inner: FakeState::default(),
        n: 2,
        saves: AtomicUsize::new(0),
    });
    let agent = Arc::new(FakeAgent::answering([
        BackupPhase::Snapshotted,
        BackupPhase::Done,
    ]));
    let ran = cycle_with(two(), agent, Some(disk.clone()), config()).await;
    let calls = ran.stacks.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.ends_with(" alpha") || c.starts_with("start alpha")),
        "{calls:?}"
    );
    assert_eq!(ran.stacks.running_now("alpha").len(), 2, "never stopped");
    assert_eq!(ran.capture("alpha"), Capture::Live);
    assert_eq!(ran.capture("beta"), Capture::Clean);
    assert!(ran
        .record
        .errors
        .iter()
        .any(|e| e.contains("stopping alpha") && e.contains("not stopped")));
    assert_eq!(ran.recorder.kinds(), [NoticeKind::Inconsistent]);
    assert_eq!(disk.inner.marker(), None, "cleared");
}

#[tokio::test(start_paused = true)]
async fn stacks_still_waiting_for_the_engine_fail_the_cycle_never_done() {
    let stacks = two().start_trouble("beta", Trouble::EngineAway);
    let agent = Arc::new(FakeAgent::answering([BackupPhase::Done]));
    let ran = cycle_with(
        stacks,
        agent,
        None,
        CycleConfig {
            engine_wait: Some(Duration::from_secs(120)),
            ..config()
        },
    )
    .await;
    assert_eq!(ran.record.outcome, Outcome::Done);
    assert_eq!(ran.record.waiting_for_engine, ["beta"]);
    assert!(!ran.record.succeeded());
    assert_eq!(
        ran.recorder.kinds(),
        [NoticeKind::EngineUnreachable, NoticeKind::Failed]
    );
    let failed = &ran.recorder.notices()[1];
    assert!(
        failed
            .message
            .contains("waiting for the docker engine: beta"),
        "{}",
        failed.message
    );
}

#[tokio::test(start_paused = true)]
async fn the_stranded_notice_carries_the_outcome_known_when_it_is_sent() {
    let stranding = || {
        let mut stacks = two();
        for _ in 0..3 {
            stacks = stacks.fact("beta", "web", Fact::DiesAfterStart);
        }
        stacks
    };
    // The resume on `done`: the outcome is known.
    let agent = Arc::new(FakeAgent::answering([BackupPhase::Done]));
    let ran = cycle_with(stranding(), agent, None, config()).await;
    let stranded = &ran.recorder.notices()[0];
    assert_eq!(stranded.event, NoticeKind::Stranded);
    assert_eq!(stranded.outcome.as_deref(), Some("done"));
    // The early resume: the backup's outcome is still to come.
    let ran = cycle(stranding()).await;
    let stranded = &ran.recorder.notices()[0];
    assert_eq!(stranded.outcome, None);
    let failed = &ran.recorder.notices()[1];
    assert_eq!(failed.outcome.as_deref(), Some("done"));
}

#[tokio::test(start_paused = true)]
async fn a_status_error_is_no_capture() {
    let mut agent = MockAgentApi::new();
    agent.expect_start_backup().returning(|_| {
        Ok(BackupStart {
            id: "b-1".into(),
            adopted: false,
        })
    });
    agent.expect_backup_status_wait().returning(|_, _| {
        Err(AgentError::Other {
            request: "GET /backup/status",
            detail: "connection refused".into(),
        })
    });
    let ran = cycle_with(
        two(),
        Arc::new(agent),
        None,
        CycleConfig {
            max_quiesce: Duration::from_secs(30),
            ..config()
        },
    )
    .await;
    assert_eq!(ran.record.outcome, Outcome::Bounded);
    assert!(ran
        .record
        .stacks
        .iter()
        .all(|s| s.capture == Capture::Unknown));
}
