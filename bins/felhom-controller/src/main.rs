//! `felhom-controller`: reads the config, builds the real collaborators, wires them into the
//! quiesce controller and runs one command (SPEC §5). Everything that decides anything lives in
//! the library crates (the cycle in `felhom-quiesce`, the service around it in `felhom-ops`);
//! this program owns the process: its arguments, logs, environment and signals.

/// `println!` that never panics: a terminal that hung up (SIGHUP), a closed pipe or a full
/// disk under a redirection must not turn a command whose stacks are back into a crash (exit
/// 101, notices undelivered). What is lost is in the journal or the history.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `eprintln!` that never panics (see `say!`).
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod commands;
mod errors;
mod wire;

use anyhow::Result;
use clap::{Parser, Subcommand};
use felhom_ops::config::{Config, ConfigError};
use felhom_ops::NotifySocket;
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
        /// Only when the marker is older than `max_quiesce` plus one minute (or dated ahead
        /// of the clock) and no live process holds the lock; else do nothing and exit 0 (for
        /// a timer).
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
    /// Drop a stranded stack from the state: it was taken down on purpose, and is no longer
    /// retried nor reported. Exits 1 when it is not stranded.
    Forget {
        /// The stack (its compose project name).
        stack: String,
    },
    /// Validate the config, reach the agent, list what a cycle would stop (each service's
    /// policy from its labels; exit 1 for a bad label value). Stops nothing.
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
        Err(e) => return bad_configuration(&e),
    };
    // `check` and `once` refuse an `[agent]` that cannot be used; the daemon, `recover`,
    // `status` and `forget` go on without it (SPEC §2 rules 3 and 6: the stacks first).
    if matches!(cli.command, Command::Check | Command::Once { .. }) {
        if let Err(e) = config.agent.usable() {
            return bad_configuration(e);
        }
    }
    let manager = NotifySocket::from_env();
    forget_environment();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tell!("felhom-controller: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli.command, config, manager)) {
        Ok(code) => code,
        Err(e) => {
            tell!("felhom-controller: {}", errors::chain(e.as_ref()));
            ExitCode::from(1)
        }
    }
}

fn bad_configuration(e: &ConfigError) -> ExitCode {
    tell!("felhom-controller: bad configuration: {}", errors::chain(e));
    ExitCode::from(2)
}

/// Removes the `FELHOM_` variables (the agent's token among them), the path of systemd's
/// credentials and its watchdog's variables from the environment once they are read, so that
/// no child process (compose, docker) inherits them. `NOTIFY_SOCKET` stays: `sd-notify` reads
/// it at each send; the stacks manager keeps it out of its children's environment instead
/// (wire.rs, `stacks`). Done before the runtime starts its threads: the process is still
/// single-threaded here.
fn forget_environment() {
    const SYSTEMD: [&str; 3] = ["CREDENTIALS_DIRECTORY", "WATCHDOG_USEC", "WATCHDOG_PID"];
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("FELHOM_") || SYSTEMD.contains(&key_text.as_ref()) {
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
        // A log line that cannot be written (a hung-up terminal, a full disk under a
        // redirection) is lost; by default the subscriber says so with `eprintln!`, which
        // panics on the same broken stderr.
        .log_internal_errors(false)
        .with_ansi(ansi);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn dispatch(command: Command, config: Config, manager: NotifySocket) -> Result<ExitCode> {
    use commands::{check, forget, once, recover, run, status};
    match command {
        Command::Run => run::run(config, manager).await,
        Command::Once { force } => once::once(config, manager, force).await,
        Command::Recover { if_stale } => recover::recover(config, manager, if_stale).await,
        Command::Status { json, svg } => status::print(&config, json, svg.as_deref()).await,
        Command::Forget { stack } => forget::forget(&config, &stack).await,
        Command::Check => check::check(config).await,
    }
}
