//! `felhom-controller`: reads the config, builds the real collaborators, wires them into the
//! quiesce controller and runs one command (SPEC §5). Everything that decides anything lives in
//! the library crates; this file only wires.

mod brief;
mod commands;
mod config;
mod counted;
mod endpoint;
mod errors;
mod metrics;
mod status;
mod systemd;
mod watch;
mod wire;

use anyhow::Result;
use clap::{Parser, Subcommand};
use config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// The daemon: crash recovery, then the loop; SIGTERM, SIGINT, SIGHUP or SIGQUIT resume
    /// the stacks before it exits.
    Run,
    /// One cycle now if due, and print its record.
    Once {
        /// Run the cycle even if the agent says no backup is due (it is still reached first).
        #[arg(long)]
        force: bool,
    },
    /// Restart the stacks named in a marker, clear it, and try the stranded stacks again.
    Recover {
        /// Only when the marker is older than `max_quiesce` plus one minute and no live
        /// process holds the lock; else do nothing and exit 0 (for a timer).
        #[arg(long)]
        if_stale: bool,
    },
    /// Marker, stranded stacks, the last cycles, next due.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also draw the newest cycle of the history as a picture (SVG) into this file.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
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
    no_core_dumps();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "felhom-controller: bad configuration: {}",
                errors::chain(e.as_ref())
            );
            return ExitCode::from(2);
        }
    };
    forget_environment();
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
            eprintln!("felhom-controller: {}", errors::chain(e.as_ref()));
            ExitCode::from(1)
        }
    }
}

/// Removes the `FELHOM_` variables (the agent's token among them) and the path of systemd's
/// credentials from the environment once the config is read, so that no child process
/// (compose, docker) inherits them. Done before the runtime starts its threads: the process is
/// still single-threaded here.
fn forget_environment() {
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("FELHOM_") || key_text == "CREDENTIALS_DIRECTORY" {
            std::env::remove_var(key);
        }
    }
}

/// Makes the process non-dumpable (`PR_SET_DUMPABLE 0`) before the config, and with it the
/// agent's token, is read: no core dump on a crash or on the watchdog's SIGABRT (in an LXC
/// guest the host's `core_pattern` decides where a core goes), and no ptrace or
/// `/proc/<pid>/mem` by other processes without `CAP_SYS_PTRACE`. The units add
/// `LimitCORE=0`. The compose and docker children are dumpable again after their exec; they
/// never see the token.
fn no_core_dumps() {
    use rustix::process::{set_dumpable_behavior, DumpableBehavior};
    if let Err(e) = set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        tracing::warn!("could not make the process non-dumpable (PR_SET_DUMPABLE): {e}");
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
        Command::Run => commands::run::run(config).await,
        Command::Once { force } => commands::once::once(config, force).await,
        Command::Recover { if_stale } => commands::recover::recover(config, if_stale).await,
        Command::Status { json, svg } => {
            commands::status::print(&config, json, svg.as_deref()).await
        }
        Command::Check => commands::check::check(config).await,
    }
}
