//! What the agent knows between requests: the active faults, the due mode, the latest backup.
//! One mutex guards it all; it is never held across an await.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{validate_backup_id, DueMode, Fault};
use crate::events::{EventKind, EventLog};

/// The fixed settings and the shared, changing state of one running agent.
#[derive(Debug)]
pub(crate) struct AgentState {
    pub(crate) token: String,
    pub(crate) source: PathBuf,
    pub(crate) out_dir: PathBuf,
    pub(crate) snapshot_delay: Duration,
    pub(crate) archive_delay: Duration,
    pub(crate) events: EventLog,
    inner: Mutex<Inner>,
    /// Bumped on every fault change, so a hanging job or a silent request wakes up to look again.
    faults_changed: watch::Sender<u64>,
    /// Bumped whenever what `GET /backup/status` reports may have changed (a backup's step, a
    /// new backup, a fault such as `forget`), so a held long-poll wakes up to look again.
    status_changed: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
}

#[derive(Debug)]
struct Inner {
    faults: Vec<Fault>,
    due: DueMode,
    /// For `Once`: a backup was started since the mode was set.
    once_spent: bool,
    /// For `Every`: the last start since the mode was set.
    last_start: Option<DateTime<Utc>>,
    latest: Option<Backup>,
    next_seq: u64,
    jobs: Vec<JoinHandle<()>>,
}

/// A backup as `GET /backup/status` describes it.
#[derive(Debug, Clone)]
pub(crate) struct Backup {
    pub(crate) id: String,
    pub(crate) phase: Phase,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) snapshot_at: Option<DateTime<Utc>>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
    pub(crate) error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    Snapshotted,
    Done,
    Failed,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Snapshotted => "snapshotted",
            Phase::Done => "done",
            Phase::Failed => "failed",
        }
    }

    fn in_progress(self) -> bool {
        matches!(self, Phase::Running | Phase::Snapshotted)
    }
}

/// The answer to `GET /backup/due`.
pub(crate) struct DueAnswer {
    pub(crate) due: bool,
    pub(crate) reason: String,
    pub(crate) next_due_at: Option<DateTime<Utc>>,
}

/// How `POST /backup` is answered.
pub(crate) enum StartOutcome {
    Started(String),
    AlreadyRunning(String),
    Conflict(String),
    Unavailable,
}

pub(crate) struct Settings {
    pub(crate) token: String,
    pub(crate) source: PathBuf,
    pub(crate) out_dir: PathBuf,
    pub(crate) snapshot_delay: Duration,
    pub(crate) archive_delay: Duration,
    pub(crate) due: DueMode,
    pub(crate) faults: Vec<Fault>,
}

impl AgentState {
    pub(crate) fn new(settings: Settings, events: EventLog) -> Self {
        AgentState {
            token: settings.token,
            source: settings.source,
            out_dir: settings.out_dir,
            snapshot_delay: settings.snapshot_delay,
            archive_delay: settings.archive_delay,
            events,
            inner: Mutex::new(Inner {
                faults: settings.faults,
                due: settings.due,
                once_spent: false,
                last_start: None,
                latest: None,
                next_seq: 1,
                jobs: Vec::new(),
            }),
            faults_changed: watch::Sender::new(0),
            status_changed: watch::Sender::new(0),
            shutdown: watch::Sender::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data behind; serving on beats
        // taking the whole agent down in the middle of a test.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn faults(&self) -> Vec<Fault> {
        self.lock().faults.clone()
    }

    pub(crate) fn set_faults(&self, faults: Vec<Fault>) {
        tracing::info!(faults = %fault_list(&faults), "faults set");
        self.lock().faults = faults;
        self.faults_changed.send_modify(|n| *n += 1);
        self.status_changed.send_modify(|n| *n += 1);
    }

    pub(crate) fn has_fault(&self, wanted: &Fault) -> bool {
        self.lock().faults.contains(wanted)
    }

    pub(crate) fn due_mode(&self) -> DueMode {
        self.lock().due
    }

    pub(crate) fn set_due(&self, due: DueMode) {
        tracing::info!(%due, "due mode set");
        let mut inner = self.lock();
        inner.due = due;
        inner.once_spent = false;
        inner.last_start = None;
    }

    pub(crate) fn due_answer(&self) -> DueAnswer {
        let inner = self.lock();
        let now = Utc::now();
        match inner.due {
            DueMode::Always => DueAnswer {
                due: true,
                reason: "due mode `always`".into(),
                next_due_at: None,
            },
            DueMode::Never => DueAnswer {
                due: false,
                reason: "due mode `never`".into(),
                next_due_at: None,
            },
            DueMode::Once if inner.once_spent => DueAnswer {
                due: false,
                reason: "due mode `once`: the backup was started".into(),
                next_due_at: None,
            },
            DueMode::Once => DueAnswer {
                due: true,
                reason: "due mode `once`: no backup started yet".into(),
                next_due_at: None,
            },
            DueMode::Every(interval) => {
                let next = inner.last_start.and_then(|last| {
                    chrono::Duration::from_std(interval)
                        .ok()
                        .and_then(|i| last.checked_add_signed(i))
                });
                match next {
                    Some(next) if next > now => DueAnswer {
                        due: false,
                        reason: format!("due mode `{}`: not yet", inner.due),
                        next_due_at: Some(next),
                    },
                    _ => DueAnswer {
                        due: true,
                        reason: format!("due mode `{}`", inner.due),
                        next_due_at: None,
                    },
                }
            }
        }
    }

    /// The backup `GET /backup/status` describes, or `None` for `idle` (none yet, or fault
    /// `forget`).
    pub(crate) fn reported(&self) -> Option<Backup> {
        let inner = self.lock();
        if inner.faults.contains(&Fault::Forget) {
            return None;
        }
        inner.latest.clone()
    }

    /// The phase `GET /backup/status` reports now, as it spells it.
    fn reported_phase(&self) -> &'static str {
        self.reported().map_or("idle", |b| b.phase.as_str())
    }

