//! One measured run: the controller's cycle (`felhom-controller once --force`) or the naive
//! script, on a deployed set of stacks, against a running development agent; then each
//! stack's downtime from the engine and the app's log.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use felhom_marker::CycleRecord;
use serde::Serialize;

use crate::agent::{AgentProcess, BackupTimes};
use crate::engine::{self, Outage};
use crate::engine_alone;
use crate::fixture::{App, Compose, StackSet};
use crate::picture;
use felhom_testsupport::process;

/// The controller's default `stacks.parallelism` (SPEC §5).
pub(crate) const DEFAULT_PARALLELISM: usize = 4;
/// The longest one run may take: far beyond any sane S + B + stops and starts, only to catch
/// hangs.
const RUN_LIMIT: Duration = Duration::from_secs(600);

/// Who brings the stacks down and up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Who {
    /// `felhom-controller once`: parallel, early resume on `snapshotted`.
    Controller,
    /// The same with `stacks.parallelism` = N: every stack stopped and started at once.
    ControllerAllAtOnce,
    /// The same from another build (`--baseline-bin-dir`), e.g. before a tuning.
    Baseline,
    /// `bench/naive.sh`: one stack after the other, waits for `done`, polls every 2 s.
    Naive,
    /// No backup and no controller: `compose stop` of every stack, then `compose start` of
    /// every stack, with the controller's parallelism. What compose and the engine cost by
    /// themselves: the floor of any compose-based quiesce.
    ComposeAlone,
    /// No backup, no controller, no compose: every stack's containers stopped, then started,
    /// straight through the engine API with the controller's parallelism. The floor of any
    /// design on this engine.
    EngineAlone,
    /// The same, every stack at once.
    EngineAllAtOnce,
}

impl Who {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Who::Controller => "controller",
            Who::ControllerAllAtOnce => "controller, all at once",
            Who::Baseline => "controller (baseline build)",
            Who::Naive => "naive script",
            Who::ComposeAlone => "compose alone",
            Who::EngineAlone => "engine alone (floor)",
            Who::EngineAllAtOnce => "engine alone, all at once",
        }
    }

    /// A short name for directories.
    pub(crate) fn slug(self) -> &'static str {
        match self {
            Who::Controller => "controller",
            Who::ControllerAllAtOnce => "controller-all",
            Who::Baseline => "baseline",
            Who::Naive => "naive",
            Who::ComposeAlone => "compose",
            Who::EngineAlone => "engine",
            Who::EngineAllAtOnce => "engine-all",
        }
    }

    /// A run of the controller's own cycle (early resume on `snapshotted`).
    pub(crate) fn is_controller(self) -> bool {
        matches!(
            self,
            Who::Controller | Who::ControllerAllAtOnce | Who::Baseline
        )
    }
}

/// The programs and knobs the runs use.
#[derive(Debug)]
pub(crate) struct Tools {
    pub(crate) controller: PathBuf,
    /// Another build of the controller to compare with.
    pub(crate) baseline: Option<PathBuf>,
    pub(crate) devagent: PathBuf,
    pub(crate) naive: PathBuf,
    pub(crate) compose: Compose,
    /// `stacks.parallelism`; `None` leaves the controller's default.
    pub(crate) parallelism: Option<usize>,
}

/// One stack's figures in one run, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StackFigures {
    pub(crate) stack: String,
    /// Engine `kill` → the app serves again (its `clean start`, or the engine's `start` if
    /// later).
    pub(crate) downtime_ms: f64,
    /// Engine `kill` → `die`.
    pub(crate) app_stop_ms: f64,
    /// Engine `start` → the app's `clean start` line (0 when the line comes first).
    pub(crate) app_start_ms: f64,
    /// Downtime − app stop − app start − the agent's time.
    pub(crate) overhead_ms: f64,
    /// What the controller itself recorded (`downtime_ms` of the cycle record).
    pub(crate) recorded_ms: Option<u64>,
}

