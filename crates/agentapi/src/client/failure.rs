//! How what went wrong becomes an [`AgentError`] an operator can act on: hyper's error chain
//! (refused, pin, TLS), a body too large, an unexpected status; whatever the agent sent is
//! redacted of the token before it is shown.

use std::error::Error as StdError;
use std::io;

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use rustls::CertificateError;

use super::{AgentClient, MAX_BODY};
use crate::types::HumanDuration;
use crate::verifier::PinMismatch;
use crate::AgentError;

/// How much of an unexpected answer's body goes into the error, for the operator.
const SNIPPET_CHARS: usize = 200;

impl AgentClient {
    /// Turns hyper's error chain into the error an operator can act on. The interesting part
    /// (refused, pin, TLS) is buried a few `source()`s down, partly inside `io::Error`s.
    pub(super) fn transport_error(
        &self,
        request: &'static str,
        error: hyper_util::client::legacy::Error,
    ) -> AgentError {
        let root: &(dyn StdError + 'static) = &error;
        if let Some(tls) = find::<rustls::Error>(root) {
            if let rustls::Error::InvalidCertificate(CertificateError::Other(other)) = tls {
                if let Some(mismatch) = other.0.downcast_ref::<PinMismatch>() {
                    return AgentError::PinMismatch {
                        request,
                        expected: mismatch.expected,
                        actual: mismatch.actual,
                    };
                }
            }
            return AgentError::Tls {
                request,
                detail: tls.to_string(),
            };
        }
        let connect = |detail: String| AgentError::Connect {
            request,
            url: self.inner.base.clone(),
            detail,
        };
        match find::<io::Error>(root).map(io::Error::kind) {
            Some(io::ErrorKind::ConnectionRefused) => {
                return connect("connection refused".to_owned())
            }
            Some(io::ErrorKind::TimedOut) if error.is_connect() => {
                return connect(format!(
                    "could not connect within {}",
                    HumanDuration(self.inner.connect_timeout)
                ))
            }
            _ => {}
        }
        let what = if error.is_connect() {
            "could not connect"
        } else {
            "the exchange failed"
        };
        AgentError::Transport {
            request,
            what,
            source: Box::new(error),
        }
    }

    /// The answer to a status the request does not expect.
    pub(super) fn unexpected(
        &self,
        request: &'static str,
        status: StatusCode,
        body: Result<Bytes, AgentError>,
    ) -> AgentError {
        if status == StatusCode::UNAUTHORIZED {
            return AgentError::Unauthorized { request };
        }
        AgentError::Status {
            request,
            status,
            body: body
                .map(|b| self.snippet(&b))
                .unwrap_or_else(|e| format!("(body unreadable: {e})")),
        }
    }

    pub(super) fn malformed(&self, request: &'static str, detail: &str) -> AgentError {
        AgentError::Malformed {
            request,
            detail: self.redact(detail),
        }
    }

    /// The start of a body, for an error message.
    pub(super) fn snippet(&self, body: &[u8]) -> String {
        let text = self.redact(String::from_utf8_lossy(body).trim());
        if text.is_empty() {
            return "(empty body)".to_owned();
        }
        let mut cut: String = text.chars().take(SNIPPET_CHARS).collect();
        if cut.len() < text.len() {
            cut.push('…');
        }
        cut
    }

    /// Removes the token from text that came from the agent: a misconfigured proxy or agent may
    /// echo the request headers into an error body, and error messages end up in logs.
    pub(super) fn redact(&self, text: &str) -> String {
        text.replace(self.inner.token.secret(), "***")
    }
}

/// Reads at most [`MAX_BODY`] bytes; an announced or actual larger body is refused without
/// buffering it.
pub(super) async fn read_capped(
    request: &'static str,
    response: Response<Incoming>,
) -> Result<Bytes, AgentError> {
    let too_large = AgentError::BodyTooLarge {
        request,
        limit: MAX_BODY,
    };
    let announced = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|len| len > MAX_BODY as u64) {
        return Err(too_large);
    }
    match Limited::new(response.into_body(), MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large),
        Err(source) => Err(AgentError::Transport {
            request,
            what: "reading the answer's body failed",
            source,
        }),
    }
}

/// Finds an error of type `T` in a chain, looking inside `io::Error`s too: their `source()`
/// skips the error they wrap, which is where tokio-rustls puts the `rustls::Error`.
fn find<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        if let Some(inner) = e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            if let Some(found) = find::<T>(inner) {
                return Some(found);
            }
        }
        current = e.source();
    }
    None
}
