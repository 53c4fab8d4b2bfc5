//! Each stack's outage as the engine and the app saw it: `docker events` (nanosecond times)
//! and the app's own log (RFC 3339, milliseconds).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::fixture::LABEL;
use felhom_testsupport::process;

/// The engine publishes an event a little after it happens.
const PUBLISH_DELAY: Duration = Duration::from_millis(500);

/// One container event, as `docker events --format '{{json .}}'` prints it.
#[derive(Debug, Deserialize)]
struct RawEvent {
    #[serde(rename = "Action")]
    action: String,
    #[serde(rename = "Actor")]
    actor: Actor,
    #[serde(rename = "timeNano")]
    time_nano: i64,
}

#[derive(Debug, Deserialize)]
struct Actor {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Attributes", default)]
    attributes: HashMap<String, String>,
}

/// A container event of one of the benchmark's stacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EngineEvent {
    pub(crate) project: String,
    pub(crate) container: String,
    pub(crate) action: String,
    pub(crate) at: DateTime<Utc>,
}

/// One stack's way down and up again, by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outage {
    /// The first `kill` (compose's stop sends SIGTERM): the app stops serving.
    pub(crate) kill: DateTime<Utc>,
    /// The last `die` of its containers: the app has shut down.
    pub(crate) died: DateTime<Utc>,
    /// The last `start` of its containers: the app's process runs again.
    pub(crate) start: DateTime<Utc>,
    /// When the engine last reported one of its containers `healthy` after that start (the
    /// latest of its containers' first), if any has a health check.
    pub(crate) healthy: Option<DateTime<Utc>>,
}

/// `docker events` of one set, streamed to a file from before a run until after it: the
/// engine keeps only its last few hundred events, and other users of the engine may push
/// a run's events out of that buffer before a later `--since/--until` query reads them.
#[derive(Debug)]
pub(crate) struct EventRecorder {
    child: Child,
    file: PathBuf,
}

impl EventRecorder {
    /// Starts recording the container events of set `set` from `since` on into `file`.
    pub(crate) fn start(set: &str, since: DateTime<Utc>, file: &Path) -> Result<Self> {
        let out = File::create(file).with_context(|| format!("creating {}", file.display()))?;
        let mut cmd = Command::new("docker");
        cmd.args([
            "events",
            "--since",
            &unix(since),
            "--filter",
            "type=container",
            "--filter",
            &format!("label={LABEL}={set}"),
            "--format",
            "{{json .}}",
        ])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", process::describe(&cmd)))?;
        Ok(EventRecorder {
            child,
            file: file.to_path_buf(),
        })
    }

    /// Stops recording (after a moment for the engine to publish the last events) and
    /// returns what was recorded.
    pub(crate) fn finish(mut self) -> Result<Vec<EngineEvent>> {
        thread::sleep(PUBLISH_DELAY);
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!(
                "docker events ended early ({status}); its output: {}",
                self.file.display()
            );
        }
        process::terminate(&mut self.child, crate::STOP_GRACE);
        let text = std::fs::read_to_string(&self.file)
            .with_context(|| format!("reading {}", self.file.display()))?;
        parse_events(&text).with_context(|| format!("in {}", self.file.display()))
    }
}

impl Drop for EventRecorder {
    fn drop(&mut self) {
        process::terminate(&mut self.child, crate::STOP_GRACE);
    }
}

fn unix(t: DateTime<Utc>) -> String {
    format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos())
}

pub(crate) fn parse_events(text: &str) -> Result<Vec<EngineEvent>> {
    let mut events = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let raw: RawEvent = serde_json::from_str(line)
            .with_context(|| format!("docker events line {}: {line}", number + 1))?;
        let project = raw
            .actor
            .attributes
            .get("com.docker.compose.project")
            .cloned()
            .unwrap_or_default();
        events.push(EngineEvent {
            project,
            container: raw.actor.id,
            action: raw.action,
            at: DateTime::from_timestamp_nanos(raw.time_nano),
        });
    }
    events.sort_by_key(|e| e.at);
    Ok(events)
}

/// Each stack's outage: its first `kill`, then per container the next `die` and the next
/// `start` after that. A stack without a complete outage is an error naming it (the run then
/// did not stop or did not restart it).
pub(crate) fn outages(
    events: &[EngineEvent],
    stacks: &[String],
) -> Result<BTreeMap<String, Outage>> {
    let mut found = BTreeMap::new();
    for stack in stacks {
        let mine: Vec<&EngineEvent> = events.iter().filter(|e| &e.project == stack).collect();
        let Some(kill) = mine.iter().find(|e| e.action == "kill").map(|e| e.at) else {
            bail!("stack {stack}: the engine saw no kill (it was not stopped)");
        };
        let mut containers: Vec<&str> = mine.iter().map(|e| e.container.as_str()).collect();
        containers.sort_unstable();
        containers.dedup();
        let (mut died, mut start, mut healthy) = (kill, kill, None);
        for container in containers {
            let after = |action: &str, from: DateTime<Utc>| {
                mine.iter()
                    .find(|e| e.container == container && e.action == action && e.at >= from)
                    .map(|e| e.at)
            };
            let Some(die) = after("die", kill) else {
                bail!("stack {stack}: container {container} did not die after the kill");
            };
            let Some(up) = after("start", die) else {
                bail!("stack {stack}: container {container} was not started again");
            };
            died = died.max(die);
            start = start.max(up);
            if let Some(well) = after("health_status: healthy", up) {
                healthy = healthy.max(Some(well));
            }
        }
        found.insert(
            stack.clone(),
            Outage {
                kill,
                died,
                start,
                healthy,
            },
        );
    }
    Ok(found)
}

