//! Hostile surroundings never strand an app (issue 19), with the real state directory on real
//! files: a state directory of a mode the controller would not create, a read-only one (a real
//! tmpfs), a lock that cannot be opened, a slow disk under the lock and the marker, a Ctrl-C
//! while `once` asks whether a backup is due.

use chrono::Utc;
use felhom_agentapi::fake::FakeAgent;
use felhom_agentapi::BackupPhase;
use felhom_marker::fake::FakeState;
use felhom_marker::{LockError, Marker, MarkerError, MarkerStore, StateDir, StrandedStore};
use felhom_quiesce::testing::Recorder;
use felhom_quiesce::{
    error_chain, CancellationToken, Collaborators, Controller, CycleConfig, CycleError, CycleLock,
    IfDue,
};
use felhom_stacks::fake::{FakeStacks, Trouble};
use felhom_stacks::{Slots, Stacks};
use felhom_testsupport::tmpfs::Tmpfs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

fn config() -> CycleConfig {
    CycleConfig {
        max_quiesce: Duration::from_secs(600),
        restart_attempts: 2,
        restart_backoff: Duration::from_millis(10),
        engine_wait: Some(Duration::from_secs(600)),
        first_poll: Duration::from_millis(1),
        ..CycleConfig::default()
    }
}

/// `alpha` (service `app`) as a controller that died mid-cycle left it: stopped.
async fn alpha_down() -> Arc<FakeStacks> {
    let stacks = Arc::new(FakeStacks::running([("alpha", &["app"][..])]));
    let running = stacks.running_now("alpha");
    stacks
        .stop_containers("alpha", &running, &Slots::new(1))
        .await
        .expect("stops");
    assert!(stacks.running_now("alpha").is_empty());
    stacks
}

/// The marker a controller (pid 999999) left in `dir` naming `alpha`, written as a file, as
/// any build writes it.
fn leave_marker(dir: &Path) {
    let marker = serde_json::json!({
        "version": 1,
        "cycle_id": "c-died",
        "phase": "backing_up",
        "started_at": Utc::now().to_rfc3339(),
        "pid": 999_999,
        "backup_id": null,
        "stacks": [{"name": "alpha", "services": ["app"], "restart_attempts": 0}]
    });
    std::fs::write(dir.join("marker.json"), marker.to_string()).expect("the marker is written");
}

/// A controller over the real state directory `state`.
fn controller(
    state: Arc<StateDir>,
    stacks: Arc<FakeStacks>,
    agent: Option<FakeAgent>,
) -> (Controller, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let parts = Collaborators {
        agent: agent.map(|a| Arc::new(a) as _),
        stacks,
        marker: state.clone(),
        history: state.clone(),
        stranded: state.clone(),
        lock: state,
        observer: recorder.clone(),
    };
    (Controller::new(parts, config()), recorder)
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A `0700` temp dir holding `state/`.
fn state_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .expect("a temp dir");
    let dir = tmp.path().join("state");
    StateDir::open(&dir).expect("the state dir is made");
    (tmp, dir)
}

