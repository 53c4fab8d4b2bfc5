//! Error chains for people: each cause printed once, then what to do about it.
//!
//! The libraries keep an error's cause in `source()` only, never also in its message, and say
//! what went wrong in neutral words; the config keys and commands that fix it are this
//! binary's to name (docs/decisions.md, "Error messages").

use felhom_agentapi::AgentError;
use felhom_ops::config::ConfigError;
use felhom_quiesce::CycleError;
use std::error::Error;

/// `error: cause: cause`, each error of the chain once (anyhow's `{:#}` of the same chain),
/// then the hint for the first error in it that has one.
pub(crate) fn chain(error: &(dyn Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut found = hint(error);
    let mut cause = error.source();
    while let Some(e) = cause {
        out.push_str(": ");
        out.push_str(&e.to_string());
        found = found.or_else(|| hint(e));
        cause = e.source();
    }
    if let Some(hint) = found {
        out.push_str(": ");
        out.push_str(hint);
    }
    out
}

/// What an operator of this binary does about `error`, where that is a config key or a
/// command the library that made the error cannot know.
fn hint(error: &(dyn Error + 'static)) -> Option<&'static str> {
    if let Some(ConfigError::Missing { .. }) = error.downcast_ref::<ConfigError>() {
        return Some(
            "the package installs a commented sample there; or name one with --config or \
             FELHOM_CONFIG",
        );
    }
    let agent = match error.downcast_ref::<CycleError>() {
        Some(CycleError::MarkerPresent { .. }) => {
            return Some("run `felhom-controller recover` (or restart the daemon) first")
        }
        Some(CycleError::NoAgent) => return Some("[agent] is absent from the configuration"),
        // Whether the cycle's error carries the agent's as its source or in itself.
        Some(CycleError::Agent(agent)) => Some(agent),
        _ => error.downcast_ref::<AgentError>(),
    };
    match agent? {
        AgentError::Unauthorized { .. } => Some("check agent.token / agent.token_file"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use felhom_marker::{MarkerStore, StateDir};

    #[test]
    fn a_chain_prints_each_cause_once() {
        // A real library error with an OS error beneath, under the binary's context: a state
        // directory on a path whose parent is a file.
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("file");
        std::fs::write(&file, b"").expect("a file");
        let e = StateDir::open(file.join("state"))
            .context("quiesce.state_dir")
            .expect_err("not a directory");
        let text = chain(e.as_ref());
        assert_eq!(text, format!("{e:#}"), "the same chain as anyhow's");
        assert!(
            text.starts_with("quiesce.state_dir: inspecting the state directory"),
            "{text}"
        );
        let os = "Not a directory";
        assert_eq!(text.matches(os).count(), 1, "{text}");
        assert_eq!(text.matches("the state directory").count(), 1);

        // The marker store's own errors, without a context.
        let state = StateDir::open(tmp.path().join("state")).expect("opens");
        std::fs::create_dir(tmp.path().join("state/marker.json")).expect("a dir as the marker");
        let e = state.load().expect_err("a directory is no marker");
        let text = chain(&e);
        assert_eq!(text.matches("reading the marker").count(), 1, "{text}");
        assert_eq!(text.matches("Is a directory").count(), 1, "{text}");
    }

    #[test]
    fn a_refused_token_gets_the_config_keys_wherever_it_is_in_the_chain() {
        let refused = || AgentError::Unauthorized {
            request: "GET /backup/due",
        };
        let hinted = "GET /backup/due: the agent refused the token (401 Unauthorized): \
                      check agent.token / agent.token_file";
        assert_eq!(chain(&refused()), hinted);
        let cycle = anyhow::Error::new(CycleError::Agent(refused()));
        assert!(
            chain(cycle.as_ref()).ends_with(hinted),
            "{}",
            chain(cycle.as_ref())
        );
        assert_eq!(
            chain(cycle.as_ref()).matches("check agent.token").count(),
            1,
            "one hint"
        );
        let other = AgentError::Unavailable {
            request: "POST /backup",
            message: "busy".into(),
        };
        assert_eq!(
            chain(&other),
            "POST /backup: the agent cannot back up now: busy"
        );
    }

    #[test]
    fn the_commands_and_keys_that_fix_a_library_error_are_added_here() {
        let present = CycleError::MarkerPresent {
            cycle_id: "c-1".into(),
        };
        assert_eq!(
            chain(&present),
            "a marker of cycle c-1 is present: its stacks must be recovered first: run \
             `felhom-controller recover` (or restart the daemon) first"
        );
        assert!(chain(&CycleError::NoAgent).ends_with("[agent] is absent from the configuration"));
        let missing = ConfigError::Missing {
            path: "/etc/felhom/controller.toml".into(),
        };
        assert!(
            chain(&missing).starts_with("configuration file /etc/felhom/controller.toml does not exist: the package installs"),
            "{}",
            chain(&missing)
        );
    }
}
