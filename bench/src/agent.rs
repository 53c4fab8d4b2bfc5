//! The development agent as a separate process, and what its timeline says about one backup.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use felhom_devagent::{Event, EventKind};

/// How long the agent may take to print its URL, pin and token.
const STARTUP: Duration = Duration::from_secs(30);

/// A running `felhom-devagent`; stopped on drop.
#[derive(Debug)]
pub(crate) struct AgentProcess {
    _process: felhom_testsupport::agent::AgentProcess,
    pub(crate) url: String,
    pub(crate) pin: String,
    pub(crate) token: String,
    events: PathBuf,
}

/// How the agent is started.
#[derive(Debug, Clone)]
pub(crate) struct AgentSetup<'a> {
    pub(crate) binary: &'a Path,
    /// Holds the agent's output directory, timeline and log.
    pub(crate) dir: &'a Path,
    /// What it backs up.
    pub(crate) source: &'a Path,
    pub(crate) snapshot: Duration,
    pub(crate) archive: Duration,
    /// `always` or `never`.
    pub(crate) due: &'a str,
}

/// When the agent requested, snapshotted and finished one backup.
#[derive(Debug, Clone)]
pub(crate) struct BackupTimes {
    pub(crate) requested: DateTime<Utc>,
    pub(crate) snapshot: DateTime<Utc>,
    pub(crate) finished: DateTime<Utc>,
    /// The `GET /backup/status` requests answered from `requested` up to and including the
    /// first one after `finished`: the last one the asker needed. Runs follow each other, so
    /// these are the asker's own.
    pub(crate) status_polls: Vec<DateTime<Utc>>,
}

impl AgentProcess {
    pub(crate) fn start(setup: &AgentSetup<'_>) -> Result<Self> {
        std::fs::create_dir_all(setup.dir)
            .with_context(|| format!("creating {}", setup.dir.display()))?;
        let events = setup.dir.join("events.jsonl");
        let mut cmd = Command::new(setup.binary);
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--source")
            .arg(setup.source)
            .arg("--out")
            .arg(setup.dir.join("out"))
            .arg("--snapshot-delay")
            .arg(humantime::format_duration(setup.snapshot).to_string())
            .arg("--archive-delay")
            .arg(humantime::format_duration(setup.archive).to_string())
            .arg("--due")
            .arg(setup.due)
            .arg("--events")
            .arg(&events);
        let process = felhom_testsupport::agent::AgentProcess::spawn(
            cmd,
            &setup.dir.join("agent.log"),
            STARTUP,
        )?;
        let access = process.access().clone();
        Ok(AgentProcess {
            _process: process,
            url: access.url,
            pin: access.pin,
            token: access.token,
            events,
        })
    }

    /// The times of the backup that `POST /backup` with `cycle_id` started, from the timeline.
    pub(crate) fn backup_times(&self, cycle_id: &str) -> Result<BackupTimes> {
        let text = std::fs::read_to_string(&self.events)
            .with_context(|| format!("reading the agent's timeline {}", self.events.display()))?;
        let mut events = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let event: Event = serde_json::from_str(line).with_context(|| {
                format!(
                    "{} line {}: not an event",
                    self.events.display(),
                    number + 1
                )
            })?;
            events.push(event);
        }
        backup_times(&events, cycle_id)
            .with_context(|| format!("in the agent's timeline {}", self.events.display()))
    }
}