/// Before: `StateDir::open` refused every mode but `0700` (the daemon crash-looped every 5 s
/// with the marker's apps down). Now the marker is recovered, and only new cycles wait for
/// the fix — which is seen without a restart.
#[tokio::test]
async fn a_state_dir_others_may_write_is_recovered_and_refuses_new_cycles_until_fixed() {
    let (_tmp, dir) = state_dir();
    leave_marker(&dir);
    chmod(&dir, 0o770);
    let stacks = alpha_down().await;
    let state = Arc::new(StateDir::open(&dir).expect("a state dir of mode 0770 opens"));
    let agent = FakeAgent::answering([BackupPhase::Done]);
    let (c, recorder) = controller(state.clone(), stacks.clone(), Some(agent));
    let cancel = CancellationToken::new();

    let recovery = c.recover(&cancel).await.expect("recovers");
    assert!(recovery.record.is_some(), "{recovery:?}");
    assert!(recovery.problems.is_empty(), "{:?}", recovery.problems);
    assert_eq!(stacks.running_now("alpha").len(), 1, "alpha runs again");
    assert_eq!(state.load().expect("loads"), None, "the marker is cleared");
    let refused = recorder
        .overview()
        .cycles_refused
        .expect("shown while no backup is due");
    assert!(
        refused.contains(&*dir.to_string_lossy()) && refused.contains("writable by its group"),
        "{refused}"
    );

    let calls_before = stacks.calls().len();
    let err = c.run_if_due(true, &cancel).await.expect_err("no new cycle");
    assert!(matches!(err, CycleError::StateDirUnfit(_)), "{err:?}");
    let text = error_chain(&err);
    assert!(
        text.contains(&*dir.to_string_lossy()) && text.contains("of mode 0770"),
        "the error names the directory and what is wrong: {text}"
    );
    assert_eq!(stacks.calls().len(), calls_before, "nothing stopped");
    assert_eq!(state.load().expect("loads"), None, "no marker written");

    chmod(&dir, 0o750);
    match c.run_if_due(true, &cancel).await.expect("a cycle runs") {
        IfDue::Ran(record) => assert!(record.succeeded(), "{record:?}"),
        other => panic!("expected a cycle, got {other:?}"),
    }
    assert_eq!(
        recorder.overview().cycles_refused,
        None,
        "fixed: no longer shown"
    );
}

/// Before: the lock's `EROFS` was taken for another holder (`Busy`): quiet, nothing
/// recovered, `recover --if-stale` content. Now the lock is taken through a read-only
/// descriptor, alpha is started, and the marker that cannot be removed is one problem, not a
/// recovery at every tick.
#[tokio::test]
async fn on_a_read_only_state_dir_the_marker_is_recovered_though_it_cannot_be_removed() {
    let (tmp, _) = state_dir();
    let fs = Tmpfs::mount(&tmp.path().join("mnt"), "size=1m,mode=0700");
    let dir = fs.path.join("state");
    let state = StateDir::open(&dir).expect("opens");
    drop(felhom_marker::StateLock::acquire(&state).expect("a lock file, as ever"));
    leave_marker(&dir);
    fs.remount_read_only();

    let stacks = alpha_down().await;
    let state = Arc::new(StateDir::open(&dir).expect("a read-only state dir opens"));
    let (c, recorder) = controller(state.clone(), stacks.clone(), None);
    let cancel = CancellationToken::new();
    let first = c.recover(&cancel).await.expect("the lock is taken");
    assert!(first.record.is_some(), "{first:?}");
    assert_eq!(stacks.running_now("alpha").len(), 1, "alpha runs again");
    assert!(recorder.overview().marker_stuck.is_some());
    // Each write that failed: the marker's updates, its removal, the history record.
    let overview = recorder.overview();
    let record = overview.last.as_ref().expect("a record");
    let marker_writes = record
        .errors
        .iter()
        .filter(|e| e.contains("the marker:"))
        .count();
    assert!(marker_writes >= 1, "{record:?}");
    assert_eq!(
        overview.state_errors,
        marker_writes as u64 + 1,
        "{overview:?}"
    );

    let starts = stacks.calls().len();
    let again = c.recover(&cancel).await.expect("the lock is taken");
    assert!(again.record.is_none());
    assert!(
        matches!(again.problems[..], [CycleError::MarkerStuck { .. }]),
        "{:?}",
        again.problems
    );
    assert_eq!(stacks.calls().len(), starts, "not bounced again");
    assert!(dir.join("marker.json").exists());
}

