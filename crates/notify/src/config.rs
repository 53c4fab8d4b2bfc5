//! The `[notify]` section (SPEC §5): its keys, their defaults, and the checks of its URLs.

use crate::redact::redact;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// What went wrong in the `[notify]` section. Says which target (webhook, ntfy, ping); shows a
/// URL only redacted. Deserialized, each error is raised by the field it is about, so that the
/// config reader names the key in its own terms (figment: `notify.webhook`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value that does not parse as a URL (a space, `<`, `>`, ... must be percent-encoded).
    #[error("the {key} URL {shown} is not a valid URL (characters such as spaces or <> must be percent-encoded)")]
    Invalid {
        /// The key (`webhook`, `ntfy`, `ping`).
        key: &'static str,
        /// The value, redacted.
        shown: String,
    },
    /// A URL that is not an absolute `http://` or `https://` URL with a host.
    #[error("the {key} URL {shown} is not an http:// or https:// URL with a host")]
    NotHttp {
        /// The key (`webhook`, `ntfy`, `ping`).
        key: &'static str,
        /// The value, redacted.
        shown: String,
    },
    /// A URL with `user:password@`: not sent by this client, so refused rather than ignored.
    #[error(
        "the {key} URL {shown} carries user-info (user:password@), which is not sent; \
         put a token in the path or query instead (ntfy: ?auth=...)"
    )]
    UserInfo {
        /// The key (`webhook`, `ntfy`, `ping`).
        key: &'static str,
        /// The value, redacted.
        shown: String,
    },
    /// `timeout = "0s"` would fail every delivery.
    #[error("the timeout must be more than zero")]
    ZeroTimeout,
}

/// A validated notification URL. Its `Debug` and `Display` show it redacted (`scheme://host/…`).
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    uri: http::Uri,
}

impl Endpoint {
    /// Checks `url` for the key `key` of `[notify]`: an absolute `http://` or `https://` URL
    /// with a host and no user-info.
    pub fn parse(key: &'static str, url: &str) -> Result<Endpoint, ConfigError> {
        let not_http = || ConfigError::NotHttp {
            key,
            shown: redact(url),
        };
        let uri: http::Uri = url.trim().parse().map_err(|_| ConfigError::Invalid {
            key,
            shown: redact(url),
        })?;
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
        let host_ok = uri.host().is_some_and(|h| !h.is_empty());
        if !scheme_ok || !host_ok {
            return Err(not_http());
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(ConfigError::UserInfo {
                key,
                shown: redact(url),
            });
        }
        Ok(Endpoint { uri })
    }

    /// The full URL, secrets included: for sending only, never for a log line.
    pub(crate) fn uri(&self) -> &http::Uri {
        &self.uri
    }

    /// `<url>/fail`, the failure ping of a dead-man's-switch service (healthchecks.io's
    /// convention): `/fail` is appended to the path, before any query.
    pub(crate) fn fail_uri(&self) -> http::Uri {
        let path = self.uri.path().trim_end_matches('/');
        let path_and_query = match self.uri.query() {
            Some(q) => format!("{path}/fail?{q}"),
            None => format!("{path}/fail"),
        };
        let mut parts = self.uri.clone().into_parts();
        // A path made of a valid path plus `/fail` and a query taken from a valid URI parses.
        parts.path_and_query = path_and_query.parse().ok();
        http::Uri::from_parts(parts).unwrap_or_else(|_| self.uri.clone())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.uri.to_string()))
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({self})")
    }
}

