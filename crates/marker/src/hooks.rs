//! The on-disk types of the per-service policy (issue 23, `docs/labels.md`): what the marker
//! keeps of a service's hooks so that a recovery can run its `post-resume` hook after a
//! crash, and what a cycle record says of each service — how it was quiesced, its capture
//! verdict, each hook run with its exit status, duration and (bounded) output.
//!
//! Like the rest of the crate's types, their field names are a file format.

use crate::capture::Capture;
use crate::model::MarkedContainer;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which hook of a service: serialised `pre-snapshot`, `post-resume`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookKind {
    /// `felhom.pre-snapshot`: run before the backup is posted (before any stop).
    PreSnapshot,
    /// `felhom.post-resume`: run when the cycle resumes.
    PostResume,
}

impl HookKind {
    /// The hook as the labels and the record spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::PreSnapshot => "pre-snapshot",
            HookKind::PostResume => "post-resume",
        }
    }
}

impl std::fmt::Display for HookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a service is quiesced (`felhom.quiesce`, after its label errors): serialised `stop`,
/// `skip`, `hook`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceMode {
    /// Stopped before the backup, started after it (the default).
    #[default]
    Stop,
    /// Never stopped.
    Skip,
    /// Not stopped: its `pre-snapshot` hook makes it consistent.
    Hook,
}

impl ServiceMode {
    /// The mode as the label spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceMode::Stop => "stop",
            ServiceMode::Skip => "skip",
            ServiceMode::Hook => "hook",
        }
    }
}

/// A service of a marked stack that has hooks: how far they got, and what a recovery needs to
/// run its `post-resume` hook (`docs/labels.md`: a `post-resume` hook may run again after a
/// crash of the controller, so it must be idempotent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkedHooks {
    /// The compose service.
    pub service: String,
    /// Its mode.
    #[serde(default)]
    pub mode: ServiceMode,
    /// The cycle keeps it running (`skip` or `hook`, not fallen back to a stop after a failed
    /// hook): its `post-resume` hook runs once the stopped stacks' starts are issued, not after
    /// a start of its own.
    #[serde(default)]
    pub kept_up: bool,
    /// It has a `pre-snapshot` hook.
    #[serde(default)]
    pub pre_snapshot: bool,
    /// Its `post-resume` command line as its author wrote it, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_resume: Option<String>,
    /// The bound of each of its hook runs, in milliseconds (`felhom.hook-timeout`, at most
    /// `max_quiesce`).
    pub timeout_ms: u64,
    /// Its containers when the cycle began: where its hooks run.
    #[serde(default)]
    pub containers: Vec<MarkedContainer>,
    /// The cycle quiesced it — its `pre-snapshot` hook was about to run, its stop began, or
    /// (kept running, without a `pre-snapshot` hook) the cycle stopped anything or posted the
    /// backup: its `post-resume` hook is due when the cycle resumes.
    #[serde(default)]
    pub quiesced: bool,
    /// Each of its hook runs about to begin, in order, and whether it ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<MarkedRun>,
}

impl MarkedHooks {
    /// The containers in which its `post-resume` hook is still due: it has one, the cycle
    /// quiesced the service, and no run of it ended there.
    pub fn post_resume_due(&self) -> Vec<&MarkedContainer> {
        if self.post_resume.is_none() || !self.quiesced {
            return Vec::new();
        }
        self.containers
            .iter()
            .filter(|c| {
                !self
                    .runs
                    .iter()
                    .any(|r| r.hook == HookKind::PostResume && r.ended && r.container == c.id)
            })
            .collect()
    }
}

/// One hook run of a marked service: written before it begins, marked `ended` once it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkedRun {
    /// Which hook.
    pub hook: HookKind,
    /// The container's id.
    pub container: String,
    /// It ended (whatever its exit): it is not to be run again.
    #[serde(default)]
    pub ended: bool,
}

/// One service's part in a cycle (issue 23): how it was quiesced, its verdict, its hooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// The compose service.
    pub service: String,
    /// Its mode, as its labels said (a bad value counts as absent: `stop`).
    #[serde(default)]
    pub mode: ServiceMode,
    /// Its containers were stopped by the cycle (a `stop` service, or one whose hook failed
    /// with `felhom.on-hook-error: stop`).
    #[serde(default)]
    pub stopped: bool,
    /// What the backup captured of it.
    #[serde(default)]
    pub capture: Capture,
    /// Each hook run, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookRecord>,
}

/// One hook run in one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRecord {
    /// Which hook.
    pub hook: HookKind,
    /// The container's name.
    pub container: String,
    /// The hook's program (the first word of its command line; the rest is not repeated).
    pub program: String,
    /// When it was started.
    pub started_at: DateTime<Utc>,
    /// From its start until it ended, was killed, or could not run, in milliseconds.
    pub duration_ms: u64,
    /// Its exit code (137 when it was killed at its timeout); `None` when it did not run or
    /// the engine gave none.
    #[serde(default)]
    pub exit_code: Option<i64>,
    /// It outlived its timeout and was killed.
    #[serde(default)]
    pub timed_out: bool,
    /// It exited 0 within its timeout.
    #[serde(default)]
    pub succeeded: bool,
    /// Why it did not run or did not end (the container did not run, the engine refused the
    /// exec, the cycle's bound cut it short), one line of the controller's own words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The last 4 KiB of its stdout and stderr, as they came. Kept in the record (the state
    /// directory, root only) and shown by `status --json`; never in a notice, a log line or
    /// the unauthenticated `/status`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
}

