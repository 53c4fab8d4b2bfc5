//! The results as markdown tables with the machine and the parameters, and each target of
//! issue 22 (and those of issues 11 and 7 that still apply) judged from the figures: over all
//! rounds and in each round, so that a result that holds in only some rounds shows as such.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use crate::idle::Idle;
use crate::measure::{Detection, Run, Who};
use felhom_testsupport::process;

/// Targets of issue 22: the controller's p50 within S + this of the engine alone's p50 (the
/// main cases) …
const OVER_ENGINE_MS: f64 = 100.0;
/// … and within S + this for slow apps, where the engine alone also waits for health outside
/// its slots.
const OVER_ENGINE_SLOW_MS: f64 = 150.0;
/// Issue 11's: at most this share of compose alone's p50; issue 22's: the max at N = 10 at
/// most this share of the naive script's max.
const OF_COMPOSE: f64 = 0.8;
const DOWNTIME_RATIO: f64 = 0.2;
/// The N the first targets are stated for.
const FLOOR_NS: [usize; 2] = [10, 20];
/// Snapshot → first start within the engine's own start latency + this.
const OVER_ENGINE_START_MS: f64 = 100.0;
/// Snapshot → answered status: within this against an agent with long-poll …
const LONG_POLL_ANSWER_MS: f64 = 100.0;
/// … and within the controller's fallback interval against one without: its
/// `status_poll_interval`, at its default in the benchmark's configs.
const FALLBACK_INTERVAL_MS: f64 = 2000.0;
/// At most about this many status requests in the first 10 s, against either agent.
const STATUS_REQUESTS_10S: usize = 20;
/// Targets of issue 7 that still stand.
const B_INDEPENDENCE: f64 = 0.10;
const IDLE_RSS_KIB: u64 = 15 * 1024;
const IDLE_CPU_PERCENT: f64 = 0.5;
/// The N the ratio and B-independence targets are stated for.
const TARGET_N: usize = 10;

/// Where and how the figures were measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    pub(crate) date: String,
    pub(crate) cpus: String,
    pub(crate) cpu_model: String,
    pub(crate) kernel: String,
    pub(crate) docker: String,
    pub(crate) compose: String,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
}

impl Machine {
    pub(crate) fn probe(compose: &str) -> Machine {
        Machine {
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            cpus: command_line("nproc", &[]),
            cpu_model: std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find(|l| l.starts_with("model name"))
                        .and_then(|l| l.split_once(':'))
                        .map(|(_, m)| m.trim().to_owned())
                })
                .unwrap_or_else(|| "unknown".into()),
            kernel: command_line("uname", &["-r"]),
            docker: command_line("docker", &["version", "--format", "{{.Server.Version}}"]),
            compose: format!("{compose} {}", compose_version(compose)),
            load_before: load_average(),
            load_after: String::new(),
        }
    }
}

fn compose_version(compose: &str) -> String {
    let mut words = compose.split(' ');
    let program = words.next().unwrap_or("docker");
    let mut args: Vec<&str> = words.collect();
    args.extend(["version", "--short"]);
    command_line(program, &args)
}

fn command_line(program: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args);
    match process::checked(&mut cmd, Duration::from_secs(20)) {
        Ok(out) => out.trim().to_owned(),
        Err(e) => format!("unknown ({e})"),
    }
}

/// The 1, 5 and 15 minute load averages.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// The benchmark's parameters, for the table's header.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Parameters {
    pub(crate) stacks: Vec<usize>,
    pub(crate) snapshot_ms: u64,
    pub(crate) archive_ms: u64,
    pub(crate) archive_alt_ms: Option<u64>,
    /// The realistic case, if run.
    pub(crate) slow: Option<Slow>,
    /// The detection case's S, if run.
    pub(crate) detect_snapshot_ms: Option<u64>,
    pub(crate) rounds: usize,
    pub(crate) parallelism: String,
    pub(crate) idle_window_s: u64,
}

/// The realistic case: stacks of an app that takes its time.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Slow {
    pub(crate) stacks: usize,
    pub(crate) stop_ms: u64,
    pub(crate) ready_ms: u64,
}

/// Which runs belong together: the same stacks, agent and app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Case {
    n: usize,
    snapshot_ms: u64,
    archive_ms: u64,
    slow: bool,
    long_poll: bool,
}

impl Case {
    fn of(run: &Run) -> Case {
        Case {
            n: run.stacks,
            snapshot_ms: run.snapshot_ms,
            archive_ms: run.archive_ms,
            slow: run.slow,
            long_poll: run.long_poll,
        }
    }

    fn label(self) -> String {
        let mut label = format!("S {}, B {}", secs(self.snapshot_ms), secs(self.archive_ms));
        if self.slow {
            label.push_str(", slow apps");
        }
        if !self.long_poll {
            label.push_str(", agent without long-poll");
        }
        label
    }

