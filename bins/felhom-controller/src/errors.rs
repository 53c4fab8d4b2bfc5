//! Error chains for people: each cause printed once.

/// `error: cause: cause`, each cause once: the libraries' one way of telling an error
/// (`felhom_quiesce::error_chain`), on anyhow's error with its contexts.
pub(crate) fn chain(error: &anyhow::Error) -> String {
    felhom_quiesce::error_chain(error.as_ref())
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
