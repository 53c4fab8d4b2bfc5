//! The agent's timeline: each answered request and each step of each backup, with its time, so
//! tests can compare it with when containers stopped and started.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// One entry of the timeline. As a JSON line (events file, `GET /control/events`):
/// `{"at":"2025-01-01T12:00:00.123456789Z","event":"snapshot_taken","id":"b-…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened (for a request: when it was answered).
    pub at: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened, tagged by `event` in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A request to the agent API (`/backup/…`, or an unknown path) was answered.
    Request {
        /// `GET`, `POST`, ...
        method: String,
        /// The path, without the query.
        path: String,
        /// The status code answered.
        status: u16,
    },
    /// A long-poll `GET /backup/status` found the phase it was told and is held until the
    /// phase changes or the wait ends (its answer is the `request` event that follows).
    StatusHeld {
        /// The phase the client last saw, as it sent it.
        phase: String,
        /// How long it is held at most: the client's `wait`, capped.
        wait_ms: u64,
    },
    /// A request was read and deliberately left unanswered (fault `silent`).
    RequestUnanswered {
        /// `GET`, `POST`, ...
        method: String,
        /// The path, without the query.
        path: String,
    },
    /// A backup was started: by `POST /backup` (`202`), or under fault `conflict` as the
    /// backup the `409` points at.
    BackupRequested {
        /// The backup's id.
        id: String,
        /// The `cycle_id` of the `POST /backup` that led to it.
        cycle_id: String,
    },
    /// The snapshot (the copy of the source directory) was taken: the data is captured.
    SnapshotTaken {
        /// The backup's id.
        id: String,
    },
    /// The archive was written: the backup is done.
    ArchiveFinished {
        /// The backup's id.
        id: String,
        /// The archive (`<out_dir>/<id>.tar`).
        path: PathBuf,
    },
    /// The backup failed.
    BackupFailed {
        /// The backup's id.
        id: String,
        /// Why.
        error: String,
    },
}

/// The in-memory timeline and, when configured, its file; one lock so both hold the same order.
#[derive(Debug)]
pub(crate) struct EventLog {
    inner: Mutex<EventLogInner>,
    /// How many events there are, so that a waiter wakes on each new one.
    recorded: watch::Sender<usize>,
}

#[derive(Debug)]
struct EventLogInner {
    events: Vec<Event>,
    file: Option<(PathBuf, File)>,
}

impl EventLog {
    pub(crate) fn new(file: Option<(PathBuf, File)>) -> Self {
        EventLog {
            inner: Mutex::new(EventLogInner {
                events: Vec::new(),
                file,
            }),
            recorded: watch::Sender::new(0),
        }
    }

    pub(crate) fn record(&self, kind: EventKind) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let event = Event {
            at: Utc::now(),
            kind,
        };
        if let Some((path, file)) = inner.file.as_mut() {
            // A File is unbuffered: one write_all per line lands in the file at once, so a test
            // reading it while the agent runs sees whole lines.
            let written = serde_json::to_string(&event)
                .map_err(std::io::Error::from)
                .and_then(|mut line| {
                    line.push('\n');
                    file.write_all(line.as_bytes())
                });
            if let Err(e) = written {
                tracing::warn!(file = %path.display(), error = %e, "could not append the event");
            }
        }
        inner.events.push(event);
        let count = inner.events.len();
        drop(inner);
        self.recorded.send_replace(count);
    }

    /// The first event `matches` accepts, already recorded or the first to come.
    pub(crate) async fn wait_for(&self, matches: impl Fn(&Event) -> bool) -> Event {
        let mut recorded = self.recorded.subscribe();
        loop {
            recorded.borrow_and_update();
            if let Some(event) = self.snapshot().into_iter().find(|e| matches(e)) {
                return event;
            }
            // The sender lives as long as `self`: `changed` cannot fail while we hold it.
            if recorded.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<Event> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .events
            .clone()
    }
}
