//! Never strand an app (SPEC §2 rules 6 and 9, issue #12): an engine that is away is waited
//! for, not counted; stranded stacks are state, tried again until they run; the daemon
//! recovers a marker no live process holds on every tick; a corrupt marker's stacks come back
//! and the operator is told; a marker that cannot be removed is one error, not a loop.
//! Paused tokio time: the waits run instantly and the clock is exact.

use async_trait::async_trait;
use felhom_agentapi::fake::FakeAgent;
use felhom_agentapi::BackupPhase;
use felhom_marker::fake::FakeState;
use felhom_marker::{
    HistoryStore, MarkedContainer, MarkedStack, Marker, MarkerError, MarkerStore, Outcome,
    StateDir, StrandedStack,
};
use felhom_quiesce::testing::{FakeLock, Recorder};
use felhom_quiesce::{
    CancellationToken, Collaborators, Controller, CycleConfig, CycleError, NoticeKind,
    MIN_CYCLE_GAP, RECOVER_EVERY,
};
use felhom_stacks::fake::{FakeStacks, Trouble};
use felhom_stacks::{
    ContainerRef, DateTime, DownCheck, RunningStack, Slots, Stacks, StacksError, StartReport,
    StartRequest, StopReport, Utc,
};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// [`FakeStacks`] behind an engine that is away until a given time: until then every call
/// fails as the stacks crate reports an unreachable engine. Each start's time is logged.
struct Engine {
    inner: FakeStacks,
    away_until: Mutex<Option<Instant>>,
    starts: Mutex<Vec<(Instant, bool)>>,
}

impl Engine {
    fn new(inner: FakeStacks) -> Self {
        Engine {
            inner,
            away_until: Mutex::new(None),
            starts: Mutex::new(Vec::new()),
        }
    }

    fn away_for(self, d: Duration) -> Self {
        *self.away_until.lock().expect("away") = Some(Instant::now() + d);
        self
    }

    fn reachable(&self) -> Result<(), StacksError> {
        match *self.away_until.lock().expect("away") {
            Some(until) if Instant::now() < until => Err(StacksError::EngineUnreachable {
                detail: "connecting to /var/run/docker.sock: no such file".into(),
            }),
            _ => Ok(()),
        }
    }

    fn starts(&self) -> Vec<(Instant, bool)> {
        self.starts.lock().expect("starts").clone()
    }
}

#[async_trait]
impl Stacks for Engine {
    async fn running_app_stacks(&self) -> Result<Vec<RunningStack>, StacksError> {
        self.reachable()?;
        self.inner.running_app_stacks().await
    }
    async fn is_running(&self, stack: &str) -> Result<bool, StacksError> {
        self.reachable()?;
        self.inner.is_running(stack).await
    }
    async fn running_containers(&self, stack: &str) -> Result<Vec<ContainerRef>, StacksError> {
        self.reachable()?;
        self.inner.running_containers(stack).await
    }
    async fn stop_containers(
        &self,
        stack: &str,
        containers: &[ContainerRef],
        slots: &Slots,
    ) -> Result<StopReport, StacksError> {
        self.reachable()?;
        self.inner.stop_containers(stack, containers, slots).await
    }
    async fn check_down(
        &self,
        stack: &str,
        containers: &[ContainerRef],
        since: DateTime<Utc>,
    ) -> Result<DownCheck, StacksError> {
        self.reachable()?;
        self.inner.check_down(stack, containers, since).await
    }
    async fn start_containers(
        &self,
        stack: &str,
        request: &StartRequest,
        slots: &Slots,
    ) -> Result<StartReport, StacksError> {
        let up = self.reachable();
        self.starts
            .lock()
            .expect("starts")
            .push((Instant::now(), up.is_ok()));
        up?;
        self.inner.start_containers(stack, request, slots).await
    }
}

