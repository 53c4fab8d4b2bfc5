//! Crash recovery (SPEC §2 rule 3): a marker's stacks are brought back by the same loop that
//! runs a cycle, starting at [`machine::recovery`]; a corrupt marker's readable stacks too.

use crate::cycle::{Cycle, Level, SharedCycle};
use crate::machine;
use crate::observer::{Notice, NoticeKind};
use crate::{humanize, Controller, CycleError};
use felhom_marker::{CycleRecord, Marker, Outcome};
use std::time::Duration;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long a recovery waits for the agent to say how the marker's backup ended.
const RECOVERY_ASK: Duration = Duration::from_secs(30);

impl Controller {
    /// Crash recovery (SPEC §2 rule 3): if a marker exists, starts the stacks named in it,
    /// clears it and records the cycle; asks the agent how the marker's backup ended.
    /// `Ok(None)`: there was no marker. Nothing interrupts the starts; `cancel` ends only a
    /// wait for an engine that cannot be reached (the marker is then kept).
    ///
    /// A marker found unusable (corrupt, another format version) was moved aside by the
    /// store: the stacks that can still be read from it are recovered all the same, and the
    /// operator is told (the record's errors, [`Live::marker_corrupt`], a `marker_corrupt`
    /// notice).
    pub async fn recover(
        &self,
        cancel: &CancellationToken,
    ) -> Result<Option<CycleRecord>, CycleError> {
        let _guard = self.parts.lock.acquire().map_err(CycleError::Busy)?;
        let Some(marker) = self.parts.marker.load()? else {
            return Ok(None);
        };
        if self.is_stuck(&marker.cycle_id) {
            return Err(CycleError::MarkerStuck {
                cycle_id: marker.cycle_id,
            });
        }
        let span = tracing::info_span!("cycle", cycle = %marker.cycle_id);
        self.recover_marker(marker, cancel).instrument(span).await
    }

    /// [`Controller::recover`] once a marker is found, inside the cycle's span.
    async fn recover_marker(
        &self,
        marker: Marker,
        cancel: &CancellationToken,
    ) -> Result<Option<CycleRecord>, CycleError> {
        tracing::warn!(
            cycle = %marker.cycle_id,
            pid = marker.pid,
            phase = ?marker.phase,
            stacks = ?marker.stacks.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            "recovering the marker of an interrupted cycle"
        );
        let begin = machine::recovery();
        let why = format!(
            "the controller (pid {}) stopped during phase {:?}; recovered by pid {}",
            marker.pid,
            marker.phase,
            std::process::id()
        );
        let backup_id = marker.backup_id.clone();
        let salvage = marker.salvage.clone();
        let cycle = SharedCycle::new(Cycle::new(begin.0, marker, Outcome::Recovered, true));
        cycle.lock().note(Level::Warn, why);
        if let Some(salvage) = &salvage {
            let message = format!("{salvage}: recovering the stacks that can still be read");
            cycle.lock().note(Level::Error, message.clone());
            self.set_live(|l| l.marker_corrupt = Some(message));
        }
        if let Some(id) = backup_id {
            self.ask_about(&cycle, &id).await;
        }
        let record = self.drive(None, cycle, begin, cancel).await;
        if let Some(salvage) = salvage {
            let mut message = format!("{salvage}; recovered {} stack(s)", record.stacks.len());
            if salvage.unreadable_stacks > 0 {
                message.push_str(": the unreadable ones may still be down and need a person");
            }
            self.parts
                .observer
                .notice(&Notice::about(NoticeKind::MarkerCorrupt, &record, message));
        }
        Ok(Some(record))
    }

    /// Asks the agent how the marker's backup `id` ended, for the record.
    async fn ask_about(&self, cycle: &SharedCycle, id: &str) {
        let Some(agent) = &self.parts.agent else {
            return;
        };
        let answer = timeout(RECOVERY_ASK, agent.backup_status()).await;
        let mut cycle = cycle.lock();
        match answer {
            Ok(Ok(status)) if status.id.as_deref() == Some(id) => {
                cycle.record.snapshot_at = status.snapshot_at;
                cycle.record.agent_phase = Some(status.phase.name().to_owned());
            }
            Ok(Ok(_)) => cycle.record.agent_phase = Some("lost".to_owned()),
            Ok(Err(e)) => cycle.note(
                Level::Warn,
                format!("asking the agent about backup {id}: {e}"),
            ),
            Err(_) => cycle.note(
                Level::Warn,
                format!(
                    "asking the agent about backup {id}: no answer within {}",
                    humanize(RECOVERY_ASK)
                ),
            ),
        }
    }
}