    /// The same stacks and app, whatever the agent: the engine alone needs no agent.
    fn same_stacks(self, other: Case) -> bool {
        Case {
            long_poll: other.long_poll,
            ..self
        } == other
    }
}

/// The engine alone that a controller candidate is held against.
fn engine_for(who: Who) -> Who {
    match who {
        Who::ControllerAllAtOnce | Who::EngineAllAtOnce => Who::EngineAllAtOnce,
        _ => Who::EngineAlone,
    }
}

/// One target judged on some runs: what it was measured at, shortly, and whether it is met
/// (`None`: not measured).
#[derive(Debug, Clone)]
struct Judged {
    figures: String,
    short: String,
    ok: Option<bool>,
}

impl Judged {
    /// `part / whole` at most `bound`; the ratio with three decimals, more where three would
    /// print a ratio a hair above the bound as equal to it.
    fn ratio(part: f64, whole: f64, bound: f64) -> Judged {
        let ratio = part / whole;
        Judged {
            figures: format!(
                "{} / {} = {}",
                ms(part),
                ms(whole),
                ratio_text(ratio, bound)
            ),
            short: ratio_text(ratio, bound),
            ok: Some(ratio <= bound),
        }
    }

    fn unmeasured(why: &str) -> Judged {
        Judged {
            figures: why.to_owned(),
            short: String::new(),
            ok: None,
        }
    }
}

/// Everything one benchmark run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Results {
    pub(crate) machine: Machine,
    pub(crate) parameters: Parameters,
    pub(crate) runs: Vec<Run>,
    pub(crate) idle: Vec<Idle>,
}

/// p50 and max of one figure over every stack of every round of one group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spread {
    pub(crate) p50: f64,
    pub(crate) max: f64,
}

impl Spread {
    fn of(values: impl Iterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let p50 = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Some(Spread {
            p50,
            max: v[v.len() - 1],
        })
    }
}

/// The figures of one (N, B, who) group.
#[derive(Debug, Clone, Copy)]
struct Group {
    samples: usize,
    downtime: Spread,
    overhead: Spread,
    app: Spread,
    agent: Spread,
}

impl Results {
    /// The runs of `who` in `case`, of one round or (`None`) of all.
    fn runs(&self, case: Case, who: Who, round: Option<usize>) -> Vec<&Run> {
        self.runs
            .iter()
            .filter(|r| Case::of(r) == case && r.who == who)
            .filter(|r| round.is_none_or(|n| r.round == n))
            .collect()
    }

    /// The rounds measured, in order.
    fn rounds(&self) -> Vec<usize> {
        let mut rounds: Vec<usize> = self.runs.iter().map(|r| r.round).collect();
        rounds.sort_unstable();
        rounds.dedup();
        rounds
    }

    fn group(&self, case: Case, who: Who) -> Option<Group> {
        self.group_in(case, who, None)
    }

    fn group_in(&self, case: Case, who: Who, round: Option<usize>) -> Option<Group> {
        let runs = self.runs(case, who, round);
        let figures = || runs.iter().flat_map(|r| r.figures.iter());
        Some(Group {
            samples: figures().count(),
            downtime: Spread::of(figures().map(|f| f.downtime_ms))?,
            overhead: Spread::of(figures().map(|f| f.overhead_ms))?,
            app: Spread::of(figures().map(|f| f.app_stop_ms + f.app_start_ms))?,
            agent: Spread::of(runs.iter().map(|r| r.agent_ms))?,
        })
    }

    fn detections(&self, case: Case, who: Who, round: Option<usize>) -> Vec<Detection> {
        self.runs(case, who, round)
            .iter()
            .filter_map(|r| r.detection)
            .collect()
    }

    /// The engine's own start latency (its first start call → its first `start` event) of
    /// the engine alone that `who` is held against, on the same stacks.
    fn engine_start(&self, case: Case, who: Who, round: Option<usize>) -> Option<Spread> {
        let engine = engine_for(who);
        Spread::of(
            self.runs
                .iter()
                .filter(|r| r.who == engine && case.same_stacks(Case::of(r)))
                .filter(|r| round.is_none_or(|n| r.round == n))
                .filter_map(|r| r.start_call_to_event_ms),
        )
    }

    /// The p50s of each round's downtimes, lowest and highest: how far the rounds agree.
    fn round_spread(&self, case: Case, who: Who) -> Option<(f64, f64)> {
        let p50s: Vec<f64> = self
            .rounds()
            .into_iter()
            .filter_map(|r| self.group_in(case, who, Some(r)))
            .map(|g| g.downtime.p50)
            .collect();
        let lo = p50s.iter().copied().reduce(f64::min)?;
        let hi = p50s.iter().copied().reduce(f64::max)?;
        Some((lo, hi))
    }

    /// The cases measured, in the order they ran.
    fn cases(&self) -> Vec<Case> {
        let mut cases = Vec::new();
        for run in &self.runs {
            if !cases.contains(&Case::of(run)) {
                cases.push(Case::of(run));
            }
        }
        cases
    }

