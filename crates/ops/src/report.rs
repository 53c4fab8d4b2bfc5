//! [`StateReport`]: what the `status` command shows of a state directory, for people (text)
//! or programs (JSON), and the picture of a cycle (`felhom-timeline`). It never changes
//! state: the marker is only peeked at.

use crate::inspection::{Inspection, MarkerAge};
use felhom_agentapi::Due;
use felhom_marker::{
    Capture, CycleRecord, Fact, MarkerError, Outcome, ServiceMode, StackRecord, StateView,
};
use felhom_quiesce::max_downtime_ms;
use felhom_timeline::{Line, Mark, Row, Timeline};
use serde_json::json;
use std::fmt::Write;
use std::time::Duration;

/// How many cycles of the history a report shows.
const LAST_CYCLES: usize = 10;

/// A state directory at one moment, as `status` shows it.
#[derive(Debug)]
pub struct StateReport {
    /// The marker, the lock holder, the stranded stacks.
    pub inspection: Inspection,
    /// The last cycles, oldest first.
    pub history: Vec<CycleRecord>,
}

/// What the agent said when asked whether a backup is due: `None` without an agent, the
/// answer, or why there is none (one line).
pub type DueAnswer = Option<Result<Due, String>>;

impl StateReport {
    /// Reads `state` (the lock holder probed, nothing changed).
    pub fn of(state: &StateView) -> Result<StateReport, MarkerError> {
        Ok(StateReport {
            inspection: Inspection::of(state),
            history: state.history(LAST_CYCLES)?,
        })
    }

    /// What needs a person (SPEC §5 `status` exit 1): the state directory's problems, and a
    /// `killed` or `live` capture in the newest cycle (SPEC §2 rule 10); empty when all is
    /// well.
    pub fn needs_attention(&self) -> Vec<String> {
        let mut why = self.inspection.needs_attention();
        if let Some(newest) = self.history.last() {
            let dirty: Vec<String> = newest.inconsistent().iter().map(|s| verdict(s)).collect();
            if !dirty.is_empty() {
                why.push(format!(
                    "the newest backup (cycle {}) is not app-consistent for {} — killed: raise \
                     the service's stop_grace_period; live: find who started it; hook-failed: \
                     see the hook's exit and output (`status --json`) \
                     (docs/operations.md, \"A capture that is not clean\")",
                    newest.cycle_id,
                    dirty.join(", ")
                ));
            }
        }
        why
    }

    /// The report as one JSON document.
    pub fn json(&self, due: &DueAnswer) -> serde_json::Value {
        let look = &self.inspection;
        json!({
            "marker": match &look.marker { Ok(m) => json!(m), Err(e) => json!({ "error": e }) },
            "marker_age_seconds": match look.marker_age {
                Some(MarkerAge::Past(age)) => json!(age.as_secs()),
                _ => json!(null),
            },
            "marker_ahead_of_clock_seconds": match look.marker_age {
                Some(MarkerAge::Future(ahead)) => json!(ahead.as_secs()),
                _ => json!(null),
            },
            "lock_holder_pid": look.holder,
            "stranded": look.stranded_names(),
            "stranded_stacks": look.stranded,
            "needs_attention": self.needs_attention(),
            "history": self.history,
            "due": match due {
                None => json!(null),
                Some(Ok(d)) => json!({ "due": d.due, "reason": d.reason, "next_due_at": d.next_due_at }),
                Some(Err(e)) => json!({ "error": e }),
            },
        })
    }

