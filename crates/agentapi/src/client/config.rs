//! What the client is given ([`ClientConfig`]) and what it makes of it before any connection:
//! the base URL and the bearer header, each refused with an error that shows no secret.

use std::time::Duration;

use http::{HeaderValue, Uri};

use crate::{ConfigError, Pin, Token};

/// Everything the client needs to reach one agent (the `[agent]` section of SPEC §5).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The agent's base URL, e.g. `https://10.0.0.1:8443`; must be `https://`. A path is kept
    /// as a prefix (`https://host/agent` → `https://host/agent/backup/due`).
    pub url: String,
    /// The bearer token.
    pub token: Token,
    /// The SHA-256 of the agent's leaf certificate.
    pub pin: Pin,
    /// Bound on establishing the TCP connection.
    pub connect_timeout: Duration,
    /// Bound on a whole request: connect, TLS handshake, sending, and reading the answer.
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// SPEC §5's `agent.connect_timeout`.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// SPEC §5's `agent.request_timeout`.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
}

pub(super) fn base_url(url: &str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidUrl {
        url: shown_url(url),
        reason: reason.to_owned(),
    };
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&format!("not a URL ({e})")))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some(_) => {
            return Err(invalid(
                "only https:// is allowed: the agent is reached over pinned TLS",
            ))
        }
        None => return Err(invalid("no scheme: write https://host:port")),
    }
    let authority = uri
        .authority()
        .ok_or_else(|| invalid("no host: write https://host:port"))?;
    if authority.as_str().contains('@') {
        return Err(invalid(
            "credentials in the URL are not allowed: the token is sent in a header, never in the URL",
        ));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(invalid(
            "a query or fragment is not allowed in the base URL",
        ));
    }
    Ok(format!(
        "https://{}{}",
        authority.as_str(),
        uri.path().trim_end_matches('/')
    ))
}

/// What an error may show of `url`: its scheme and host, and `/…` for whatever followed —
/// user-info, a path, a query or a fragment may each hold a token.
fn shown_url(url: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not shown: no scheme)".to_owned();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let plain = |text: &str| {
        text.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c))
    };
    if !plain(scheme) || !plain(host) {
        return "(not shown)".to_owned();
    }
    let more = if host.len() < rest.len() { "/…" } else { "" };
    format!("{scheme}://{host}{more}")
}

pub(super) fn authorization(token: &Token) -> Result<HeaderValue, ConfigError> {
    let secret = token.secret();
    if secret.trim().is_empty() {
        return Err(ConfigError::InvalidToken {
            reason: "the token is empty".to_owned(),
        });
    }
    // `HeaderValue`'s error says nothing about the value, but build our own message anyway so
    // that no future version can leak it.
    let mut value = HeaderValue::from_str(&format!("Bearer {secret}")).map_err(|_| {
        ConfigError::InvalidToken {
            reason: "the token contains characters that cannot be sent in an HTTP header"
                .to_owned(),
        }
    })?;
    value.set_sensitive(true);
    Ok(value)
}
