//! The state directory's health as the controller shows it, each part logged when it changes
//! rather than at every tick: whether it may hold new cycles ([`Overview::cycles_refused`]),
//! the last problem that kept a recovery from running or finishing
//! ([`Overview::state_problem`]), and how many writes of the state failed
//! ([`Overview::state_errors`]).
//!
//! [`Overview::cycles_refused`]: crate::Overview::cycles_refused
//! [`Overview::state_problem`]: crate::Overview::state_problem
//! [`Overview::state_errors`]: crate::Overview::state_errors

use crate::controller::Shared;
use crate::io::off_runtime;
use crate::overview::Shown;
use crate::{error_chain, CycleError};

/// Whether a new cycle may start with the state as it is now
/// ([`crate::CycleLock::fit_for_new_cycles`]): shown, and logged when the verdict changes.
/// `Err`: [`CycleError::StateDirUnfit`].
pub(crate) async fn fit_for_new_cycles(shared: &Shared) -> Result<(), CycleError> {
    let lock = shared.parts.lock.clone();
    let verdict = off_runtime(move || lock.fit_for_new_cycles())
        .await
        .map_err(CycleError::StateDirUnfit);
    let refused = verdict.as_ref().err().map(|e| error_chain(e));
    if shared.shown.get().cycles_refused != refused {
        match &refused {
            Some(why) => tracing::error!("{why}"),
            None => tracing::info!("the state directory is fit for new cycles"),
        }
        shared.shown.set(|o| o.cycles_refused = refused);
    }
    verdict
}

/// The problems a recovery had (`None`: it ran clean): shown, and logged when they change.
pub(crate) fn recovery_problem(shown: &Shown, problem: Option<String>) {
    if shown.get().state_problem == problem {
        return;
    }
    match &problem {
        Some(p) => tracing::error!("{p}"),
        None => tracing::info!("the state directory is usable again"),
    }
    shown.set(|o| o.state_problem = problem);
}

/// A write of the state failed (`what`, the whole line): logged and counted. The caller keeps
/// the truth elsewhere (the marker, memory) and says where.
pub(crate) fn not_kept(shown: &Shown, what: &str) {
    tracing::error!("{what}");
    counted(shown);
}

/// A write of the state failed, logged by the caller: counted.
pub(crate) fn counted(shown: &Shown) {
    shown.set(|o| o.state_errors += 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_lasting_problem_is_shown_once_and_its_end_too() {
        let shown = Shown::new(Arc::new(()));
        recovery_problem(&shown, None);
        assert_eq!(shown.get().state_problem, None);
        recovery_problem(&shown, Some("the lock".into()));
        recovery_problem(&shown, Some("the lock".into()));
        assert_eq!(shown.get().state_problem.as_deref(), Some("the lock"));
        recovery_problem(&shown, None);
        assert_eq!(shown.get().state_problem, None);
    }

    #[test]
    fn every_write_not_kept_is_counted() {
        let shown = Shown::new(Arc::new(()));
        not_kept(&shown, "appending to the history: No space left on device");
        not_kept(
            &shown,
            "keeping the stranded stacks: No space left on device",
        );
        assert_eq!(shown.get().state_errors, 2);
    }
}
