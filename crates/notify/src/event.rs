//! The event: SPEC §5's webhook JSON, also the source of the ntfy message.

use crate::config::EventKind;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// One notification, serialized exactly as SPEC §5's webhook JSON:
/// `{"event", "host", "cycle_id", "outcome", "stacks", "stranded", "message", "at"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Which kind of event.
    pub event: EventKind,
    /// The guest's host name.
    pub host: String,
    /// The cycle's id, where the event belongs to one.
    pub cycle_id: Option<String>,
    /// The cycle's outcome (`done`, `failed`, `lost`, ...), where it belongs to one.
    pub outcome: Option<String>,
    /// The stacks concerned (those the cycle stopped, or the marker named).
    pub stacks: Vec<String>,
    /// The stacks that could not be started again.
    pub stranded: Vec<String>,
    /// One line for a person.
    pub message: String,
    /// When it happened (RFC 3339, UTC).
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
}

impl Event {
    /// An event of `kind` with `message`, on this host, now; no cycle, no stacks.
    pub fn new(kind: EventKind, message: impl Into<String>) -> Event {
        Event {
            event: kind,
            host: host_name(),
            cycle_id: None,
            outcome: None,
            stacks: Vec::new(),
            stranded: Vec::new(),
            message: message.into(),
            at: Utc::now(),
        }
    }

    /// The ntfy title: what happened, and where.
    pub(crate) fn title(&self) -> String {
        let what = match self.event {
            EventKind::Failed => "backup failed",
            EventKind::Stranded => "stack stranded",
            EventKind::Inconsistent => "backup not app-consistent",
            EventKind::Recovered => "crashed cycle recovered",
            EventKind::EngineUnreachable => "Docker engine unreachable",
            EventKind::MarkerCorrupt => "corrupt marker moved aside",
            EventKind::Done => "backup done",
        };
        format!("felhom {}: {what}", self.host)
    }

    /// The ntfy message: the event's line, then the stacks.
    pub(crate) fn text(&self) -> String {
        let mut text = self.message.clone();
        if let Some(id) = &self.cycle_id {
            text.push_str(&format!("\ncycle: {id}"));
        }
        if let Some(outcome) = &self.outcome {
            text.push_str(&format!("\noutcome: {outcome}"));
        }
        if !self.stranded.is_empty() {
            text.push_str(&format!("\nstranded: {}", self.stranded.join(", ")));
        }
        if !self.stacks.is_empty() {
            text.push_str(&format!("\nstacks: {}", self.stacks.join(", ")));
        }
        text
    }

    /// ntfy's `Priority` and `Tags` (emoji short codes): the events that need a person now
    /// are `high`, the rest `default`.
    pub(crate) fn ntfy_priority_and_tags(&self) -> (&'static str, &'static str) {
        match self.event {
            EventKind::Stranded | EventKind::MarkerCorrupt => ("high", "rotating_light"),
            EventKind::Failed | EventKind::EngineUnreachable | EventKind::Inconsistent => {
                ("high", "warning")
            }
            EventKind::Recovered => ("default", "recycle"),
            EventKind::Done => ("default", "white_check_mark"),
        }
    }
}

/// The kernel's host name; `unknown` where it cannot be read (a notification without it is
/// still worth sending).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `at` always as RFC 3339 with a `Z` and whole seconds or milliseconds, whatever chrono's
/// default serialization does.
mod rfc3339 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_exactly_the_spec_fields() {
        let mut e = Event::new(EventKind::Stranded, "nextcloud did not start again");
        e.at = DateTime::parse_from_rfc3339("2026-11-30T03:00:05Z")
            .expect("valid")
            .with_timezone(&Utc);
        e.host = "guest-17".into();
        e.cycle_id = Some("c-1".into());
        e.outcome = Some("done".into());
        e.stacks = vec!["immich".into(), "nextcloud".into()];
        e.stranded = vec!["nextcloud".into()];
        let json = serde_json::to_value(&e).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "event": "stranded",
                "host": "guest-17",
                "cycle_id": "c-1",
                "outcome": "done",
                "stacks": ["immich", "nextcloud"],
                "stranded": ["nextcloud"],
                "message": "nextcloud did not start again",
                "at": "2026-11-30T03:00:05.000Z",
            })
        );
    }

    #[test]
    fn without_a_cycle_the_ids_are_null() {
        let e = Event::new(EventKind::MarkerCorrupt, "moved aside");
        let json = serde_json::to_value(&e).expect("serializes");
        assert!(json["cycle_id"].is_null() && json["outcome"].is_null());
        assert!(!e.host.is_empty());
    }
}