    /// The main case of N stacks: instant apps, the configured S and B.
    fn plain(&self, n: usize) -> Case {
        Case {
            n,
            snapshot_ms: self.parameters.snapshot_ms,
            archive_ms: self.parameters.archive_ms,
            slow: false,
            long_poll: true,
        }
    }

    /// The detection case: one stack, a long S, against the agent with or without long-poll.
    fn detect(&self, long_poll: bool) -> Option<Case> {
        Some(Case {
            n: 1,
            snapshot_ms: self.parameters.detect_snapshot_ms?,
            archive_ms: 1000,
            slow: false,
            long_poll,
        })
    }

    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let p = &self.parameters;
        let _ = writeln!(out, "### Measured {}\n", m.date);
        let _ = writeln!(
            out,
            "Machine: {} CPUs ({}), kernel {}, docker {}, {}; load average (1/5/15 min) {} before, {} after.\n",
            m.cpus, m.cpu_model, m.kernel, m.docker, m.compose, m.load_before, m.load_after
        );
        let _ = writeln!(
            out,
            "Parameters: N = {:?} stacks of one service each (`felhom-testapp serve`), S = {}, B = {}{}{}{}, \
             {} round(s) per case (the candidates in rotating order), `stacks.parallelism` = {}, \
             other settings at their defaults (`status_poll_interval` 2s){}.\n",
            p.stacks,
            secs(p.snapshot_ms),
            secs(p.archive_ms),
            p.archive_alt_ms
                .map(|b| format!(" (and {} at N = {TARGET_N})", secs(b)))
                .unwrap_or_default(),
            p.slow
                .as_ref()
                .map(|s| format!(
                    "; slow apps: N = {}, each {} to shut down and {} from its start to healthy",
                    s.stacks,
                    secs(s.stop_ms),
                    secs(s.ready_ms)
                ))
                .unwrap_or_default(),
            p.detect_snapshot_ms
                .map(|s| format!("; detection: N = 1, S = {}, B = 1s", secs(s)))
                .unwrap_or_default(),
            p.rounds,
            p.parallelism,
            if self.idle.is_empty() {
                String::new()
            } else {
                format!("; idle window {} s", p.idle_window_s)
            },
        );
        let _ = writeln!(
            out,
            "| N | case | who | samples | downtime p50 | p50 per round (min–max) | downtime max | overhead p50 | overhead max | app stop+start p50 | agent time p50 |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
        for case in self.cases() {
            for who in WHO_ORDER {
                if let Some(g) = self.group(case, who) {
                    let spread = match self.round_spread(case, who) {
                        Some((lo, hi)) if lo == hi => ms(lo),
                        Some((lo, hi)) => format!("{}–{}", ms(lo), ms(hi)),
                        None => "–".into(),
                    };
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {spread} | {} | {} | {} | {} | {} |",
                        case.n,
                        case.label(),
                        who.label(),
                        g.samples,
                        ms(g.downtime.p50),
                        ms(g.downtime.max),
                        ms(g.overhead.p50),
                        ms(g.overhead.max),
                        ms(g.app.p50),
                        ms(g.agent.p50),
                    );
                }
            }
        }
        let _ = writeln!(out, "\n{}", self.detection_table());
        if !self.idle.is_empty() {
            let _ = writeln!(
                out,
                "\n| idle daemon (`run`, agent never due) | due_poll_interval | window | VmRSS max | CPU |"
            );
            let _ = writeln!(out, "|---|---|---|---|---|");
            for i in &self.idle {
                let _ = writeln!(
                    out,
                    "| felhom-controller | {} | {:.0} s | {:.1} MiB | {:.3} % of a core ({} ticks of {:.0} ms) |",
                    secs(i.due_poll_ms),
                    i.window_s,
                    i.rss_kib as f64 / 1024.0,
                    i.cpu_percent,
                    i.cpu_ticks,
                    i.tick_ms
                );
            }
        }
        let _ = writeln!(out, "\n{}", self.targets());
        out
    }

    /// How soon the controller acted on the snapshot, per case, beside the engine's own start
    /// latency, and what its status requests cost each kind of agent.
    fn detection_table(&self) -> String {
        let mut out = String::from(
            "| N | case | who | runs | snapshot → first start p50 | max | engine's own start p50 | snapshot → answered status p50 | max | status requests in the first 10 s (max) | of them held (max) |\n\
             |---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for case in self.cases() {
            for who in WHO_ORDER {
                let d = self.detections(case, who, None);
                let (Some(start), Some(poll)) = (
                    Spread::of(d.iter().map(|d| d.to_first_start_ms)),
                    Spread::of(d.iter().map(|d| d.to_poll_ms)),
                ) else {
                    continue;
                };
                let engine = self
                    .engine_start(case, who, None)
                    .map_or_else(|| "not run".to_owned(), |e| ms(e.p50));
                let requests = d.iter().map(|d| d.status_requests_10s).max().unwrap_or(0);
                let held = d.iter().map(|d| d.status_held_10s).max().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {engine} | {} | {} | {requests} | {held} |",
                    case.n,
                    case.label(),
                    who.label(),
                    d.len(),
                    ms(start.p50),
                    ms(start.max),
                    ms(poll.p50),
                    ms(poll.max),
                );
            }
        }
        let engine = Spread::of(self.runs.iter().filter_map(|r| r.start_call_to_event_ms));
        if let Some(e) = engine {
            let _ = writeln!(
                out,
                "\nThe engine's own start latency (engine alone: its first start call → the engine's first `start` event), over every case: p50 {}, max {}.",
                ms(e.p50),
                ms(e.max)
            );
        }
        out
    }

    /// Each target: met, not met, or not measured, over all rounds and in each round.
    pub(crate) fn targets(&self) -> String {
        let mut out = String::from(
            "| target | figures (all rounds) | verdict | rounds met | each round |\n|---|---|---|---|---|\n",
        );
        let rounds = self.rounds();
        let row = |out: &mut String, target: &str, judge: &dyn Fn(Option<usize>) -> Judged| {
            let all = judge(None);
            let each: Vec<(usize, Judged)> = rounds.iter().map(|&r| (r, judge(Some(r)))).collect();
            let measured: Vec<&(usize, Judged)> =
                each.iter().filter(|(_, j)| j.ok.is_some()).collect();
            let met = measured.iter().filter(|(_, j)| j.ok == Some(true)).count();
            let rounds_met = if measured.is_empty() {
                "–".to_owned()
            } else {
                format!("{met} of {}", measured.len())
            };
            let per_round = measured
                .iter()
                .map(|(r, j)| format!("{r}: {} ({})", verdict(j.ok), j.short))
                .collect::<Vec<_>>()
                .join("; ");
            let per_round = if per_round.is_empty() {
                "–".to_owned()
            } else {
                per_round
            };
            let _ = writeln!(
                out,
                "| {target} | {} | {} | {rounds_met} | {per_round} |",
                all.figures,
                verdict(all.ok)
            );
        };

        let snapshot = self.parameters.snapshot_ms as f64;
        let mut floor_cases: Vec<(String, Case, f64)> = FLOOR_NS
            .iter()
            .map(|&n| (format!("N = {n}"), self.plain(n), OVER_ENGINE_MS))
            .collect();
        if let Some(slow) = &self.parameters.slow {
            let case = Case {
                slow: true,
                ..self.plain(slow.stacks)
            };
            floor_cases.push((
                format!("N = {}, slow apps", slow.stacks),
                case,
                OVER_ENGINE_SLOW_MS,
            ));
        }
        for (name, case, over) in &floor_cases {
            let target =
                format!("{name}: controller's p50 ≤ engine alone's p50 + S + {over:.0} ms");
            row(&mut out, &target, &|round| match (
                self.group_in(*case, Who::Controller, round),
                self.group_in(*case, Who::EngineAlone, round),
            ) {
                (Some(c), Some(e)) => {
                    let bound = e.downtime.p50 + snapshot + over;
                    let margin = format!("{:+.0} ms", c.downtime.p50 - bound);
                    Judged {
                        figures: format!(
                            "{} vs {} + {} + {over:.0} ms = {} ({margin})",
                            ms(c.downtime.p50),
                            ms(e.downtime.p50),
                            ms(snapshot),
                            ms(bound),
                        ),
                        short: margin,
                        ok: Some(c.downtime.p50 <= bound),
                    }
                }
                _ => Judged::unmeasured("not run"),
            });
        }
        for (name, case, _) in &floor_cases {
            let target =
                format!("{name}: controller's p50 ≤ {OF_COMPOSE} × compose alone's p50 (issue 11)");
            row(&mut out, &target, &|round| match (
                self.group_in(*case, Who::Controller, round),
                self.group_in(*case, Who::ComposeAlone, round),
            ) {
                (Some(c), Some(f)) => Judged::ratio(c.downtime.p50, f.downtime.p50, OF_COMPOSE),
                _ => Judged::unmeasured("not run"),
            });
        }

        let b = self.parameters.archive_ms;
        let target = format!(
            "N = {TARGET_N}, B = {}: controller's max downtime ≤ {DOWNTIME_RATIO} × naive's max",
            secs(b)
        );
        row(&mut out, &target, &|round| {
            let case = self.plain(TARGET_N);
            match (
                self.group_in(case, Who::Controller, round),
                self.group_in(case, Who::Naive, round),
            ) {
                (Some(c), Some(n)) => Judged::ratio(c.downtime.max, n.downtime.max, DOWNTIME_RATIO),
                _ => Judged::unmeasured("N = 10 not run"),
            }
        });

        for case in self.cases() {
            if self.detections(case, Who::Controller, None).is_empty() {
                continue;
            }
            let target = format!(
                "N = {}, {}: snapshot → first start p50 ≤ engine's own start p50 + {OVER_ENGINE_START_MS:.0} ms",
                case.n,
                case.label()
            );
            row(&mut out, &target, &|round| {
                let first = Spread::of(
                    self.detections(case, Who::Controller, round)
                        .iter()
                        .map(|d| d.to_first_start_ms),
                );
                match (first, self.engine_start(case, Who::Controller, round)) {
                    (Some(c), Some(e)) => {
                        let bound = e.p50 + OVER_ENGINE_START_MS;
                        let margin = format!("{:+.0} ms", c.p50 - bound);
                        Judged {
                            figures: format!(
                                "{} vs {} + {OVER_ENGINE_START_MS:.0} ms ({margin})",
                                ms(c.p50),
                                ms(e.p50)
                            ),
                            short: margin,
                            ok: Some(c.p50 <= bound),
                        }
                    }
                    (Some(_), None) => Judged::unmeasured("no engine alone on these stacks"),
                    _ => Judged::unmeasured("not run"),
                }
            });
        }

        for (long_poll, bound, agent) in [
            (true, LONG_POLL_ANSWER_MS, "the dev agent (long-poll)"),
            (
                false,
                FALLBACK_INTERVAL_MS,
                "an agent without long-poll (the fallback interval)",
            ),
        ] {
            let s = self
                .parameters
                .detect_snapshot_ms
                .map_or_else(|| "S".to_owned(), |s| format!("S = {}", secs(s)));
            let target = format!(
                "{s}, {agent}: snapshot → answered status p50 ≤ {}",
                ms(bound)
            );
            row(&mut out, &target, &|round| {
                let Some(case) = self.detect(long_poll) else {
                    return Judged::unmeasured("detection case not run");
                };
                let polls = Spread::of(
                    self.detections(case, Who::Controller, round)
                        .iter()
                        .map(|d| d.to_poll_ms),
                );
                match polls {
                    Some(p) => Judged {
                        figures: format!("p50 {}, max {}", ms(p.p50), ms(p.max)),
                        short: ms(p.p50),
                        ok: Some(p.p50 <= bound),
                    },
                    None => Judged::unmeasured("not run"),
                }
            });
        }

        for (long_poll, agent) in [
            (true, "the dev agent"),
            (false, "an agent without long-poll"),
        ] {
            let target = format!(
                "at most about {STATUS_REQUESTS_10S} status requests in the first 10 s, {agent}"
            );
            row(&mut out, &target, &|round| {
                let runs = self
                    .runs
                    .iter()
                    .filter(|r| r.who == Who::Controller && r.long_poll == long_poll)
                    .filter(|r| round.is_none_or(|n| r.round == n));
                let most = runs
                    .filter_map(|r| r.detection.map(|d| (d, Case::of(r))))
                    .max_by_key(|(d, _)| d.status_requests_10s);
                match most {
                    Some((d, case)) => Judged {
                        figures: format!(
                            "at most {} ({} held) in any controller run (N = {}, {})",
                            d.status_requests_10s,
                            d.status_held_10s,
                            case.n,
                            case.label()
                        ),
                        short: d.status_requests_10s.to_string(),
                        ok: Some(d.status_requests_10s <= STATUS_REQUESTS_10S),
                    },
                    None => Judged::unmeasured("no controller run"),
                }
            });
        }

        let target = format!(
            "downtime independent of B (N = {TARGET_N}, within {:.0} %, p50 and max; issue 7)",
            B_INDEPENDENCE * 100.0
        );
        row(&mut out, &target, &|round| {
            let ctl = self.group_in(self.plain(TARGET_N), Who::Controller, round);
            let alt = self.parameters.archive_alt_ms.and_then(|alt| {
                let case = Case {
                    archive_ms: alt,
                    ..self.plain(TARGET_N)
                };
                Some((alt, self.group_in(case, Who::Controller, round)?))
            });
            match (ctl, alt) {
                (Some(c), Some((alt_ms, a))) => {
                    let p50 = (a.downtime.p50 - c.downtime.p50).abs() / c.downtime.p50;
                    let max = (a.downtime.max - c.downtime.max).abs() / c.downtime.max;
                    Judged {
                        figures: format!(
                            "B = {}: p50 {}, max {}; B = {}: p50 {}, max {} (differ by {:.0} %, {:.0} %)",
                            secs(b),
                            ms(c.downtime.p50),
                            ms(c.downtime.max),
                            secs(alt_ms),
                            ms(a.downtime.p50),
                            ms(a.downtime.max),
                            p50 * 100.0,
                            max * 100.0
                        ),
                        short: format!("{:.0} %, {:.0} %", p50 * 100.0, max * 100.0),
                        ok: Some(p50 <= B_INDEPENDENCE && max <= B_INDEPENDENCE),
                    }
                }
                _ => Judged::unmeasured("B-alt at N = 10 not run"),
            }
        });

        let default_poll = self.idle.iter().find(|i| i.due_poll_ms == 60_000);
        match default_poll {
            Some(i) => {
                row(
                    &mut out,
                    &format!("idle resident memory ≤ {} MiB", IDLE_RSS_KIB / 1024),
                    &|round| match round {
                        None => Judged {
                            figures: format!("{:.1} MiB", i.rss_kib as f64 / 1024.0),
                            short: String::new(),
                            ok: Some(i.rss_kib <= IDLE_RSS_KIB),
                        },
                        Some(_) => Judged::unmeasured(""),
                    },
                );
                row(
                    &mut out,
                    &format!("idle CPU ≤ {IDLE_CPU_PERCENT} % of a core (default 60s poll)"),
                    &|round| match round {
                        None => Judged {
                            figures: format!(
                                "{:.3} % ({} ticks of {:.0} ms in {:.0} s)",
                                i.cpu_percent, i.cpu_ticks, i.tick_ms, i.window_s
                            ),
                            short: String::new(),
                            ok: Some(i.cpu_percent <= IDLE_CPU_PERCENT),
                        },
                        Some(_) => Judged::unmeasured(""),
                    },
                );
            }
            None => row(&mut out, "idle memory and CPU", &|_| {
                Judged::unmeasured("not run")
            }),
        }
        out
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "**met**",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

/// The order of the candidates in the tables.
const WHO_ORDER: [Who; 7] = [
    Who::Controller,
    Who::ControllerAllAtOnce,
    Who::Baseline,
    Who::Naive,
    Who::ComposeAlone,
    Who::EngineAlone,
    Who::EngineAllAtOnce,
];

/// A ratio with three decimals, more where three would print it equal to its `bound`
/// although it is not.
fn ratio_text(ratio: f64, bound: f64) -> String {
    let three = format!("{ratio:.3}");
    if ratio != bound && three == format!("{bound:.3}") {
        format!("{ratio:.5}")
    } else {
        three
    }
}

fn ms(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{:.1} s", v / 1000.0)
    } else {
        format!("{v:.0} ms")
    }
}

