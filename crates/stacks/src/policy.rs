//! The per-service quiesce policy that an app's author sets with compose labels (issue 23;
//! `docs/labels.md` is the reference an author reads).
//!
//! The labels are read from the containers, not from the compose file, so that they hold for
//! every container the engine counts as the stack's — an orphan of a service since removed
//! from the file included — and so that an image's own `felhom.*` labels count too (the
//! compose file's win, as the engine merges them). A label with a bad value is a
//! [`LabelError`] and the service is treated as if that one label were absent: the default is
//! always the safe choice (stop the service), and a typo never strands an app.
//!
//! No engine type appears here: the quiesce crate reads these values from
//! [`RunningStack::policy`](crate::RunningStack::policy), records them, and its tests build
//! them with [`StackPolicy::read_service`].

mod hook_command;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use hook_command::{CommandLineError, HookCommand};

/// The names of the labels, as an author writes them in a compose file.
pub mod label {
    /// `stop` (the default) | `skip` | `hook`: see [`QuiesceMode`](super::QuiesceMode).
    pub const QUIESCE: &str = "felhom.quiesce";
    /// A command line run in the container before the backup is posted.
    pub const PRE_SNAPSHOT: &str = "felhom.pre-snapshot";
    /// A command line run in the container when the cycle resumes.
    pub const POST_RESUME: &str = "felhom.post-resume";
    /// How long a hook may run (a human duration, `5m` by default).
    pub const HOOK_TIMEOUT: &str = "felhom.hook-timeout";
    /// `stop` (the default) | `continue` | `skip-backup`: see
    /// [`OnHookError`](super::OnHookError).
    pub const ON_HOOK_ERROR: &str = "felhom.on-hook-error";
    /// An integer, 0 by default: lower values stop first and start last.
    pub const STOP_ORDER: &str = "felhom.stop-order";
}

/// How a service is quiesced for a backup (`felhom.quiesce`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum QuiesceMode {
    /// Stopped cleanly before the backup, started again after it (the default).
    #[default]
    Stop,
    /// Never stopped: a stateless service whose downtime matters more than its capture.
    Skip,
    /// Not stopped: its `felhom.pre-snapshot` hook makes its data consistent instead.
    Hook,
}

impl QuiesceMode {
    /// Every mode, in the order the label's documentation names them.
    const ALL: [Self; 3] = [Self::Stop, Self::Skip, Self::Hook];

    /// The label's value: `stop`, `skip`, `hook`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Skip => "skip",
            Self::Hook => "hook",
        }
    }
}

/// What a failed hook leads to (`felhom.on-hook-error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnHookError {
    /// Fall back to stopping the service, so that its capture is still consistent (the
    /// default).
    #[default]
    Stop,
    /// Go on without stopping it; its capture is `hook-failed`.
    Continue,
    /// Resume what was stopped, post no backup and fail the cycle.
    SkipBackup,
}

impl OnHookError {
    /// Every choice, in the order the label's documentation names them.
    const ALL: [Self; 3] = [Self::Stop, Self::Continue, Self::SkipBackup];

    /// The label's value: `stop`, `continue`, `skip-backup`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Continue => "continue",
            Self::SkipBackup => "skip-backup",
        }
    }
}

/// The policy of one service, from its labels. [`Default`] is a service without labels:
/// stopped, no hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePolicy {
    /// `felhom.quiesce`.
    pub quiesce: QuiesceMode,
    /// `felhom.pre-snapshot`.
    pub pre_snapshot: Option<HookCommand>,
    /// `felhom.post-resume`.
    pub post_resume: Option<HookCommand>,
    /// `felhom.hook-timeout`; more than zero. The caller bounds it further by its own
    /// `max_quiesce`: this crate knows nothing of the cycle.
    pub hook_timeout: Duration,
    /// `felhom.on-hook-error`.
    pub on_hook_error: OnHookError,
    /// `felhom.stop-order`.
    pub stop_order: i32,
}

/// What [`StackPolicy::service`] answers for a service it does not know: no labels.
static NO_LABELS: ServicePolicy = ServicePolicy {
    quiesce: QuiesceMode::Stop,
    pre_snapshot: None,
    post_resume: None,
    hook_timeout: ServicePolicy::DEFAULT_HOOK_TIMEOUT,
    on_hook_error: OnHookError::Stop,
    stop_order: 0,
};