/// One run of one candidate.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Run {
    pub(crate) who: Who,
    pub(crate) stacks: usize,
    pub(crate) snapshot_ms: u64,
    pub(crate) archive_ms: u64,
    pub(crate) round: usize,
    /// The stacks' app takes seconds to stop and to become ready (the realistic case).
    pub(crate) slow: bool,
    /// The agent answered long-polls (`false`: it ran with fault `no_long_poll`, as an agent
    /// without the extension).
    pub(crate) long_poll: bool,
    /// The agent's part of the downtime: `backup_requested` → `snapshot_taken` for the
    /// controller (early resume), → `archive_finished` for the naive script (waits for done).
    pub(crate) agent_ms: f64,
    /// How soon the controller acted on the snapshot (its runs only).
    pub(crate) detection: Option<Detection>,
    /// Engine alone: its first start call → the engine's first `start` event: what the
    /// engine itself takes before any container counts as started.
    pub(crate) start_call_to_event_ms: Option<f64>,
    pub(crate) figures: Vec<StackFigures>,
}

/// The snapshot-detection latency of one controller run, and what its status polling cost.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Detection {
    /// The agent's `snapshot_taken` → the engine's first `start` of any stack.
    pub(crate) to_first_start_ms: f64,
    /// The agent's `snapshot_taken` → the first status request answered after it.
    pub(crate) to_poll_ms: f64,
    /// `GET /backup/status` requests that arrived in the first 10 s after `POST /backup`.
    pub(crate) status_requests_10s: usize,
    /// Of those, the long-polls the agent held.
    pub(crate) status_held_10s: usize,
}

/// What a run is measured with.
#[derive(Debug)]
pub(crate) struct Bench<'a> {
    pub(crate) tools: &'a Tools,
    pub(crate) set: &'a StackSet,
    pub(crate) agent: &'a AgentProcess,
    pub(crate) snapshot: Duration,
    pub(crate) archive: Duration,
    /// Where this run's config, state and logs go.
    pub(crate) dir: PathBuf,
    pub(crate) round: usize,
    /// Whether the agent answers long-polls.
    pub(crate) long_poll: bool,
    /// Where to draw this run's picture (`--svg`), if anywhere.
    pub(crate) svg: Option<PathBuf>,
}

/// What a candidate's run tells besides the engine's and the agent's records.
#[derive(Debug, Default)]
struct Ran {
    /// The cycle id it posted to the agent, if it backed up.
    cycle_id: Option<String>,
    /// Each stack's downtime as the controller recorded it.
    recorded: Vec<(String, Option<u64>)>,
    /// When the controller's cycle started (its record's `started_at`).
    started_at: Option<DateTime<Utc>>,
    /// Engine alone: when it called the first start.
    first_start_call: Option<DateTime<Utc>>,
}

/// The window in which status requests are counted (issue 11: about 20 at most).
const REQUEST_WINDOW: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

