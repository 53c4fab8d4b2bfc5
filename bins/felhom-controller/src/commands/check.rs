//! `check`: validates the config, reaches the agent, lists what a cycle would stop, each
//! service with its policy (`docs/labels.md`), and every label with a bad value (exit 1).

use crate::{errors, wire};
use anyhow::Result;
use felhom_agentapi::AgentApi;
use felhom_ops::config::Config;
use felhom_stacks::Stacks;
use std::process::ExitCode;

pub(crate) async fn check(config: Config) -> Result<ExitCode> {
    let agent = wire::agent_client(&config)?;
    let stacks = wire::stacks(&config)?;
    wire::state_dir(&config)?;
    say!("config: ok");
    for note in config.notes() {
        say!("note: {note}");
    }
    let mut ok = check_agent(agent.as_ref()).await;
    match stacks.compose_command().await {
        Ok(c) => say!("compose: {c}"),
        Err(e) => {
            ok = false;
            say!("compose: {}", errors::chain(&e));
        }
    }
    say!("protected: {}", config.protected().join(", "));
    // URLs shown redacted (scheme://host/…): they may hold secrets.
    match &config.notify {
        None => say!("notify: off ([notify] absent)"),
        Some(n) => {
            let shown = |e: &Option<felhom_notify::Endpoint>| {
                e.as_ref()
                    .map_or_else(|| "off".to_owned(), |e| e.to_string())
            };
            let events: Vec<&str> = n.events.iter().map(|e| e.as_str()).collect();
            say!(
                "notify: webhook {}, ntfy {}, ping {}; events: {}",
                shown(&n.webhook),
                shown(&n.ntfy),
                shown(&n.ping),
                events.join(", ")
            );
        }
    }
    ok &= check_stacks(&*stacks, &config).await;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Whether the agent answers `backup_due` (or is not configured): printed, `false` on an error.
async fn check_agent(agent: Option<&impl AgentApi>) -> bool {
    match agent {
        None => say!("agent: not configured ([agent] absent): the loop stays off"),
        Some(agent) => match agent.backup_due().await {
            Ok(due) => say!(
                "agent: reachable, pin and token accepted (due: {}{})",
                due.due,
                due.reason.map(|r| format!(", {r}")).unwrap_or_default()
            ),
            Err(e) => {
                say!("agent: {}", errors::chain(&e));
                return false;
            }
        },
    }
    true
}

/// What a cycle would stop, each service with its policy: printed, `false` when the stacks
/// cannot be listed or a label has a bad value.
async fn check_stacks(stacks: &dyn Stacks, config: &Config) -> bool {
    let mut ok = true;
    match stacks.running_app_stacks().await {
        Ok(stacks) if stacks.is_empty() => {
            say!("a cycle would stop: nothing (no running app stack)")
        }
        Ok(stacks) => {
            let listing = felhom_ops::PolicyListing::of(&stacks, config.quiesce.max_quiesce);
            say!("a cycle would stop:");
            for line in &listing.lines {
                say!("  {line}");
            }
            for error in &listing.errors {
                ok = false;
                say!("label: {error}");
            }
            if !listing.errors.is_empty() {
                say!(
                    "labels: {} with a bad value; each such service is quiesced as if that label were absent (docs/labels.md)",
                    listing.errors.len()
                );
            }
        }
        Err(e) => {
            ok = false;
            say!("stacks: {}", errors::chain(&e));
        }
    }
    ok
}
