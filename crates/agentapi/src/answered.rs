//! An answer together with the optional fields of its body that could not be used.
//!
//! SPEC §3: only `phase` and `id` (and `due`) decide; an optional field that does not parse is
//! ignored rather than failing the request, because one malformed timestamp must never keep
//! the stacks down for the whole `max_quiesce`. What was ignored is reported to the caller
//! instead of logged here, so that the caller can warn once per cycle instead of once per
//! poll.

use std::fmt;

/// An answer of the agent, and the optional fields of its body that were present but could not
/// be used (and so are `None` in [`Answered::answer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered<T> {
    /// The answer.
    pub answer: T,
    /// The optional fields that were ignored, in the order the contract lists them; empty for
    /// a well-formed body.
    pub ignored: Vec<IgnoredField>,
}

impl<T> Answered<T> {
    /// An answer of which nothing was ignored.
    pub fn complete(answer: T) -> Answered<T> {
        Answered {
            answer,
            ignored: Vec::new(),
        }
    }
}

/// One optional field of an answer that was present but not usable, so ignored.
///
/// `Display` reads `started_at: "2024-05-01" is not an RFC 3339 time`; the value is shown
/// only when it is a string, cut to a few dozen characters, with anything but printable ASCII
/// escaped, and never with the token in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredField {
    /// The field's name as the agent spells it, e.g. `started_at`.
    pub field: &'static str,
    /// Why it was ignored, e.g. `a number, not a string`.
    pub reason: String,
}

impl fmt::Display for IgnoredField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_field_first() {
        let ignored = IgnoredField {
            field: "next_due_at",
            reason: "a number, not a string".to_owned(),
        };
        assert_eq!(ignored.to_string(), "next_due_at: a number, not a string");
        assert!(Answered::complete(1).ignored.is_empty());
    }
}
