//! `felhom-devagent`: runs the development agent until SIGTERM/SIGINT.
//!
//! Prints `url: …`, `pin: …` and `token: …` on stdout once it listens (a development tool:
//! printing the token is intended), then logs each request on stderr.

use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use felhom_devagent::{AgentConfig, DevAgent, DueMode, Fault};

/// The felhom development agent: serves the agent API v1 over HTTPS and runs a real backup of a
/// directory (copy, then tar), misbehaving on demand.
#[derive(Debug, Parser)]
#[command(name = "felhom-devagent", version)]
struct Cli {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Bearer token to require (default: a random one, printed).
    #[arg(long, conflicts_with = "token_file")]
    token: Option<String>,
    /// Read the bearer token from this file (surrounding whitespace ignored).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Directory to back up.
    #[arg(long)]
    source: PathBuf,
    /// Directory for snapshots (<id>/snapshot/) and archives (<id>.tar).
    #[arg(long = "out")]
    out_dir: PathBuf,
    /// Extra wait before the snapshot, e.g. 2s.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    snapshot_delay: std::time::Duration,
    /// Extra wait before the archive, e.g. 10s.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    archive_delay: std::time::Duration,
    /// When a backup is due: always, never, once, every:<duration>.
    #[arg(long, default_value = "always")]
    due: DueMode,
    /// A fault active from the start (repeatable): failed, hang, status500:N, nonjson,
    /// oversized, forget, conflict:ID, unavailable, silent, slow_status:DURATION, no_long_poll
    /// (answer status at once, as an agent without the long-poll extension), bad_fields (the
    /// status answers' optional fields malformed).
    #[arg(long = "fault")]
    faults: Vec<Fault>,
    /// Also write the certificate pin (one line) to this file.
    #[arg(long)]
    pin_file: Option<PathBuf>,
    /// Append the timeline as JSON lines to this file.
    #[arg(long = "events")]
    events_file: Option<PathBuf>,
    /// Serve this certificate (PEM) instead of a generated one.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("felhom-devagent: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let token = match (cli.token, &cli.token_file) {
        (Some(token), _) => token,
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| format!("token file {}: {e}", path.display()))?
            .trim()
            .to_owned(),
        (None, None) => random_token()?,
    };
    let mut cfg = AgentConfig::new(token, cli.source, cli.out_dir);
    cfg.listen = cli.listen;
    cfg.snapshot_delay = cli.snapshot_delay;
    cfg.archive_delay = cli.archive_delay;
    cfg.due = cli.due;
    cfg.faults = cli.faults;
    cfg.events_file = cli.events_file;
    cfg.tls = cli.cert.zip(cli.key);

    // Signal handlers first: a supervisor that reads the three lines and sends SIGTERM at once
    // must not kill the process with the default action.
    let mut sigterm = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = signal(tokio::signal::unix::SignalKind::interrupt())?;

    // The OS error beneath a start error is its source (one level: an `io::Error`).
    let agent = DevAgent::start(cfg)
        .await
        .map_err(|e| match std::error::Error::source(&e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        })?;
    if let Some(path) = &cli.pin_file {
        std::fs::write(path, format!("{}\n", agent.pin()))
            .map_err(|e| format!("pin file {}: {e}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "url: {}\npin: {}\ntoken: {}",
        agent.url(),
        agent.pin(),
        agent.token()
    )
    .and_then(|()| out.flush())
    .map_err(|e| format!("writing to stdout: {e}"))?;
    drop(out);

    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM: stopping"),
        _ = sigint.recv() => tracing::info!("SIGINT: stopping"),
    }
    agent.shutdown().await;
    Ok(())
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal, String> {
    tokio::signal::unix::signal(kind).map_err(|e| format!("installing a signal handler: {e}"))
}

fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("reading /dev/urandom for a token: {e}"))?;
    Ok(hex::encode(bytes))
}
