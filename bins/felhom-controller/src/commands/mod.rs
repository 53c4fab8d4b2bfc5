//! One file per command of SPEC §5; each builds what it needs through [`crate::wire`] and
//! leaves every decision to the libraries.

pub(crate) mod check;
pub(crate) mod once;
pub(crate) mod recover;
pub(crate) mod run;
pub(crate) mod status;

use anyhow::Result;
use felhom_marker::{CycleRecord, Outcome};
use std::process::ExitCode;
use std::time::Duration;

/// How long a command waits, before it exits, for notifications still being delivered (the
/// stacks are back by then; this only delays the process's exit).
const DRAIN: Duration = Duration::from_secs(5);

/// Exit 0 for a cycle that ended `done` with nothing stranded, else 1 (SPEC §5).
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

/// Cancels `token` on the first SIGTERM or SIGINT; later signals are logged, the resume goes on.
fn cancel_on_signals(token: felhom_quiesce::CancellationToken) -> Result<()> {
    use anyhow::Context;
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
