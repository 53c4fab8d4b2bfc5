//! Crash recovery (SPEC §2 rules 3, 6, 9): the one entry point the daemon's start, its ticks
//! and the `recover` command share. A marker that no live process holds is brought back by
//! the driver (a corrupt marker's readable stacks too), then the stranded stacks whose time
//! has come are tried again.

use crate::controller::Shared;
use crate::driver::Driver;
use crate::io::{acquire, off_runtime};
use crate::observer::{Notice, NoticeKind};
use crate::progress::{Level, Progress};
use crate::stuck::Verdict;
use crate::{error_chain, humanize, Controller, CycleError};
use felhom_agentapi::AgentApi;
use felhom_marker::{CycleRecord, Marker};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long a recovery waits for the agent to say how the marker's backup ended.
const RECOVERY_ASK: Duration = Duration::from_secs(30);

/// What [`Controller::recover`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Recovery {
    /// The record of the marker brought back, when there was one.
    pub record: Option<CycleRecord>,
    /// The stacks still stranded after the tries whose time had come.
    pub stranded: Vec<String>,
    /// What kept a part from running: the marker or the stranded list unreadable, a marker
    /// this process could not remove before ([`CycleError::MarkerStuck`]). The other part
    /// ran all the same.
    pub problems: Vec<CycleError>,
}

impl Controller {
    /// Crash recovery: if a marker exists, starts the stacks named in it, clears it and
    /// records the cycle, then asks the agent how the marker's backup ended; then tries the
    /// stranded stacks whose time has come (every one, the first time this process sees
    /// it). `Err(CycleError::Busy)`: another process holds the lock (it is alive: its
    /// marker is its own). `Err(CycleError::Lock)`: the lock cannot be taken at all (a link
    /// where it goes, a permission): nothing ran, and nobody else is known to bring the
    /// marker's stacks back — a problem for a person, not a busy lock. (A read-only or full
    /// state directory is no such error: its lock is still taken, its marker's stacks
    /// started, and the marker, which cannot be removed, is [`CycleError::MarkerStuck`].)
    /// Nothing interrupts the starts; `cancel` ends only a wait for an engine that cannot
    /// be reached (the marker is then kept).
    ///
    /// A state directory not fit for new cycles is recovered all the same; the verdict is
    /// shown ([`crate::Overview::cycles_refused`]).
    ///
    /// A marker found unusable (corrupt, another format version) was moved aside by the
    /// store: the stacks that can still be read from it are recovered all the same, and the
    /// operator is told (the record's errors, [`crate::Overview::marker_corrupt`], a
    /// `marker_corrupt` notice).
    pub async fn recover(&self, cancel: &CancellationToken) -> Result<Recovery, CycleError> {
        let shared = &self.shared;
        let _guard = acquire(&shared.parts.lock).await?;
        // Shown (and logged once) even when no backup is due for a day; never a reason to
        // leave a marker's stacks down.
        let _ = crate::health::fit_for_new_cycles(shared).await;
        let mut recovery = Recovery::default();
        match self.recover_marker(cancel).await {
            Ok(record) => recovery.record = record,
            Err(e) => recovery.problems.push(e),
        }
        match shared.stranded.retry_due(shared, cancel).await {
            Ok(still) => recovery.stranded = still,
            Err(e) => {
                recovery.stranded = shared.shown.get().stranded();
                recovery.problems.push(e);
            }
        }
        Ok(recovery)
    }

    async fn recover_marker(
        &self,
        cancel: &CancellationToken,
    ) -> Result<Option<CycleRecord>, CycleError> {
        let store = self.shared.parts.marker.clone();
        let Some(marker) = off_runtime(move || store.load()).await? else {
            return Ok(None);
        };
        match self.shared.stuck.verdict(&marker.cycle_id) {
            Verdict::Recover => {}
            Verdict::Stuck => {
                return Err(CycleError::MarkerStuck {
                    cycle_id: marker.cycle_id,
                })
            }
            // It keeps stranded stacks the stranded list could not take: their slow retries
            // are its recoveries (see `stuck.rs`); shown meanwhile as stranded.
            Verdict::NotYet => return Ok(None),
        }
        let span = tracing::info_span!("cycle", cycle = %marker.cycle_id);
        let record = recovered(&self.shared, marker, cancel)
            .instrument(span)
            .await;
        Ok(Some(record))
    }
}

/// Brings `marker`'s stacks back, inside the cycle's span.
async fn recovered(shared: &Shared, marker: Marker, cancel: &CancellationToken) -> CycleRecord {
    tracing::warn!(
        cycle = %marker.cycle_id,
        pid = marker.pid,
        phase = ?marker.phase,
        stacks = ?marker.stacks.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        "recovering the marker of an interrupted cycle"
    );
    let why = format!(
        "the controller (pid {}) stopped during phase {:?}; recovered by pid {}",
        marker.pid,
        marker.phase,
        std::process::id()
    );
    let ask = ask_about(shared.parts.agent.clone(), marker.backup_id.clone());
    let salvage = marker.salvage.clone();
    let mut driver = Driver::recovering(shared, marker);
    driver.note(Level::Warn, why);
    if let Some(salvage) = &salvage {
        let message = format!("{salvage}: recovering the stacks that can still be read");
        driver.note(Level::Error, message.clone());
        shared.shown.set(|o| o.marker_corrupt = Some(message));
    }
    let record = driver.recover(ask, cancel).await;
    if let Some(salvage) = salvage {
        let mut message = format!("{salvage}; recovered {} stack(s)", record.stacks.len());
        if salvage.unreadable_stacks > 0 {
            message.push_str(": the unreadable ones may still be down and need a person");
        }
        let notice = Notice::about(NoticeKind::MarkerCorrupt, &record, message);
        shared.shown.notice(&notice);
    }
    record
}

/// Asks the agent how the marker's backup `id` ended, for the record; nothing to ask
/// without an agent or a backup id.
async fn ask_about(agent: Option<Arc<dyn AgentApi>>, id: Option<String>) -> Option<Progress> {
    let (agent, id) = (agent?, id?);
    let said = match timeout(RECOVERY_ASK, agent.backup_status()).await {
        Ok(Ok(status)) if status.id.as_deref() == Some(id.as_str()) => Progress::AgentSaid {
            phase: status.phase.name().to_owned(),
            snapshot_at: status.snapshot_at,
        },
        Ok(Ok(_)) => Progress::AgentSaid {
            phase: "lost".to_owned(),
            snapshot_at: None,
        },
        Ok(Err(e)) => Progress::Note(
            Level::Warn,
            format!("asking the agent about backup {id}: {}", error_chain(&e)),
        ),
        Err(_) => Progress::Note(
            Level::Warn,
            format!(
                "asking the agent about backup {id}: no answer within {}",
                humanize(RECOVERY_ASK)
            ),
        ),
    };
    Some(said)
}
