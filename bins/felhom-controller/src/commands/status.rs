//! `status`: what the state directory and the agent say, for people (or `--json`), through
//! `felhom_ops::StateReport`. It never changes state. Exits 1 when something needs a person.
//! `--svg FILE` also draws the newest cycle of the history as a picture.

use crate::{errors, wire};
use anyhow::{bail, Context, Result};
use felhom_agentapi::AgentApi;
use felhom_ops::config::Config;
use felhom_ops::{cycle_picture, DueAnswer, StateReport};
use std::path::Path;
use std::process::ExitCode;

pub(crate) async fn print(config: &Config, as_json: bool, svg: Option<&Path>) -> Result<ExitCode> {
    let state = wire::state_view(config)?;
    let report = StateReport::of(&state).context("reading the history")?;
    // Drawn before anything is printed, so that a picture that cannot be written is an error
    // (exit 1) with nothing else to read past.
    if let Some(path) = svg {
        let Some(newest) = report.history.last() else {
            bail!(
                "--svg {}: the history holds no cycle yet, there is nothing to draw",
                path.display()
            );
        };
        std::fs::write(path, cycle_picture(newest, config.quiesce.max_quiesce))
            .with_context(|| format!("--svg: writing {}", path.display()))?;
        if !as_json {
            say!("picture:  {} (cycle {})", path.display(), newest.cycle_id);
        }
    }
    let due: DueAnswer = match wire::agent_client(config) {
        Ok(Some(client)) => Some(client.backup_due().await.map_err(|e| errors::chain(&e))),
        Ok(None) => None,
        Err(e) => Some(Err(errors::chain(e.as_ref()))),
    };
    if as_json {
        say!("{}", serde_json::to_string_pretty(&report.json(&due))?);
    } else {
        // Never `print!`: it panics on a terminal that hung up (see `say!`).
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), "{}", report.text(&due));
    }
    Ok(if report.needs_attention().is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