impl Default for ServicePolicy {
    fn default() -> Self {
        NO_LABELS.clone()
    }
}

impl ServicePolicy {
    /// `felhom.hook-timeout` when the label is absent: 5 minutes.
    pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);

    /// Reads the policy of `service` of `stack` from a container's labels (all of them:
    /// those that are not `felhom.*` labels of this list are ignored). Each label with a bad
    /// value is a [`LabelError`], and the service is then as if that label were absent. A
    /// label whose value is empty (or only blanks) counts as absent, without an error: that is
    /// how a compose override file takes back a label of the base file or of the image.
    pub fn from_labels<K, V>(
        stack: &str,
        service: &str,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> (Self, Vec<LabelError>)
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut policy = Self::default();
        let mut errors = Vec::new();
        for (key, value) in labels {
            let (key, line) = (key.as_ref(), value.as_ref());
            let value = line.trim();
            if value.is_empty() {
                continue;
            }
            if let Err(why) = policy.read_label(key, value, line) {
                // The command line itself is not repeated: it may hold what its author would
                // not want in a record or a notice, and the author has it in the file.
                let is_command = key == label::PRE_SNAPSHOT || key == label::POST_RESUME;
                errors.push(LabelError {
                    stack: stack.to_owned(),
                    service: service.to_owned(),
                    label: key.to_owned(),
                    value: (!is_command).then(|| shorten(value)),
                    why,
                });
            }
        }
        // `hook` promises a consistent capture through the pre-snapshot hook; without one it
        // would promise it for nothing. The label is then as if absent: the service is stopped.
        if let (QuiesceMode::Hook, None) = (policy.quiesce, &policy.pre_snapshot) {
            policy.quiesce = QuiesceMode::Stop;
            errors.push(LabelError {
                stack: stack.to_owned(),
                service: service.to_owned(),
                label: label::QUIESCE.to_owned(),
                value: Some(QuiesceMode::Hook.as_str().to_owned()),
                why: format!("hook needs a {} command", label::PRE_SNAPSHOT),
            });
        }
        errors.sort_by(|a, b| a.label.cmp(&b.label));
        (policy, errors)
    }

    /// Whether this is the policy of a service without labels (for a compact listing).
    pub fn is_default(&self) -> bool {
        *self == NO_LABELS
    }

    /// Sets what one label says (`value` trimmed, `line` as written); `Err` says why the
    /// value is bad, and nothing is set. Labels of other names are ignored.
    fn read_label(&mut self, key: &str, value: &str, line: &str) -> Result<(), String> {
        match key {
            label::QUIESCE => self.quiesce = one_of(&QuiesceMode::ALL, QuiesceMode::as_str, value)?,
            label::ON_HOOK_ERROR => {
                self.on_hook_error = one_of(&OnHookError::ALL, OnHookError::as_str, value)?
            }
            label::HOOK_TIMEOUT => {
                self.hook_timeout = match humantime::parse_duration(value) {
                    Ok(d) if d.is_zero() => {
                        return Err("a hook timeout must be more than 0".to_owned())
                    }
                    Ok(d) => d,
                    Err(e) => return Err(format!("not a duration ({e}); e.g. 90s, 5m, 1h")),
                }
            }
            label::STOP_ORDER => {
                self.stop_order = value
                    .parse()
                    .map_err(|_| format!("expected an integer from {} to {}", i32::MIN, i32::MAX))?
            }
            label::PRE_SNAPSHOT => {
                self.pre_snapshot = Some(HookCommand::parse(line).map_err(|e| e.to_string())?)
            }
            label::POST_RESUME => {
                self.post_resume = Some(HookCommand::parse(line).map_err(|e| e.to_string())?)
            }
            _ => {}
        }
        Ok(())
    }
}