fn backup_times(events: &[Event], cycle_id: &str) -> Result<BackupTimes> {
    let Some((id, requested)) = events.iter().find_map(|e| match &e.kind {
        EventKind::BackupRequested { id, cycle_id: c } if c == cycle_id => Some((id, e.at)),
        _ => None,
    }) else {
        bail!("no backup was requested by cycle {cycle_id}");
    };
    let at = |want: fn(&EventKind, &str) -> bool| {
        events
            .iter()
            .find(|e| want(&e.kind, id))
            .map(|e| e.at)
            .with_context(|| format!("backup {id} (cycle {cycle_id}) has no such step"))
    };
    let snapshot = at(|k, id| matches!(k, EventKind::SnapshotTaken { id: i } if i == id))
        .context("snapshot_taken")?;
    let finished = at(|k, id| matches!(k, EventKind::ArchiveFinished { id: i, .. } if i == id))
        .context("archive_finished")?;
    let mut status_polls = Vec::new();
    for event in events.iter().filter(|e| e.at >= requested) {
        if let EventKind::Request { method, path, .. } = &event.kind {
            if method == "GET" && path == "/backup/status" {
                status_polls.push(event.at);
                if event.at >= finished {
                    break;
                }
            }
        }
    }
    Ok(BackupTimes {
        requested,
        snapshot,
        finished,
        status_polls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &str) -> Vec<Event> {
        lines
            .lines()
            .map(|l| serde_json::from_str(l).expect("a timeline line"))
            .collect()
    }

    #[test]
    fn the_backup_of_a_cycle_is_found_among_others() {
        let events = parse(concat!(
            r#"{"at":"2025-01-01T12:00:00Z","event":"backup_requested","id":"b-1","cycle_id":"c-1"}"#,
            "\n",
            r#"{"at":"2025-01-01T12:00:01Z","event":"snapshot_taken","id":"b-1"}"#,
            "\n",
            r#"{"at":"2025-01-01T12:00:02Z","event":"archive_finished","id":"b-1","path":"/o/b-1.tar"}"#,
            "\n",
            r#"{"at":"2025-01-01T12:01:00Z","event":"request","method":"POST","path":"/backup","status":202}"#,
            "\n",
            r#"{"at":"2025-01-01T12:01:00.5Z","event":"backup_requested","id":"b-2","cycle_id":"c-2"}"#,
            "\n",
            r#"{"at":"2025-01-01T12:01:01.25Z","event":"snapshot_taken","id":"b-2"}"#,
            "\n",
            r#"{"at":"2025-01-01T12:01:07Z","event":"archive_finished","id":"b-2","path":"/o/b-2.tar"}"#,
            "\n",
        ));
        let times = backup_times(&events, "c-2").expect("c-2 is there");
        assert_eq!((times.snapshot - times.requested).num_milliseconds(), 750);
        assert_eq!((times.finished - times.requested).num_milliseconds(), 6500);
        assert!(times.status_polls.is_empty());
    }

    #[test]
    fn the_status_polls_of_a_backup_end_with_the_first_after_its_end() {
        let poll = |at: &str| {
            format!(
                r#"{{"at":"{at}","event":"request","method":"GET","path":"/backup/status","status":200}}"#
            )
        };
        let lines = [
            poll("2025-01-01T11:59:59Z"),
            r#"{"at":"2025-01-01T12:00:00Z","event":"backup_requested","id":"b-1","cycle_id":"c-1"}"#.to_owned(),
            poll("2025-01-01T12:00:00.05Z"),
            r#"{"at":"2025-01-01T12:00:01Z","event":"snapshot_taken","id":"b-1"}"#.to_owned(),
            poll("2025-01-01T12:00:01.1Z"),
            r#"{"at":"2025-01-01T12:00:02Z","event":"archive_finished","id":"b-1","path":"/o/b-1.tar"}"#.to_owned(),
            poll("2025-01-01T12:00:02.5Z"),
            poll("2025-01-01T12:00:09Z"),
        ]
        .join("\n");
        let times = backup_times(&parse(&lines), "c-1").expect("c-1 is there");
        let after: Vec<i64> = times
            .status_polls
            .iter()
            .map(|t| (*t - times.requested).num_milliseconds())
            .collect();
        assert_eq!(after, [50, 1100, 2500]);
    }

    #[test]
    fn a_missing_cycle_or_step_is_an_error_naming_it() {
        let events = parse(concat!(
            r#"{"at":"2025-01-01T12:00:00Z","event":"backup_requested","id":"b-1","cycle_id":"c-1"}"#,
            "\n",
            r#"{"at":"2025-01-01T12:00:01Z","event":"snapshot_taken","id":"b-1"}"#,
            "\n",
        ));
        let err = backup_times(&events, "c-9").expect_err("no such cycle");
        assert!(format!("{err:#}").contains("c-9"), "{err:#}");
        let err = backup_times(&events, "c-1").expect_err("not finished");
        assert!(format!("{err:#}").contains("archive_finished"), "{err:#}");
    }
}