/// Before: any error of the lock was `Busy` — a link planted where it goes kept every marker
/// from its recovery without a word. Now it is its own error, and the daemon shows it.
#[tokio::test]
async fn a_lock_that_cannot_be_opened_is_an_error_not_another_holder() {
    let (tmp, dir) = state_dir();
    leave_marker(&dir);
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::write(&elsewhere, b"").expect("a file");
    std::os::unix::fs::symlink(&elsewhere, dir.join("lock")).expect("a planted link");
    let stacks = alpha_down().await;
    let state = Arc::new(StateDir::open(&dir).expect("opens"));
    let (c, recorder) = controller(state, stacks, None);

    let err = c
        .recover(&CancellationToken::new())
        .await
        .expect_err("no lock");
    assert!(
        matches!(err, CycleError::Lock(LockError::Symlink { .. })),
        "{err:?}"
    );
    let text = error_chain(&err);
    assert!(
        text.contains(&*dir.join("lock").to_string_lossy()) && text.contains("symbolic link"),
        "{text}"
    );

    // The daemon's start-up recovery: logged once and shown, not swallowed as "busy".
    let cancel = CancellationToken::new();
    let _daemon = c.start_daemon(&cancel).await;
    let problem = recorder.overview().state_problem.expect("shown");
    assert!(problem.contains("symbolic link"), "{problem}");
}

/// Blocks a state call until the test's other task opens the gate; a runtime whose worker is
/// blocked by the call never runs that task, and the gate gives up after a while.
struct Gate(Mutex<mpsc::Receiver<()>>);

impl Gate {
    fn new() -> (Gate, mpsc::Sender<()>) {
        let (tx, rx) = mpsc::channel();
        (Gate(Mutex::new(rx)), tx)
    }

    fn pass(&self) -> bool {
        let rx = self.0.lock().unwrap_or_else(|p| p.into_inner());
        rx.recv_timeout(Duration::from_secs(20)).is_ok()
    }
}

/// A lock on a slow disk: its acquire blocks on the gate.
struct SlowLock(Gate);
impl CycleLock for SlowLock {
    fn acquire(&self) -> Result<Box<dyn std::fmt::Debug + Send + Sync>, LockError> {
        if self.0.pass() {
            return Ok(Box::new(()));
        }
        Err(LockError::Io {
            path: "lock".into(),
            source: std::io::Error::other("the runtime's worker was blocked by the lock"),
        })
    }
}

/// A marker store on a slow disk: its load blocks on the gate.
struct SlowMarker(Gate, FakeState);
impl MarkerStore for SlowMarker {
    fn load(&self) -> Result<Option<Marker>, MarkerError> {
        if self.0.pass() {
            return self.1.load();
        }
        Err(MarkerError::Io {
            action: "reading the marker",
            path: "marker.json".into(),
            source: std::io::Error::other("the runtime's worker was blocked by the load"),
        })
    }
    fn save(&self, marker: &Marker) -> Result<(), MarkerError> {
        self.1.save(marker)
    }
    fn clear(&self) -> Result<(), MarkerError> {
        self.1.clear()
    }
}

/// The lock's retries sleep a thread and a disk may hang: neither may run on a worker of the
/// runtime (here its only one), where it would hold up the bound, the ticks and every other
/// task.
#[tokio::test(flavor = "current_thread")]
async fn taking_the_lock_and_reading_the_marker_leave_the_runtime_free() {
    let (lock_gate, open_lock) = Gate::new();
    let (load_gate, open_load) = Gate::new();
    let state = Arc::new(FakeState::default());
    let parts = Collaborators {
        lock: Arc::new(SlowLock(lock_gate)),
        marker: Arc::new(SlowMarker(load_gate, FakeState::default())),
        ..Collaborators::in_memory(None, Arc::new(FakeStacks::running([])), state)
    };
    let c = Controller::new(parts, config());
    // Opens each gate from this runtime's one thread: only if nothing blocks it.
    let opener = tokio::spawn(async move {
        for gate in [open_lock, open_load] {
            tokio::time::sleep(Duration::from_millis(20)).await;
            gate.send(()).expect("the gate waits");
        }
    });
    let recovery = c
        .recover(&CancellationToken::new())
        .await
        .expect("the lock is taken once the other task ran");
    assert!(recovery.problems.is_empty(), "{:?}", recovery.problems);
    opener.await.expect("the opener ran");
}