fn secs(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::StackFigures;

    fn run(who: Who, n: usize, archive_ms: u64, downtimes: &[f64], agent_ms: f64) -> Run {
        Run {
            who,
            stacks: n,
            snapshot_ms: 200,
            archive_ms,
            round: 1,
            slow: false,
            long_poll: true,
            agent_ms,
            detection: None,
            start_call_to_event_ms: None,
            figures: downtimes
                .iter()
                .enumerate()
                .map(|(i, d)| StackFigures {
                    stack: format!("s{i}"),
                    downtime_ms: *d,
                    app_stop_ms: 20.0,
                    app_start_ms: 5.0,
                    overhead_ms: d - 25.0 - agent_ms,
                    recorded_ms: None,
                })
                .collect(),
        }
    }

    fn round(mut run: Run, round: usize) -> Run {
        run.round = round;
        run
    }

    fn detected(mut run: Run, to_first_start_ms: f64, status_requests_10s: usize) -> Run {
        run.detection = Some(Detection {
            to_first_start_ms,
            to_poll_ms: 30.0,
            status_requests_10s,
            status_held_10s: 0,
        });
        run
    }

    fn results(runs: Vec<Run>, idle: Vec<Idle>) -> Results {
        Results {
            machine: Machine {
                date: "today".into(),
                cpus: "2".into(),
                cpu_model: "cpu".into(),
                kernel: "k".into(),
                docker: "20.10".into(),
                compose: "docker compose 2.26".into(),
                load_before: "0.1 0.1 0.1".into(),
                load_after: "0.2 0.2 0.2".into(),
            },
            parameters: Parameters {
                stacks: vec![10],
                snapshot_ms: 200,
                archive_ms: 5000,
                archive_alt_ms: Some(30_000),
                slow: None,
                detect_snapshot_ms: None,
                rounds: 1,
                parallelism: "default (4)".into(),
                idle_window_s: 120,
            },
            runs,
            idle,
        }
    }

    /// The columns of the row of the targets table that starts with `target`.
    #[derive(Debug)]
    struct Verdict<'a> {
        figures: &'a str,
        verdict: &'a str,
        rounds: &'a str,
        each: &'a str,
    }

    fn row<'a>(table: &'a str, target: &str) -> Verdict<'a> {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("| {target}")))
            .unwrap_or_else(|| panic!("no row {target:?} in\n{table}"));
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells.len(), 5, "{line}");
        Verdict {
            figures: cells[1],
            verdict: cells[2],
            rounds: cells[3],
            each: cells[4],
        }
    }

    #[test]
    fn a_ratio_a_hair_off_its_bound_does_not_print_as_the_bound() {
        assert_eq!(ratio_text(0.20004, 0.2), "0.20004");
        assert_eq!(ratio_text(0.2, 0.2), "0.200");
        assert_eq!(ratio_text(0.05, 0.2), "0.050");
    }

    #[test]
    fn spread_is_the_median_and_the_max() {
        let s = Spread::of([3.0, 1.0, 2.0].into_iter()).expect("values");
        assert_eq!(s, Spread { p50: 2.0, max: 3.0 });
        let s = Spread::of([4.0, 1.0, 2.0, 3.0, f64::NAN].into_iter()).expect("values");
        assert_eq!(s, Spread { p50: 2.5, max: 4.0 });
        assert_eq!(Spread::of(std::iter::empty()), None);
    }

    #[test]
    fn targets_are_judged_from_the_figures() {
        let r = results(
            vec![
                detected(
                    run(Who::Controller, 10, 5000, &[400.0, 500.0, 600.0], 210.0),
                    120.0,
                    7,
                ),
                run(
                    Who::Naive,
                    10,
                    5000,
                    &[9_000.0, 11_000.0, 12_000.0],
                    5_200.0,
                ),
                run(Who::EngineAlone, 10, 5000, &[100.0, 200.0, 300.0], 0.0),
                run(Who::ComposeAlone, 10, 5000, &[300.0, 600.0, 900.0], 0.0),
                run(Who::Controller, 10, 30_000, &[410.0, 505.0, 590.0], 210.0),
            ],
            vec![Idle {
                due_poll_ms: 60_000,
                window_s: 120.0,
                rss_kib: 20 * 1024,
                cpu_percent: 0.01,
                cpu_ticks: 1,
                tick_ms: 10.0,
            }],
        );
        let t = r.targets();
        // 500 ≤ 200 + 200 + 100 = 500
        let engine = row(
            &t,
            "N = 10: controller's p50 ≤ engine alone's p50 + S + 100 ms",
        );
        assert_eq!(
            engine.figures,
            "500 ms vs 200 ms + 200 ms + 100 ms = 500 ms (+0 ms)"
        );
        assert_eq!(engine.verdict, "**met**");
        assert_eq!(engine.rounds, "1 of 1");
        assert_eq!(engine.each, "1: **met** (+0 ms)");
        // 500 / 600 = 0.833 > 0.8
        let compose = row(&t, "N = 10: controller's p50 ≤ 0.8");
        assert!(compose.figures.ends_with("= 0.833"), "{t}");
        assert_eq!(compose.verdict, "**not met**");
        let missing = row(&t, "N = 20: controller's p50 ≤ engine");
        assert_eq!((missing.verdict, missing.rounds), ("not measured", "–"));
        // ratio 600 / 12000 = 0.05
        let ratio = row(&t, "N = 10, B = 5s: controller's max");
        assert!(ratio.figures.ends_with("= 0.050"), "{t}");
        assert_eq!(ratio.verdict, "**met**");
        let requests = row(
            &t,
            "at most about 20 status requests in the first 10 s, the dev agent",
        );
        assert!(requests.figures.starts_with("at most 7 (0 held)"), "{t}");
        assert_eq!(requests.verdict, "**met**");
        let without = row(
            &t,
            "at most about 20 status requests in the first 10 s, an agent without",
        );
        assert_eq!(without.verdict, "not measured");
        assert_eq!(row(&t, "downtime independent of B").verdict, "**met**");
        let memory = row(&t, "idle resident memory");
        assert_eq!(
            (memory.figures, memory.verdict),
            ("20.0 MiB", "**not met**")
        );
        assert_eq!(memory.rounds, "–");
        assert_eq!(row(&t, "idle CPU").verdict, "**met**");
        // Snapshot → first start without an engine alone on these stacks: not judged.
        let first = row(&t, "N = 10, S 0.2s, B 5s: snapshot → first start");
        assert_eq!(first.verdict, "not measured");
        let table = r.markdown();
        assert!(
            table.contains("| 10 | S 0.2s, B 5s | naive script | 3 | 11.0 s | 11.0 s | 12.0 s |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| 10 | S 0.2s, B 5s | controller | 1 | 120 ms | 120 ms | not run | 30 ms | 30 ms | 7 | 0 |"
            ),
            "{table}"
        );
    }

    #[test]
    fn each_round_is_judged_and_the_rounds_spread_is_shown() {
        let r = results(
            vec![
                round(run(Who::Controller, 10, 5000, &[400.0, 500.0], 210.0), 1),
                round(run(Who::EngineAlone, 10, 5000, &[200.0, 200.0], 0.0), 1),
                round(run(Who::Controller, 10, 5000, &[700.0, 900.0], 210.0), 2),
                round(run(Who::EngineAlone, 10, 5000, &[250.0, 250.0], 0.0), 2),
            ],
            Vec::new(),
        );
        let t = r.targets();
        let engine = row(&t, "N = 10: controller's p50 ≤ engine alone's");
        // All rounds: p50 600 vs 225 + 300 = 525; round 1: 450 vs 500; round 2: 800 vs 550.
        assert_eq!(
            engine.figures,
            "600 ms vs 225 ms + 200 ms + 100 ms = 525 ms (+75 ms)"
        );
        assert_eq!(engine.verdict, "**not met**");
        assert_eq!(engine.rounds, "1 of 2");
        assert_eq!(engine.each, "1: **met** (-50 ms); 2: **not met** (+250 ms)");
        let table = r.markdown();
        assert!(
            table.contains(
                "| 10 | S 0.2s, B 5s | controller | 4 | 600 ms | 450 ms–800 ms | 900 ms |"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "| 10 | S 0.2s, B 5s | engine alone (floor) | 4 | 225 ms | 200 ms–250 ms |"
            ),
            "{table}"
        );
    }

    #[test]
    fn detection_is_judged_against_the_engine_and_each_kind_of_agent() {
        let detect = |mut run: Run, long_poll: bool, to_poll_ms: f64, requests: usize| {
            run.snapshot_ms = 10_000;
            run.archive_ms = 1000;
            run.long_poll = long_poll;
            run.detection = Some(Detection {
                to_first_start_ms: 400.0,
                to_poll_ms,
                status_requests_10s: requests,
                status_held_10s: if long_poll { 2 } else { 0 },
            });
            run
        };
        let mut engine = run(Who::EngineAlone, 1, 1000, &[300.0], 0.0);
        engine.snapshot_ms = 10_000;
        engine.start_call_to_event_ms = Some(320.0);
        let mut r = results(
            vec![
                detect(
                    run(Who::Controller, 1, 1000, &[10_500.0], 10_000.0),
                    true,
                    4.0,
                    3,
                ),
                engine,
                detect(
                    run(Who::Controller, 1, 1000, &[11_000.0], 10_000.0),
                    false,
                    600.0,
                    21,
                ),
            ],
            Vec::new(),
        );
        r.parameters.detect_snapshot_ms = Some(10_000);
        let t = r.targets();
        // 400 vs 320 + 100: met, against the engine alone on the same stacks — which ran
        // against the agent with long-poll only.
        let with = row(&t, "N = 1, S 10s, B 1s: snapshot → first start");
        assert_eq!(with.figures, "400 ms vs 320 ms + 100 ms (-20 ms)");
        assert_eq!(with.verdict, "**met**");
        let without = row(
            &t,
            "N = 1, S 10s, B 1s, agent without long-poll: snapshot → first start",
        );
        assert_eq!(without.verdict, "**met**");
        let answered = row(
            &t,
            "S = 10s, the dev agent (long-poll): snapshot → answered status p50 ≤ 100 ms",
        );
        assert_eq!(
            (answered.figures, answered.verdict),
            ("p50 4 ms, max 4 ms", "**met**")
        );
        let fallback = row(&t, "S = 10s, an agent without long-poll (the fallback interval): snapshot → answered status p50 ≤ 2000 ms");
        assert_eq!(fallback.verdict, "**met**");
        let requests = row(
            &t,
            "at most about 20 status requests in the first 10 s, an agent without",
        );
        assert!(requests.figures.starts_with("at most 21 (0 held)"), "{t}");
        assert_eq!(requests.verdict, "**not met**");
        let held = row(
            &t,
            "at most about 20 status requests in the first 10 s, the dev agent",
        );
        assert!(held.figures.starts_with("at most 3 (2 held)"), "{t}");
        let table = r.markdown();
        assert!(
            table.contains("| 1 | S 10s, B 1s | controller | 1 | 400 ms | 400 ms | 320 ms | 4 ms | 4 ms | 3 | 2 |"),
            "{table}"
        );
    }

    #[test]
    fn a_slow_case_off_its_floor_fails() {
        let mut slow = run(Who::Controller, 10, 5000, &[9_000.0], 210.0);
        slow.slow = true;
        let mut slow_engine = run(Who::EngineAlone, 10, 5000, &[5_500.0], 0.0);
        slow_engine.slow = true;
        let mut r = results(vec![slow, slow_engine], Vec::new());
        r.parameters.slow = Some(Slow {
            stacks: 10,
            stop_ms: 2000,
            ready_ms: 3000,
        });
        let t = r.targets();
        let slow = row(
            &t,
            "N = 10, slow apps: controller's p50 ≤ engine alone's p50 + S + 150 ms",
        );
        assert!(slow.figures.ends_with("(+3150 ms)"), "{t}");
        assert_eq!(slow.verdict, "**not met**");
    }

    #[test]
    fn a_dependent_downtime_fails_the_independence_target() {
        let r = results(
            vec![
                run(Who::Controller, 10, 5000, &[400.0, 500.0, 600.0], 210.0),
                run(Who::Controller, 10, 30_000, &[400.0, 700.0, 600.0], 210.0),
            ],
            Vec::new(),
        );
        let t = r.targets();
        assert_eq!(
            row(&t, "N = 10, B = 5s: controller's max").verdict,
            "not measured"
        );
        let b = row(&t, "downtime independent of B");
        assert!(b.figures.ends_with("(differ by 20 %, 17 %)"), "{t}");
        assert_eq!(b.verdict, "**not met**");
        assert_eq!(b.each, "1: **not met** (20 %, 17 %)");
        assert_eq!(row(&t, "idle memory and CPU").figures, "not run");
    }
}