/// The kinds of event (SPEC §5 `events`), kept distinct so that an operator can route them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A cycle ended without a backup: the agent failed or refused, the bound ended the wait,
    /// the backup was lost or the cycle was cancelled.
    Failed,
    /// A stack could not be started again after every attempt.
    Stranded,
    /// A cycle ended with a backup and every stack back, but the backup is not app-consistent
    /// for a stack: a container was killed at the end of its grace, or ran while it was to
    /// be down (SPEC §2 rule 10). Sent instead of `done`.
    Inconsistent,
    /// A marker left by a controller that died was recovered (its stacks restarted).
    Recovered,
    /// The Docker engine could not be reached while stacks had to come back.
    EngineUnreachable,
    /// A marker that could not be read was moved aside.
    MarkerCorrupt,
    /// A cycle ended with a backup and every stack back (not sent unless asked for).
    Done,
}

impl EventKind {
    /// The name used in `events` and in the webhook's `event` field.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Failed => "failed",
            EventKind::Stranded => "stranded",
            EventKind::Inconsistent => "inconsistent",
            EventKind::Recovered => "recovered",
            EventKind::EngineUnreachable => "engine_unreachable",
            EventKind::MarkerCorrupt => "marker_corrupt",
            EventKind::Done => "done",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `[notify]` section. Deserialize it from the config file; every URL is checked then,
/// and an empty one (the environment's way to switch a target off,
/// `FELHOM_NOTIFY__WEBHOOK=`) means none.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// POST of one JSON [`Event`](crate::Event).
    #[serde(default, deserialize_with = "webhook")]
    pub webhook: Option<Endpoint>,
    /// An ntfy topic URL: a short title and message.
    #[serde(default, deserialize_with = "ntfy")]
    pub ntfy: Option<Endpoint>,
    /// Dead-man's switch: `GET <ping>` after a successful cycle, `GET <ping>/fail` after any
    /// other, whatever `events` says.
    #[serde(default, deserialize_with = "ping")]
    pub ping: Option<Endpoint>,
    /// The kinds sent to `webhook` and `ntfy`.
    #[serde(default = "default_events")]
    pub events: Vec<EventKind>,
    /// The bound of one try of one delivery.
    #[serde(default = "default_timeout", deserialize_with = "timeout")]
    pub timeout: Duration,
}

/// SPEC §5's default `events`: everything that needs a person, not the routine success.
pub(crate) const DEFAULT_EVENTS: [EventKind; 6] = [
    EventKind::Failed,
    EventKind::Stranded,
    EventKind::Inconsistent,
    EventKind::Recovered,
    EventKind::EngineUnreachable,
    EventKind::MarkerCorrupt,
];

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            webhook: None,
            ntfy: None,
            ping: None,
            events: DEFAULT_EVENTS.to_vec(),
            timeout: Duration::from_secs(10),
        }
    }
}

fn default_events() -> Vec<EventKind> {
    DEFAULT_EVENTS.to_vec()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// An optional URL of the target `key`, checked; empty is none. Each field checks its own, so
/// that the error is raised at the field and the config reader names it.
fn endpoint<'de, D: serde::Deserializer<'de>>(
    key: &'static str,
    d: D,
) -> Result<Option<Endpoint>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(v) if !v.trim().is_empty() => Endpoint::parse(key, &v)
            .map(Some)
            .map_err(serde::de::Error::custom),
        _ => Ok(None),
    }
}

fn webhook<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Endpoint>, D::Error> {
    endpoint("webhook", d)
}

fn ntfy<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Endpoint>, D::Error> {
    endpoint("ntfy", d)
}

fn ping<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Endpoint>, D::Error> {
    endpoint("ping", d)
}

