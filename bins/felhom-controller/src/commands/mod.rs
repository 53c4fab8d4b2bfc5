//! One file per command of SPEC §5; each builds what it needs through [`crate::wire`] and
//! leaves every decision to the libraries. The signals are here: they are the process's.

pub(crate) mod check;
pub(crate) mod forget;
pub(crate) mod once;
pub(crate) mod recover;
pub(crate) mod run;
pub(crate) mod status;

use anyhow::Result;
use felhom_marker::CycleRecord;
use std::process::ExitCode;
use tokio::signal::unix::SignalKind;

/// Exit 0 for a cycle that ended `done` with nothing stranded, else 1 (SPEC §5); each
/// capture that is not app-consistent named on stderr.
fn exit_for(record: &CycleRecord) -> ExitCode {
    for line in felhom_ops::not_app_consistent(record) {
        tell!("felhom-controller: {line}");
    }
    if record.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Prints the cycle record on stdout. A terminal that hung up (SIGHUP) has no stdout any
/// more: the record is in the history all the same, and a failed write must not turn a
/// cycle whose stacks are back into a crash (`println!` would panic).
fn print_record(record: &CycleRecord) -> Result<()> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(record)?;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{text}") {
        tracing::warn!("printing the cycle record: {e} (it is in the history)");
    }
    Ok(())
}

/// Whether the command leaves something for a person or for the daemon
/// ([`felhom_ops::left_undone`]), each thing said on stderr.
fn left_undone(controller: &felhom_quiesce::Controller) -> bool {
    let lines = felhom_ops::left_undone(&controller.overview());
    for line in &lines {
        tell!("felhom-controller: {line}");
    }
    !lines.is_empty()
}

/// Every way a process is asked to end (SPEC §2 rule 9): a unit's stop (SIGTERM), Ctrl-C
/// (SIGINT), a terminal or SSH session that hangs up (SIGHUP), Ctrl-\ (SIGQUIT).
const ENDING: [(&str, SignalKind); 4] = [
    ("SIGTERM", SignalKind::terminate()),
    ("SIGINT", SignalKind::interrupt()),
    ("SIGHUP", SignalKind::hangup()),
    ("SIGQUIT", SignalKind::quit()),
];

/// Cancels `token` on the first of the [`ENDING`] signals: stacks that are down are resumed,
/// then the process exits. Later signals are logged; the resume goes on (the handlers stay
/// installed, so none of them kills the process mid-resume).
fn cancel_on_signals(token: felhom_quiesce::CancellationToken) -> Result<()> {
    use anyhow::Context;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for (name, kind) in ENDING {
        let mut stream = tokio::signal::unix::signal(kind)
            .with_context(|| format!("installing the {name} handler"))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(name).is_err() {
                    return;
                }
            }
        });
    }
    tokio::spawn(async move {
        let mut first = true;
        while let Some(name) = rx.recv().await {
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
