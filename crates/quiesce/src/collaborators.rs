//! What the controller works with: the three leaves through their traits, the lock and the
//! observer.

use crate::{CycleLock, Observer};
use felhom_agentapi::AgentApi;
use felhom_marker::{HistoryStore, MarkerStore, StrandedStore};
use felhom_stacks::Stacks;
use std::sync::Arc;

/// The collaborators of the controller, as trait objects. The binary builds the real ones; a
/// test or another tool may pass any implementation (see the module `testing`, feature `mock`).
#[derive(Clone)]
pub struct Collaborators {
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

impl std::fmt::Debug for Collaborators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collaborators")
            .field("agent", &self.agent.is_some())
            .finish_non_exhaustive()
    }
}