/// A human-readable duration (`"10s"`) longer than zero: `0s` would fail every delivery.
fn timeout<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let timeout = humantime_serde::deserialize(d)?;
    if timeout == Duration::ZERO {
        return Err(serde::de::Error::custom(ConfigError::ZeroTimeout));
    }
    Ok(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<NotifyConfig, String> {
        use figment::providers::Format;
        figment::Figment::from(figment::providers::Toml::string(toml))
            .extract_inner::<NotifyConfig>("notify")
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = parse("[notify]\n").expect("an empty section parses");
        assert_eq!(c, NotifyConfig::default());
        assert_eq!(
            c.events,
            [
                EventKind::Failed,
                EventKind::Stranded,
                EventKind::Inconsistent,
                EventKind::Recovered,
                EventKind::EngineUnreachable,
                EventKind::MarkerCorrupt
            ]
        );
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert!(c.webhook.is_none() && c.ntfy.is_none() && c.ping.is_none());
    }

    #[test]
    fn every_key_is_read() {
        let c = parse(
            r#"[notify]
            webhook = "https://hooks.example.net/felhom"
            ntfy = "http://ntfy.example.net:8080/guest-17"
            ping = "https://hc.example.net/ping/abc"
            events = ["done", "failed", "inconsistent"]
            timeout = "3s"
            "#,
        )
        .expect("a full section parses");
        assert_eq!(
            c.webhook.as_ref().map(|e| e.uri().to_string()).as_deref(),
            Some("https://hooks.example.net/felhom")
        );
        assert_eq!(
            c.ntfy.as_ref().map(|e| e.uri().to_string()).as_deref(),
            Some("http://ntfy.example.net:8080/guest-17")
        );
        assert_eq!(
            c.events,
            [EventKind::Done, EventKind::Failed, EventKind::Inconsistent]
        );
        assert_eq!(c.timeout, Duration::from_secs(3));
    }

    #[test]
    fn a_bad_url_names_the_key_and_hides_the_secret() {
        for (key, url) in [
            ("webhook", "ftp://files.example.net/SECRET"),
            ("ntfy", "ntfy.example.net/SECRET"),
            ("ping", "https:///SECRET"),
            ("ping", "https://hc.example.net/ping/<SECRET>"),
            ("webhook", "https://user:SECRET@hooks.example.net/"),
        ] {
            let err = parse(&format!("[notify]\n{key} = \"{url}\"\n")).expect_err(url);
            // The message names the target; the field raised it, so figment names the key.
            assert!(err.contains(&format!("the {key} URL")), "{err}");
            assert!(err.contains(&format!("\"default.{key}.notify\"")), "{err}");
            assert!(!err.contains("SECRET"), "{err}");
        }
    }

    #[test]
    fn an_empty_url_switches_the_target_off() {
        let c = parse("[notify]\nwebhook = \"\"\n").expect("empty is none");
        assert!(c.webhook.is_none());
    }

    #[test]
    fn unknown_events_keys_and_zero_timeout_are_refused() {
        let err = parse("[notify]\nevents = [\"failled\"]\n").expect_err("typo");
        assert!(err.contains("failled"), "{err}");
        let err = parse("[notify]\nwebhok = \"https://x.example\"\n").expect_err("typo");
        assert!(err.contains("webhok"), "{err}");
        let err = parse("[notify]\ntimeout = \"0s\"\n").expect_err("zero");
        assert!(
            err.contains("timeout must be more than zero") && err.contains("timeout.notify"),
            "{err}"
        );
    }

    #[test]
    fn debug_and_display_are_redacted() {
        let e =
            Endpoint::parse("ping", "https://hc.example.net/ping/SECRET?k=SECRET").expect("valid");
        assert_eq!(e.to_string(), "https://hc.example.net/…");
        assert!(!format!("{e:?}").contains("SECRET"));
        let c = NotifyConfig {
            ping: Some(e),
            ..NotifyConfig::default()
        };
        assert!(!format!("{c:?}").contains("SECRET"));
    }

    #[test]
    fn the_fail_ping_is_appended_to_the_path_before_the_query() {
        let e = Endpoint::parse("ping", "https://hc.example.net/ping/abc/").expect("valid");
        assert_eq!(
            e.fail_uri().to_string(),
            "https://hc.example.net/ping/abc/fail"
        );
        let e = Endpoint::parse("ping", "https://hc.example.net/p/abc?create=1").expect("valid");
        assert_eq!(
            e.fail_uri().to_string(),
            "https://hc.example.net/p/abc/fail?create=1"
        );
    }
}
