//! The safety rules of SPEC §2, each against mocks of the three collaborators. Every mock call
//! is appended to a shared timeline, so a test asserts the order of what happened, not only
//! that it happened. Time is tokio's paused clock: the bound and the backoffs run instantly.
//!
//! [`rig`] builds a controller over defaults — an agent that answers `done`, the stack
//! `alpha`, marker and history mocks that log into the timeline — and each test replaces only
//! the collaborator its expectations are about.

use chrono::Utc;
use felhom_agentapi::fake::FakeAgent;
use felhom_agentapi::{
    AgentApi, AgentError, BackupPhase, BackupStart, BackupStatus, Due, MockAgentApi,
};
use felhom_marker::fake::FakeState;
use felhom_marker::{
    CycleRecord, HistoryStore, MarkedStack, Marker, MarkerPhase, MarkerStore, MockHistoryStore,
    MockMarkerStore, Outcome,
};
use felhom_quiesce::testing::FakeLock;
use felhom_quiesce::{
    error_chain, CancellationToken, Collaborators, Controller, CycleConfig, CycleError,
};
use felhom_stacks::fake::{FakeStacks, Trouble};
use felhom_stacks::{MockStacks, RunningStack, Stacks, StacksError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Timeline(Arc<Mutex<Vec<String>>>);
impl Timeline {
    fn push(&self, s: impl Into<String>) {
        self.0.lock().expect("timeline").push(s.into());
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().expect("timeline").clone()
    }
    fn count(&self, prefix: &str) -> usize {
        self.all().iter().filter(|e| e.starts_with(prefix)).count()
    }
    fn index(&self, entry: &str) -> usize {
        self.all()
            .iter()
            .position(|e| e == entry)
            .unwrap_or_else(|| panic!("{entry:?} not in {:?}", self.all()))
    }
}

/// The three stacks of the bound tests.
const APP_DB: [&str; 3] = ["alpha", "beta", "gamma"];

fn config() -> CycleConfig {
    CycleConfig {
        enabled: true,
        due_poll_interval: Duration::from_secs(60),
        status_poll_interval: Duration::from_secs(2),
        first_poll: Duration::from_millis(100),
        max_quiesce: Duration::from_secs(600),
        resume_on_snapshot: true,
        min_cycle_interval: Duration::from_secs(3600),
        failure_cooldown: Duration::from_secs(7200),
        parallelism: 1,
        restart_attempts: 3,
        restart_backoff: Duration::from_secs(1),
        start_call_timeout: Duration::from_secs(150),
        engine_wait: None,
    }
}

fn running(names: &[&str]) -> Vec<RunningStack> {
    names
        .iter()
        .map(|n| RunningStack {
            name: (*n).to_owned(),
            services: vec!["app".into(), "db".into()],
            containers: Vec::new(),
            policy: Default::default(),
        })
        .collect()
}

fn status(id: &str, phase: BackupPhase) -> BackupStatus {
    BackupStatus {
        id: Some(id.to_owned()),
        phase,
        started_at: None,
        snapshot_at: None,
        finished_at: None,
        error: None,
    }
}

/// Marker and history mocks that log into the timeline; the marker mock keeps the last saved
/// marker so tests can look at it.
struct Store {
    marker: MockMarkerStore,
    history: MockHistoryStore,
    saved: Arc<Mutex<Vec<Marker>>>,
    records: Arc<Mutex<Vec<CycleRecord>>>,
}

fn store(t: &Timeline, existing: Option<Marker>) -> Store {
    let mut marker = MockMarkerStore::new();
    let saved = Arc::new(Mutex::new(Vec::<Marker>::new()));
    let current = Arc::new(Mutex::new(existing));
    {
        let current = current.clone();
        marker
            .expect_load()
            .returning(move || Ok(current.lock().expect("m").clone()));
    }
    {
        let (t, saved, current) = (t.clone(), saved.clone(), current.clone());
        marker.expect_save().returning(move |m| {
            let names: Vec<_> = m.stacks.iter().map(|s| s.name.as_str()).collect();
            t.push(format!("save {:?} {}", m.phase, names.join(",")));
            saved.lock().expect("saved").push(m.clone());
            *current.lock().expect("m") = Some(m.clone());
            Ok(())
        });
    }
    {
        let (t, current) = (t.clone(), current.clone());
        marker.expect_clear().returning(move || {
            t.push("clear");
            *current.lock().expect("m") = None;
            Ok(())
        });
    }
    let mut history = MockHistoryStore::new();
    let records = Arc::new(Mutex::new(Vec::new()));
    {
        let (t, records) = (t.clone(), records.clone());
        history.expect_append().returning(move |r| {
            t.push(format!("record {:?}", r.outcome));
            records.lock().expect("records").push(r.clone());
            Ok(())
        });
    }
    history.expect_recent().returning(|_| Ok(vec![]));
    Store {
        marker,
        history,
        saved,
        records,
    }
}

/// Stacks that list `names` (services app, db), log stops and starts into the timeline; `start`
/// fails for names in `failing`.
fn stacks(t: &Timeline, names: &[&str], failing: &[&str]) -> FakeStacks {
    let mut s =
        FakeStacks::running(names.iter().map(|n| (*n, &["app", "db"][..]))).log_into(t.0.clone());
    for name in failing {
        s = s.start_trouble(name, Trouble::Fail(format!("{name}: container exited")));
    }
    s
}

/// Agent mock: `POST /backup` → `b-1`, then the given status answers in turn (the last repeats).
fn agent(t: &Timeline, answers: Vec<Result<BackupPhase, ()>>) -> MockAgentApi {
    let mut a = MockAgentApi::new();
    let t1 = t.clone();
    a.expect_start_backup().returning(move |cycle| {
        t1.push("POST /backup");
        assert!(!cycle.is_empty());
        Ok(BackupStart {
            id: "b-1".into(),
            adopted: false,
        })
    });
    let t2 = t.clone();
    let answers = Arc::new(Mutex::new(answers));
    a.expect_backup_status().returning(move || {
        let mut answers = answers.lock().expect("answers");
        let answer = if answers.len() > 1 {
            answers.remove(0)
        } else {
            answers[0].clone()
        };
        match answer {
            Ok(phase) => {
                t2.push(format!("status {phase:?}"));
                Ok(status("b-1", phase))
            }
            Err(()) => {
                t2.push("status error");
                Err(AgentError::Other {
                    request: "GET /backup/status",
                    detail: "connection refused".into(),
                })
            }
        }
    });
    a.expect_backup_due().returning(|| {
        Ok(Due {
            due: true,
            reason: None,
            next_due_at: None,
        })
    });
    a
}

/// An agent whose `POST /backup` answers `b-1`, and whose every status is `answer`.
fn posting_then(answer: BackupStatus) -> MockAgentApi {
    let mut a = MockAgentApi::new();
    a.expect_start_backup().returning(|_| {
        Ok(BackupStart {
            id: "b-1".into(),
            adopted: false,
        })
    });
    a.expect_backup_status()
        .returning(move || Ok(answer.clone()));
    a
}

/// A controller's collaborators over one timeline: [`rig`] gives the defaults, a test replaces
/// what its expectations are about, then runs the controller.
struct Rig {
    t: Timeline,
    agent: Arc<dyn AgentApi>,
    stacks: Arc<dyn Stacks>,
    marker: Arc<dyn MarkerStore>,
    history: Arc<dyn HistoryStore>,
    /// Every marker saved, in order.
    saved: Arc<Mutex<Vec<Marker>>>,
    /// Every record appended, in order.
    records: Arc<Mutex<Vec<CycleRecord>>>,
    lock: FakeLock,
    config: CycleConfig,
}

/// An agent that answers `done`, the stack `alpha` (services app, db), no marker.
fn rig() -> Rig {
    let t = Timeline::default();
    let store = store(&t, None);
    Rig {
        agent: Arc::new(agent(&t, vec![Ok(BackupPhase::Done)])),
        stacks: Arc::new(stacks(&t, &["alpha"], &[])),
        marker: Arc::new(store.marker),
        history: Arc::new(store.history),
        saved: store.saved,
        records: store.records,
        lock: FakeLock::default(),
        config: config(),
        t,
    }
}

impl Rig {
    fn agent(mut self, agent: impl AgentApi + 'static) -> Self {
        self.agent = Arc::new(agent);
        self
    }

    /// The default agent, answering the status polls with `answers` in turn.
    fn answering(self, answers: Vec<Result<BackupPhase, ()>>) -> Self {
        let agent = agent(&self.t, answers);
        self.agent(agent)
    }

    fn stacks(mut self, stacks: impl Stacks + 'static) -> Self {
        self.stacks = Arc::new(stacks);
        self
    }

    /// Fake stacks `names`; the starts of `failing` fail.
    fn running(self, names: &[&str], failing: &[&str]) -> Self {
        let stacks = stacks(&self.t, names, failing);
        self.stacks(stacks)
    }

    /// A marker store that holds `marker`, as a crashed controller leaves it.
    fn left(mut self, marker: Marker) -> Self {
        let store = store(&self.t, Some(marker));
        (self.marker, self.history) = (Arc::new(store.marker), Arc::new(store.history));
        (self.saved, self.records) = (store.saved, store.records);
        self
    }

    fn config(mut self, change: impl FnOnce(&mut CycleConfig)) -> Self {
        change(&mut self.config);
        self
    }

    fn controller(&self) -> Controller {
        let parts = Collaborators {
            marker: self.marker.clone(),
            history: self.history.clone(),
            lock: Arc::new(self.lock.clone()),
            ..Collaborators::in_memory(
                Some(self.agent.clone()),
                self.stacks.clone(),
                Arc::new(FakeState::default()),
            )
        };
        Controller::new(parts, self.config.clone())
    }

    /// One cycle, to its record.
    async fn cycle(&self) -> CycleRecord {
        self.controller()
            .run_cycle(&CancellationToken::new())
            .await
            .expect("the cycle runs")
    }

    /// The timeline's log, for a fake of another crate to log into.
    fn log(&self) -> Arc<Mutex<Vec<String>>> {
        self.t.0.clone()
    }

    fn saved(&self) -> Vec<Marker> {
        self.saved.lock().expect("saved").clone()
    }
}

/// A marker left by a crashed controller: `stacks` (name, service).
fn crashed(stacks: &[(&str, &str)]) -> Marker {
    let stacks = stacks
        .iter()
        .map(|(name, service)| MarkedStack {
            name: (*name).into(),
            services: vec![(*service).into()],
            restart_attempts: 0,
        })
        .collect();
    Marker::new("c-crashed", Utc::now(), stacks)
}

/// SPEC §2 rule 6: a stack leaves the marker only once it runs. Every marker written while
/// resuming names each stack of `stacks` whose start is not yet in the timeline before it.
fn stacks_leave_the_marker_only_once_started(all: &[String], stacks: &[&str]) {
    for (i, entry) in all.iter().enumerate() {
        let Some(names) = entry.strip_prefix("save Resuming ") else {
            continue;
        };
        let marked: Vec<&str> = names.split(',').filter(|n| !n.is_empty()).collect();
        for stack in stacks.iter().filter(|s| !marked.contains(s)) {
            let started = all[..i]
                .iter()
                .any(|e| e.starts_with(&format!("start {stack}")));
            assert!(started, "{stack} left the marker before its start: {all:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn happy_path_in_order() {
    let r = rig()
        .answering(vec![
            Ok(BackupPhase::Running),
            Ok(BackupPhase::Snapshotted),
            Ok(BackupPhase::Done),
        ])
        .running(&["alpha", "beta"], &[])
        .config(|c| c.resume_on_snapshot = false);
    let record = r.cycle().await;
    let all = r.t.all();
    // Until the resume, each step begins once the marker written before it is on disk.
    assert_eq!(
        all[..11],
        [
            "save Quiescing alpha,beta",
            "stop alpha",
            "stop beta",
            "save BackingUp alpha,beta",
            "POST /backup",
            "save BackingUp alpha,beta",
            "status Running",
            "status Snapshotted",
            "status Done",
            "save Resuming alpha,beta",
            "start alpha app,db",
        ]
    );
    // The resume does not wait for the disk between two starts; a stack leaves the marker
    // once it runs, and the marker is cleared once both run, before the record.
    let rest: Vec<&str> = all[11..]
        .iter()
        .map(String::as_str)
        .filter(|e| !e.starts_with("save "))
        .collect();
    assert_eq!(rest, ["start beta app,db", "clear", "record Done"]);
    stacks_leave_the_marker_only_once_started(&all, &["alpha", "beta"]);
    assert_eq!(record.outcome, Outcome::Done);
    assert_eq!(record.backup_id.as_deref(), Some("b-1"));
    assert!(record.stranded.is_empty());
    assert!(record
        .stacks
        .iter()
        .all(|s| s.downtime_ms.is_some() && s.stopped_at.is_some()));
    assert_eq!(r.records.lock().expect("r").len(), 1);
    // The marker saved after POST /backup carries the agent's id (for crash recovery).
    assert!(r
        .saved()
        .iter()
        .any(|m| m.backup_id.as_deref() == Some("b-1")));
}

#[tokio::test(start_paused = true)]
async fn marker_is_written_before_the_first_stop_and_a_write_failure_stops_nothing() {
    let mut marker = MockMarkerStore::new();
    marker.expect_load().returning(|| Ok(None));
    marker.expect_save().returning(|_| {
        Err(felhom_marker::MarkerError::Io {
            action: "writing the marker",
            path: "/var/lib/felhom-controller/marker.json".into(),
            source: std::io::Error::other("No space left on device"),
        })
    });
    marker.expect_clear().never();
    let mut history = MockHistoryStore::new();
    history.expect_append().never();
    let mut stacks = MockStacks::new();
    stacks
        .expect_running_app_stacks()
        .returning(|| Ok(running(&["alpha"])));
    stacks.expect_stop().never();
    stacks.expect_start().never();
    let mut agent = MockAgentApi::new();
    agent.expect_start_backup().never();
    let mut r = rig().agent(agent).stacks(stacks);
    (r.marker, r.history) = (Arc::new(marker), Arc::new(history));
    let err = r
        .controller()
        .run_cycle(&CancellationToken::new())
        .await
        .expect_err("no marker, no cycle");
    assert!(matches!(err, CycleError::Marker(_)), "{err:?}");
    let told = error_chain(&err);
    assert!(told.contains("No space left on device"), "{told}");
    assert!(r.t.all().is_empty());

    // And when it can be written, it is written before the first stop.
    let r = rig();
    r.cycle().await;
    assert!(r.t.index("save Quiescing alpha") < r.t.index("stop alpha"));
}

#[tokio::test(start_paused = true)]
async fn failure_to_start_the_backup_restarts_the_stacks() {
    let mut a = MockAgentApi::new();
    a.expect_start_backup().returning(|_| {
        Err(AgentError::Unavailable {
            request: "POST /backup",
            message: "storage offline".into(),
        })
    });
    a.expect_backup_status().never();
    let r = rig().agent(a).running(&["alpha", "beta"], &[]);
    let record = r.cycle().await;
    assert_eq!(record.outcome, Outcome::Failed);
    assert_eq!(r.t.count("start "), 2);
    assert!(r.t.index("stop beta") < r.t.index("start alpha app,db"));
    assert!(record.errors.iter().any(|e| e.contains("storage offline")));
    assert_eq!(r.records.lock().expect("r")[0].outcome, Outcome::Failed);
    assert_eq!(r.t.all().last().map(String::as_str), Some("record Failed"));
}

#[tokio::test(start_paused = true)]
async fn failed_and_lost_backups_restart_the_stacks() {
    for (phase, outcome) in [
        (BackupPhase::Failed, Outcome::Failed),
        (BackupPhase::Idle, Outcome::Lost),
    ] {
        let r = rig().answering(vec![Ok(BackupPhase::Running), Ok(phase)]);
        let record = r.cycle().await;
        assert_eq!(record.outcome, outcome);
        assert_eq!(r.t.count("start alpha"), 1);
        assert!(r.t.index("clear") > r.t.index("start alpha app,db"));
    }
}

#[tokio::test(start_paused = true)]
async fn another_backup_id_means_lost() {
    let r = rig().agent(posting_then(status("b-other", BackupPhase::Running)));
    let record = r.cycle().await;
    assert_eq!(record.outcome, Outcome::Lost);
    assert_eq!(r.t.count("start alpha"), 1);
}

#[tokio::test(start_paused = true)]
async fn status_errors_are_retried_until_an_answer() {
    let r = rig().answering(vec![
        Err(()),
        Err(()),
        Err(()),
        Ok(BackupPhase::Running),
        Ok(BackupPhase::Done),
    ]);
    let record = r.cycle().await;
    assert_eq!(record.outcome, Outcome::Done);
    assert_eq!(r.t.count("status error"), 3);
    assert_eq!(r.t.count("start alpha"), 1);
}

#[tokio::test(start_paused = true)]
async fn status_errors_past_the_bound_restart_the_stacks_at_the_bound() {
    let begin = tokio::time::Instant::now();
    let r = rig().answering(vec![Err(())]);
    let record = r.cycle().await;
    assert_eq!(record.outcome, Outcome::Bounded);
    assert_eq!(r.t.count("start alpha"), 1);
    let waited = begin.elapsed();
    // Resumed at the bound (600 s), not before and not much after (paused clock: exact).
    assert!(
        waited >= Duration::from_secs(600) && waited < Duration::from_secs(640),
        "{waited:?}"
    );
    assert!(r.t.count("status error") > 5);
}

#[tokio::test(start_paused = true)]
async fn bound_holds_when_the_agent_hangs() {
    let r = rig().running(&["alpha", "beta"], &[]);
    // Every call of this agent hangs forever: the bound must still hold.
    let log = r.log();
    let r = r.agent(FakeAgent::hanging().log_into(log));
    let begin = tokio::time::Instant::now();
    let record = r.cycle().await;
    assert_eq!(record.outcome, Outcome::Bounded);
    assert_eq!(begin.elapsed(), Duration::from_secs(600));
    assert_eq!(r.t.count("start "), 2);
    assert_eq!(r.t.all().last().map(String::as_str), Some("record Bounded"));
    assert!(!r.lock.is_held(), "the lock is released after the cycle");
}

#[tokio::test(start_paused = true)]
async fn bound_holds_when_a_stop_hangs_and_every_marked_stack_is_started() {
    let mut a = MockAgentApi::new();
    a.expect_start_backup().never();
    let r = rig().agent(a);
    // beta's stop never returns (a hung stop).
    let stacks = FakeStacks::running(APP_DB.map(|name| (name, &["app", "db"][..])))
        .stop_trouble("beta", Trouble::Hang)
        .log_into(r.log());
    let r = r.stacks(stacks);
    let record = r.cycle().await;
    assert_eq!(record.outcome, Outcome::Bounded);
    let t = &r.t;
    // alpha was stopped, beta was being stopped, gamma not yet: all three are in the marker
    // and all three are started (starting a running stack is harmless).
    for s in ["alpha", "beta", "gamma"] {
        assert_eq!(t.count(&format!("start {s} ")), 1, "{s}: {:?}", t.all());
    }
    assert_eq!(t.count("stop gamma"), 0);
    // beta's stop was cut short: it may still be shutting down, so it is stopped again before
    // its start (here that stop hangs too, and its own bound lets the start go ahead);
    // alpha's stop had ended, so alpha is only started.
    assert_eq!(t.count("stop beta"), 2, "{:?}", t.all());
    assert_eq!(t.count("stop alpha"), 1, "{:?}", t.all());
    assert!(
        t.all().iter().rposition(|e| e == "stop beta")
            < t.all().iter().position(|e| e.starts_with("start beta"))
    );
    assert!(
        record.errors.iter().any(|e| e.contains("settling beta")),
        "{:?}",
        record.errors
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_stop_is_settled_before_the_start() {
    let r = rig().answering(vec![Ok(BackupPhase::Done)]);
    let mut s = MockStacks::new();
    s.expect_running_app_stacks()
        .returning(|| Ok(running(&["alpha", "beta"])));
    let t1 = r.t.clone();
    let first = Arc::new(AtomicBool::new(true));
    s.expect_stop().returning(move |name| {
        t1.push(format!("stop {name}"));
        // alpha's first stop fails (compose gave up, the container may be shutting down).
        if name == "alpha" && first.swap(false, Ordering::SeqCst) {
            Err(StacksError::Other("docker compose stop: timed out".into()))
        } else {
            Ok(vec!["app".into()])
        }
    });
    let t2 = r.t.clone();
    s.expect_start().returning(move |name, _| {
        t2.push(format!("start {name}"));
        Ok(())
    });
    let r = r.stacks(s);
    let record = r.cycle().await;
    assert_eq!(record.outcome, Outcome::Done);
    let events: Vec<String> =
        r.t.all()
            .into_iter()
            .filter(|e| !e.starts_with("save"))
            .collect();
    let alpha: Vec<&String> = events.iter().filter(|e| e.ends_with("alpha")).collect();
    assert_eq!(
        alpha,
        ["stop alpha", "stop alpha", "start alpha"],
        "{events:?}"
    );
    assert_eq!(
        r.t.count("stop beta"),
        1,
        "beta stopped cleanly, no settle: {events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn cancellation_restarts_the_stacks() {
    let r = rig().answering(vec![Ok(BackupPhase::Running)]);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        trigger.cancel();
    });
    let record = r.controller().run_cycle(&cancel).await.expect("cycle");
    assert_eq!(record.outcome, Outcome::Cancelled);
    assert_eq!(r.t.count("start alpha"), 1);
    assert!(r.t.index("start alpha app,db") < r.t.index("clear"));
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_cycle_restarts_the_stacks() {
    let mut a = MockAgentApi::new();
    a.expect_start_backup().never();
    let r = rig().agent(a);
    // beta's stop panics (a bug in a collaborator).
    let stacks = FakeStacks::running([("alpha", &["app"][..]), ("beta", &["app"][..])])
        .stop_trouble("beta", Trouble::Panic)
        .log_into(r.log());
    let r = r.stacks(stacks);
    let record = r.cycle().await;
    assert_eq!(record.outcome, Outcome::Failed);
    assert_eq!(r.t.count("start alpha"), 1);
    assert_eq!(r.t.count("start beta"), 1);
    assert!(
        record.errors.iter().any(|e| e.contains("panic")),
        "{:?}",
        record.errors
    );
    assert!(!r.lock.is_held());
}

#[tokio::test(start_paused = true)]
async fn a_stop_failure_does_not_end_the_cycle_and_the_stack_is_started_again() {
    let r = rig();
    let mut s = MockStacks::new();
    s.expect_running_app_stacks()
        .returning(|| Ok(running(&["alpha", "beta"])));
    let t1 = r.t.clone();
    s.expect_stop().returning(move |name| {
        t1.push(format!("stop {name}"));
        if name == "alpha" {
            Err(StacksError::Other(
                "docker compose stop: exit status 1".into(),
            ))
        } else {
            Ok(vec!["app".into(), "db".into()])
        }
    });
    let t2 = r.t.clone();
    s.expect_start().returning(move |name, _| {
        t2.push(format!("start {name}"));
        Ok(())
    });
    let r = r.stacks(s);
    let record = r.cycle().await;
    assert_eq!(record.outcome, Outcome::Done, "the backup still happened");
    assert_eq!(r.t.count("POST /backup"), 1);
    assert_eq!(r.t.count("start alpha"), 1);
    assert_eq!(r.t.count("start beta"), 1);
    assert!(record.errors.iter().any(|e| e.contains("stopping alpha")));
}

#[tokio::test(start_paused = true)]
async fn restart_failure_is_retried_then_reported_stranded_and_the_marker_released() {
    let r = rig().running(&["alpha", "beta"], &["beta"]);
    let record = r.cycle().await;
    assert_eq!(record.outcome, Outcome::Done);
    assert_eq!(record.stranded, ["beta"]);
    assert_eq!(r.t.count("start beta"), 3, "restart_attempts = 3");
    assert_eq!(r.t.count("start alpha"), 1);
    // While it is retried it stays in the marker with its attempts counted...
    let saved = r.saved();
    let attempts: Vec<u32> = saved
        .iter()
        .filter_map(|m| {
            m.stacks
                .iter()
                .find(|s| s.name == "beta")
                .map(|s| s.restart_attempts)
        })
        .collect();
    assert!(
        attempts.contains(&1) && attempts.contains(&3),
        "{attempts:?}"
    );
    assert!(saved
        .iter()
        .all(|m| m.stacks.iter().any(|s| s.name == "beta")));
    // ...and then the marker is released so later backups are not blocked.
    assert_eq!(r.t.count("clear"), 1);
    assert!(
        r.t.index("clear")
            > r.t
                .all()
                .iter()
                .rposition(|e| e.starts_with("start beta"))
                .expect("started")
    );
}

#[tokio::test(start_paused = true)]
async fn a_retried_start_that_succeeds_is_not_stranded() {
    let r = rig();
    let mut s = MockStacks::new();
    s.expect_running_app_stacks()
        .returning(|| Ok(running(&["alpha"])));
    s.expect_stop().returning(|_| Ok(vec!["app".into()]));
    let tries = Arc::new(Mutex::new(0));
    let t1 = r.t.clone();
    s.expect_start().returning(move |name, _| {
        t1.push(format!("start {name}"));
        let mut n = tries.lock().expect("tries");
        *n += 1;
        if *n < 2 {
            Err(StacksError::Other("not yet".into()))
        } else {
            Ok(())
        }
    });
    let r = r.stacks(s);
    let record = r.cycle().await;
    assert!(record.stranded.is_empty());
    assert_eq!(r.t.count("start alpha"), 2);
}

#[tokio::test(start_paused = true)]
async fn only_the_stacks_we_stopped_are_restarted_with_their_services() {
    let r = rig();
    let mut s = MockStacks::new();
    // The stacks manager lists only running, deployed, unprotected stacks; the controller
    // must start exactly those, with exactly the services that ran.
    s.expect_running_app_stacks().returning(|| {
        Ok(vec![
            RunningStack {
                name: "alpha".into(),
                services: vec!["web".into()],
                containers: Vec::new(),
                policy: Default::default(),
            },
            RunningStack {
                name: "beta".into(),
                services: vec!["api".into(), "db".into()],
                containers: Vec::new(),
                policy: Default::default(),
            },
        ])
    });
    let t1 = r.t.clone();
    s.expect_stop().returning(move |name| {
        t1.push(format!("stop {name}"));
        Ok(if name == "alpha" {
            vec!["web".into()]
        } else {
            vec!["api".into(), "db".into()]
        })
    });
    let t2 = r.t.clone();
    s.expect_start().returning(move |name, services| {
        t2.push(format!("start {name} {}", services.join(",")));
        Ok(())
    });
    let r = r.stacks(s);
    r.cycle().await;
    let starts: Vec<_> =
        r.t.all()
            .into_iter()
            .filter(|e| e.starts_with("start "))
            .collect();
    assert_eq!(starts, ["start alpha web", "start beta api,db"]);
}

#[tokio::test(start_paused = true)]
async fn early_resume_on_snapshot_then_the_outcome_is_recorded() {
    let r = rig().answering(vec![
        Ok(BackupPhase::Running),
        Ok(BackupPhase::Snapshotted),
        Ok(BackupPhase::Running),
        Ok(BackupPhase::Done),
    ]);
    let record = r.cycle().await;
    assert_eq!(record.outcome, Outcome::Done);
    assert!(record.snapshot_at.is_some());
    let start = r.t.index("start alpha app,db");
    assert!(start > r.t.index("status Snapshotted"));
    assert!(
        start < r.t.index("status Done"),
        "resumed before done: {:?}",
        r.t.all()
    );
    assert!(
        r.t.index("clear") < r.t.index("status Done"),
        "marker cleared once the stacks run"
    );
    assert_eq!(r.t.all().last().map(String::as_str), Some("record Done"));
}

#[tokio::test(start_paused = true)]
async fn single_flight_refuses_a_second_cycle_and_a_present_marker() {
    let untouched = || {
        let mut s = MockStacks::new();
        s.expect_running_app_stacks().never();
        s.expect_stop().never();
        s
    };
    let r = rig().agent(MockAgentApi::new()).stacks(untouched());
    r.lock.hold_elsewhere();
    let err = r
        .controller()
        .run_cycle(&CancellationToken::new())
        .await
        .expect_err("busy");
    assert!(
        matches!(err, CycleError::Busy(ref m) if m.contains("4242")),
        "{err}"
    );

    let r = rig()
        .agent(MockAgentApi::new())
        .stacks(untouched())
        .left(Marker::new("c-old", Utc::now(), vec![]));
    let err = r
        .controller()
        .run_cycle(&CancellationToken::new())
        .await
        .expect_err("marker present");
    assert!(
        matches!(err, CycleError::MarkerPresent { ref cycle_id } if cycle_id == "c-old"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn recovery_restarts_the_marker_stacks_asks_the_agent_and_clears_it() {
    let mut left = crashed(&[("alpha", "web"), ("beta", "db")]);
    left.stacks[1].restart_attempts = 1;
    left.phase = MarkerPhase::BackingUp;
    left.backup_id = Some("b-7".into());
    left.pid = 999_999;
    let r = rig().left(left);
    let mut s = MockStacks::new();
    s.expect_running_app_stacks().never();
    // Nothing is known of how far each stop got: each marked stack is stopped again (which
    // waits out a shutdown still under way) before its start.
    let t0 = r.t.clone();
    s.expect_stop().times(2).returning(move |name| {
        t0.push(format!("stop {name}"));
        Ok(vec![])
    });
    let t1 = r.t.clone();
    s.expect_start().returning(move |name, services| {
        t1.push(format!("start {name} {}", services.join(",")));
        Ok(())
    });
    // The agent is asked how the marker's backup ended only once the stacks run.
    let mut a = MockAgentApi::new();
    let t2 = r.t.clone();
    a.expect_backup_status().times(1).returning(move || {
        t2.push("status asked");
        Ok(status("b-7", BackupPhase::Done))
    });
    a.expect_start_backup().never();
    let r = r.stacks(s).agent(a);
    let c = r.controller();
    let record = c
        .recover(&CancellationToken::new())
        .await
        .expect("recovered")
        .record
        .expect("there was a marker");
    assert_eq!(record.outcome, Outcome::Recovered);
    assert_eq!(record.agent_phase.as_deref(), Some("done"));
    let t = &r.t;
    assert_eq!(t.count("start alpha web"), 1);
    assert_eq!(t.count("start beta db"), 1);
    assert!(t.index("stop alpha") < t.index("start alpha web"));
    assert!(t.index("stop beta") < t.index("start beta db"));
    assert!(t.index("clear") > t.index("start beta db"));
    assert!(t.index("status asked") > t.index("start beta db"));
    assert_eq!(r.records.lock().expect("r").len(), 1);
    // Nothing left: a second recovery finds no marker.
    let again = c.recover(&CancellationToken::new()).await.expect("ok");
    assert!(again.record.is_none());
}

#[tokio::test(start_paused = true)]
async fn the_loop_recovers_first_then_waits_for_due_and_cools_down_after_a_failure() {
    let r = rig().left(crashed(&[("alpha", "web")]));
    let mut a = MockAgentApi::new();
    let t1 = r.t.clone();
    a.expect_backup_due().returning(move || {
        t1.push(format!(
            "due? at {}s",
            tokio::time::Instant::now().elapsed().as_secs()
        ));
        Ok(Due {
            due: true,
            reason: None,
            next_due_at: None,
        })
    });
    let t2 = r.t.clone();
    // Every backup is refused: each cycle fails, so the next may start only after the cooldown.
    // Each POST notes its (paused) time itself: a watcher sampling the timeline would see two
    // POSTs at the same instant in either order.
    let begin = tokio::time::Instant::now();
    let times = Arc::new(Mutex::new(Vec::new()));
    let times2 = times.clone();
    a.expect_start_backup().returning(move |_| {
        t2.push("POST /backup");
        times2.lock().expect("t").push(begin.elapsed().as_secs());
        Err(AgentError::Unavailable {
            request: "POST /backup",
            message: "busy".into(),
        })
    });
    let r = r.agent(a);
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        // Let the loop run for 5 hours of (paused) time, then stop it.
        tokio::time::sleep(Duration::from_secs(5 * 3600)).await;
        stopper.cancel();
    });
    r.controller().run(&cancel).await;
    let all: Vec<String> =
        r.t.all()
            .into_iter()
            .filter(|e| !e.starts_with("save "))
            .collect();
    // Recovery came before any question to the agent.
    assert_eq!(
        all.first().map(String::as_str),
        Some("stop alpha"),
        "settled first"
    );
    assert_eq!(all.get(1).map(String::as_str), Some("start alpha web"));
    assert_eq!(all.get(2).map(String::as_str), Some("clear"));
    let times = times.lock().expect("t").clone();
    // failure_cooldown = 2 h: cycles at ~0 h, ~2 h, ~4 h, never closer together.
    assert_eq!(times.len(), 3, "{times:?}");
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= 7200, "{times:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_loop_does_not_reloop_after_a_success_and_skips_when_not_due() {
    let r = rig();
    let mut a = posting_then(status("b-1", BackupPhase::Done));
    let begin = tokio::time::Instant::now();
    let t1 = r.t.clone();
    // Due only in the first 10 minutes and again after 3 h: the agent keeps saying due, but
    // min_cycle_interval (1 h) holds the second cycle back.
    a.expect_backup_due().returning(move || {
        let s = begin.elapsed().as_secs();
        t1.push(format!("due? {s}"));
        Ok(Due {
            due: !(600..=3 * 3600).contains(&s),
            reason: None,
            next_due_at: None,
        })
    });
    let r = r.agent(a);
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4 * 3600)).await;
        stopper.cancel();
    });
    r.controller().run(&cancel).await;
    assert_eq!(r.t.count("record Done"), 2, "{:?}", r.t.all());
    assert_eq!(r.t.count("stop alpha"), 2);
}

/// The real lock, through `CycleLock for StateDir`: a cycle cannot start while another holder
/// (here: this process, as the daemon would) has it, and the error names the holder's pid.
#[tokio::test]
async fn the_real_state_dir_lock_is_single_flight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state =
        Arc::new(felhom_marker::StateDir::open(dir.path().join("state")).expect("state dir"));
    let held = felhom_marker::StateLock::acquire(&state).expect("first taker");
    let mut s = MockStacks::new();
    s.expect_running_app_stacks().never();
    s.expect_stop().never();
    let parts = Collaborators {
        agent: Some(Arc::new(MockAgentApi::new())),
        stacks: Arc::new(s),
        marker: state.clone(),
        history: state.clone(),
        stranded: state.clone(),
        lock: state.clone(),
        observer: Arc::new(()),
    };
    let c = Controller::new(parts, config());
    let err = c
        .run_cycle(&CancellationToken::new())
        .await
        .expect_err("lock held");
    assert!(
        matches!(err, CycleError::Busy(ref m) if m.contains(&std::process::id().to_string())),
        "{err}"
    );
    drop(held);
    // Released: the next cycle gets past the lock (and finds nothing to do but the backup).
    assert!(state.load().expect("load").is_none());
}
