//! The backup's facts into the cycle: the agent took the backup on (its id goes into the
//! marker, so a recovery can ask about it), what each status answer says, what the engine
//! said of each stopped stack at the snapshot, and what the agent told a recovery. Together
//! with each stack's evidence they make the verdicts ([`Cycle::judge`]).

use super::{Cycle, PollState};
use crate::machine::Observed;
use crate::progress::{Applied, Level, Said};
use chrono::{DateTime, Utc};
use felhom_agentapi::{BackupPhase, BackupStatus, IgnoredField};
use felhom_stacks::DownCheck;

impl Cycle {
    /// The agent took the backup on (started, or `adopted` one already running) under `id`:
    /// the marker holds it, and the services kept running are quiesced from now on.
    pub(super) fn backup_started(&mut self, id: String, adopted: bool) -> Applied {
        self.record.backup_id = Some(id.clone());
        self.backup.adopted = adopted;
        self.change_marker(|m| m.backup_id = Some(id.clone()));
        self.quiesce_the_kept_up();
        Applied {
            say: Some(Said::BackupStarted { id, adopted }),
            ..self.on_disk_now()
        }
    }

    /// The agent answered a status poll: where the polls are, and what it says for the
    /// record. Optional fields that did not parse are warned about once.
    pub(super) fn status_seen(
        &mut self,
        observed: Observed,
        status: &BackupStatus,
        ignored: &[IgnoredField],
        held: bool,
    ) -> Applied {
        self.poll = PollState {
            last_phase: status.phase.clone(),
            held,
        };
        if !ignored.is_empty() && !self.warned_ignored {
            self.warned_ignored = true;
            let fields: Vec<String> = ignored.iter().map(ToString::to_string).collect();
            tracing::warn!(
                cycle = %self.record.cycle_id,
                "the agent's status answers hold optional fields that do not parse; ignored (only the phase decides): {}",
                fields.join("; ")
            );
        }
        self.observed(observed, status)
    }

    /// What an agent status says for the record.
    fn observed(&mut self, observed: Observed, status: &BackupStatus) -> Applied {
        if matches!(observed, Observed::Snapshotted | Observed::Done) {
            self.backup.captured = true;
        }
        if status.started_at.is_some() && observed != Observed::Lost {
            self.backup.started_at = status.started_at;
        }
        match (observed, &status.phase) {
            (Observed::Snapshotted, _) if self.record.snapshot_at.is_none() => {
                self.record.snapshot_at = Some(status.snapshot_at.unwrap_or_else(Utc::now));
                let backup = self.record.backup_id.as_deref().unwrap_or_default();
                tracing::info!(backup, "the agent reports the snapshot taken");
            }
            (Observed::Done, _) if self.record.snapshot_at.is_none() => {
                self.record.snapshot_at = status.snapshot_at;
            }
            (Observed::Failed, _) => {
                let why = status.error.as_deref().unwrap_or("no reason given");
                return self.note(
                    Level::Warn,
                    format!("the agent reports the backup failed: {why}"),
                );
            }
            (Observed::Running, BackupPhase::Unknown(name)) if !self.warned_unknown => {
                self.warned_unknown = true;
                tracing::warn!("the agent reports an unknown phase {name:?}: treated as running");
            }
            _ => {}
        }
        Applied::default()
    }

    /// What the engine said of stopped `stack` when the snapshot was reported, for its
    /// verdict.
    pub(super) fn checked(&mut self, stack: &str, mut check: Result<DownCheck, String>) -> Applied {
        // The containers of services kept running are not the stop's: they run.
        if let Ok(check) = &mut check {
            let keep = self.keep(stack);
            check.leave_out(|c| keep.contains(&c.service));
        }
        if let Err(why) = &check {
            let message = format!(
                "stack {stack}: whether it stayed down until the snapshot cannot be told: {why}"
            );
            self.note(Level::Warn, message);
        }
        self.evidence_of(stack).checked(check);
        Applied::default()
    }

    /// What the agent told a recovery of the marker's backup.
    pub(super) fn agent_said(
        &mut self,
        phase: String,
        snapshot_at: Option<DateTime<Utc>>,
    ) -> Applied {
        self.record.agent_phase = Some(phase);
        self.record.snapshot_at = snapshot_at.or(self.record.snapshot_at);
        Applied::default()
    }
}
