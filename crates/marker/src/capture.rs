//! The capture verdicts of a cycle record (SPEC §2 rule 10, `docs/labels.md`): what the
//! backup holds of each stack and service, and the engine's facts behind a verdict.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the backup captured of one stack or service (SPEC §2 rule 10), from the engine's
/// evidence and the hooks' exits. Serialised as one word: `clean`, `killed`, `live`,
/// `unknown`, and for the per-service policy of `docs/labels.md` `skipped`, `hooked`,
/// `hook-failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Capture {
    /// Every container exited on its own stop signal within its grace, and none of the
    /// stack's containers ran from its stop until the agent reported the snapshot (or `done`
    /// when it reports no snapshot).
    Clean,
    /// A container's grace ran out and the engine killed it: captured mid-shutdown.
    Killed,
    /// A container of the stack ran between its stop and the snapshot (restarted by someone
    /// else, or a new one appeared), the stack was not stopped, or an adopted backup began
    /// before its stop: captured running.
    Live,
    /// It cannot be told: a crash recovery, the engine away at the check, no snapshot, no
    /// times.
    #[default]
    Unknown,
    /// `felhom.quiesce: skip`: not stopped, nothing claimed.
    Skipped,
    /// `felhom.quiesce: hook`: not stopped, its `pre-snapshot` hook exited 0 within its
    /// timeout.
    Hooked,
    /// `skip` or `hook` with `felhom.on-hook-error: continue` (or a cycle given up): not
    /// stopped, its `pre-snapshot` hook failed.
    HookFailed,
}

impl Capture {
    /// The verdict as the record's JSON spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Capture::Clean => "clean",
            Capture::Killed => "killed",
            Capture::Live => "live",
            Capture::Unknown => "unknown",
            Capture::Skipped => "skipped",
            Capture::Hooked => "hooked",
            Capture::HookFailed => "hook-failed",
        }
    }

    /// Every verdict, in the order of their weight: a stack's verdict is the first of these
    /// that any of its services has.
    pub const BY_WEIGHT: [Capture; 7] = [
        Capture::Live,
        Capture::Killed,
        Capture::HookFailed,
        Capture::Unknown,
        Capture::Skipped,
        Capture::Hooked,
        Capture::Clean,
    ];

    /// The first of [`Capture::BY_WEIGHT`] among `verdicts`; `None` when there is none.
    pub fn first_of(verdicts: impl IntoIterator<Item = Capture>) -> Option<Capture> {
        let weight = |c: &Capture| Capture::BY_WEIGHT.iter().position(|w| w == c);
        verdicts.into_iter().min_by_key(weight)
    }

    /// Whether the verdict needs a person: the backup holds the stack in a state that may not
    /// restore cleanly (`killed`, `live`), or a hook that was to make it consistent failed
    /// (`hook-failed`).
    pub fn needs_attention(self) -> bool {
        matches!(self, Capture::Killed | Capture::Live | Capture::HookFailed)
    }
}

impl std::fmt::Display for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One container's part in a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerFact {
    /// The container's name.
    pub container: String,
    /// Its compose service.
    pub service: String,
    /// What the engine said of it.
    pub fact: Fact,
    /// When: its exit for `killed`, its start for `ran` and `came_back`; none for `appeared`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

/// What the engine said of one container. Serialised snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Fact {
    /// Its grace ran out during the stop and the engine killed it.
    Killed,
    /// It ran between its stop and the snapshot.
    Ran,
    /// It is not one the cycle stopped, and it ran (or was created) after the stack's stop.
    Appeared,
    /// It ran again before the backup began, and was stopped again: the verdict counts from
    /// that second stop.
    CameBack,
}

impl Fact {
    /// The fact as the record's JSON spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Fact::Killed => "killed",
            Fact::Ran => "ran",
            Fact::Appeared => "appeared",
            Fact::CameBack => "came_back",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_capture_is_one_word_and_only_killed_live_and_hook_failed_need_a_person() {
        for (word, needs) in [
            ("clean", false),
            ("killed", true),
            ("live", true),
            ("unknown", false),
            ("skipped", false),
            ("hooked", false),
            ("hook-failed", true),
        ] {
            let capture: Capture = serde_json::from_value(json!(word)).expect("a verdict");
            assert_eq!(capture.as_str(), word);
            assert_eq!(
                serde_json::to_value(capture).expect("serialises"),
                json!(word)
            );
            assert_eq!(capture.needs_attention(), needs, "{word}");
        }
        for word in ["came_back", "appeared", "killed", "ran"] {
            let fact: Fact = serde_json::from_value(json!(word)).expect("a fact");
            assert_eq!(fact.as_str(), word);
        }
    }

    /// docs/labels.md: a stack's capture is the first of live, killed, hook-failed, unknown,
    /// skipped, hooked, clean that any of its services has.
    #[test]
    fn a_stacks_verdict_is_the_weightiest_of_its_services() {
        use Capture::*;
        assert_eq!(Capture::first_of([]), None);
        let cases: [(&[Capture], Capture); 7] = [
            (&[Clean, Hooked, Live], Live),
            (&[HookFailed, Killed, Clean], Killed),
            (&[Unknown, HookFailed, Skipped], HookFailed),
            (&[Hooked, Unknown, Skipped], Unknown),
            (&[Hooked, Skipped, Clean], Skipped),
            (&[Clean, Hooked], Hooked),
            (&[Clean, Clean], Clean),
        ];
        for (services, stack) in cases {
            assert_eq!(Capture::first_of(services.iter().copied()), Some(stack));
        }
        assert_eq!(Capture::BY_WEIGHT.len(), 7, "every verdict has a weight");
    }
}
