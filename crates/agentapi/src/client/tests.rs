use super::*;

fn config(url: &str, token: &str) -> ClientConfig {
    ClientConfig {
        url: url.to_owned(),
        token: Token::new(token.to_owned()),
        pin: Pin::of_der(b"cert"),
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(15),
    }
}

#[test]
fn base_url_keeps_authority_and_prefix() {
    assert_eq!(
        base_url("https://10.0.0.1:8443").expect("valid"),
        "https://10.0.0.1:8443"
    );
    assert_eq!(
        base_url("https://agent.lan:8443/").expect("valid"),
        "https://agent.lan:8443"
    );
    assert_eq!(
        base_url("https://agent.lan/v1/").expect("valid"),
        "https://agent.lan/v1"
    );
}

#[test]
fn base_url_refuses_what_cannot_be_pinned_or_would_leak() {
    // (the URL, why it is refused, how the error shows it)
    for (url, why, shown) in [
        (
            "http://10.0.0.1:8443",
            "only https://",
            "http://10.0.0.1:8443",
        ),
        ("10.0.0.1:8443", "scheme", "(not shown: no scheme)"),
        ("https://", "not a URL", "https://"),
        (
            "https://user:pw@10.0.0.1",
            "credentials",
            "https://10.0.0.1/…",
        ),
        ("https://10.0.0.1/?token=x", "query", "https://10.0.0.1/…"),
        ("https://10.0.0.1/#x", "fragment", "https://10.0.0.1/…"),
        ("not a url", "not a URL", "(not shown: no scheme)"),
    ] {
        let err = base_url(url).expect_err(url);
        assert!(err.to_string().contains(why), "{url}: {err}");
        assert!(
            err.to_string().starts_with(&format!("agent url {shown}: ")),
            "{url}: {err}"
        );
    }
}

#[test]
fn token_must_fit_a_header() {
    assert!(authorization(&Token::new("abc.DEF-123_=".to_owned()))
        .expect("valid token")
        .is_sensitive());
    let err = authorization(&Token::new("  ".to_owned())).expect_err("empty");
    assert!(err.to_string().contains("empty"), "{err}");
    let err = authorization(&Token::new("line\nbreak-SECRET".to_owned())).expect_err("newline");
    assert!(err.to_string().contains("cannot be sent"), "{err}");
    assert!(!err.to_string().contains("SECRET"), "{err}");
}

#[test]
fn debug_shows_url_and_pin_but_not_the_token() {
    let client =
        AgentClient::new(config("https://127.0.0.1:8443", "tok-SECRET-42")).expect("client builds");
    let debug = format!("{client:?}");
    assert!(debug.contains("https://127.0.0.1:8443"), "{debug}");
    assert!(debug.contains(&Pin::of_der(b"cert").to_string()), "{debug}");
    assert!(!debug.contains("tok-SECRET-42"), "{debug}");
    let config_debug = format!("{:?}", config("https://h", "tok-SECRET-42"));
    assert!(!config_debug.contains("tok-SECRET-42"), "{config_debug}");
    assert_eq!(client.url(), "https://127.0.0.1:8443");
}

#[test]
fn long_poll_query_rounds_up_encodes_and_falls_back_to_plain() {
    let query = |phase: &BackupPhase, wait| long_poll_query(phase, wait);
    assert_eq!(
        query(&BackupPhase::Running, Duration::from_secs(10)),
        Some(("wait=10&phase=running".to_owned(), Duration::from_secs(10)))
    );
    assert_eq!(
        query(&BackupPhase::Snapshotted, Duration::from_millis(1500)),
        Some((
            "wait=2&phase=snapshotted".to_owned(),
            Duration::from_secs(2)
        ))
    );
    assert_eq!(
        query(
            &BackupPhase::Unknown("a b&c=d/é".to_owned()),
            Duration::from_secs(1)
        ),
        Some((
            "wait=1&phase=a%20b%26c%3Dd%2F%C3%A9".to_owned(),
            Duration::from_secs(1)
        ))
    );
    assert_eq!(query(&BackupPhase::Running, Duration::ZERO), None);
    assert_eq!(
        query(
            &BackupPhase::Unknown("x".repeat(65)),
            Duration::from_secs(5)
        ),
        None
    );
    assert!(query(
        &BackupPhase::Unknown("x".repeat(64)),
        Duration::from_secs(5)
    )
    .is_some());
}

#[test]
fn new_refuses_http() {
    let err = AgentClient::new(config("http://127.0.0.1:8443", "t")).expect_err("http");
    assert!(matches!(err, ConfigError::InvalidUrl { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("agent url http://127.0.0.1:8443: "),
        "{err}"
    );
}

#[test]
fn a_refused_url_shows_no_user_info_path_query_or_fragment() {
    for (url, shown) in [
        ("https://user:s3cretTok@agent:8443", "https://agent:8443/…"),
        (
            "https://agent:8443/?token=s3cretTok",
            "https://agent:8443/…",
        ),
        ("https://agent:8443/#s3cretTok", "https://agent:8443/…"),
        ("http://agent/s3cretTok", "http://agent/…"),
        ("s3cretTok", "(not shown: no scheme)"),
        ("https://s3cret\nTok/x", "(not shown)"),
    ] {
        let err = AgentClient::new(config(url, "t")).expect_err(url);
        let ConfigError::InvalidUrl { url: field, .. } = &err else {
            panic!("{url}: {err:?}");
        };
        assert_eq!(field, shown, "{url}");
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(
                !text.contains("s3cret") && !text.contains("Tok"),
                "{url}: {text}"
            );
        }
    }
}
