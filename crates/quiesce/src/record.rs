//! A finished cycle's record: into the history, the overview, the log and a notice.

use crate::controller::Shared;
use crate::io::off_runtime;
use crate::observer::{Notice, NoticeKind};
use crate::{error_chain, max_downtime_ms};
use felhom_marker::CycleRecord;

/// Tells everyone that the cycle (or recovery) of `record` is over; its stacks are back.
pub(crate) async fn finished(shared: &Shared, record: &CycleRecord, recovering: bool) {
    let history = shared.parts.history.clone();
    let kept = record.clone();
    if let Err(e) = off_runtime(move || history.append(&kept)).await {
        let what = format!(
            "appending the record of cycle {} to the history: {}",
            record.cycle_id,
            error_chain(&e)
        );
        crate::health::not_kept(&shared.shown, &what);
    }
    shared.shown.set(|o| {
        o.phase = None;
        o.last = Some(record.clone());
        match o
            .cycles
            .iter_mut()
            .find(|(outcome, _)| *outcome == record.outcome)
        {
            Some((_, n)) => *n += 1,
            None => o.cycles.push((record.outcome, 1)),
        }
    });
    tracing::info!(
        cycle = %record.cycle_id,
        outcome = ?record.outcome,
        stranded = ?record.stranded,
        max_downtime_ms = max_downtime_ms(record),
        "cycle finished"
    );
    let notice = if recovering && !record.waiting_for_engine.is_empty() {
        // Not recovered: stacks are still down (SPEC §2 rule 10).
        let message = format!(
            "an interrupted cycle could not be recovered: still down, waiting for the docker engine: {}",
            record.waiting_for_engine.join(", ")
        );
        Notice::about(NoticeKind::Failed, record, message)
    } else if recovering {
        let message = format!(
            "recovered an interrupted cycle: {} stack(s) brought back",
            record.stacks.len() - record.stranded.len()
        );
        Notice::about(NoticeKind::Recovered, record, message)
    } else {
        Notice::end_of_cycle(record)
    };
    shared.shown.notice(&notice);
}
