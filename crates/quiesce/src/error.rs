//! Why a cycle did not start. Once a cycle has stopped anything it no longer fails with an
//! error: it resumes, and its [`felhom_marker::CycleRecord`] says what went wrong.

/// Why a cycle or a recovery could not run. In every case nothing was stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CycleError {
    /// Another cycle holds the lock (another process, or this one).
    #[error("another cycle is running: {0}")]
    Busy(String),
    /// A marker is present: a crashed cycle must be recovered first.
    #[error("a marker of cycle {cycle_id} is present: run `felhom-controller recover` (or restart the daemon) first")]
    MarkerPresent {
        /// The cycle that left it.
        cycle_id: String,
    },
    /// The marker could not be removed after its stacks ran again; it is not recovered again
    /// by this process (that would restart its stacks at every tick).
    #[error("the marker of cycle {cycle_id} could not be removed although its stacks run: the state directory needs a person (remove the marker once it is writable)")]
    MarkerStuck {
        /// The cycle that left it.
        cycle_id: String,
    },
    /// The marker could not be read or written.
    #[error("marker: {0}")]
    Marker(#[from] felhom_marker::MarkerError),
    /// The running stacks could not be listed.
    #[error("listing the running stacks: {0}")]
    Stacks(#[from] felhom_stacks::StacksError),
    /// No agent is configured.
    #[error("no agent is configured ([agent] is absent): the guest is not provisioned")]
    NoAgent,
    /// Asking the agent whether a backup is due failed.
    #[error("{0}")]
    Agent(#[from] felhom_agentapi::AgentError),
}
