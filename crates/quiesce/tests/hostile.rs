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
use felhom_stacks::fake::FakeStacks;
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
    assert!(
        recorder.overview().state_errors >= 1,
        "the history record that could not be written is counted: {:?}",
        recorder.overview()
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
