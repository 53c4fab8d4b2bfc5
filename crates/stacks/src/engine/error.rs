//! Why an engine call did not succeed, from bollard's errors: the engine away, its answer, no
//! answer in time, or something else.

use std::fmt;
use std::time::Duration;

use super::CLIENT_TIMEOUT_SECS;

/// Why an engine call did not succeed.
#[derive(Debug)]
pub(crate) enum EngineError {
    /// The engine cannot be reached: no socket, refused, reset.
    Unreachable(String),
    /// The engine answered with an error (its message).
    Api { status: u16, message: String },
    /// No answer within the bound.
    TimedOut(Duration),
    /// Anything else bollard reports (a body that does not parse, ...).
    Other(String),
}

impl EngineError {
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { status: 404, .. })
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable(detail) => f.write_str(detail),
            Self::Api { status, message } => write!(f, "the engine answered {status}: {message}"),
            Self::TimedOut(limit) => write!(f, "no answer within {}s", limit.as_secs()),
            Self::Other(detail) => f.write_str(detail),
        }
    }
}

pub(crate) fn classify(host: &str, err: bollard::errors::Error) -> EngineError {
    use bollard::errors::Error as B;
    match err {
        B::DockerResponseServerError {
            status_code,
            message,
        } => EngineError::Api {
            status: status_code,
            message,
        },
        B::SocketNotFoundError(path) => {
            EngineError::Unreachable(format!("{host}: no socket at {path}"))
        }
        B::HyperLegacyError { .. } | B::HyperResponseError { .. } | B::IOError { .. } => {
            EngineError::Unreachable(format!("{host}: {}", error_chain(&err)))
        }
        B::RequestTimeoutError => EngineError::TimedOut(Duration::from_secs(CLIENT_TIMEOUT_SECS)),
        other => EngineError::Other(error_chain(&other)),
    }
}

/// An error and its sources on one line: hyper's own messages ("client error (Connect)")
/// say nothing without the OS error beneath them.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
