//! `felhom-controller`: reads the config, builds the real collaborators, wires them into the
//! quiesce controller and runs one command (SPEC §5). Everything that decides anything lives in
//! the library crates; this file only wires.

mod config;
mod metrics;
mod status;
mod systemd;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use config::Config;
use felhom_agentapi::{AgentApi, AgentClient, ClientConfig, Pin, Token};
use felhom_marker::{CycleRecord, Outcome, StateDir};
use felhom_quiesce::{CancellationToken, Controller, CycleConfig, Parts};
use felhom_stacks::{ComposeStacks, Stacks, StacksConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// App-consistent backups of a felhom guest: stops the app stacks around the host's backup and
/// brings back exactly those.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The configuration file.
    #[arg(long, global = true, value_name = "FILE", env = "FELHOM_CONFIG")]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "human",
        env = "FELHOM_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The daemon: crash recovery, then the loop; graceful on SIGTERM.
    Run,
    /// One cycle now if due, and print its record.
    Once {
        /// Run the cycle even if the agent says no backup is due (it is still reached first).
        #[arg(long)]
        force: bool,
    },
    /// Restart the stacks named in a marker, and clear it.
    Recover,
    /// Marker, stranded stacks, the last cycles, next due.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Validate the config, reach the agent, list what a cycle would stop. Stops nothing.
    Check,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(cli.log_format);
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("felhom-controller: bad configuration: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("felhom-controller: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli.command, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("felhom-controller: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn dispatch(command: Command, config: Config) -> Result<ExitCode> {
    match command {
        Command::Run => run(config).await,
        Command::Once { force } => once(config, force).await,
        Command::Recover => recover(config).await,
        Command::Status { json } => status::print(&config, json).await,
        Command::Check => check(config).await,
    }
}

/// The real collaborators, built from the config.
struct Wired {
    controller: Controller,
    agent: Option<Arc<dyn AgentApi>>,
    stacks: Arc<ComposeStacks>,
}

fn agent_client(config: &Config) -> Result<Option<AgentClient>> {
    let Some(a) = &config.agent else {
        return Ok(None);
    };
    let token = match (&a.token, &a.token_file) {
        (Some(t), _) => Token::new(t.clone()),
        (None, Some(file)) => Token::from_file(file).context("agent.token_file")?,
        (None, None) => anyhow::bail!("agent: no token configured"),
    };
    let pin: Pin = a
        .pin_sha256
        .parse()
        .map_err(|e| anyhow::anyhow!("agent.pin_sha256: {e}"))?;
    let client = AgentClient::new(ClientConfig {
        url: a.url.clone(),
        token,
        pin,
        connect_timeout: a.connect_timeout,
        request_timeout: a.request_timeout,
    })
    .context("agent")?;
    Ok(Some(client))
}

/// The agent client, or `None` when `[agent]` is absent.
fn agent(config: &Config) -> Result<Option<Arc<dyn AgentApi>>> {
    Ok(agent_client(config)?.map(|c| Arc::new(c) as Arc<dyn AgentApi>))
}

/// Builds the controller. The agent is built apart (see [`agent`]) so that `run` can recover
/// a crashed cycle even when the agent's settings are broken.
fn wire(config: &Config, agent: Option<Arc<dyn AgentApi>>) -> Result<Wired> {
    let stacks = Arc::new(
        ComposeStacks::new(StacksConfig {
            root: config.stacks.root.clone(),
            protected: config.protected(),
            compose: config
                .stacks
                .compose
                .parse()
                .map_err(|e| anyhow::anyhow!("stacks.compose: {e}"))?,
            stop_timeout: config.stacks.stop_timeout,
            start_timeout: config.stacks.start_timeout,
            ..StacksConfig::default()
        })
        .context("stacks")?,
    );
    let state = StateDir::open(&config.quiesce.state_dir)
        .with_context(|| format!("quiesce.state_dir {}", config.quiesce.state_dir.display()))?;
    let state = Arc::new(state);
    let q = &config.quiesce;
    let cycle = CycleConfig {
        due_poll_interval: q.due_poll_interval,
        status_poll_interval: q.status_poll_interval,
        max_quiesce: q.max_quiesce,
        resume_on_snapshot: q.resume_on_snapshot,
        min_cycle_interval: q.min_cycle_interval,
        failure_cooldown: q.failure_cooldown,
        parallelism: config.stacks.parallelism,
        // One start call may take the stacks manager's whole wait, plus compose's own time.
        start_call_timeout: config.stacks.start_timeout
            + config.stacks.stop_timeout
            + std::time::Duration::from_secs(30),
        ..CycleConfig::default()
    };
    let parts = Parts {
        agent: agent.clone(),
        stacks: stacks.clone() as Arc<dyn Stacks>,
        marker: state.clone(),
        history: state.clone(),
        lock: state,
    };
    Ok(Wired {
        controller: Controller::new(parts, cycle),
        agent,
        stacks,
    })
}

/// Cancels `token` on the first SIGTERM or SIGINT; later signals are logged, the resume goes on.
fn cancel_on_signals(token: CancellationToken) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            if first {
                tracing::info!("{name}: stopping; stacks that are down are resumed first");
                token.cancel();
                first = false;
            } else {
                tracing::warn!("{name} again: still resuming stacks, exiting as soon as they run");
            }
        }
    });
    Ok(())
}