    /// The report as lines for a person.
    pub fn text(&self, due: &DueAnswer) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_text(&mut out, due);
        out
    }

    fn write_text(&self, out: &mut String, due: &DueAnswer) -> std::fmt::Result {
        self.write_state(out)?;
        write_due(out, due)?;
        self.write_history(out)?;
        let attention = self.needs_attention();
        if attention.is_empty() {
            writeln!(out, "attention: nothing needs a person")?;
        }
        for why in &attention {
            writeln!(out, "ATTENTION: {why}")?;
        }
        Ok(())
    }

    /// The marker, the lock's holder, the stranded stacks.
    fn write_state(&self, out: &mut String) -> std::fmt::Result {
        let look = &self.inspection;
        match &look.marker {
            Ok(None) => writeln!(out, "marker:   none")?,
            Ok(Some(m)) => writeln!(
                out,
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
            )?,
            Err(e) => writeln!(out, "marker:   {e}")?,
        }
        match &look.holder {
            Some(pid) => writeln!(out, "cycle:    running (lock held by pid {pid})")?,
            None => writeln!(out, "cycle:    none running")?,
        }
        let stranded = look.stranded_names();
        if stranded.is_empty() {
            writeln!(out, "stranded: none")?;
        } else {
            writeln!(
                out,
                "stranded: {} — start them by hand and check their logs, or \
                 `felhom-controller forget <stack>` if it is down on purpose",
                stranded.join(", ")
            )?;
            for s in &look.stranded {
                writeln!(
                    out,
                    "  {} since {}, {} failed start(s), last: {}",
                    s.name,
                    s.since.format("%Y-%m-%d %H:%M:%S"),
                    s.attempts,
                    s.last_error
                )?;
                if let Some(why) = &s.given_up {
                    writeln!(out, "    no longer retried: {why}")?;
                }
            }
        }
        Ok(())
    }

    fn write_history(&self, out: &mut String) -> std::fmt::Result {
        if self.history.is_empty() {
            writeln!(out, "last cycles: none")?;
        } else {
            writeln!(out, "last cycles:")?;
            for r in self.history.iter().rev() {
                writeln!(
                    out,
                    "  {}  {:<9}  {} stack(s), max downtime {:.1}s{}{}{}",
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
                    dirty(r),
                )?;
            }
            if let Some(newest) = self.history.last() {
                writeln!(out, "newest cycle, stack by stack:")?;
                for s in &newest.stacks {
                    writeln!(
                        out,
                        "  {:<24} capture {:<8} {}{}",
                        s.name,
                        s.capture.as_str(),
                        match (s.downtime_ms, s.stop_started_at) {
                            (Some(ms), _) => format!("down {:.1}s", ms as f64 / 1000.0),
                            (None, None) => "not stopped".to_owned(),
                            (None, Some(_)) => "not started by it".to_owned(),
                        },
                        facts(s),
                    )?;
                    write_services(out, s)?;
                }
            }
        }
        Ok(())
    }
}

/// Each service of a stack with a policy of its own (issue 23) — its mode, verdict and each
/// hook run (exit and duration, never its output) — and its labels with bad values. A stack
/// whose every service is stopped and runs no hook shows none.
fn write_services(out: &mut String, stack: &StackRecord) -> std::fmt::Result {
    let plain = stack
        .by_service
        .iter()
        .all(|s| s.mode == ServiceMode::Stop && s.hooks.is_empty());
    if !plain {
        for service in &stack.by_service {
            let mut line = format!(
                "    {}: {}{}, {}",
                service.service,
                service.mode.as_str(),
                if service.stopped && service.mode != ServiceMode::Stop {
                    " (stopped)"
                } else {
                    ""
                },
                service.capture
            );
            for run in &service.hooks {
                line.push_str(&format!(
                    "; {} {} in {}: {}",
                    run.hook,
                    run.program,
                    run.container,
                    run.summary()
                ));
            }
            writeln!(out, "{line}")?;
        }
    }
    for error in &stack.label_errors {
        writeln!(out, "    bad label: {error}")?;
    }
    Ok(())
}

/// `, KILLED nextcloud, LIVE immich`: the stacks of a cycle whose capture needs a person.
fn dirty(record: &CycleRecord) -> String {
    record
        .inconsistent()
        .iter()
        .map(|s| format!(", {} {}", s.capture.as_str().to_uppercase(), s.name))
        .collect()
}

/// `nextcloud killed (nextcloud-db-1 killed)`, `shop hook-failed (service db hook-failed)`: a
/// stack and its verdict, with the containers and services behind it.
fn verdict(stack: &StackRecord) -> String {
    let mut containers: Vec<String> = stack
        .facts
        .iter()
        .filter(|f| f.fact != Fact::CameBack)
        .map(|f| format!("{} {}", f.container, f.fact.as_str()))
        .collect();
    // Issue 23: the services whose hook failed, by name.
    containers.extend(
        stack
            .by_service
            .iter()
            .filter(|s| s.capture == Capture::HookFailed)
            .map(|s| format!("service {} hook-failed", s.service)),
    );
    if containers.is_empty() {
        format!("{} {}", stack.name, stack.capture)
    } else {
        format!(
            "{} {} ({})",
            stack.name,
            stack.capture,
            containers.join(", ")
        )
    }
}