impl fmt::Display for ServicePolicy {
    /// One line for `check`: the mode, then what differs from the defaults, e.g. `hook,
    /// pre-snapshot: pg_dumpall …, hook-timeout 2m, stop-order -10`. Hook commands are named
    /// by their program only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.quiesce.as_str())?;
        if let Some(c) = &self.pre_snapshot {
            write!(f, ", pre-snapshot: {} …", c.program())?;
        }
        if let Some(c) = &self.post_resume {
            write!(f, ", post-resume: {} …", c.program())?;
        }
        if self.hook_timeout != Self::DEFAULT_HOOK_TIMEOUT {
            write!(
                f,
                ", hook-timeout {}",
                humantime::format_duration(self.hook_timeout)
            )?;
        }
        if self.on_hook_error != OnHookError::Stop {
            write!(f, ", on-hook-error {}", self.on_hook_error.as_str())?;
        }
        if self.stop_order != 0 {
            write!(f, ", stop-order {}", self.stop_order)?;
        }
        Ok(())
    }
}

/// A label with a bad value: an unknown word, a duration or an integer that does not parse, a
/// command line with an unterminated quote, `hook` without a pre-snapshot command. Its
/// message names the stack, the service and the full label; the service is treated as if
/// that label were absent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stack {stack:?}, service {service:?}: label {label}{}: {why}", value.as_ref().map(|v| format!("={v:?}")).unwrap_or_default())]
pub struct LabelError {
    /// The stack.
    pub stack: String,
    /// The service.
    pub service: String,
    /// The full label, e.g. `felhom.quiesce`.
    pub label: String,
    /// Its value, at most 64 characters of it; `None` for the hook commands, whose lines are
    /// not repeated.
    pub value: Option<String>,
    /// What is wrong with it.
    pub why: String,
}

/// The one of `all` whose label value (`name`) is `value`; else why not, naming each value:
/// `expected stop, skip or hook`.
fn one_of<T: Copy>(all: &[T], name: fn(T) -> &'static str, value: &str) -> Result<T, String> {
    if let Some(found) = all.iter().copied().find(|v| name(*v) == value) {
        return Ok(found);
    }
    let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
    Err(match names.split_last() {
        Some((last, [])) => format!("expected {last}"),
        Some((last, rest)) => format!("expected {} or {last}", rest.join(", ")),
        None => "expected nothing".to_owned(),
    })
}

/// At most 64 characters of a label's value, for messages.
fn shorten(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

/// The policy of a running stack: its running services' policies, the label errors found
/// reading them, and its stop order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackPolicy {
    /// Each running service's policy (every service of
    /// [`RunningStack::services`](crate::RunningStack::services) has one; without labels, the
    /// default).
    pub services: BTreeMap<String, ServicePolicy>,
    /// The labels with bad values, by service, then label.
    pub errors: Vec<LabelError>,
}

impl StackPolicy {
    /// The policy of `services` of `stack` when none of them carries a label: each stopped,
    /// stop order 0 (what a stack without labels lists).
    pub fn without_labels(stack: &str, services: &[&str]) -> StackPolicy {
        let mut policy = StackPolicy::default();
        for service in services {
            policy.read_service(stack, service, std::iter::empty::<(&str, &str)>());
        }
        policy
    }

    /// Reads `service`'s policy from its labels (see [`ServicePolicy::from_labels`]) and adds
    /// it, with its label errors, replacing what the service had.
    pub fn read_service<K, V>(
        &mut self,
        stack: &str,
        service: &str,
        labels: impl IntoIterator<Item = (K, V)>,
    ) where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let (policy, errors) = ServicePolicy::from_labels(stack, service, labels);
        self.errors.retain(|e| e.service != service);
        self.errors.extend(errors);
        self.errors
            .sort_by(|a, b| (&a.service, &a.label).cmp(&(&b.service, &b.label)));
        self.services.insert(service.to_owned(), policy);
    }

    /// The policy of `service`; a service it does not know has the default (stopped).
    pub fn service(&self, service: &str) -> &ServicePolicy {
        self.services.get(service).unwrap_or(&NO_LABELS)
    }

    /// The stack's stop order: the lowest `felhom.stop-order` of its services (0 without any).
    pub fn stop_order(&self) -> i32 {
        self.services
            .values()
            .map(|p| p.stop_order)
            .min()
            .unwrap_or(0)
    }

    /// Whether every service is stopped and has no hook: what a stack without labels is.
    pub fn stops_everything(&self) -> bool {
        self.services.values().all(|p| {
            p.quiesce == QuiesceMode::Stop && p.pre_snapshot.is_none() && p.post_resume.is_none()
        })
    }
}

#[cfg(test)]
mod tests;