impl Bench<'_> {
    pub(crate) fn run(&self, who: Who) -> Result<Run> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let since = Utc::now();
        let recorder =
            engine::EventRecorder::start(&self.set.id, since, &self.dir.join("events.jsonl"))?;
        let all = self.set.names.len();
        let configured = self.tools.parallelism.unwrap_or(DEFAULT_PARALLELISM);
        let ran = match who {
            Who::Controller => self.controller_cycle(&self.tools.controller, None)?,
            Who::ControllerAllAtOnce => self.controller_cycle(&self.tools.controller, Some(all))?,
            Who::Baseline => match &self.tools.baseline {
                Some(binary) => self.controller_cycle(binary, None)?,
                None => bail!("no baseline build given (--baseline-bin-dir)"),
            },
            Who::Naive => Ran {
                cycle_id: Some(self.naive_cycle()?),
                ..Ran::default()
            },
            Who::ComposeAlone => {
                self.compose_alone()?;
                Ran::default()
            }
            Who::EngineAlone | Who::EngineAllAtOnce => {
                let parallelism = if who == Who::EngineAlone {
                    configured
                } else {
                    all
                };
                Ran {
                    first_start_call: Some(engine_alone::cycle(&self.set.id, parallelism)?),
                    ..Ran::default()
                }
            }
        };
        self.set.wait_all_ready(Duration::from_secs(60))?;
        let events = recorder.finish()?;
        let outages = engine::outages(&events, &self.set.names)
            .with_context(|| format!("{} run in {}", who.label(), self.dir.display()))?;
        let first_start = outages.values().map(|o| o.start).min();
        let times = match &ran.cycle_id {
            Some(id) => Some(self.agent.backup_times(id)?),
            None => None,
        };
        let (agent_ms, detection) = match &times {
            Some(times) => {
                let detection = who
                    .is_controller()
                    .then(|| first_start.map(|start| detection(times, start)))
                    .flatten();
                (agent_part(who, times), detection)
            }
            None => (0.0, None),
        };
        let start_call_to_event_ms = ran
            .first_start_call
            .zip(first_start)
            .map(|(call, event)| ms_between(call, event));
        let mut figures = Vec::new();
        let mut ready_at = Vec::new();
        for (stack, outage) in &outages {
            let ready = engine::app_ready(
                &self.set.data.join(stack),
                outage.kill,
                self.set.app.ready_line(),
            )?;
            let recorded_ms = ran
                .recorded
                .iter()
                .find(|(name, _)| name == stack)
                .and_then(|(_, ms)| *ms);
            figures.push(stack_figures(stack, outage, ready, agent_ms, recorded_ms));
            ready_at.push(ready.max(outage.start));
        }
        if let Some(path) = &self.svg {
            let drawn = picture::Drawn {
                title: format!("{}: {}, round {}", who.label(), self.what(), self.round),
                start: ran.started_at.unwrap_or(since),
                outages: &outages,
                ready: &ready_at,
                agent: times.as_ref(),
                first_start_call: ran.first_start_call,
                figures: &figures,
            };
            std::fs::write(path, drawn.timeline().to_svg())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(Run {
            who,
            stacks: self.set.names.len(),
            snapshot_ms: millis(self.snapshot),
            archive_ms: millis(self.archive),
            round: self.round,
            slow: self.set.app != App::default(),
            long_poll: self.long_poll,
            agent_ms,
            detection,
            start_call_to_event_ms,
            figures,
        })
    }

    /// The case, for the picture's title: `N = 10, S 0.2s, B 5s`.
    fn what(&self) -> String {
        let mut what = format!(
            "N = {}, S {}, B {}",
            self.set.names.len(),
            humantime::format_duration(self.snapshot),
            humantime::format_duration(self.archive)
        );
        if self.set.app != App::default() {
            what.push_str(", slow apps");
        }
        if !self.long_poll {
            what.push_str(", agent without long-poll");
        }
        what
    }

    /// `felhom-controller once` (with `parallelism`, or the configured one); the cycle id,
    /// its start and each stack's recorded downtime.
    fn controller_cycle(&self, binary: &Path, parallelism: Option<usize>) -> Result<Ran> {
        let config = self.dir.join("controller.toml");
        let parallelism = parallelism.or(self.tools.parallelism);
        std::fs::write(
            &config,
            self.controller_config(&self.dir.join("state"), parallelism),
        )
        .with_context(|| format!("writing {}", config.display()))?;
        let mut cmd = Command::new(binary);
        // Without `--force` the cycle first asks whether a backup is due, as the daemon does;
        // that request also opens the TLS connection the cycle then reuses.
        cmd.arg("--config").arg(&config).arg("once");
        let out = process::run(&mut cmd, RUN_LIMIT)?;
        let log = self.dir.join("controller.log");
        std::fs::write(&log, &out.stderr).with_context(|| format!("writing {}", log.display()))?;
        let record: CycleRecord = serde_json::from_str(&out.stdout).with_context(|| {
            format!(
                "{}: the cycle record does not parse ({}); its log: {}",
                process::describe(&cmd),
                out.status,
                log.display()
            )
        })?;
        if !record.succeeded() || !out.status.success() {
            bail!(
                "the controller's cycle {} ended {:?} (stranded: {:?}, errors: {:?}); its log: {}",
                record.cycle_id,
                record.outcome,
                record.stranded,
                record.errors,
                log.display()
            );
        }
        let recorded = record
            .stacks
            .iter()
            .map(|s| (s.name.clone(), s.downtime_ms))
            .collect();
        Ok(Ran {
            cycle_id: Some(record.cycle_id),
            recorded,
            started_at: Some(record.started_at),
            first_start_call: None,
        })
    }

    /// `compose stop` of every stack, then at once `compose start` of every stack, as many at
    /// a time as the controller's `stacks.parallelism`, in name order: what compose and the
    /// engine need for these stacks with nothing else in between.
    fn compose_alone(&self) -> Result<()> {
        let parallelism = self.tools.parallelism.unwrap_or(DEFAULT_PARALLELISM).max(1);
        for verb in ["stop", "start"] {
            let queue = Mutex::new(self.set.stack_dirs().into_iter());
            let failures = Mutex::new(Vec::new());
            thread::scope(|scope| {
                for _ in 0..parallelism {
                    scope.spawn(|| loop {
                        let next = queue.lock().map(|mut q| q.next());
                        let Ok(Some(dir)) = next else { break };
                        let mut cmd = self.tools.compose.command();
                        cmd.current_dir(&dir).arg(verb);
                        if let Err(e) = process::checked(&mut cmd, Duration::from_secs(120)) {
                            if let Ok(mut f) = failures.lock() {
                                f.push(format!("in {}: {e:#}", dir.display()));
                            }
                        }
                    });
                }
            });
            let failures = failures.into_inner().unwrap_or_default();
            if !failures.is_empty() {
                bail!("compose {verb}: {}", failures.join("; "));
            }
        }
        Ok(())
    }

    fn controller_config(&self, state: &Path, parallelism: Option<usize>) -> String {
        let mut toml = format!(
            "[agent]\nurl = {:?}\ntoken = {:?}\npin_sha256 = {:?}\n\n\
             [stacks]\nroot = {:?}\ncompose = {:?}\n",
            self.agent.url,
            self.agent.token,
            self.agent.pin,
            self.set.root.display().to_string(),
            self.tools.compose.name,
        );
        if let Some(p) = parallelism {
            toml.push_str(&format!("parallelism = {p}\n"));
        }
        toml.push_str(&format!(
            "\n[quiesce]\nstate_dir = {:?}\n\n[status]\nlisten = \"\"\n",
            state.display().to_string()
        ));
        toml
    }

    /// `bench/naive.sh` on the set's stack directories; the cycle id it posted.
    fn naive_cycle(&self) -> Result<String> {
        let cycle_id = format!("naive-{}-r{}", self.set.id, self.round);
        let mut cmd = Command::new("bash");
        cmd.arg(&self.tools.naive)
            .args(self.set.stack_dirs())
            .env("AGENT_URL", &self.agent.url)
            .env("AGENT_TOKEN", &self.agent.token)
            .env("CYCLE_ID", &cycle_id)
            .env("COMPOSE", &self.tools.compose.name)
            // Far below RUN_LIMIT: the script starts its stacks itself before it is killed.
            .env("MAX_WAIT", "300");
        let out = process::run(&mut cmd, RUN_LIMIT)?;
        let log = self.dir.join("naive.log");
        std::fs::write(&log, format!("{}{}", out.stdout, out.stderr))
            .with_context(|| format!("writing {}", log.display()))?;
        if !out.status.success() {
            bail!(
                "{}: {}; its output: {}",
                process::describe(&cmd),
                out.status,
                log.display()
            );
        }
        Ok(cycle_id)
    }
}

