//! URLs are shown as `scheme://host/…` only: paths, queries and user-info hold secrets.

/// `scheme://host[:port]/…` for any string that looks like a URL; `<not a URL>` for any other,
/// so that not even a mistyped secret is echoed. Never shows user-info, path, query or fragment.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL>".to_owned();
    };
    let scheme_ok = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return "<not a URL>".to_owned();
    }
    // The authority ends at the first `/`, `?` or `#`; user-info is what precedes its last `@`.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let tail = if authority.len() < rest.len() || authority.contains('@') {
        "/…"
    } else {
        ""
    };
    format!("{}://{host}{tail}", scheme.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn keeps_scheme_and_host_only() {
        assert_eq!(
            redact("https://hc.example.net/ping/1f2e3d4c-secret"),
            "https://hc.example.net/…"
        );
        assert_eq!(
            redact("http://ntfy.local:8080/topic?auth=tk_SECRET#frag"),
            "http://ntfy.local:8080/…"
        );
        assert_eq!(redact("https://example.net"), "https://example.net");
    }

    #[test]
    fn never_shows_user_info_path_query_or_fragment() {
        for url in [
            "https://user:SECRET@host.example/",
            "https://SECRET@host.example",
            "https://host.example?SECRET",
            "https://host.example#SECRET",
            "https://host.example/a/SECRET/b",
            "HTTPS://u:p@host.example:443/SECRET?SECRET=SECRET",
            "https://a@b@host.example/SECRET",
        ] {
            let shown = redact(url);
            assert!(!shown.contains("SECRET"), "{url} shown as {shown}");
            assert!(shown.contains("host.example"), "{url} shown as {shown}");
        }
    }

    #[test]
    fn a_string_that_is_not_a_url_is_not_echoed() {
        assert_eq!(redact("hooks.example.net/SECRET"), "<not a URL>");
        assert_eq!(redact("://SECRET"), "<not a URL>");
        assert_eq!(redact("a b://SECRET"), "<not a URL>");
    }
}
