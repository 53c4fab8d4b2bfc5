//! What the controller is built from ([`Parts`]) and what it shows of itself ([`Live`]).

use crate::machine::Phase;
use crate::{CycleLock, Observer};
use chrono::{DateTime, Utc};
use felhom_agentapi::AgentApi;
use felhom_marker::{
    CycleRecord, HistoryStore, MarkerStore, Outcome, StrandedStack, StrandedStore,
};
use felhom_stacks::Stacks;
use serde::{Serialize, Serializer};
use std::sync::Arc;

/// The collaborators of the controller, as trait objects.
#[derive(Clone)]
pub struct Parts {
    /// The agent; `None` when the guest is not provisioned (recovery still works).
    pub agent: Option<Arc<dyn AgentApi>>,
    /// The stacks.
    pub stacks: Arc<dyn Stacks>,
    /// The marker.
    pub marker: Arc<dyn MarkerStore>,
    /// The cycle history.
    pub history: Arc<dyn HistoryStore>,
    /// The stranded stacks, kept until they run (SPEC §2 rule 6).
    pub stranded: Arc<dyn StrandedStore>,
    /// The single-flight lock.
    pub lock: Arc<dyn CycleLock>,
    /// Who is told what the controller does; `Arc::new(())` when nobody listens.
    pub observer: Arc<dyn Observer>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("agent", &self.agent.is_some())
            .finish_non_exhaustive()
    }
}

/// What the controller is doing now, for `status`, metrics and [`Observer::changed`].
/// Serialised as the status endpoint's JSON.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Live {
    /// The phase of the running cycle, if one runs.
    pub phase: Option<Phase>,
    /// The last finished cycle.
    pub last: Option<CycleRecord>,
    /// Cycles finished by this process, by outcome (a JSON object `{"done": 3, ...}`).
    #[serde(serialize_with = "by_outcome")]
    pub cycles: Vec<(Outcome, u64)>,
    /// When the loop will next ask whether a backup is due (wall clock), when it waits.
    pub next_check_at: Option<DateTime<Utc>>,
    /// The stacks that could not be started again, as the state directory keeps them across
    /// cycles and restarts until each runs (SPEC §2 rule 6).
    pub stranded_stacks: Vec<StrandedStack>,
    /// Since when the Docker engine cannot be reached while stacks wait to be started: "waiting
    /// for the engine since …". `None` while it answers.
    pub engine_unreachable_since: Option<DateTime<Utc>>,
    /// The last unusable marker (or stranded list) found by this process: what became of it.
    pub marker_corrupt: Option<String>,
    /// A marker that cannot be removed although its stacks run: it needs a person.
    pub marker_stuck: Option<String>,
}

impl Live {
    /// The names of the stranded stacks (see [`Live::stranded_stacks`]).
    pub fn stranded(&self) -> Vec<String> {
        self.stranded_stacks
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }
}

fn by_outcome<S: Serializer>(cycles: &[(Outcome, u64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(cycles.iter().map(|(outcome, n)| (outcome, n)))
}

/// The longest downtime of a stack in `record`, in milliseconds (0 when none was measured).
pub fn max_downtime_ms(record: &CycleRecord) -> u64 {
    record
        .stacks
        .iter()
        .filter_map(|s| s.downtime_ms)
        .max()
        .unwrap_or(0)
}