/// An agent whose due check answers only after `delay`.
struct SlowDue(FakeAgent, Duration);
#[async_trait::async_trait]
impl felhom_agentapi::AgentApi for SlowDue {
    async fn backup_due(&self) -> Result<felhom_agentapi::Due, felhom_agentapi::AgentError> {
        tokio::time::sleep(self.1).await;
        self.0.backup_due().await
    }
    async fn start_backup(
        &self,
        cycle_id: &str,
    ) -> Result<felhom_agentapi::BackupStart, felhom_agentapi::AgentError> {
        self.0.start_backup(cycle_id).await
    }
    async fn backup_status(
        &self,
    ) -> Result<felhom_agentapi::BackupStatus, felhom_agentapi::AgentError> {
        self.0.backup_status().await
    }
}

/// Before: the due check was not raced against the cancellation, and the cycle began after
/// a Ctrl-C all the same: a marker written, stacks stopped and started again.
#[tokio::test(start_paused = true)]
async fn ctrl_c_during_once_s_due_check_writes_no_marker_and_stops_nothing() {
    let state = Arc::new(FakeState::default());
    let stacks = Arc::new(FakeStacks::running([("alpha", &["app"][..])]));
    let agent = SlowDue(
        FakeAgent::answering([BackupPhase::Done]),
        Duration::from_secs(5),
    );
    let parts = Collaborators {
        agent: Some(Arc::new(agent)),
        ..Collaborators::in_memory(None, stacks.clone(), state.clone())
    };
    let c = Controller::new(parts, config());
    let cancel = CancellationToken::new();
    let ctrl_c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        ctrl_c.cancel();
    });
    let err = c.run_if_due(true, &cancel).await.expect_err("cancelled");
    assert!(matches!(err, CycleError::Cancelled), "{err:?}");
    // A cancellation that came before the cycle began, whichever way it is started.
    let err = c
        .run_cycle(&cancel)
        .await
        .expect_err("cancelled before the marker");
    assert!(matches!(err, CycleError::Cancelled), "{err:?}");
    assert!(state.saved().is_empty(), "no marker: {:?}", state.calls());
    assert!(stacks.calls().is_empty(), "{:?}", stacks.calls());
    assert!(state.records().is_empty());
    assert!(state.stranded().expect("reads").stacks.is_empty());
}

/// A stuck marker (it cannot be removed: a read-only state directory) whose stacks run, as
/// each `recover --if-stale` of the timer finds it: a new process every five minutes, with no
/// memory of the last. Before issue 18 every such recovery stopped and started each of its
/// stacks again; now a recovery stops nothing and starts only what does not run.
#[tokio::test]
async fn re_recovering_a_stuck_marker_whose_stacks_run_bounces_nothing() {
    let (tmp, _) = state_dir();
    let fs = Tmpfs::mount(&tmp.path().join("mnt"), "size=1m,mode=0700");
    let dir = fs.path.join("state");
    StateDir::open(&dir).expect("opens");
    // As a cycle of this build writes it: the containers it stopped, their stop begun.
    let marker = serde_json::json!({
        "version": 1,
        "cycle_id": "c-stuck",
        "phase": "resuming",
        "started_at": Utc::now().to_rfc3339(),
        "pid": 999_999,
        "stacks": [{
            "name": "alpha", "services": ["app"], "restart_attempts": 0,
            "containers": [{"id": "alpha-app-id", "name": "alpha-app-1", "service": "app"}],
            "stop_began": true
        }]
    });
    std::fs::write(dir.join("marker.json"), marker.to_string()).expect("the marker");
    fs.remount_read_only();

    let stacks = Arc::new(FakeStacks::running([("alpha", &["app"][..])]));
    let running = stacks.running_now("alpha");
    for process in 1..=3 {
        let state = Arc::new(StateDir::open(&dir).expect("opens"));
        let (c, recorder) = controller(state, stacks.clone(), None);
        let recovery = c
            .recover(&CancellationToken::new())
            .await
            .expect("recovers");
        assert!(recovery.record.is_some(), "process {process}: {recovery:?}");
        assert!(recorder.overview().marker_stuck.is_some());
        // The same process does not recover it again (and says so once).
        let again = c.recover(&CancellationToken::new()).await.expect("locks");
        assert!(
            matches!(again.problems[..], [CycleError::MarkerStuck { .. }]),
            "{:?}",
            again.problems
        );
    }
    let calls = stacks.calls();
    assert!(
        !calls.iter().any(|c| c.starts_with("stop")),
        "nothing was stopped: {calls:?}"
    );
    assert_eq!(
        stacks.running_now("alpha"),
        running,
        "the same container runs"
    );
    assert!(dir.join("marker.json").exists());
}