/// The daemon's loop of a controller, in its own task.
struct Daemon {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Daemon {
    fn start(c: &Controller) -> Daemon {
        let cancel = CancellationToken::new();
        let (c, until) = (c.clone(), cancel.clone());
        let task = tokio::spawn(async move { c.run(&until).await });
        Daemon { cancel, task }
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.task.await.expect("the loop ends");
    }
}

/// Stacks of a marker, each one's stop begun, their container `app` as the fake names it.
fn marked(names: &[&str]) -> Vec<MarkedStack> {
    names
        .iter()
        .map(|n| {
            let app = MarkedContainer {
                id: format!("{n}-app-id"),
                name: format!("{n}-app-1"),
                service: "app".into(),
            };
            let mut stack = MarkedStack::new(*n, vec!["app".into()], vec![app]);
            stack.stop_began = true;
            stack
        })
        .collect()
}

fn config(engine_wait: Option<Duration>) -> CycleConfig {
    CycleConfig {
        max_quiesce: Duration::from_secs(600),
        restart_attempts: 3,
        restart_backoff: Duration::from_secs(1),
        due_poll_interval: Duration::from_secs(60),
        engine_wait,
        ..CycleConfig::default()
    }
}

struct Rig {
    controller: Controller,
    recorder: Arc<Recorder>,
    stacks: Arc<Engine>,
    state: Arc<FakeState>,
    lock: FakeLock,
}

impl Rig {
    /// Crash recovery of the rig's marker, to its end.
    async fn recovered(&self) -> felhom_marker::CycleRecord {
        self.controller
            .recover(&CancellationToken::new())
            .await
            .expect("recovers")
            .record
            .expect("a marker")
    }
}

fn rig(agent: Option<FakeAgent>, stacks: Engine, state: FakeState, config: CycleConfig) -> Rig {
    let recorder = Arc::new(Recorder::default());
    let stacks = Arc::new(stacks);
    let state = Arc::new(state);
    let lock = FakeLock::default();
    let parts = Collaborators {
        lock: Arc::new(lock.clone()),
        observer: recorder.clone(),
        ..Collaborators::in_memory(
            agent.map(|a| Arc::new(a) as _),
            stacks.clone(),
            state.clone(),
        )
    };
    Rig {
        controller: Controller::new(parts, config),
        recorder,
        stacks,
        state,
        lock,
    }
}

fn crashed(names: &[&str]) -> FakeState {
    FakeState::with_marker(Marker::new("c-crashed", Utc::now(), marked(names)))
}

#[tokio::test(start_paused = true)]
async fn a_recovery_waits_for_the_engine_without_spending_attempts() {
    // Away for ten minutes: far longer than the whole retry budget (3 attempts, 1 s + 2 s).
    let away = Duration::from_secs(600);
    // Both exist (a recovery never recreates what was removed, issue 19).
    let both = FakeStacks::running([("alpha", &["app"][..]), ("beta", &["app"][..])]);
    let stacks = Engine::new(both).away_for(away);
    let r = rig(None, stacks, crashed(&["alpha", "beta"]), config(None));
    let t0 = Instant::now();
    let record = r.recovered().await;
    assert!(record.stranded.is_empty(), "{record:?}");
    assert_eq!(r.state.marker(), None, "cleared once both run");
    assert!(r.state.stranded_now().is_empty());
    let starts = r.stacks.starts();
    // Back within one look (at most 30 s) of the engine's return.
    let back = starts.iter().rev().find(|(_, ok)| *ok).expect("a start").0;
    assert!(back - t0 >= away && back - t0 <= away + Duration::from_secs(30));
    // The looks back off (see the next test): a few dozen in ten minutes, not hundreds.
    let failed: Vec<Instant> = starts
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(t, _)| *t)
        .collect();
    assert!(failed.len() < 2 * 40, "{} looks: backed off", failed.len());
    assert!(
        !record.errors.iter().any(|e| e.contains("attempt")),
        "no attempt was spent while the engine was away: {:?}",
        record.errors
    );
    assert_eq!(
        r.recorder.kinds(),
        [NoticeKind::EngineUnreachable, NoticeKind::Recovered]
    );
    let overview = r.recorder.overview();
    assert_eq!(overview.engine_unreachable_since, None, "the wait is over");
}

