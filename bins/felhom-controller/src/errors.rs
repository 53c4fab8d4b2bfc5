//! Error chains for people: each cause printed once.

use std::error::Error;

/// `error: cause: cause`, skipping a cause whose text the message before it already holds
/// (the libraries' errors print their source in their own message and return it as `source()`
/// too; anyhow's contexts do not).
pub(crate) fn chain(error: &anyhow::Error) -> String {
    let mut out = error.to_string();
    let mut cause: Option<&dyn Error> = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading {path}: {source}")]
    struct Carries {
        path: &'static str,
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(Carries {
            path: "/x",
            source: io,
        })
        .context("quiesce.state_dir /x");
        assert_eq!(chain(&e), "quiesce.state_dir /x: reading /x: no such file");
        assert_eq!(
            format!("{e:#}").matches("no such file").count(),
            2,
            "why this exists"
        );
    }
}
