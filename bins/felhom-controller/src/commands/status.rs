//! `status`: what the state directory and the agent say, for people (or `--json`). It never
//! changes state: the marker is only peeked at. Exits 1 when something needs a person.
//! `--svg FILE` also draws the newest cycle of the history as a picture (`felhom-timeline`).

use crate::config::Config;
use crate::status::Look;
use crate::{errors, wire};
use anyhow::{bail, Context, Result};
use felhom_agentapi::AgentApi;
use felhom_marker::{CycleRecord, Outcome};
use felhom_quiesce::max_downtime_ms;
use felhom_timeline::{Line, Mark, Row, Timeline};
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

pub(crate) async fn print(config: &Config, as_json: bool, svg: Option<&Path>) -> Result<ExitCode> {
    let state = wire::state_view(config)?;
    let look = Look::at(&state);
    let history = state.history(10).context("reading the history")?;
    // Drawn before anything is printed, so that a picture that cannot be written is an error
    // (exit 1) with nothing else to read past.
    if let Some(path) = svg {
        let Some(newest) = history.last() else {
            bail!(
                "--svg {}: the history holds no cycle yet, there is nothing to draw",
                path.display()
            );
        };
        let picture = timeline(newest, config.quiesce.max_quiesce).to_svg();
        std::fs::write(path, picture)
            .with_context(|| format!("--svg: writing {}", path.display()))?;
        if !as_json {
            println!("picture:  {} (cycle {})", path.display(), newest.cycle_id);
        }
    }
    // SPEC §2 rule 6: the state directory's list, kept across cycles and restarts (not the
    // last record's, which the next cycle forgets).
    let stranded = look.stranded_names();
    let attention = look.needs_attention();
    let code = if attention.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    let due = match wire::agent_client(config) {
        Ok(Some(client)) => Some(client.backup_due().await.map_err(|e| errors::chain(&e))),
        Ok(None) => None,
        Err(e) => Some(Err(errors::chain(e.as_ref()))),
    };
    if as_json {
        let doc = json!({
            "marker": match &look.marker { Ok(m) => json!(m), Err(e) => json!({ "error": e }) },
            "marker_age_seconds": look.marker_age.map(|a| a.as_secs()),
            "lock_holder_pid": look.holder,
            "stranded": stranded,
            "stranded_stacks": look.stranded,
            "needs_attention": attention,
            "history": history,
            "due": match &due {
                None => json!(null),
                Some(Ok(d)) => json!({ "due": d.due, "reason": d.reason, "next_due_at": d.next_due_at }),
                Some(Err(e)) => json!({ "error": e }),
            },
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(code);
    }
    match &look.marker {
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
    match &look.holder {
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
        for s in &look.stranded {
            println!(
                "  {} since {}, {} failed start(s), last: {}",
                s.name,
                s.since.format("%Y-%m-%d %H:%M:%S"),
                s.attempts,
                s.last_error
            );
        }
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
                r.outcome.as_str(),
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
    if attention.is_empty() {
        println!("attention: nothing needs a person");
    } else {
        for why in &attention {
            println!("ATTENTION: {why}");
        }
    }
    Ok(code)
}

/// The picture of one cycle from its record: a row per stack from the beginning of its stop
/// to running again, with the end of its stop marked; the snapshot, the bound (of a cycle it
/// ended) and the cycle's end as lines. A stack the cycle left stranded never came back.
fn timeline(record: &CycleRecord, max_quiesce: Duration) -> Timeline {
    let outcome = record.outcome.as_str();
    let mut t = Timeline::new(
        format!("cycle {}: {outcome}", record.cycle_id),
        record.started_at,
    );
    let mut about = vec![
        record
            .started_at
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        format!(
            "{} stack(s), max downtime {:.2} s",
            record.stacks.len(),
            max_downtime_ms(record) as f64 / 1000.0
        ),
    ];
    if let Some(backup) = &record.backup_id {
        about.push(format!("backup {backup}"));
    }
    if let Some(phase) = &record.agent_phase {
        about.push(format!("agent said {phase}"));
    }
    if !record.stranded.is_empty() {
        about.push(format!("STRANDED: {}", record.stranded.join(", ")));
    }
    t.subtitle = about.join(" · ");
    t.end = Some(record.finished_at);
    for stack in &record.stacks {
        let stranded = record.stranded.contains(&stack.name);
        t.rows.push(Row {
            name: stack.name.clone(),
            down_from: stack.stop_started_at,
            up_at: stack.started_at.filter(|_| !stranded),
            marks: stack
                .stopped_at
                .map(|at| Mark::new(at, "stop ended"))
                .into_iter()
                .collect(),
        });
    }
    if let Some(at) = record.snapshot_at {
        t.lines.push(Line::new(at, "snapshot"));
    }
    if record.outcome == Outcome::Bounded {
        if let Ok(bound) = chrono::TimeDelta::from_std(max_quiesce) {
            t.lines
                .push(Line::new(record.started_at + bound, "max_quiesce"));
        }
    }
    t.lines.push(Line::new(
        record.finished_at,
        format!("cycle ended: {outcome}"),
    ));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    use felhom_marker::StateView;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn status_reads_the_marker_without_touching_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // Not made yet (the daemon has not run): nothing, and nothing is created.
        let dir = tmp.path().join("state");
        let look = Look::at(&StateView::open(&dir).expect("a view"));
        assert!(matches!(look.marker, Ok(None)));
        assert!(look.needs_attention().is_empty());
        assert!(!dir.exists());
        // A mode the writer would refuse (0750) is no obstacle to a look.
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).expect("chmod");
        let state = StateView::open(&dir).expect("a view");
        std::fs::write(
            dir.join("marker.json"),
            br#"{"version": 1, "cycle_id": "c-1", "stacks": [{"name": "wiki", "services": ["app"]}, {"#,
        )
        .expect("write");
        let look = Look::at(&state);
        let err = look.marker.as_ref().expect_err("corrupt");
        assert!(
            err.contains("marker.json") && err.contains("stacks still readable: wiki"),
            "{err}"
        );
        // An unreadable marker nobody holds needs a person; its age comes from the file.
        assert!(look.marker_age.is_some());
        assert_eq!(look.needs_attention().len(), 1, "{look:?}");
        // Still there: `status` never moves a marker aside.
        assert!(dir.join("marker.json").exists());
        assert_eq!(
            std::fs::read_dir(&dir).expect("lists").count(),
            1,
            "no lock file made"
        );
    }
}
