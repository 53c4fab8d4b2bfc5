//! `status`: what the state directory and the agent say, for people (or `--json`). It never
//! changes state: the marker is only peeked at.

use crate::config::Config;
use crate::endpoint::outcome_name;
use crate::{errors, wire};
use anyhow::{Context, Result};
use felhom_agentapi::AgentApi;
use felhom_marker::{HistoryStore, Marker, StateDir, StateLock};
use felhom_quiesce::max_downtime_ms;
use serde_json::json;
use std::process::ExitCode;

/// The marker as it is on disk, version-checked, never moved aside.
fn read_marker(state: &StateDir) -> Result<Option<Marker>, String> {
    state.peek().map_err(|e| e.to_string())
}

pub(crate) async fn print(config: &Config, as_json: bool) -> Result<ExitCode> {
    let state = wire::state_dir(config)?;
    let marker = read_marker(&state);
    let holder = StateLock::holder(&state).unwrap_or_else(|e| Some(format!("unknown ({e})")));
    let history = state.recent(10).context("reading the history")?;
    // SPEC §2 rule 6: the state directory's list, kept across cycles and restarts (not the
    // last record's, which the next cycle forgets).
    let stranded_list = state.peek_stranded().context("reading the stranded list")?;
    let stranded: Vec<String> = stranded_list
        .stacks
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let due = match wire::agent_client(config) {
        Ok(Some(client)) => Some(client.backup_due().await.map_err(|e| e.to_string())),
        Ok(None) => None,
        Err(e) => Some(Err(errors::chain(&e))),
    };
    if as_json {
        let doc = json!({
            "marker": match &marker { Ok(m) => json!(m), Err(e) => json!({ "error": e }) },
            "lock_holder_pid": holder,
            "stranded": stranded,
            "stranded_stacks": stranded_list.stacks,
            "stranded_list_damaged": stranded_list.damaged.map(|d| d.to_string()),
            "history": history,
            "due": match &due {
                None => json!(null),
                Some(Ok(d)) => json!({ "due": d.due, "reason": d.reason, "next_due_at": d.next_due_at }),
                Some(Err(e)) => json!({ "error": e }),
            },
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    match &marker {
        Ok(None) => println!("marker:   none"),
        Ok(Some(m)) => println!(
            "marker:   cycle {} in phase {:?} (pid {}, since {}), stacks: {}",
            m.cycle_id,
            m.phase,
            m.pid,
            m.started_at.to_rfc3339(),
            m.stacks
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => println!("marker:   {e}"),
    }
    match holder {
        Some(pid) => println!("cycle:    running (lock held by pid {pid})"),
        None => println!("cycle:    none running"),
    }
    if stranded.is_empty() {
        println!("stranded: none");
    } else {
        println!(
            "stranded: {} — start them by hand and check their logs",
            stranded.join(", ")
        );
    }
    match &due {
        None => println!("due:      no agent configured"),
        Some(Ok(d)) => println!(
            "due:      {}{}{}",
            if d.due { "now" } else { "not now" },
            d.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            d.next_due_at
                .map(|t| format!(", next at {}", t.to_rfc3339()))
                .unwrap_or_default()
        ),
        Some(Err(e)) => println!("due:      {e}"),
    }
    if history.is_empty() {
        println!("last cycles: none");
    } else {
        println!("last cycles:");
        for r in history.iter().rev() {
            println!(
                "  {}  {:<9}  {} stack(s), max downtime {:.1}s{}{}",
                r.started_at.format("%Y-%m-%d %H:%M:%S"),
                outcome_name(r.outcome),
                r.stacks.len(),
                max_downtime_ms(r) as f64 / 1000.0,
                r.backup_id
                    .as_ref()
                    .map(|b| format!(", backup {b}"))
                    .unwrap_or_default(),
                if r.stranded.is_empty() {
                    String::new()
                } else {
                    format!(", STRANDED {}", r.stranded.join(","))
                },
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reads_the_marker_without_touching_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // A state directory the store makes itself (0700): an existing one must already be.
        let dir = tmp.path().join("state");
        let state = StateDir::open(&dir).expect("state dir");
        assert!(matches!(read_marker(&state), Ok(None)));
        std::fs::write(dir.join("marker.json"), b"{not json").expect("write");
        let err = read_marker(&state).expect_err("corrupt");
        assert!(err.contains("marker.json"), "{err}");
        // Still there: `status` never moves a marker aside.
        assert!(dir.join("marker.json").exists());
    }
}