    /// The long-poll extension (SPEC §3): returns once the reported phase differs from
    /// `last_phase` or `wait` has passed. Woken by every change of what status reports; no
    /// timer but the one for `wait`.
    pub(crate) async fn hold_status(&self, last_phase: &str, wait: Duration) {
        let mut changed = self.status_changed.subscribe();
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        let mut held = false;
        loop {
            changed.borrow_and_update();
            if self.reported_phase() != last_phase {
                return;
            }
            if !held {
                held = true;
                self.events.record(EventKind::StatusHeld {
                    phase: last_phase.to_owned(),
                    wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                });
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                () = &mut deadline => return,
            }
        }
    }

    /// Counts one status request against a `status500` fault; `true` when it must answer 500.
    pub(crate) fn take_status500(&self) -> bool {
        let mut inner = self.lock();
        let Some(pos) = inner
            .faults
            .iter()
            .position(|f| matches!(f, Fault::Status500(n) if *n > 0))
        else {
            return false;
        };
        if let Fault::Status500(n) = &mut inner.faults[pos] {
            *n -= 1;
            if *n == 0 {
                inner.faults.remove(pos);
            }
        }
        true
    }

    pub(crate) fn slow_status(&self) -> Option<Duration> {
        self.lock().faults.iter().find_map(|f| match f {
            Fault::SlowStatus(d) => Some(*d),
            _ => None,
        })
    }

    pub(crate) fn begin_backup(self: &Arc<Self>, cycle_id: &str) -> StartOutcome {
        let mut inner = self.lock();
        if inner.faults.contains(&Fault::Unavailable) {
            return StartOutcome::Unavailable;
        }
        let conflict = inner.faults.iter().find_map(|f| match f {
            Fault::Conflict(id) => Some(id.clone()),
            _ => None,
        });
        if let Some(id) = conflict {
            let already = inner.latest.as_ref().is_some_and(|b| b.id == id);
            if already {
                // Every further POST points at the same backup, as a real agent would.
            } else if let Err(reason) = validate_backup_id(&id) {
                tracing::warn!(%reason, "fault conflict: not starting a backup under this id");
            } else {
                self.launch(&mut inner, id.clone(), cycle_id);
            }
            return StartOutcome::Conflict(id);
        }
        if let Some(running) = inner.latest.as_ref().filter(|b| b.phase.in_progress()) {
            return StartOutcome::AlreadyRunning(running.id.clone());
        }
        let id = format!(
            "b-{}-{}",
            Utc::now().format("%Y%m%dT%H%M%S%3fZ"),
            inner.next_seq
        );
        inner.next_seq += 1;
        inner.once_spent = true;
        inner.last_start = Some(Utc::now());
        self.launch(&mut inner, id.clone(), cycle_id);
        StartOutcome::Started(id)
    }

    fn launch(self: &Arc<Self>, inner: &mut Inner, id: String, cycle_id: &str) {
        inner.latest = Some(Backup {
            id: id.clone(),
            phase: Phase::Running,
            started_at: Utc::now(),
            snapshot_at: None,
            finished_at: None,
            error: None,
        });
        self.events.record(EventKind::BackupRequested {
            id: id.clone(),
            cycle_id: cycle_id.to_owned(),
        });
        tracing::info!(%id, %cycle_id, "backup started");
        self.status_changed.send_modify(|n| *n += 1);
        inner.jobs.retain(|j| !j.is_finished());
        inner
            .jobs
            .push(tokio::spawn(crate::backup::run(Arc::clone(self), id)));
    }

    /// Applies a job's progress to its backup, if it is still the latest one: a later backup
    /// (fault `conflict`) replaces what status shows, while the earlier job finishes unseen.
    pub(crate) fn update(&self, id: &str, apply: impl FnOnce(&mut Backup)) {
        let mut inner = self.lock();
        if let Some(backup) = inner.latest.as_mut().filter(|b| b.id == id) {
            apply(backup);
            drop(inner);
            self.status_changed.send_modify(|n| *n += 1);
        }
    }

    /// Returns once the `hang` fault is not active.
    pub(crate) async fn wait_while_hanging(&self) {
        let mut changed = self.faults_changed.subscribe();
        loop {
            changed.borrow_and_update();
            if !self.has_fault(&Fault::Hang) {
                return;
            }
            if changed.changed().await.is_err() {
                return;
            }
        }
    }

    /// Returns once the `silent` fault is not active or the agent shuts down.
    pub(crate) async fn wait_while_silent(&self) {
        let mut changed = self.faults_changed.subscribe();
        let mut shutdown = self.shutdown.subscribe();
        loop {
            changed.borrow_and_update();
            if !self.has_fault(&Fault::Silent) || *shutdown.borrow_and_update() {
                return;
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                r = shutdown.changed() => if r.is_err() { return },
            }
        }
    }

    pub(crate) fn subscribe_shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub(crate) fn shut_down(&self) {
        self.shutdown.send_replace(true);
        for job in self.lock().jobs.drain(..) {
            job.abort();
        }
    }
}

pub(crate) fn fault_list(faults: &[Fault]) -> String {
    if faults.is_empty() {
        return "none".into();
    }
    faults
        .iter()
        .map(Fault::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