fn agent_part(who: Who, times: &BackupTimes) -> f64 {
    let end = if who.is_controller() {
        times.snapshot
    } else {
        times.finished
    };
    ms_between(times.requested, end)
}

/// How soon a controller run acted on the snapshot: `first_start` is the engine's first
/// `start` event of the run.
fn detection(times: &BackupTimes, first_start: DateTime<Utc>) -> Detection {
    let first_poll_after = times
        .status_polls
        .iter()
        .map(|p| p.answered)
        .find(|&at| at >= times.snapshot);
    let window: Vec<_> = times
        .status_polls
        .iter()
        .filter(|p| p.arrived - times.requested <= REQUEST_WINDOW)
        .collect();
    Detection {
        to_first_start_ms: ms_between(times.snapshot, first_start),
        to_poll_ms: first_poll_after.map_or(f64::NAN, |at| ms_between(times.snapshot, at)),
        status_requests_10s: window.len(),
        status_held_10s: window.iter().filter(|p| p.held).count(),
    }
}

fn stack_figures(
    stack: &str,
    outage: &Outage,
    app_ready: DateTime<Utc>,
    agent_ms: f64,
    recorded_ms: Option<u64>,
) -> StackFigures {
    let ready = app_ready.max(outage.start);
    let downtime_ms = ms_between(outage.kill, ready);
    let app_stop_ms = ms_between(outage.kill, outage.died);
    let app_start_ms = ms_between(outage.start, ready);
    StackFigures {
        stack: stack.to_owned(),
        downtime_ms,
        app_stop_ms,
        app_start_ms,
        overhead_ms: downtime_ms - app_stop_ms - app_start_ms - agent_ms,
        recorded_ms,
    }
}