impl HookRecord {
    /// A run of `hook` with program `program` in `container`, started at `started_at`, with
    /// nothing known of it yet: no exit, no time, not succeeded.
    pub fn new(
        hook: HookKind,
        container: impl Into<String>,
        program: impl Into<String>,
        started_at: DateTime<Utc>,
    ) -> Self {
        HookRecord {
            hook,
            container: container.into(),
            program: program.into(),
            started_at,
            duration_ms: 0,
            exit_code: None,
            timed_out: false,
            succeeded: false,
            error: None,
            output: String::new(),
        }
    }

    /// `exit 3 after 1.2s`, `killed at its timeout after 10.0s`, `did not run: …`: the run in
    /// a few words, without its output.
    pub fn summary(&self) -> String {
        let took = format!("{:.1}s", self.duration_ms as f64 / 1000.0);
        match (&self.error, self.timed_out, self.exit_code) {
            (_, true, _) => format!("killed at its timeout after {took}"),
            (Some(why), _, None) => format!("did not run: {why}"),
            (Some(why), _, Some(code)) => format!("exit {code} after {took}: {why}"),
            (None, _, Some(code)) => format!("exit {code} after {took}"),
            (None, _, None) => format!("ended after {took} with no exit code"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(id: &str) -> MarkedContainer {
        MarkedContainer {
            id: id.into(),
            name: format!("shop-db-{id}"),
            service: "db".into(),
        }
    }

    fn hooks() -> MarkedHooks {
        MarkedHooks {
            service: "db".into(),
            mode: ServiceMode::Hook,
            kept_up: true,
            pre_snapshot: true,
            post_resume: Some("app maintenance off".into()),
            timeout_ms: 300_000,
            containers: vec![container("1"), container("2")],
            quiesced: false,
            runs: vec![],
        }
    }

    #[test]
    fn the_post_resume_is_due_where_the_service_was_quiesced_and_no_run_ended() {
        let mut h = hooks();
        assert!(h.post_resume_due().is_empty(), "not quiesced");
        h.quiesced = true;
        assert_eq!(h.post_resume_due().len(), 2);
        h.runs = vec![
            MarkedRun {
                hook: HookKind::PreSnapshot,
                container: "1".into(),
                ended: true,
            },
            MarkedRun {
                hook: HookKind::PostResume,
                container: "1".into(),
                ended: false,
            },
            MarkedRun {
                hook: HookKind::PostResume,
                container: "2".into(),
                ended: true,
            },
        ];
        let due: Vec<&str> = h.post_resume_due().iter().map(|c| c.id.as_str()).collect();
        assert_eq!(due, ["1"], "a run that began and did not end is due again");
        h.post_resume = None;
        assert!(h.post_resume_due().is_empty(), "nothing to run");
    }

    #[test]
    fn hooks_round_trip_and_read_with_their_defaults() {
        let mut h = hooks();
        h.runs.push(MarkedRun {
            hook: HookKind::PreSnapshot,
            container: "1".into(),
            ended: false,
        });
        let value = serde_json::to_value(&h).expect("serialises");
        assert_eq!(value["runs"][0]["hook"], json!("pre-snapshot"));
        assert_eq!(value["mode"], json!("hook"));
        let back: MarkedHooks = serde_json::from_value(value).expect("reads");
        assert_eq!(back, h);
        let least: MarkedHooks = serde_json::from_value(json!({
            "service": "db",
            "timeout_ms": 1000,
        }))
        .expect("the least a marker holds");
        assert_eq!(least.mode, ServiceMode::Stop);
        assert!(!least.quiesced && least.runs.is_empty() && least.containers.is_empty());
    }

    #[test]
    fn a_run_is_summed_up_without_its_output() {
        let run = HookRecord {
            duration_ms: 1234,
            exit_code: Some(3),
            output: "secret=1".into(),
            ..HookRecord::new(HookKind::PreSnapshot, "shop-db-1", "pg_dumpall", Utc::now())
        };
        assert_eq!(run.summary(), "exit 3 after 1.2s");
        let killed = HookRecord {
            timed_out: true,
            exit_code: Some(137),
            ..run.clone()
        };
        assert_eq!(killed.summary(), "killed at its timeout after 1.2s");
        let not_run = HookRecord {
            exit_code: None,
            error: Some("the container is not running".into()),
            ..run.clone()
        };
        assert_eq!(
            not_run.summary(),
            "did not run: the container is not running"
        );
        for r in [run, killed, not_run] {
            assert!(!r.summary().contains("secret"));
        }
        let value = serde_json::to_value(HookKind::PostResume).expect("serialises");
        assert_eq!(value, json!("post-resume"));
    }
}