/// A stranded list on a full disk: every write fails while `full` is set.
struct FullDisk {
    inner: FakeState,
    full: std::sync::atomic::AtomicBool,
}

impl FullDisk {
    fn refuse(&self) -> Result<(), MarkerError> {
        if self.full.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(MarkerError::Io {
                action: "writing the stranded list's temp file",
                path: "/state/.stranded.json.tmp-1-1".into(),
                source: std::io::Error::from_raw_os_error(28),
            });
        }
        Ok(())
    }
}

impl StrandedStore for FullDisk {
    fn stranded(&self) -> Result<felhom_marker::Stranded, MarkerError> {
        self.inner.stranded()
    }
    fn strand(
        &self,
        stacks: &[felhom_marker::StrandedStack],
    ) -> Result<felhom_marker::Stranded, MarkerError> {
        self.refuse()?;
        self.inner.strand(stacks)
    }
    fn unstrand(&self, name: &str) -> Result<felhom_marker::Stranded, MarkerError> {
        self.refuse()?;
        self.inner.unstrand(name)
    }
}

/// Before: the stranded list's write failed, the marker was cleared all the same, and the
/// next tick replaced the memory of the stack with the (empty) file: nothing retried it,
/// `status` and `/metrics` never showed it. Now the marker keeps it, the failure is counted,
/// and the marker is recovered again on the stranded stacks' slow schedule.
#[tokio::test(start_paused = true)]
async fn a_full_disk_while_stranding_keeps_the_stack_in_the_marker_and_counts() {
    let state = Arc::new(FakeState::default());
    let list = Arc::new(FullDisk {
        inner: FakeState::default(),
        full: std::sync::atomic::AtomicBool::new(true),
    });
    let stacks = Arc::new(
        FakeStacks::running([("alpha", &["app"][..])])
            .start_trouble("alpha", Trouble::Fail("no space left on device".into())),
    );
    let recorder = Arc::new(Recorder::default());
    let parts = Collaborators {
        agent: Some(Arc::new(FakeAgent::answering([BackupPhase::Done]))),
        stranded: list.clone(),
        observer: recorder.clone(),
        ..Collaborators::in_memory(None, stacks.clone(), state.clone())
    };
    let c = Controller::new(parts, config());
    let cancel = CancellationToken::new();

    let record = c.run_cycle(&cancel).await.expect("a cycle");
    assert_eq!(record.stranded, ["alpha"], "{record:?}");
    assert!(
        record.waiting_for_engine.is_empty(),
        "not said to wait for the engine: {record:?}"
    );
    let kept = state.marker().expect("the marker keeps alpha");
    let names: Vec<&str> = kept.stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["alpha"]);
    assert!(c.overview().state_errors >= 1, "{:?}", c.overview());
    assert_eq!(c.overview().stranded(), ["alpha"]);

    // The daemon's next tick: the marker is not recovered at once (that would retry alpha
    // every 30 s), and alpha is still shown as stranded although the file does not hold it.
    let starts = |s: &FakeStacks| s.calls().iter().filter(|c| c.starts_with("start")).count();
    let before = starts(&stacks);
    c.recover(&cancel).await.expect("recovers");
    assert_eq!(starts(&stacks), before, "not tried again at once");
    assert_eq!(c.overview().stranded(), ["alpha"], "still shown");
    assert!(state.marker().is_some());

    // Two minutes later, the disk has room again: tried from the marker, stranded for good
    // in the list, and the marker released.
    list.full.store(false, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2 * 60)).await;
    let recovery = c.recover(&cancel).await.expect("recovers");
    let again = recovery.record.expect("the marker was recovered");
    assert_eq!(again.stranded, ["alpha"]);
    assert!(starts(&stacks) > before, "tried again");
    assert_eq!(state.marker(), None, "released once the list holds alpha");
    let stranded: Vec<String> = list
        .inner
        .stranded_now()
        .iter()
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(stranded, ["alpha"]);
    assert_eq!(c.overview().stranded(), ["alpha"]);
}