/// When the app said it serves again: the first `ready_line` (`clean start`, or `healthy` for
/// an app with a health check) of `<data>/log` at or after `after` (the log has whole
/// milliseconds, so one millisecond of slack). An unclean start (`recovering after an unclean
/// shutdown`) is an error: the stop was not clean.
pub(crate) fn app_ready(
    data: &Path,
    after: DateTime<Utc>,
    ready_line: &str,
) -> Result<DateTime<Utc>> {
    let path = data.join("log");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let from = after - chrono::Duration::milliseconds(1);
    for line in text.lines() {
        let Some((stamp, message)) = line.split_once(' ') else {
            continue;
        };
        let Ok(at) = DateTime::parse_from_rfc3339(stamp) else {
            continue;
        };
        let at = at.with_timezone(&Utc);
        if at < from {
            continue;
        }
        match message {
            m if m == ready_line => return Ok(at),
            m if m.starts_with("recovering") => {
                bail!(
                    "{}: the app was not shut down cleanly ({line})",
                    path.display()
                )
            }
            _ => {}
        }
    }
    bail!("{}: no `{ready_line}` after {after}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, project: &str, id: &str, nanos: i64) -> String {
        format!(
            r#"{{"status":"{action}","id":"{id}","Type":"container","Action":"{action}","Actor":{{"ID":"{id}","Attributes":{{"com.docker.compose.project":"{project}","signal":"15"}}}},"scope":"local","time":1,"timeNano":{nanos}}}"#
        )
    }

    const S: i64 = 1_000_000_000;

    #[test]
    fn an_outage_runs_from_the_kill_to_the_start_after_the_die() {
        let lines = [
            event("start", "a", "c1", 10 * S), // an earlier run
            event("kill", "a", "c1", 20 * S),
            event("kill", "a", "c1", 20 * S + 5), // SIGKILL after the timeout
            event("die", "a", "c1", 21 * S),
            event("stop", "a", "c1", 21 * S + 1),
            event("kill", "b", "c2", 22 * S),
            event("die", "b", "c2", 23 * S),
            event("start", "b", "c2", 25 * S),
            event("start", "a", "c1", 26 * S),
        ]
        .join("\n");
        let events = parse_events(&lines).expect("parses");
        let found = outages(&events, &["a".into(), "b".into()]).expect("both complete");
        let a = found["a"];
        assert_eq!(a.kill.timestamp(), 20);
        assert_eq!(a.died.timestamp(), 21);
        assert_eq!(a.start.timestamp(), 26);
        assert_eq!(a.healthy, None);
        assert_eq!((found["b"].start - found["b"].kill).num_seconds(), 3);
    }

    #[test]
    fn a_health_check_is_healthy_at_its_first_healthy_after_the_start() {
        let lines = [
            event("health_status: healthy", "a", "c1", 5 * S), // the run before
            event("kill", "a", "c1", 20 * S),
            event("die", "a", "c1", 22 * S),
            event("start", "a", "c1", 23 * S),
            event("health_status: starting", "a", "c1", 23 * S + 1),
            event("health_status: healthy", "a", "c1", 26 * S),
            event("health_status: healthy", "a", "c1", 27 * S),
        ]
        .join("\n");
        let events = parse_events(&lines).expect("parses");
        let found = outages(&events, &["a".into()]).expect("complete");
        assert_eq!(found["a"].healthy.map(|t| t.timestamp()), Some(26));
    }

    #[test]
    fn a_stack_left_down_is_an_error_naming_it() {
        let lines = [
            event("kill", "a", "c1", 20 * S),
            event("die", "a", "c1", 21 * S),
        ]
        .join("\n");
        let events = parse_events(&lines).expect("parses");
        let err = outages(&events, &["a".into()]).expect_err("never started");
        assert!(err.to_string().contains("stack a"), "{err}");
        let err = outages(&events, &["z".into()]).expect_err("never stopped");
        assert!(err.to_string().contains("stack z"), "{err}");
    }

    #[test]
    fn the_app_is_ready_at_its_first_clean_start_after_the_kill() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("log"),
            "2025-01-01T12:00:00.000Z clean start\n\
             2025-01-01T12:00:05.000Z stopping\n\
             2025-01-01T12:00:05.020Z shut down cleanly\n\
             2025-01-01T12:00:07.250Z clean start\n",
        )
        .expect("write the log");
        let kill = "2025-01-01T12:00:05Z".parse().expect("time");
        let ready = app_ready(dir.path(), kill, "clean start").expect("ready");
        assert_eq!((ready - kill).num_milliseconds(), 2250);
        let later = "2025-01-01T12:01:00Z".parse().expect("time");
        assert!(app_ready(dir.path(), later, "clean start").is_err());
    }

    #[test]
    fn a_slow_app_is_ready_when_it_says_healthy() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("log"),
            "2025-01-01T12:00:05.000Z stopping\n\
             2025-01-01T12:00:07.000Z shut down cleanly\n\
             2025-01-01T12:00:08.000Z clean start\n\
             2025-01-01T12:00:11.100Z healthy\n",
        )
        .expect("write the log");
        let kill = "2025-01-01T12:00:05Z".parse().expect("time");
        let ready = app_ready(dir.path(), kill, "healthy").expect("ready");
        assert_eq!((ready - kill).num_milliseconds(), 6100);
    }

    #[test]
    fn an_unclean_restart_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("log"),
            "2025-01-01T12:00:07.250Z recovering after an unclean shutdown\n",
        )
        .expect("write the log");
        let kill = "2025-01-01T12:00:05Z".parse().expect("time");
        let err = app_ready(dir.path(), kill, "clean start").expect_err("unclean");
        assert!(err.to_string().contains("not shut down cleanly"), "{err}");
    }
}