fn ms_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from)
        .num_microseconds()
        .map_or(f64::NAN, |us| us as f64 / 1000.0)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::StatusRequest;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).expect("in range")
    }

    #[test]
    fn overhead_is_what_is_left_after_the_app_and_the_agent() {
        let outage = Outage {
            kill: at(0),
            died: at(30),
            start: at(2_000),
            healthy: None,
        };
        let figures = stack_figures("a", &outage, at(2_005), 1_200.0, Some(2_400));
        assert_eq!(figures.downtime_ms, 2_005.0);
        assert_eq!(figures.app_stop_ms, 30.0);
        assert_eq!(figures.app_start_ms, 5.0);
        assert_eq!(figures.overhead_ms, 770.0);
        // The app's log line may carry a millisecond before the engine's `start`.
        let early = stack_figures("a", &outage, at(1_999), 1_200.0, None);
        assert_eq!(early.app_start_ms, 0.0);
        assert_eq!(early.downtime_ms, 2_000.0);
    }

    #[test]
    fn the_agent_part_depends_on_who_waits_for_what() {
        let times = BackupTimes {
            requested: at(0),
            snapshot: at(210),
            finished: at(5_230),
            status_polls: Vec::new(),
        };
        assert_eq!(agent_part(Who::Controller, &times), 210.0);
        assert_eq!(agent_part(Who::ControllerAllAtOnce, &times), 210.0);
        assert_eq!(agent_part(Who::Naive, &times), 5_230.0);
    }

    fn plain(ms: i64) -> StatusRequest {
        StatusRequest {
            arrived: at(ms),
            answered: at(ms),
            held: false,
        }
    }

    #[test]
    fn detection_runs_from_the_snapshot_and_counts_the_polls_of_the_first_ten_seconds() {
        let polls = [50, 125, 237, 406, 9_000, 10_000, 10_001, 12_000];
        let times = BackupTimes {
            requested: at(0),
            snapshot: at(300),
            finished: at(12_000),
            status_polls: polls.iter().map(|&ms| plain(ms)).collect(),
        };
        let d = detection(&times, at(650));
        assert_eq!(d.to_first_start_ms, 350.0);
        assert_eq!(d.to_poll_ms, 106.0);
        assert_eq!(d.status_requests_10s, 6);
        assert_eq!(d.status_held_10s, 0);
    }

    #[test]
    fn a_held_long_poll_counts_when_it_arrived_and_answers_the_snapshot() {
        let held = |from: i64, to: i64| StatusRequest {
            arrived: at(from),
            answered: at(to),
            held: true,
        };
        let times = BackupTimes {
            requested: at(0),
            snapshot: at(10_000),
            finished: at(11_000),
            // A plain request, a long-poll held until its wait ended, one held until the
            // snapshot (it arrived within the first 10 s: it counts) and one after the window.
            status_polls: vec![
                plain(40),
                held(60, 9_400),
                held(9_450, 10_003),
                held(10_020, 11_001),
            ],
        };
        let d = detection(&times, at(10_400));
        assert_eq!(d.to_poll_ms, 3.0);
        assert_eq!(d.status_requests_10s, 3);
        assert_eq!(d.status_held_10s, 2);
    }
}