/// `, nextcloud-db-1 killed at 03:00:12`: what the engine said of a stack's containers.
fn facts(stack: &StackRecord) -> String {
    stack
        .facts
        .iter()
        .map(|f| {
            let at =
                f.at.map(|t| format!(" at {}", t.format("%H:%M:%S")))
                    .unwrap_or_default();
            format!(", {} {}{at}", f.container, f.fact.as_str())
        })
        .collect()
}

/// Whether a backup is due, as the agent said.
fn write_due(out: &mut String, due: &DueAnswer) -> std::fmt::Result {
    match due {
        None => writeln!(out, "due:      no agent configured")?,
        Some(Ok(d)) => writeln!(
            out,
            "due:      {}{}{}",
            if d.due { "now" } else { "not now" },
            d.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            d.next_due_at
                .map(|t| format!(", next at {}", t.to_rfc3339()))
                .unwrap_or_default()
        )?,
        Some(Err(e)) => writeln!(out, "due:      {e}")?,
    }
    Ok(())
}

/// The picture (SVG) of one cycle from its record: a row per stack from the beginning of its
/// stop to running again, with the end of its stop marked; the snapshot, the bound (of a
/// cycle it ended) and the cycle's end as lines. A stack the cycle left stranded never came
/// back.
pub fn cycle_picture(record: &CycleRecord, max_quiesce: Duration) -> String {
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
    t.to_svg()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report of an empty state directory, with `history`.
    fn report(history: Vec<CycleRecord>) -> StateReport {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = StateView::open(tmp.path().join("state")).expect("a view");
        StateReport {
            inspection: Inspection::of(&state),
            history,
        }
    }

    /// A cycle whose `shop` ran a failed hook (continue) beside a stopped service.
    fn hooked() -> CycleRecord {
        serde_json::from_value(serde_json::json!({
            "cycle_id": "c-7",
            "started_at": "2026-01-01T02:00:00Z",
            "finished_at": "2026-01-01T02:03:00Z",
            "outcome": "done",
            "stacks": [{
                "name": "shop",
                "services": ["web"],
                "stop_started_at": "2026-01-01T02:00:05Z",
                "downtime_ms": 4200,
                "capture": "hook-failed",
                "label_errors": ["stack \"shop\", service \"web\": label felhom.stop-order=\"x\": expected an integer"],
                "by_service": [
                    {"service": "db", "mode": "hook", "capture": "hook-failed", "hooks": [
                        {"hook": "pre-snapshot", "container": "shop-db-1", "program": "pg_dumpall",
                         "started_at": "2026-01-01T02:00:01Z", "duration_ms": 1250, "exit_code": 3,
                         "succeeded": false, "output": "pg_dumpall: password=hunter2"},
                        {"hook": "post-resume", "container": "shop-db-1", "program": "warm",
                         "started_at": "2026-01-01T02:01:01Z", "duration_ms": 100, "exit_code": 0,
                         "succeeded": true}
                    ]},
                    {"service": "web", "mode": "stop", "stopped": true, "capture": "clean"}
                ]
            }, {
                "name": "plain",
                "services": ["app"],
                "downtime_ms": 1000,
                "capture": "clean",
                "by_service": [{"service": "app", "mode": "stop", "stopped": true, "capture": "clean"}]
            }]
        }))
        .expect("a record")
    }

    #[test]
    fn status_shows_each_services_policy_verdict_and_hooks_never_their_output() {
        let r = report(vec![hooked()]);
        let text = r.text(&None);
        assert!(
            text.contains("  shop                     capture hook-failed down 4.2s"),
            "{text}"
        );
        for line in [
            "    db: hook, hook-failed; pre-snapshot pg_dumpall in shop-db-1: exit 3 after 1.2s; post-resume warm in shop-db-1: exit 0 after 0.1s",
            "    web: stop, clean",
            "    bad label: stack \"shop\", service \"web\": label felhom.stop-order=\"x\": expected an integer",
        ] {
            assert!(text.contains(line), "{line:?} in:\n{text}");
        }
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            !text.contains("    app: stop"),
            "a plain stack lists no service: {text}"
        );
        // hook-failed in the newest cycle needs a person.
        let attention = r.needs_attention();
        assert_eq!(attention.len(), 1, "{attention:?}");
        assert!(
            attention[0].contains("shop hook-failed (service db hook-failed)"),
            "{attention:?}"
        );
        // The JSON is the record as it is: the output is there (root only).
        let json = r.json(&None).to_string();
        assert!(json.contains("hunter2"));
    }
}
