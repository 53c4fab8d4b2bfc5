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
    /// Faults active from the start (`--fault`), e.g. `no_long_poll` for an agent without
    /// the long-poll extension.
    pub(crate) faults: &'a [&'a str],
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
    pub(crate) status_polls: Vec<StatusRequest>,
}

/// One `GET /backup/status` as the agent saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatusRequest {
    /// When it arrived: for a long-poll the agent held, when it was held; else when it was
    /// answered (a plain request is answered as it comes).
    pub(crate) arrived: DateTime<Utc>,
    /// When it was answered.
    pub(crate) answered: DateTime<Utc>,
    /// A long-poll the agent held until the phase changed or the wait ended.
    pub(crate) held: bool,
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
        for fault in setup.faults {
            cmd.arg("--fault").arg(fault);
        }
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
    // The client asks one status at a time: a held long-poll is answered by the next status
    // `request` event.
    let mut held_since = None;
    for event in events.iter().filter(|e| e.at >= requested) {
        match &event.kind {
            EventKind::StatusHeld { .. } => held_since = Some(event.at),
            EventKind::Request { method, path, .. }
                if method == "GET" && path == "/backup/status" =>
            {
                let held = held_since.take();
                status_polls.push(StatusRequest {
                    arrived: held.unwrap_or(event.at),
                    answered: event.at,
                    held: held.is_some(),
                });
                if event.at >= finished {
                    break;
                }
            }
            _ => {}
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
            .map(|t| (t.answered - times.requested).num_milliseconds())
            .collect();
        assert_eq!(after, [50, 1100, 2500]);
        assert!(times
            .status_polls
            .iter()
            .all(|p| !p.held && p.arrived == p.answered));
    }

    #[test]
    fn a_held_long_poll_arrives_when_held_and_is_answered_later() {
        let poll = |at: &str| {
            format!(
                r#"{{"at":"{at}","event":"request","method":"GET","path":"/backup/status","status":200}}"#
            )
        };
        let held = |at: &str| {
            format!(r#"{{"at":"{at}","event":"status_held","phase":"running","wait_ms":30000}}"#)
        };
        let lines = [
            r#"{"at":"2025-01-01T12:00:00Z","event":"backup_requested","id":"b-1","cycle_id":"c-1"}"#.to_owned(),
            poll("2025-01-01T12:00:00.05Z"),
            held("2025-01-01T12:00:00.1Z"),
            r#"{"at":"2025-01-01T12:00:10Z","event":"snapshot_taken","id":"b-1"}"#.to_owned(),
            poll("2025-01-01T12:00:10.002Z"),
            held("2025-01-01T12:00:10.05Z"),
            r#"{"at":"2025-01-01T12:00:11Z","event":"archive_finished","id":"b-1","path":"/o/b-1.tar"}"#.to_owned(),
            poll("2025-01-01T12:00:11.001Z"),
        ]
        .join("\n");
        let times = backup_times(&parse(&lines), "c-1").expect("c-1 is there");
        let ms = |t: DateTime<Utc>| (t - times.requested).num_milliseconds();
        let seen: Vec<(i64, i64, bool)> = times
            .status_polls
            .iter()
            .map(|p| (ms(p.arrived), ms(p.answered), p.held))
            .collect();
        assert_eq!(
            seen,
            [(50, 50, false), (100, 10_002, true), (10_050, 11_001, true)]
        );
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