async fn run(config: Config) -> Result<ExitCode> {
    // SPEC §2 rule 3: a crashed cycle's stacks come back before anything else that could fail
    // — a broken agent setting or a busy status port must not keep them down.
    let agent = agent(&config);
    let wired = wire(&config, agent.as_ref().ok().cloned().flatten())?;
    if let Err(e) = agent {
        recover_logged(&wired.controller).await;
        return Err(e);
    }
    let cancel = CancellationToken::new();
    cancel_on_signals(cancel.clone())?;
    if !config.status.listen.is_empty() {
        if let Err(e) = status::serve(&config, wired.controller.clone(), cancel.clone()).await {
            tracing::error!("the status endpoint is off: {e:#}");
        }
    }
    let enabled = config.quiesce.enabled && config.agent.is_some();
    if !enabled {
        // Recovery still runs: a marker means stacks are down, whatever the config says now.
        recover_logged(&wired.controller).await;
        let why = if config.agent.is_none() {
            "[agent] is not configured (the guest is not provisioned)"
        } else {
            "quiesce.enabled = false"
        };
        tracing::info!("the backup loop is off: {why}; serving status only");
        cancel.cancelled().await;
        return Ok(ExitCode::SUCCESS);
    }
    tracing::info!(pid = std::process::id(), "felhom-controller running");
    wired.controller.run(&cancel).await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Crash recovery whose failure is logged, not returned: the daemon goes on.
async fn recover_logged(controller: &Controller) {
    match controller.recover().await {
        Ok(Some(record)) => tracing::warn!(
            cycle = %record.cycle_id,
            stranded = ?record.stranded,
            "recovered an interrupted cycle"
        ),
        Ok(None) => {}
        Err(e) => tracing::error!("crash recovery: {e}"),
    }
}

async fn once(config: Config, force: bool) -> Result<ExitCode> {
    let wired = wire(&config, agent(&config)?)?;
    let agent = wired
        .agent
        .clone()
        .context("once: [agent] is not configured")?;
    // Asked even with --force (whose answer is then ignored): a wrong pin, token or url must
    // fail here, before anything is stopped, not at `POST /backup` with the stacks down.
    let due = agent.backup_due().await?;
    if !force && !due.due {
        println!(
            "not due{}{}",
            due.reason.map(|r| format!(": {r}")).unwrap_or_default(),
            due.next_due_at
                .map(|t| format!(" (next due at {t})"))
                .unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let cancel = CancellationToken::new();
    cancel_on_signals(cancel.clone())?;
    let record = wired.controller.run_cycle(&cancel).await?;
    print_record(&record)?;
    Ok(exit_for(&record))
}

async fn recover(config: Config) -> Result<ExitCode> {
    // The agent is only asked how the marker's backup ended: a broken agent setting must not
    // keep the stacks down.
    let agent = agent(&config).unwrap_or_else(|e| {
        tracing::warn!("the agent cannot be asked about the backup: {e:#}");
        None
    });
    let wired = wire(&config, agent)?;
    match wired.controller.recover().await? {
        Some(record) => {
            print_record(&record)?;
            Ok(if record.stranded.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        None => {
            println!("no marker: nothing to recover");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn check(config: Config) -> Result<ExitCode> {
    let wired = wire(&config, agent(&config)?)?;
    println!("config: ok");
    let mut ok = true;
    match &wired.agent {
        None => println!("agent: not configured ([agent] absent): the loop stays off"),
        Some(agent) => match agent.backup_due().await {
            Ok(due) => println!(
                "agent: reachable, pin and token accepted (due: {}{})",
                due.due,
                due.reason.map(|r| format!(", {r}")).unwrap_or_default()
            ),
            Err(e) => {
                ok = false;
                println!("agent: {e}");
            }
        },
    }
    match wired.stacks.compose_command().await {
        Ok(c) => println!("compose: {c}"),
        Err(e) => {
            ok = false;
            println!("compose: {e}");
        }
    }
    println!("protected: {}", config.protected().join(", "));
    match wired.stacks.running_app_stacks().await {
        Ok(stacks) if stacks.is_empty() => {
            println!("a cycle would stop: nothing (no running app stack)")
        }
        Ok(stacks) => {
            println!("a cycle would stop:");
            for s in stacks {
                println!("  {} ({})", s.name, s.services.join(", "));
            }
        }
        Err(e) => {
            ok = false;
            println!("stacks: {e}");
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn exit_for(record: &CycleRecord) -> ExitCode {
    if record.outcome == Outcome::Done && record.stranded.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_record(record: &CycleRecord) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(record)?);
    Ok(())
}
