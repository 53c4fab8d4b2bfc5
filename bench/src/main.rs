//! `felhom-bench`: what a backup costs the apps in downtime, with felhom-controller and with
//! the sequential script an administrator would write, measured side by side in one run on
//! real compose stacks and the development agent; and what the idle daemon costs.
//!
//! For each N: N stacks of the test app are deployed and a development agent (snapshot step
//! S, archive step B) is started; then, in rotating order, `felhom-controller once`,
//! `bench/naive.sh` and plain compose (stop all, start all: the floor) each take their turn.
//! Each stack's downtime is read from the engine (`docker events`: its `kill` → `die` →
//! `start`) and the app's own log (`clean start`); the agent's part from its timeline. The idle
//! daemon is `felhom-controller run` against an agent that is never due. The result is a
//! markdown table (stdout), with `--json` every figure, and with `--svg` a picture of every
//! measured run. See docs/performance.md.

mod agent;
mod engine;
mod engine_alone;
mod fixture;
mod idle;
mod measure;
mod picture;
mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use agent::{AgentProcess, AgentSetup};
use fixture::{App, Compose, StackSet};
use measure::{Bench, Tools, Who};
use report::{Machine, Parameters, Results};

/// How long a long-running child (agent, daemon, event recorder) has to end after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The downtime benchmark: felhom-controller against a naive sequential script.
#[derive(Debug, Parser)]
#[command(name = "felhom-bench", version)]
struct Cli {
    /// Numbers of stacks, e.g. 1,5,10,20.
    #[arg(long, value_delimiter = ',', default_value = "10,20")]
    stacks: Vec<usize>,
    /// The agent's snapshot step S (time before the data is captured).
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    snapshot: Duration,
    /// The agent's archive step B (time from the snapshot to done).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    archive: Duration,
    /// A second B, run at N = 10 only, to show the downtime does not grow with B.
    #[arg(long, value_parser = humantime::parse_duration)]
    archive_alt: Option<Duration>,
    /// The realistic case: this many stacks of an app that takes --slow-stop to shut down and
    /// --slow-ready to become ready (0: skip it).
    #[arg(long, default_value_t = 10)]
    slow_stacks: usize,
    /// The slow app's clean shutdown.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    slow_stop: Duration,
    /// The slow app's time from its start to ready (healthy).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    slow_ready: Duration,
    /// The detection case: one stack, the controller alone, a snapshot step this long, to
    /// show how late a long snapshot is noticed and how many status requests that costs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    detect_snapshot: Duration,
    /// Skip the detection case (run twice: against the dev agent, which answers long-polls,
    /// and against it with fault `no_long_poll`, as an agent without the extension).
    #[arg(long)]
    no_detect: bool,
    /// The compose tool: "docker compose" or "docker-compose".
    #[arg(long, default_value = "docker compose")]
    compose: String,
    /// Rounds per case; each round runs every candidate once, in rotating order.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// `stacks.parallelism` for the controller (default: the controller's default).
    #[arg(long)]
    parallelism: Option<usize>,
    /// Also measure the idle daemon's memory and CPU.
    #[arg(long)]
    idle: bool,
    /// How long the idle daemons' CPU time is counted.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    idle_window: Duration,
    /// A smoke run: N = 1,3, one round, B = 2s, 2 slow stacks, a 2 s detection snapshot,
    /// 10 s idle window.
    #[arg(long)]
    quick: bool,
    /// Also write every figure as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also draw every measured run as an SVG picture into this directory (created if
    /// missing): `<case>-r<round>-<who>.svg`.
    #[arg(long, value_name = "DIR")]
    svg: Option<PathBuf>,
    /// Where felhom-controller and felhom-devagent are (default: next to this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Another build's felhom-controller to measure side by side (e.g. before a tuning).
    #[arg(long)]
    baseline_bin_dir: Option<PathBuf>,
    /// The naive script.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/naive.sh"))]
    naive: PathBuf,
    /// Working directory for stacks, agents, configs and logs (default: a new one in /tmp);
    /// kept after a failure, removed after a success unless --keep.
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Keep the working directory.
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if cli.quick {
        cli.stacks = vec![1, 3];
        cli.rounds = 1;
        cli.archive = Duration::from_secs(2);
        cli.archive_alt = None;
        cli.slow_stacks = cli.slow_stacks.min(2);
        cli.detect_snapshot = Duration::from_secs(2);
        cli.idle_window = Duration::from_secs(10);
    }
    let work = cli.workdir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("felhom-bench-{}", std::process::id()))
    });
    match run(&cli, &work) {
        Ok(results) => {
            print!("{}", results.markdown());
            if !cli.keep {
                let _ = std::fs::remove_dir_all(&work);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "felhom-bench: {e:#}\n(configs and logs kept in {})",
                work.display()
            );
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli, work: &Path) -> Result<Results> {
    if cli.stacks.contains(&0) || cli.rounds == 0 {
        bail!("--stacks and --rounds must be at least 1");
    }
    let tools = tools(cli)?;
    check_image()?;
    fixture::remove_stale_sets()?;
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    if let Some(dir) = &cli.svg {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tag = std::process::id().to_string();
    let mut machine = Machine::probe(&tools.compose.name);
    let archive_alt = cli.archive_alt.filter(|_| cli.stacks.contains(&10));
    let mut runs = Vec::new();

    for (index, case) in cases(cli, archive_alt).iter().enumerate() {
        let case_dir = work.join(format!("c{index}-n{}", case.n));
        progress(&format!("deploying {} stack(s) ({})", case.n, case.what));
        let set = StackSet::deploy(&case_dir, &tag, case.n, case.app, &tools.compose)?;
        // Let the fresh containers and the engine settle before the first run.
        std::thread::sleep(Duration::from_secs(2));
        let agent = AgentProcess::start(&AgentSetup {
            binary: &tools.devagent,
            dir: &case_dir.join("agent"),
            source: &set.data,
            snapshot: case.snapshot,
            archive: case.archive,
            due: "always",
            faults: if case.long_poll {
                &[]
            } else {
                &["no_long_poll"]
            },
        })?;
        for round in 1..=cli.rounds {
            // Rotate who goes first, so that none always runs on a warmer engine.
            let mut order = case.who.clone();
            let first = (round - 1) % order.len();
            order.rotate_left(first);
            for who in order {
                progress(&format!(
                    "N = {}, {}, round {round}/{}: {}",
                    case.n,
                    case.what,
                    cli.rounds,
                    who.label()
                ));
                let bench = Bench {
                    tools: &tools,
                    set: &set,
                    agent: &agent,
                    snapshot: case.snapshot,
                    archive: case.archive,
                    dir: case_dir.join(format!("r{round}-{}", who.slug())),
                    round,
                    long_poll: case.long_poll,
                    svg: cli
                        .svg
                        .as_ref()
                        .map(|dir| dir.join(format!("{}-r{round}-{}.svg", case.slug, who.slug()))),
                };
                let run = bench.run(who)?;
                let worst = run
                    .figures
                    .iter()
                    .map(|f| f.downtime_ms)
                    .fold(0.0, f64::max);
                progress(&format!("  max downtime {worst:.0} ms"));
                runs.push(run);
                // Let the engine and compose settle before the next run.
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        progress(&format!("removing the {} stack(s)", case.n));
        drop(agent);
        drop(set);
    }

    let mut idle = Vec::new();
    if cli.idle {
        let idle_dir = work.join("idle");
        let agent = AgentProcess::start(&AgentSetup {
            binary: &tools.devagent,
            dir: &idle_dir.join("agent"),
            source: &idle_dir,
            snapshot: cli.snapshot,
            archive: cli.archive,
            due: "never",
            faults: &[],
        })?;
        progress(&format!(
            "idle daemons (due_poll_interval 60s and 1s) for {}",
            humantime::format_duration(cli.idle_window)
        ));
        idle = idle::measure(
            &tools.controller,
            &agent,
            &idle_dir,
            &[Duration::from_secs(60), Duration::from_secs(1)],
            cli.idle_window,
        )?;
    }
    machine.load_after = report::load_average();

    let results = Results {
        machine,
        parameters: Parameters {
            stacks: cli.stacks.clone(),
            snapshot_ms: millis(cli.snapshot),
            archive_ms: millis(cli.archive),
            archive_alt_ms: archive_alt.map(millis),
            slow: (cli.slow_stacks > 0).then(|| report::Slow {
                stacks: cli.slow_stacks,
                stop_ms: millis(cli.slow_stop),
                ready_ms: millis(cli.slow_ready),
            }),
            detect_snapshot_ms: (!cli.no_detect).then(|| millis(cli.detect_snapshot)),
            rounds: cli.rounds,
            parallelism: cli
                .parallelism
                .map_or_else(|| "4 (default)".to_owned(), |p| p.to_string()),
            idle_window_s: cli.idle_window.as_secs(),
        },
        runs,
        idle,
    };
    if let Some(path) = &cli.json {
        let json = serde_json::to_string_pretty(&results).context("serializing the results")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(results)
}

/// One deployed set of stacks, one agent, and who takes turns on them.
#[derive(Debug)]
struct Case {
    n: usize,
    app: App,
    snapshot: Duration,
    archive: Duration,
    who: Vec<Who>,
    /// Whether the agent answers long-polls (else it runs with fault `no_long_poll`).
    long_poll: bool,
    /// For the progress lines.
    what: String,
    /// For the pictures' file names, e.g. `n10`, `n10-slow`, `n1-detect-s10s`.
    slug: String,
}

/// The cases of a run: each N with every candidate; the second B at N = 10; the realistic
/// case; the detection case against an agent with and one without long-poll.
fn cases(cli: &Cli, archive_alt: Option<Duration>) -> Vec<Case> {
    let configured = cli.parallelism.unwrap_or(measure::DEFAULT_PARALLELISM);
    let everyone = |n: usize| {
        let mut who = vec![Who::Controller];
        if cli.baseline_bin_dir.is_some() {
            who.push(Who::Baseline);
        }
        who.extend([Who::Naive, Who::ComposeAlone, Who::EngineAlone]);
        // "All at once" differs from the configured parallelism only beyond it.
        if n > configured {
            who.extend([Who::ControllerAllAtOnce, Who::EngineAllAtOnce]);
        }
        who
    };
    let b = |d: Duration| format!("B = {}", humantime::format_duration(d));
    let mut cases: Vec<Case> = cli
        .stacks
        .iter()
        .map(|&n| Case {
            n,
            app: App::default(),
            snapshot: cli.snapshot,
            archive: cli.archive,
            who: everyone(n),
            long_poll: true,
            what: b(cli.archive),
            slug: format!("n{n}"),
        })
        .collect();
    if let Some(alt) = archive_alt {
        cases.push(Case {
            n: 10,
            app: App::default(),
            snapshot: cli.snapshot,
            archive: alt,
            who: vec![Who::Controller, Who::Naive, Who::ComposeAlone],
            long_poll: true,
            what: b(alt),
            slug: format!("n10-b{}", humantime::format_duration(alt)),
        });
    }
    if cli.slow_stacks > 0 {
        cases.push(Case {
            n: cli.slow_stacks,
            app: App {
                stop: cli.slow_stop,
                ready: Some(cli.slow_ready),
            },
            snapshot: cli.snapshot,
            archive: cli.archive,
            who: everyone(cli.slow_stacks),
            long_poll: true,
            what: "slow apps".into(),
            slug: format!("n{}-slow", cli.slow_stacks),
        });
    }
    if !cli.no_detect {
        let s = humantime::format_duration(cli.detect_snapshot).to_string();
        // The engine alone beside the controller: its own start latency is what the
        // controller's snapshot → first start is judged against.
        cases.push(Case {
            n: 1,
            app: App::default(),
            snapshot: cli.detect_snapshot,
            archive: Duration::from_secs(1),
            who: vec![Who::Controller, Who::EngineAlone],
            long_poll: true,
            what: format!("S = {s}"),
            slug: format!("n1-detect-s{s}"),
        });
        cases.push(Case {
            n: 1,
            app: App::default(),
            snapshot: cli.detect_snapshot,
            archive: Duration::from_secs(1),
            who: vec![Who::Controller],
            long_poll: false,
            what: format!("S = {s}, agent without long-poll"),
            slug: format!("n1-detect-s{s}-no-long-poll"),
        });
    }
    cases
}

fn tools(cli: &Cli) -> Result<Tools> {
    let bin_dir = match &cli.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .context("locating this binary")?
            .parent()
            .map(Path::to_path_buf)
            .context("this binary has no directory")?,
    };
    let find = |name: &str| {
        let path = bin_dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            bail!(
                "{} is missing: build it (cargo build --release -p {name}) or pass --bin-dir",
                path.display()
            )
        }
    };
    if !cli.naive.is_file() {
        bail!(
            "the naive script {} is missing (--naive)",
            cli.naive.display()
        );
    }
    let baseline = match &cli.baseline_bin_dir {
        Some(dir) => {
            let path = dir.join("felhom-controller");
            if !path.is_file() {
                bail!("--baseline-bin-dir: {} is missing", path.display());
            }
            Some(path)
        }
        None => None,
    };
    Ok(Tools {
        controller: find("felhom-controller")?,
        baseline,
        devagent: find("felhom-devagent")?,
        naive: cli.naive.clone(),
        compose: Compose::parse(&cli.compose)?,
        parallelism: cli.parallelism,
    })
}

fn check_image() -> Result<()> {
    felhom_testsupport::engine::check_image().map_err(anyhow::Error::msg)
}

fn progress(message: &str) {
    eprintln!("bench: {message}");
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