/// An agent that reports the snapshot of `b-1` only at `snap_at`, and never its end.
struct LateSnapshot {
    agent: FakeAgent,
    snap_at: tokio::time::Instant,
}

#[async_trait::async_trait]
impl felhom_agentapi::AgentApi for LateSnapshot {
    async fn backup_due(&self) -> Result<felhom_agentapi::Due, felhom_agentapi::AgentError> {
        self.agent.backup_due().await
    }
    async fn start_backup(
        &self,
        cycle_id: &str,
    ) -> Result<felhom_agentapi::BackupStart, felhom_agentapi::AgentError> {
        self.agent.start_backup(cycle_id).await
    }
    async fn backup_status(
        &self,
    ) -> Result<felhom_agentapi::BackupStatus, felhom_agentapi::AgentError> {
        let phase = if tokio::time::Instant::now() < self.snap_at {
            BackupPhase::Running
        } else {
            BackupPhase::Snapshotted
        };
        Ok(felhom_agentapi::BackupStatus {
            id: Some(felhom_agentapi::fake::FAKE_BACKUP_ID.to_owned()),
            phase,
            started_at: None,
            snapshot_at: None,
            finished_at: None,
            error: None,
        })
    }
}

/// `once` (which waits up to `max_quiesce` for an engine that is away): the snapshot comes
/// late, and the engine goes away as the early resume begins. Before, the lock was held for
/// the wait while down (up to `max_quiesce`), then the engine wait (`max_quiesce`), then the
/// outcome wait (`max_quiesce` again): ~3×, during which the daemon could not take the lock
/// to bring back what still waits for the engine. Now the engine wait and the outcome wait
/// share one `max_quiesce` from the resume's start.
#[tokio::test(start_paused = true)]
async fn once_lets_go_of_the_lock_within_twice_max_quiesce_when_the_engine_goes_away() {
    let max = Duration::from_secs(600);
    let stacks = Arc::new(
        FakeStacks::running([("alpha", &["app"][..])]).start_trouble("alpha", Trouble::EngineAway),
    );
    let state = Arc::new(FakeState::default());
    let t0 = tokio::time::Instant::now();
    let agent = LateSnapshot {
        agent: FakeAgent::answering([BackupPhase::Running]),
        snap_at: t0 + max * 9 / 10,
    };
    let parts = Collaborators {
        agent: Some(Arc::new(agent)),
        ..Collaborators::in_memory(None, stacks, state.clone())
    };
    let config = CycleConfig {
        max_quiesce: max,
        engine_wait: Some(max),
        ..config()
    };
    let c = Controller::new(parts, config);
    let record = c
        .run_cycle(&CancellationToken::new())
        .await
        .expect("a cycle");
    let held = t0.elapsed();
    assert!(
        held <= 2 * max + Duration::from_secs(30),
        "the lock was held {}s",
        held.as_secs()
    );
    assert_eq!(record.waiting_for_engine, ["alpha"], "{record:?}");
    assert!(state.marker().is_some(), "the marker is kept for alpha");
}
