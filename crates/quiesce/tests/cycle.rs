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
    AgentApi, AgentError, Answered, BackupPhase, BackupStart, BackupStatus, Due, MockAgentApi,
};
use felhom_marker::fake::FakeState;
use felhom_marker::{
    Capture, CycleRecord, HistoryStore, MarkedContainer, MarkedStack, Marker, MarkerPhase,
    MarkerStore, MockHistoryStore, MockMarkerStore, Outcome,
};
use felhom_quiesce::testing::FakeLock;
use felhom_quiesce::{
    error_chain, CancellationToken, Collaborators, Controller, CycleConfig, CycleError,
};
use felhom_stacks::fake::{FakeStacks, Trouble};
use felhom_stacks::{
    ContainerRef, DownCheck, MockStacks, RunningStack, Stacks, StacksError, StartReport,
    StopReport, StoppedContainer,
};
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
            services: vec!["app".into()],
            containers: vec![container(n, "app")],
            policy: Default::default(),
        })
        .collect()
}

/// The container of `service` of `stack`, named as the stacks fake names it.
fn container(stack: &str, service: &str) -> ContainerRef {
    ContainerRef {
        id: format!("{stack}-{service}-id"),
        name: format!("{stack}-{service}-1"),
        service: service.to_owned(),
    }
}

