//! How an embedding program watches the controller: the binary turns these calls into systemd
//! `STATUS=`/`WATCHDOG=1` and into notifications; another tool may ignore them (`()` does).

use crate::Overview;
use felhom_marker::CycleRecord;
use serde::Serialize;

/// Told what the controller does. Every method has a no-op default, and `()` implements it, so
/// an embedder implements only what it cares about. Calls are made from the controller's own
/// task: they must return quickly (queue the work, do not send it from here).
pub trait Observer: Send + Sync {
    /// The overview changed (a phase began, a cycle finished, the next check was planned).
    fn changed(&self, overview: &Overview) {
        let _ = overview;
    }
    /// The daemon's loop is alive. Called at least every [`TICK`] whatever the loop waits for
    /// (the due poll's sleep, a cycle's waits, a resume's retries) and only from the loop
    /// itself, so a wedged loop stops the ticks: feed a watchdog from it.
    fn tick(&self) {}
    /// Something an operator should hear of. Called once the stacks are back (the receiver
    /// may be one of the stopped apps) — except [`NoticeKind::EngineUnreachable`], called once
    /// per absence of the engine while stacks wait for it: queue it, it may not be delivered
    /// until the stacks run.
    fn notice(&self, notice: &Notice) {
        let _ = notice;
    }
}

impl Observer for () {}

/// The longest gap between two [`Observer::tick`]s of a live loop.
pub const TICK: std::time::Duration = std::time::Duration::from_secs(10);

/// What a [`Notice`] is about: SPEC §5's webhook `event`, serialised snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NoticeKind {
    /// A cycle ended well: outcome `done`, nothing stranded.
    Done,
    /// A cycle ended otherwise: another outcome, a stack stranded, or stacks still waiting
    /// for the engine.
    Failed,
    /// A cycle ended `done` with every stack back, but a stack's capture is `killed` or
    /// `live` (SPEC §2 rule 10): the backup holds it in a state that may not restore cleanly.
    /// Sent instead of [`NoticeKind::Done`].
    Inconsistent,
    /// Stacks could not be started again after every attempt.
    Stranded,
    /// A marker left by a dead controller was recovered.
    Recovered,
    /// The Docker engine cannot be reached while stacks wait to be started.
    EngineUnreachable,
    /// The marker (or the stranded list) on disk could not be used and was moved aside; the
    /// stacks it still named were recovered.
    MarkerCorrupt,
}

/// One thing to tell an operator: SPEC §5's webhook event without `host` and `at`, which the
/// sender adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// What happened.
    pub event: NoticeKind,
    /// The cycle concerned, if any.
    pub cycle_id: Option<String>,
    /// The cycle's outcome (`done`, `failed`, ...), if it has one.
    pub outcome: Option<String>,
    /// The stacks the cycle stopped.
    pub stacks: Vec<String>,
    /// The stacks that could not be started again.
    pub stranded: Vec<String>,
    /// One line for a person, made of the controller's own words and the fields above
    /// (stack names, counts, paths): never an error's or an app's text.
    pub message: String,
}

impl Notice {
    /// A notice about `record`, of kind `event`.
    pub(crate) fn about(event: NoticeKind, record: &CycleRecord, message: String) -> Notice {
        Notice {
            event,
            cycle_id: Some(record.cycle_id.clone()),
            outcome: Some(record.outcome.as_str().to_owned()),
            stacks: record.stacks.iter().map(|s| s.name.clone()).collect(),
            stranded: record.stranded.clone(),
            message,
        }
    }

    /// The notice that ends a cycle: `done`; `inconsistent` when it is done in every other
    /// respect but a stack's capture is `killed` or `live`; else `failed`. Its message is
    /// made of the record's structured fields only (outcome, stack names, verdicts, counts),
    /// never of an error's text.
    pub(crate) fn end_of_cycle(record: &CycleRecord) -> Notice {
        let outcome = record.outcome.as_str();
        let dirty = verdicts(record);
        let kind = if record.succeeded() {
            NoticeKind::Done
        } else if record.outcome == felhom_marker::Outcome::Done
            && record.stranded.is_empty()
            && record.waiting_for_engine.is_empty()
        {
            NoticeKind::Inconsistent
        } else {
            NoticeKind::Failed
        };
        let message = match kind {
            NoticeKind::Done => format!(
                "backup done; {} stack(s) back, longest downtime {} ms",
                record.stacks.len(),
                crate::max_downtime_ms(record)
            ),
            NoticeKind::Inconsistent => format!(
                "backup done, but not app-consistent for {}",
                dirty.unwrap_or_default()
            ),
            _ => {
                let mut why = format!("backup cycle ended {outcome}");
                if !record.stranded.is_empty() {
                    why.push_str(&format!("; stranded: {}", record.stranded.join(", ")));
                }
                if !record.waiting_for_engine.is_empty() {
                    why.push_str(&format!(
                        "; still down, waiting for the docker engine: {}",
                        record.waiting_for_engine.join(", ")
                    ));
                }
                if let Some(dirty) = dirty {
                    why.push_str(&format!("; captured {dirty}"));
                }
                // Counted, never quoted: an error may carry an app's log lines or a
                // secret, and a notice may go to a public topic. The record has them.
                if !record.errors.is_empty() {
                    why.push_str(&format!(
                        "; {} error(s), in the cycle's record",
                        record.errors.len()
                    ));
                }
                why
            }
        };
        Notice::about(kind, record, message)
    }
}

/// `nextcloud (live), immich (killed: immich-db-1 killed), shop (hook-failed: db)`: the
/// stacks whose capture needs a person, with their verdicts, the containers and the
/// services behind them; `None` when none does.
fn verdicts(record: &CycleRecord) -> Option<String> {
    use felhom_marker::Capture;
    let dirty: Vec<String> = record
        .inconsistent()
        .iter()
        .map(|s| {
            let mut facts: Vec<String> = s
                .facts
                .iter()
                .filter(|f| f.fact != felhom_marker::Fact::CameBack)
                .map(|f| format!("{} {}", f.container, f.fact.as_str()))
                .collect();
            facts.extend(
                s.by_service
                    .iter()
                    .filter(|x| x.capture == Capture::HookFailed)
                    .map(|x| match s.capture {
                        Capture::HookFailed => x.service.clone(),
                        _ => format!("{} hook-failed", x.service),
                    }),
            );
            if facts.is_empty() {
                format!("{} ({})", s.name, s.capture)
            } else {
                format!("{} ({}: {})", s.name, s.capture, facts.join(", "))
            }
        })
        .collect();
    (!dirty.is_empty()).then(|| dirty.join(", "))
}
