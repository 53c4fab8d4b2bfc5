//! The controller: what it is built from, what it shows, and where a cycle begins.

use crate::driver::Driver;
use crate::engine::EngineAbsence;
use crate::io::{acquire, off_runtime};
use crate::overview::Shown;
use crate::policy::Policies;
use crate::stranded::StrandedList;
use crate::stuck::StuckMarker;
use crate::{Collaborators, CycleConfig, CycleError, Overview};
use chrono::Utc;
use felhom_agentapi::Due;
use felhom_marker::{CycleRecord, Marker};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Runs quiesce cycles and crash recoveries, and the daemon's loop around them. Cheap to
/// clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Controller {
    pub(crate) shared: Arc<Shared>,
}

/// What every cycle, recovery and loop of one controller shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) parts: Collaborators,
    pub(crate) config: CycleConfig,
    /// What the controller shows of itself, and to whom.
    pub(crate) shown: Shown,
    pub(crate) engine: EngineAbsence,
    pub(crate) stranded: StrandedList,
    pub(crate) stuck: StuckMarker,
}

/// What [`Controller::run_if_due`] did.
#[derive(Debug, Clone)]
pub enum IfDue {
    /// The agent says no backup is due (and `force` was not given): nothing was stopped.
    NotDue(Due),
    /// A cycle ran; its record.
    Ran(CycleRecord),
}

impl Controller {
    /// A controller over `parts`.
    pub fn new(parts: Collaborators, config: CycleConfig) -> Self {
        let shared = Shared {
            shown: Shown::new(parts.observer.clone()),
            engine: EngineAbsence::new(config.engine_wait),
            stranded: StrandedList::new(parts.stranded.clone()),
            stuck: StuckMarker::default(),
            parts,
            config,
        };
        Controller {
            shared: Arc::new(shared),
        }
    }

    /// What the controller is doing now, and what needs a person.
    pub fn overview(&self) -> Overview {
        self.shared.shown.get()
    }

    /// Runs one cycle now: takes the lock, writes the marker, stops the running app stacks,
    /// backs up, resumes. `Err` means nothing was stopped; once anything may have been stopped
    /// the cycle always resumes and returns its record, whatever its outcome. A state
    /// directory not fit for new cycles is [`CycleError::StateDirUnfit`]; `cancel` fired
    /// before the marker is written is [`CycleError::Cancelled`].
    pub async fn run_cycle(&self, cancel: &CancellationToken) -> Result<CycleRecord, CycleError> {
        let parts = &self.shared.parts;
        let agent = parts.agent.clone().ok_or(CycleError::NoAgent)?;
        let _guard = acquire(&parts.lock).await?;
        crate::health::fit_for_new_cycles(&self.shared).await?;
        let store = parts.marker.clone();
        if let Some(marker) = off_runtime(move || store.load()).await? {
            return Err(CycleError::MarkerPresent {
                cycle_id: marker.cycle_id,
            });
        }
        let running = parts.stacks.running_app_stacks().await?;
        // The last moment to change our mind: from the marker on, a cancellation resumes.
        if cancel.is_cancelled() {
            return Err(CycleError::Cancelled);
        }
        let policies = Policies::of(&running, self.shared.config.max_quiesce);
        let marker = new_marker(&running, &policies);
        // Every line of the cycle, the collaborators' included, carries its id (`cycle`).
        let span = tracing::info_span!("cycle", cycle = %marker.cycle_id);
        async {
            let names: Vec<String> = marker.stacks.iter().map(|s| s.name.clone()).collect();
            // SPEC §2 rule 1: the marker is on disk before the first stop. A failure here is
            // an error with nothing stopped.
            let driver = Driver::begin(&self.shared, marker, policies).await?;
            tracing::info!(stacks = ?names, "cycle started: marker written");
            Ok(driver.drive(agent, cancel).await)
        }
        .instrument(span)
        .await
    }

    /// `once`: asks the agent whether a backup is due — even with `force`, whose answer is
    /// then ignored, so that a wrong pin, token or url fails here, before anything is
    /// stopped, not at `POST /backup` with the stacks down — and runs one cycle if it is.
    /// `cancel` (Ctrl-C) during the question ends it: [`CycleError::Cancelled`], nothing
    /// written, nothing stopped.
    pub async fn run_if_due(
        &self,
        force: bool,
        cancel: &CancellationToken,
    ) -> Result<IfDue, CycleError> {
        let agent = self.shared.parts.agent.clone().ok_or(CycleError::NoAgent)?;
        let answered = tokio::select! {
            answered = agent.backup_due_checked() => answered?,
            () = cancel.cancelled() => return Err(CycleError::Cancelled),
        };
        if !answered.ignored.is_empty() {
            let fields: Vec<String> = answered.ignored.iter().map(ToString::to_string).collect();
            tracing::warn!(
                "the agent's due answer holds optional fields that do not parse; ignored: {}",
                fields.join("; ")
            );
        }
        let due = answered.answer;
        if !force && !due.due {
            return Ok(IfDue::NotDue(due));
        }
        Ok(IfDue::Ran(self.run_cycle(cancel).await?))
    }
}

/// The marker of a new cycle over the `running` stacks, in the order they are stopped: what
/// each stops, and its services' hooks (issue 23).
fn new_marker(running: &[felhom_stacks::RunningStack], policies: &Policies) -> Marker {
    let started_at = Utc::now();
    let cycle_id = format!(
        "{}-{}",
        started_at.format("%Y%m%dT%H%M%S%.3fZ"),
        std::process::id()
    );
    let stacks = running.iter().map(|s| policies.marked(s)).collect();
    Marker::new(cycle_id, started_at, stacks)
}