/// The engine's report of a clean stop of `containers`.
fn stopped(containers: &[ContainerRef]) -> StopReport {
    StopReport {
        containers: containers
            .iter()
            .map(|c| StoppedContainer {
                container: c.clone(),
                was_running: true,
                stop_requested_at: Utc::now(),
                exited_at: Some(Utc::now()),
                exit_code: Some(0),
                killed: false,
            })
            .collect(),
        vanished: vec![],
    }
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
    a.expect_backup_status_wait().returning(move |_, _| {
        let mut answers = answers.lock().expect("answers");
        let answer = if answers.len() > 1 {
            answers.remove(0)
        } else {
            answers[0].clone()
        };
        match answer {
            Ok(phase) => {
                t2.push(format!("status {phase:?}"));
                Ok(Answered::complete(status("b-1", phase)))
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
    a.expect_backup_due_checked().returning(|| {
        Ok(Answered::complete(Due {
            due: true,
            reason: None,
            next_due_at: None,
        }))
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
    a.expect_backup_status_wait()
        .returning(move |_, _| Ok(Answered::complete(answer.clone())));
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

    /// Stacks the test keeps a hand on, to look at them afterwards.
    fn shared_stacks(mut self, stacks: Arc<dyn Stacks>) -> Self {
        self.stacks = stacks;
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

/// A marker left by a crashed controller: `stacks` (name, service), each one's stop begun.
fn crashed(stacks: &[(&str, &str)]) -> Marker {
    let stacks = stacks
        .iter()
        .map(|(name, service)| {
            let c = container(name, service);
            let mut stack = MarkedStack::new(
                *name,
                vec![(*service).into()],
                vec![MarkedContainer {
                    id: c.id,
                    name: c.name,
                    service: c.service,
                }],
            );
            stack.stop_began = true;
            stack
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
    // Until the resume, each step begins once the marker written before it is on disk; each
    // stack's stop, once the marker records what it stops.
    assert_eq!(
        all[..13],
        [
            "save Quiescing alpha,beta",
            "save Quiescing alpha,beta",
            "stop alpha",
            "save Quiescing alpha,beta",
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
    let saved = r.saved();
    assert!(
        !saved[0].stacks.iter().any(|s| s.stop_began),
        "nothing begun yet"
    );
    assert!(saved[1].stacks[0].stop_began && !saved[1].stacks[1].stop_began);
    assert_eq!(
        saved[1].stacks[0]
            .containers
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["alpha-app-id", "alpha-db-id"],
        "the containers to stop are recorded before the stop"
    );
    // The resume does not wait for the disk between two starts; a stack leaves the marker
    // once it runs, and the marker is cleared once both run, before the record.
    let rest: Vec<&str> = all[13..]
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
    assert!(
        record.stacks.iter().all(|s| s.capture == Capture::Clean),
        "{record:?}"
    );
    assert!(record.succeeded());
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
    stacks.expect_running_containers().never();
    stacks.expect_stop_containers().never();
    stacks.expect_start_containers().never();
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
    a.expect_backup_status_wait().never();
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
async fn bound_holds_when_a_stop_hangs_and_every_stack_whose_stop_began_is_started() {
    let mut a = MockAgentApi::new();
    a.expect_start_backup().never();
    let r = rig().agent(a);
    // beta's stop never returns (a hung stop).
    let stacks = Arc::new(
        FakeStacks::running(APP_DB.map(|name| (name, &["app", "db"][..])))
            .stop_trouble("beta", Trouble::Hang)
            .log_into(r.log()),
    );
    let r = r.shared_stacks(stacks.clone());
    let record = r.cycle().await;
    assert_eq!(record.outcome, Outcome::Bounded);
    let t = &r.t;
    // alpha was stopped, beta was being stopped: both are started, each once, and beta is
    // never stopped again (its start waits for a stop that may be in flight). gamma's stop
    // never began: it is left as it is, running.
    assert_eq!(t.count("start alpha "), 1, "{:?}", t.all());
    assert_eq!(t.count("start beta "), 1, "{:?}", t.all());
    assert_eq!(t.count("start gamma"), 0, "{:?}", t.all());
    assert_eq!(t.count("stop gamma"), 0);
    assert_eq!(t.count("stop beta"), 1, "{:?}", t.all());
    assert_eq!(stacks.running_now("gamma").len(), 2, "gamma still runs");
    let marked = r.saved().last().cloned().expect("saved");
    assert!(
        !marked
            .stacks
            .iter()
            .any(|s| s.name == "gamma" && s.stop_began),
        "{marked:?}"
    );
    // No snapshot was taken: nothing can be told of the captures.
    assert!(record.stacks.iter().all(|s| s.capture == Capture::Unknown));
}

/// SPEC §2 rule 3 / issue 18: a stop that failed may still be under way in the engine; its
/// stack is started with its stop in flight (waited for, never signalled again), and is not
/// stopped again first.
#[tokio::test(start_paused = true)]
async fn a_failed_stop_is_started_with_its_stop_in_flight_never_stopped_again() {
    let r = rig().answering(vec![Ok(BackupPhase::Done)]);
    let mut s = MockStacks::new();
    s.expect_running_app_stacks()
        .returning(|| Ok(running(&["alpha", "beta"])));
    s.expect_running_containers()
        .returning(|name| Ok(vec![container(name, "app")]));
    let t1 = r.t.clone();
    s.expect_stop_containers()
        .returning(move |name, containers, _| {
            t1.push(format!("stop {name}"));
            if name == "alpha" {
                Err(StacksError::Other("stop of alpha-app-1: timed out".into()))
            } else {
                Ok(stopped(containers))
            }
        });
    s.expect_check_down().returning(|name, _, _| {
        // alpha's stop failed: it still runs.
        Ok(DownCheck {
            ran: if name == "alpha" {
                vec![(container(name, "app"), Utc::now())]
            } else {
                vec![]
            },
            appeared: vec![],
        })
    });
    let t2 = r.t.clone();
    s.expect_start_containers()
        .returning(move |name, request, _| {
            t2.push(format!(
                "start {name} in_flight={}",
                request.stop_may_be_in_flight
            ));
            Ok(StartReport::default())
        });
    let r = r.stacks(s);
    let record = r.cycle().await;
    assert_eq!(record.outcome, Outcome::Done);
    assert_eq!(r.t.count("stop alpha"), 1, "{:?}", r.t.all());
    assert_eq!(
        r.t.count("start alpha in_flight=true"),
        1,
        "{:?}",
        r.t.all()
    );
    assert_eq!(
        r.t.count("start beta in_flight=false"),
        1,
        "{:?}",
        r.t.all()
    );
    let capture = |name: &str| {
        record
            .stacks
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.capture)
    };
    assert_eq!(
        capture("alpha"),
        Some(Capture::Live),
        "it ran through the backup"
    );
    assert_eq!(capture("beta"), Some(Capture::Clean));
    assert!(!record.succeeded());
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
    let stacks = stacks(&r.t, &["alpha", "beta"], &[]).stop_trouble(
        "alpha",
        Trouble::Fail("stop of alpha-app-1: exit status 1".into()),
    );
    let r = r.stacks(stacks);
    let record = r.cycle().await;
    assert_eq!(record.outcome, Outcome::Done, "the backup still happened");
    assert_eq!(r.t.count("POST /backup"), 1);
    assert_eq!(r.t.count("start alpha"), 1);
    assert_eq!(r.t.count("start beta"), 1);
    assert!(record.errors.iter().any(|e| e.contains("stopping alpha")));
    // Its containers ran through the backup: the engine says so at the snapshot.
    assert_eq!(record.stacks[0].capture, Capture::Live, "{record:?}");
    assert_eq!(record.stacks[1].capture, Capture::Clean, "{record:?}");
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
    let stacks = stacks(&r.t, &["alpha"], &[]).start_trouble("alpha", Trouble::FailTimes(1));
    let r = r.stacks(stacks);
    let record = r.cycle().await;
    assert!(record.stranded.is_empty());
    assert_eq!(r.t.count("start alpha"), 2);
    assert!(record.succeeded(), "{record:?}");
}

/// SPEC §2 rule 5: exactly the containers the stop stopped are started again — not one that
/// had already exited when its stop came, nor one of a stack not stopped.
#[tokio::test(start_paused = true)]
async fn only_the_containers_we_stopped_are_started_again() {
    let r = rig();
    let mut s = MockStacks::new();
    let (web1, web2) = (container("alpha", "web"), container("alpha", "worker"));
    let listed = vec![web1.clone(), web2.clone()];
    let all = listed.clone();
    s.expect_running_app_stacks().returning(move || {
        Ok(vec![RunningStack {
            name: "alpha".into(),
            services: vec!["web".into(), "worker".into()],
            containers: all.clone(),
            policy: Default::default(),
        }])
    });
    let first = Arc::new(Mutex::new(true));
    s.expect_running_containers().returning(move |_| {
        let mut first = first.lock().expect("first");
        Ok(if std::mem::take(&mut *first) {
            listed.clone()
        } else {
            vec![]
        })
    });
    // The worker had exited on its own when its stop came.
    s.expect_stop_containers().returning(|_, containers, _| {
        let mut report = stopped(containers);
        report.containers[1].was_running = false;
        Ok(report)
    });
    s.expect_check_down()
        .returning(|_, _, _| Ok(DownCheck::default()));
    let t2 = r.t.clone();
    s.expect_start_containers()
        .returning(move |name, request, _| {
            let ids: Vec<&str> = request.containers.iter().map(|c| c.id.as_str()).collect();
            t2.push(format!("start {name} {}", ids.join(",")));
            Ok(StartReport::default())
        });
    let r = r.stacks(s);
    r.cycle().await;
    let starts: Vec<_> =
        r.t.all()
            .into_iter()
            .filter(|e| e.starts_with("start "))
            .collect();
    assert_eq!(starts, [format!("start alpha {}", web1.id)]);
}

/// A stack is back when its containers ran (`StartReport::ready_at`), not when the start call
/// returns after the settle watch: that watch is the cycle's time, not the app's downtime.
#[tokio::test(start_paused = true)]
async fn a_stack_is_back_when_its_containers_ran_not_after_the_settle_watch() {
    let r = rig();
    let mut s = MockStacks::new();
    s.expect_running_app_stacks()
        .returning(|| Ok(running(&["alpha"])));
    let first = Arc::new(Mutex::new(true));
    s.expect_running_containers().returning(move |name| {
        let mut first = first.lock().expect("first");
        Ok(if std::mem::take(&mut *first) {
            vec![container(name, "app")]
        } else {
            vec![]
        })
    });
    s.expect_stop_containers()
        .returning(|_, containers, _| Ok(stopped(containers)));
    s.expect_check_down()
        .returning(|_, _, _| Ok(DownCheck::default()));
    let ran = Utc::now() + chrono::Duration::seconds(1);
    s.expect_start_containers().returning(move |_, _, _| {
        Ok(StartReport {
            ready_at: Some(ran),
            ..StartReport::default()
        })
    });
    let record = r.stacks(s).cycle().await;
    let alpha = &record.stacks[0];
    assert_eq!(alpha.started_at, Some(ran), "{record:?}");
    let began = alpha.stop_started_at.expect("stopped");
    assert_eq!(
        alpha.downtime_ms,
        Some((ran - began).num_milliseconds() as u64)
    );
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
        s.expect_stop_containers().never();
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

/// SPEC §2 rule 3: a recovery starts exactly the containers the marker records as stopped,
/// waiting for any stop in flight; it leaves alone a stack whose stop never began; a marker of
/// the build before container ids is recovered by its services. Nothing is stopped.
#[tokio::test(start_paused = true)]
async fn recovery_starts_what_the_marker_stopped_asks_the_agent_and_clears_it() {
    let mut left = crashed(&[("alpha", "web"), ("beta", "db")]);
    left.stacks[1].restart_attempts = 1;
    // gamma's stop never began; delta was written by the previous build (services only).
    let mut gamma = MarkedStack::new("gamma", vec!["app".into()], vec![]);
    gamma.containers = crashed(&[("gamma", "app")]).stacks[0].containers.clone();
    left.stacks.push(gamma);
    left.stacks
        .push(MarkedStack::new("delta", vec!["web".into()], vec![]));
    left.phase = MarkerPhase::BackingUp;
    left.backup_id = Some("b-7".into());
    left.pid = 999_999;
    let r = rig().left(left);
    let mut s = MockStacks::new();
    s.expect_running_app_stacks().never();
    s.expect_stop_containers().never();
    // delta's containers as the engine has them: every one of the project.
    s.expect_check_down()
        .withf(|name, list, _| name == "delta" && list.is_empty())
        .returning(|name, _, _| {
            Ok(DownCheck {
                ran: vec![],
                appeared: vec![container(name, "web"), container(name, "cron")],
            })
        });
    let t1 = r.t.clone();
    s.expect_start_containers()
        .returning(move |name, request, _| {
            assert!(
                request.stop_may_be_in_flight,
                "{name}: a crash left its stop"
            );
            let ids: Vec<&str> = request.containers.iter().map(|c| c.id.as_str()).collect();
            t1.push(format!("start {name} {}", ids.join(",")));
            Ok(StartReport::default())
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
    assert_eq!(t.count("start alpha alpha-web-id"), 1, "{:?}", t.all());
    assert_eq!(t.count("start beta beta-db-id"), 1, "{:?}", t.all());
    assert_eq!(t.count("start delta delta-web-id"), 1, "{:?}", t.all());
    assert_eq!(t.count("start gamma"), 0, "never stopped: left alone");
    assert!(t.index("clear") > t.index("start beta beta-db-id"));
    assert!(t.index("status asked") > t.index("start beta beta-db-id"));
    assert!(record.stacks.iter().all(|s| s.capture == Capture::Unknown));
    assert_eq!(r.records.lock().expect("r").len(), 1);
    // Nothing left: a second recovery finds no marker.
    let again = c.recover(&CancellationToken::new()).await.expect("ok");
    assert!(again.record.is_none());
}

#[tokio::test(start_paused = true)]
async fn the_loop_recovers_first_then_waits_for_due_and_cools_down_after_a_failure() {
    let r = rig().left(crashed(&[("alpha", "app")]));
    let mut a = MockAgentApi::new();
    let t1 = r.t.clone();
    a.expect_backup_due_checked().returning(move || {
        t1.push(format!(
            "due? at {}s",
            tokio::time::Instant::now().elapsed().as_secs()
        ));
        Ok(Answered::complete(Due {
            due: true,
            reason: None,
            next_due_at: None,
        }))
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
    // Recovery came before any question to the agent, and stopped nothing.
    assert_eq!(all.first().map(String::as_str), Some("start alpha app"));
    assert_eq!(all.get(1).map(String::as_str), Some("clear"));
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
    a.expect_backup_due_checked().returning(move || {
        let s = begin.elapsed().as_secs();
        t1.push(format!("due? {s}"));
        Ok(Answered::complete(Due {
            due: !(600..=3 * 3600).contains(&s),
            reason: None,
            next_due_at: None,
        }))
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
    s.expect_stop_containers().never();
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
