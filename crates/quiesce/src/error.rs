//! Why a cycle did not start, and how an error becomes text. Once a cycle has stopped anything
//! it no longer fails with an error: it resumes, and its [`felhom_marker::CycleRecord`] says
//! what went wrong.
//!
//! The workspace's convention for library errors: an error's `Display` says what failed at
//! its own level, and the cause is its [`std::error::Error::source`], never also in its text.
//! Whoever shows an error to a person walks the chain: [`error_chain`].

use std::error::Error;

/// Why a cycle or a recovery could not run. In every case nothing was stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CycleError {
    /// Another cycle holds the lock (another process, or this one).
    #[error("another cycle is running: {0}")]
    Busy(String),
    /// The cycle lock cannot be taken, and no process is known to hold it (the lock file
    /// cannot be opened at all: a link planted where it goes, a permission, an I/O error).
    /// Not [`CycleError::Busy`]: nobody else is bringing a marker's stacks back.
    #[error("the cycle lock cannot be taken")]
    Lock(#[source] felhom_marker::LockError),
    /// The state directory is not fit for new cycles (another owner, or writable by its
    /// group or others); markers and stranded stacks are still recovered from it.
    #[error("no new cycle starts until the state directory is fixed (markers and stranded stacks are still recovered)")]
    StateDirUnfit(#[source] felhom_marker::MarkerError),
    /// Cancelled before the cycle began: nothing was stopped and no marker written.
    #[error("cancelled before the cycle began: nothing was stopped")]
    Cancelled,
    /// A marker is present: a crashed cycle must be recovered first.
    #[error("a marker of cycle {cycle_id} is present: its stacks must be recovered first")]
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
    #[error("the marker could not be read or written")]
    Marker(#[from] felhom_marker::MarkerError),
    /// The stranded list could not be read.
    #[error("the stranded list could not be read")]
    StrandedList(#[source] felhom_marker::MarkerError),
    /// The running stacks could not be listed.
    #[error("listing the running stacks")]
    Stacks(#[from] felhom_stacks::StacksError),
    /// No agent is configured.
    #[error("no agent is configured: the guest is not provisioned")]
    NoAgent,
    /// Asking the agent whether a backup is due failed.
    #[error("asking the agent whether a backup is due")]
    Agent(#[from] felhom_agentapi::AgentError),
}

/// `error: cause: cause …`, for a person: the error's text and each of its sources in turn.
/// The one way this crate turns an error into text (a record's `errors`, a log line). A cause
/// whose text the line already holds is not repeated: errors from outside the workspace (and
/// those not yet converted to the convention) put their source in their own text too.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = e.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("writing the marker")]
    struct Outer(#[source] std::io::Error);

    /// An error of the old habit: its source in its own text as well.
    #[derive(Debug, thiserror::Error)]
    #[error("reading /x: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("the marker could not be read or written")]
    struct Top(#[source] Outer);

    #[test]
    fn every_cause_is_shown_once() {
        let io = || std::io::Error::other("No space left on device");
        assert_eq!(
            error_chain(&Top(Outer(io()))),
            "the marker could not be read or written: writing the marker: No space left on device"
        );
        assert_eq!(
            error_chain(&Outer(io())),
            "writing the marker: No space left on device"
        );
        assert_eq!(
            error_chain(&Repeats(io())),
            "reading /x: No space left on device"
        );
    }
}