#[tokio::test(start_paused = true)]
async fn the_looks_at_an_absent_engine_are_at_most_thirty_seconds_apart() {
    let away = Duration::from_secs(300);
    let stacks = Engine::new(FakeStacks::running([("alpha", &["app"][..])])).away_for(away);
    let r = rig(None, stacks, crashed(&["alpha"]), config(None));
    r.controller
        .recover(&CancellationToken::new())
        .await
        .expect("recovers");
    let times: Vec<Instant> = r.stacks.starts().iter().map(|(t, _)| *t).collect();
    let gaps: Vec<u64> = times.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    assert_eq!(gaps[..6], [1, 2, 4, 8, 16, 30], "{gaps:?}");
    assert!(gaps.iter().all(|g| *g <= 30), "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn a_command_waits_up_to_its_bound_then_keeps_the_marker() {
    let stacks = Engine::new(FakeStacks::running([])).away_for(Duration::from_secs(86_400));
    let r = rig(
        None,
        stacks,
        crashed(&["alpha", "beta"]),
        config(Some(Duration::from_secs(600))),
    );
    let t0 = Instant::now();
    let record = r.recovered().await;
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(600) && waited <= Duration::from_secs(601),
        "{waited:?}"
    );
    let kept = r.state.marker().expect("the marker is kept");
    let names: Vec<&str> = kept.stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert!(
        kept.stacks.iter().all(|s| s.restart_attempts == 0),
        "{kept:?}"
    );
    assert!(record.stranded.is_empty(), "waiting is not stranded");
    assert!(r.state.stranded_now().is_empty());
    assert!(r.controller.overview().engine_unreachable_since.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_cancellation_ends_the_wait_for_the_engine_with_the_marker_kept() {
    let stacks = Engine::new(FakeStacks::running([])).away_for(Duration::from_secs(86_400));
    let r = rig(None, stacks, crashed(&["alpha"]), config(None));
    let cancel = CancellationToken::new();
    let later = cancel.clone();
    tokio::spawn(async move {
        sleep(Duration::from_secs(120)).await;
        later.cancel();
    });
    let t0 = Instant::now();
    r.controller.recover(&cancel).await.expect("recovers");
    assert_eq!(t0.elapsed(), Duration::from_secs(120));
    assert!(r.state.marker().is_some(), "kept for the next start");
}

#[tokio::test(start_paused = true)]
async fn stranded_stacks_are_kept_across_a_restart_and_tried_again_until_they_run() {
    // A cycle strands beta (every start of its cycle fails).
    let state = FakeState::default();
    let stacks = FakeStacks::running([("alpha", &["app"][..]), ("beta", &["app"][..])])
        .start_trouble("beta", Trouble::FailTimes(3));
    let agent = FakeAgent::answering([BackupPhase::Done]);
    let r = rig(Some(agent), Engine::new(stacks), state, config(None));
    let record = r
        .controller
        .run_cycle(&CancellationToken::new())
        .await
        .expect("cycle");
    assert_eq!(record.stranded, ["beta"]);
    assert_eq!(r.state.marker(), None, "the marker is released");
    let kept = r.state.stranded_now();
    assert_eq!(kept.len(), 1);
    assert_eq!((kept[0].name.as_str(), kept[0].attempts), ("beta", 3));
    assert_eq!(r.controller.overview().stranded(), ["beta"]);

    // A restart: a new controller over the same state, beta failing twice more. The daemon
    // tries it at its start, then 2 min later (then 4), and it stays listed until it runs.
    let stacks = FakeStacks::running([("alpha", &["app"][..]), ("beta", &["app"][..])])
        .start_trouble("beta", Trouble::FailTimes(2));
    let state = FakeState::default().with_stranded(kept);
    let r = rig(None, Engine::new(stacks), state, config(None));
    let daemon = Daemon::start(&r.controller);
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        r.controller.overview().stranded(),
        ["beta"],
        "shown after a restart"
    );
    assert_eq!(r.state.stranded_now()[0].attempts, 4);
    sleep(Duration::from_secs(100)).await;
    assert_eq!(r.stacks.starts().len(), 1, "not tried again before 2 min");
    sleep(Duration::from_secs(60)).await;
    assert_eq!(r.stacks.starts().len(), 2);
    assert_eq!(r.state.stranded_now()[0].attempts, 5);
    sleep(Duration::from_secs(5 * 60)).await;
    assert_eq!(r.stacks.starts().len(), 3, "the third try runs it");
    assert!(r.state.stranded_now().is_empty(), "cleared once it runs");
    assert!(r.controller.overview().stranded().is_empty());
    assert_eq!(r.recorder.kinds(), [NoticeKind::Recovered]);
    daemon.stop().await;
}

#[tokio::test(start_paused = true)]
async fn recover_tries_the_stranded_stacks_at_once() {
    let stranded = StrandedStack {
        name: "beta".into(),
        services: vec!["app".into()],
        cycle_id: "c-1".into(),
        since: Utc::now(),
        attempts: 5,
        last_error: "exited (1)".into(),
        given_up: None,
        containers: vec![],
    };
    let state = FakeState::default().with_stranded(vec![stranded]);
    let r = rig(
        None,
        Engine::new(FakeStacks::running([("beta", &["app"][..])])),
        state,
        config(None),
    );
    let recovery = r
        .controller
        .recover(&CancellationToken::new())
        .await
        .expect("tries");
    assert!(recovery.record.is_none(), "no marker");
    assert!(recovery.stranded.is_empty());
    assert!(recovery.problems.is_empty(), "{:?}", recovery.problems);
    assert_eq!(r.stacks.starts().len(), 1);
    assert!(r.state.stranded_now().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_daemon_recovers_an_orphaned_marker_on_a_tick_whatever_the_agent_says() {
    let agent = FakeAgent::answering([]);
    agent.set_due(false);
    let r = rig(
        Some(agent),
        Engine::new(FakeStacks::running([])),
        FakeState::default(),
        CycleConfig {
            due_poll_interval: Duration::from_secs(3600),
            ..config(None)
        },
    );
    let daemon = Daemon::start(&r.controller);
    sleep(Duration::from_secs(1)).await;
    // "Another process" takes the lock and writes its marker: alive, so left alone.
    r.lock.hold_elsewhere();
    r.state
        .save(&Marker::new("c-other", Utc::now(), marked(&["alpha"])))
        .expect("save");
    sleep(RECOVER_EVERY * 3).await;
    assert!(r.stacks.starts().is_empty(), "a live process's marker");
    // It dies (its lock goes with it): within one tick its stacks are back.
    r.lock.release_elsewhere();
    sleep(RECOVER_EVERY + Duration::from_secs(1)).await;
    assert_eq!(r.stacks.starts().len(), 1);
    assert_eq!(r.state.marker(), None);
    let history = r.state.recent(10).expect("history");
    assert_eq!(history.last().map(|h| h.outcome), Some(Outcome::Recovered));
    daemon.stop().await;
}

#[tokio::test(start_paused = true)]
async fn with_the_loop_off_an_orphaned_marker_is_still_recovered() {
    let r = rig(
        None,
        Engine::new(FakeStacks::running([])),
        FakeState::default(),
        config(None),
    );
    let daemon = Daemon::start(&r.controller);
    sleep(Duration::from_secs(1)).await;
    r.state
        .save(&Marker::new("c-other", Utc::now(), marked(&["alpha"])))
        .expect("save");
    sleep(RECOVER_EVERY + Duration::from_secs(1)).await;
    assert_eq!(r.state.marker(), None);
    assert_eq!(r.stacks.starts().len(), 1);
    daemon.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_marker_is_recovered_recorded_shown_and_told() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("state");
    let state = Arc::new(StateDir::open(&dir).expect("state dir"));
    // Cut off mid-write: alpha can still be read, what follows cannot.
    std::fs::write(
        dir.join("marker.json"),
        br#"{"version":1,"cycle_id":"c-9","stacks":[{"name":"alpha","services":["app"]},{"name":"be"#,
    )
    .expect("write");
    let recorder = Arc::new(Recorder::default());
    let stacks = Arc::new(Engine::new(FakeStacks::running([("alpha", &["app"][..])])));
    let parts = Collaborators {
        agent: None,
        stacks: stacks.clone(),
        marker: state.clone(),
        history: state.clone(),
        stranded: state.clone(),
        lock: state.clone(),
        observer: recorder.clone(),
    };
    let c = Controller::new(parts, config(None));
    let record = c
        .recover(&CancellationToken::new())
        .await
        .expect("recovers")
        .record
        .expect("the salvaged marker");
    assert_eq!(stacks.starts().len(), 1, "alpha is started again");
    assert!(
        record.errors.iter().any(|e| e.contains("corrupt")),
        "{record:?}"
    );
    assert_eq!(
        state.recent(5).expect("history").len(),
        1,
        "a history record"
    );
    assert!(c.overview().marker_corrupt.is_some());
    assert_eq!(
        recorder.kinds(),
        [NoticeKind::Recovered, NoticeKind::MarkerCorrupt]
    );
    assert_eq!(state.load().expect("load"), None);
}

/// A marker store whose marker cannot be removed (a read-only state directory).
struct StuckMarker(FakeState);
impl MarkerStore for StuckMarker {
    fn load(&self) -> Result<Option<Marker>, MarkerError> {
        self.0.load()
    }
    fn save(&self, marker: &Marker) -> Result<(), MarkerError> {
        self.0.save(marker)
    }
    fn clear(&self) -> Result<(), MarkerError> {
        Err(MarkerError::Stuck {
            path: "/state/marker.json".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_marker_that_cannot_be_removed_is_one_error_not_a_recovery_at_every_tick() {
    let state = Arc::new(crashed(&["alpha"]));
    let stacks = Arc::new(Engine::new(FakeStacks::running([])));
    let parts = Collaborators {
        marker: Arc::new(StuckMarker(crashed(&["alpha"]))),
        ..Collaborators::in_memory(None, stacks.clone(), state.clone())
    };
    let c = Controller::new(parts, config(None));
    let daemon = Daemon::start(&c);
    sleep(RECOVER_EVERY * 10).await;
    assert_eq!(stacks.starts().len(), 1, "started once, not at every tick");
    assert_eq!(state.recent(10).expect("history").len(), 1);
    assert!(c.overview().marker_stuck.is_some());
    let again = c.recover(&daemon.cancel).await.expect("the lock is free");
    assert!(again.record.is_none());
    assert!(
        matches!(again.problems[..], [CycleError::MarkerStuck { .. }]),
        "{:?}",
        again.problems
    );
    daemon.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_zero_cycle_interval_does_not_loop_on_every_due_poll() {
    let agent = FakeAgent::answering((0..100).map(|_| BackupPhase::Done));
    let r = rig(
        Some(agent),
        Engine::new(FakeStacks::running([("alpha", &["app"][..])])),
        FakeState::default(),
        CycleConfig {
            min_cycle_interval: Duration::ZERO,
            failure_cooldown: Duration::ZERO,
            due_poll_interval: Duration::from_secs(1),
            ..config(None)
        },
    );
    let daemon = Daemon::start(&r.controller);
    sleep(MIN_CYCLE_GAP * 3 - Duration::from_secs(10)).await;
    let cycles = r.state.recent(100).expect("history");
    assert_eq!(cycles.len(), 3, "one cycle per {MIN_CYCLE_GAP:?} at most");
    daemon.stop().await;
}

/// Counts the drops of the calls it guards.
struct DropCount(Arc<std::sync::atomic::AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Stacks whose stops and starts never return. Each call logs how many earlier calls had been
/// dropped (aborted) when it began, and holds a guard that counts its own drop — as a real
/// call holds its child process (`kill_on_drop`).
#[derive(Default)]
struct Hung {
    dropped: Arc<std::sync::atomic::AtomicUsize>,
    began: Mutex<Vec<(String, usize)>>,
}

impl Hung {
    async fn hang<T>(&self, what: &str) -> Result<T, StacksError> {
        let seen = self.dropped.load(Ordering::SeqCst);
        self.began
            .lock()
            .expect("began")
            .push((what.to_owned(), seen));
        let _guard = DropCount(self.dropped.clone());
        std::future::pending().await
    }
}

#[async_trait]
impl Stacks for Hung {
    async fn running_app_stacks(&self) -> Result<Vec<RunningStack>, StacksError> {
        Ok(vec![RunningStack {
            name: "alpha".into(),
            services: vec!["app".into()],
            containers: vec![app()],
            policy: Default::default(),
        }])
    }
    async fn is_running(&self, _stack: &str) -> Result<bool, StacksError> {
        Ok(false)
    }
    async fn running_containers(&self, _stack: &str) -> Result<Vec<ContainerRef>, StacksError> {
        Ok(vec![app()])
    }
    async fn stop_containers(
        &self,
        _stack: &str,
        _containers: &[ContainerRef],
        _slots: &Slots,
    ) -> Result<StopReport, StacksError> {
        self.hang("stop").await
    }
    async fn check_down(
        &self,
        _stack: &str,
        _containers: &[ContainerRef],
        _since: DateTime<Utc>,
    ) -> Result<DownCheck, StacksError> {
        Ok(DownCheck::default())
    }
    async fn start_containers(
        &self,
        _stack: &str,
        _request: &StartRequest,
        _slots: &Slots,
    ) -> Result<StartReport, StacksError> {
        self.hang("start").await
    }
}

fn app() -> ContainerRef {
    ContainerRef {
        id: "alpha-app-id".into(),
        name: "alpha-app-1".into(),
        service: "app".into(),
    }
}

fn hung_parts(stacks: Arc<Hung>, state: Arc<FakeState>) -> Collaborators {
    let agent = Arc::new(FakeAgent::answering([BackupPhase::Done]));
    Collaborators::in_memory(Some(agent), stacks, state)
}

#[tokio::test(start_paused = true)]
async fn a_recovery_call_that_hits_its_bound_is_ended_before_the_next_one() {
    let stacks = Arc::new(Hung::default());
    let state = Arc::new(crashed(&["alpha"]));
    let c = Controller::new(
        hung_parts(stacks.clone(), state.clone()),
        CycleConfig {
            start_call_timeout: Duration::from_secs(10),
            ..config(None)
        },
    );
    let record = c
        .recover(&CancellationToken::new())
        .await
        .expect("recovers")
        .record
        .expect("a marker");
    assert_eq!(record.stranded, ["alpha"]);
    // Three starts, nothing stopped: each began after the one before was ended.
    let began = stacks.began.lock().expect("began").clone();
    let expected: Vec<(String, usize)> = ["start", "start", "start"]
        .iter()
        .enumerate()
        .map(|(i, w)| ((*w).to_owned(), i))
        .collect();
    assert_eq!(began, expected);
    sleep(Duration::from_millis(1)).await;
    assert_eq!(
        stacks.dropped.load(Ordering::SeqCst),
        3,
        "none is left running"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_that_hits_max_quiesce_is_ended_before_the_resume() {
    let stacks = Arc::new(Hung::default());
    let state = Arc::new(FakeState::default());
    let c = Controller::new(
        hung_parts(stacks.clone(), state),
        CycleConfig {
            start_call_timeout: Duration::from_secs(10),
            restart_attempts: 1,
            ..config(None)
        },
    );
    let record = c
        .run_cycle(&CancellationToken::new())
        .await
        .expect("a cycle");
    assert_eq!(record.outcome, Outcome::Bounded, "{record:?}");
    let began = stacks.began.lock().expect("began").clone();
    // The cycle's stop was ended at the bound: the resume's start began after it, and no
    // stop was sent again into the one that may be in flight.
    assert_eq!(began[0], ("stop".to_owned(), 0));
    assert_eq!(began[1], ("start".to_owned(), 1));
    assert!(
        !began[1..].iter().any(|(what, _)| what == "stop"),
        "{began:?}"
    );
}

/// A marker store on a disk that stops answering: every write after the first hangs until the
/// test lets them go.
#[derive(Default)]
struct StalledDisk {
    inner: FakeState,
    writes: std::sync::atomic::AtomicUsize,
    open: Mutex<bool>,
    opened: std::sync::Condvar,
}

impl StalledDisk {
    fn wait_until_open(&self) {
        let mut open = self.open.lock().expect("open");
        while !*open {
            open = self.opened.wait(open).expect("open");
        }
    }

    fn let_go(&self) {
        *self.open.lock().expect("open") = true;
        self.opened.notify_all();
    }
}

impl MarkerStore for StalledDisk {
    fn load(&self) -> Result<Option<Marker>, MarkerError> {
        self.inner.load()
    }
    fn save(&self, marker: &Marker) -> Result<(), MarkerError> {
        if self.writes.fetch_add(1, Ordering::SeqCst) > 0 {
            self.wait_until_open();
        }
        self.inner.save(marker)
    }
    fn clear(&self) -> Result<(), MarkerError> {
        self.wait_until_open();
        self.inner.clear()
    }
}

/// SPEC §2 rule 2: the bound holds even when a marker write hangs (the writes leave the
/// runtime and the driver never waits on one past the bound), and the resume starts the stacks
/// while the disk still does not answer. Real time: a paused clock stands still while a write
/// is under way.
#[tokio::test]
async fn a_marker_write_that_hangs_does_not_hold_the_stacks_down() {
    let disk = Arc::new(StalledDisk::default());
    let stacks = Arc::new(FakeStacks::running([("alpha", &["app"][..])]));
    let agent = Arc::new(FakeAgent::answering([BackupPhase::Done]));
    let parts = Collaborators {
        marker: disk.clone(),
        ..Collaborators::in_memory(Some(agent), stacks.clone(), Arc::new(FakeState::default()))
    };
    let c = Controller::new(
        parts,
        CycleConfig {
            max_quiesce: Duration::from_secs(1),
            ..config(None)
        },
    );
    let cycle = tokio::spawn(async move { c.run_cycle(&CancellationToken::new()).await });
    // The stacks come back at the bound plus the writes' allowance (5 s), not when the disk
    // answers; a minute only catches a hang.
    let started = async {
        while !stacks.calls().iter().any(|c| c.starts_with("start alpha")) {
            sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), started)
        .await
        .expect("alpha is started while the marker's writes hang");
    assert!(!cycle.is_finished(), "the record waits for the disk");
    disk.let_go();
    let record = cycle.await.expect("the cycle's task").expect("a cycle");
    assert_eq!(record.outcome, Outcome::Bounded, "{record:?}");
    assert!(
        record
            .errors
            .iter()
            .any(|e| e.contains("did not reach the disk")),
        "{:?}",
        record.errors
    );
    assert_eq!(disk.inner.marker(), None, "cleared once the disk answers");
}
