//! No config error shows a secret's value, whatever is wrong (issue 20): a random token on a
//! line with each kind of syntax error, of the wrong type, in the wrong key, in a token file
//! that cannot be used; the same for the `[notify]` URLs. Each error still names the file and
//! the line.

use super::tests::{agent_of, chain, file, jailed, strict};
use super::*;

/// A token no fixed text holds: fresh for every call.
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut token = String::from("Tk");
    for i in 0..2u8 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u8(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        token.push_str(&format!("{:016x}", h.finish()));
    }
    token
}

/// No 8 characters in a row of `secret` are in `text`.
fn assert_hidden(text: &str, secret: &str, context: &str) {
    let chars: Vec<char> = secret.chars().collect();
    for window in chars.windows(8) {
        let part: String = window.iter().collect();
        assert!(
            !text.contains(&part),
            "{context}: {part:?} of the secret shows in: {text}"
        );
    }
}

/// The error of loading `text` as the config file, and the file's path.
fn error_of(text: &str) -> (String, String) {
    let f = file(text);
    let err = jailed(|| Config::load(Some(f.path())).and_then(strict)).expect_err(text);
    (chain(&err), f.path().display().to_string())
}

fn pin() -> String {
    vec!["ab"; 32].join(":")
}

/// `template` with every `{t}` replaced by `token`.
fn planted(template: &str, token: &str) -> String {
    template.replace("{t}", token)
}

#[test]
fn a_syntax_error_on_the_tokens_line_names_the_file_and_the_line_not_the_token() {
    let t = random_token();
    // (what, the `[agent]` section's text after its header, the line the error names)
    let cases = [
        (
            "a bad escape",
            "url = \"https://x\"\ntoken = \"ab\\q{t}\"",
            3,
        ),
        ("a missing quote", "token = \"{t}\nurl = \"https://x\"", 2),
        ("a duplicate key", "token = \"{t}\"\ntoken = \"{t}\"", 3),
        ("no quotes", "url = \"https://x\"\ntoken = {t}", 3),
        ("a token alone on its line", "{t}", 2),
        ("YAML's colon", "token: \"{t}\"", 2),
        // Noticed at the end of the file.
        ("an open multi-line string", "token = '''{t}", 3),
        ("text after the value", "token = \"{t}\" \"x\"", 2),
        ("a bad unicode escape", "token = \"\\u{t}\"", 2),
        ("a control character", "token = \"{t}\u{1}\"", 2),
        ("a duplicate table", "[{t}]\n[{t}]", 3),
        ("a duplicate dotted key", "{t}.x = 1\n{t}.x = 2", 3),
    ];
    for (what, section, line) in cases {
        let (message, path) = error_of(&format!("[agent]\n{}\n", planted(section, &t)));
        assert_hidden(&message, &t, what);
        assert!(
            message.contains(&format!("{path} line {line}")),
            "{what}: names the file and line {line}: {message}"
        );
    }
}

#[test]
fn a_token_of_the_wrong_type_or_in_the_wrong_key_is_not_shown() {
    let t = random_token();
    // As many as fit in a TOML integer (a longer one is a syntax error, tested above).
    let digits: String = t.chars().filter(char::is_ascii_digit).take(15).collect();
    let pin = pin();
    // (what, the lines after `url` and `pin_sha256`, the key the error names)
    let cases = [
        ("a number", format!("token = 9{digits}"), "agent.token"),
        ("an array", planted("token = [\"{t}\"]", &t), "agent.token"),
        (
            "a table",
            planted("token = { value = \"{t}\" }", &t),
            "agent.token",
        ),
        (
            "a boolean file",
            planted("token = \"{t}\"\ntoken_file = true", &t),
            "agent.token_file",
        ),
        (
            "the token as the file",
            planted("token_file = \"{t}\"", &t),
            "agent.token_file",
        ),
        (
            "the token as a key",
            planted("{t} = \"x\"\ntoken = \"y\"", &t),
            "agent",
        ),
    ];
    let texts = cases
        .into_iter()
        .map(|(what, lines, key)| {
            let text = format!("[agent]\nurl = \"https://x\"\npin_sha256 = \"{pin}\"\n{lines}\n");
            (what, text, key)
        })
        .chain([(
            "the token in the url",
            format!("[agent]\nurl = \"http://x/{t}\"\ntoken = \"y\"\npin_sha256 = \"{pin}\"\n"),
            "agent.url",
        )]);
    for (what, text, key) in texts {
        let (message, path) = error_of(&text);
        assert_hidden(&message, &t, what);
        assert_hidden(&message, &digits, what);
        assert!(message.contains(key), "{what}: names {key}: {message}");
        assert!(message.contains(&path), "{what}: names the file: {message}");
    }
    // A type error names the line of its key.
    let array =
        format!("[agent]\nurl = \"https://x\"\npin_sha256 = \"{pin}\"\ntoken = [\"{t}\"]\n");
    let (message, path) = error_of(&array);
    assert!(message.contains(&format!("{path} line 4")), "{message}");
}

#[test]
fn a_notify_url_is_not_shown_whatever_is_wrong_with_it() {
    let t = random_token();
    // (what, the `[notify]` line; the error names line 2)
    let cases = [
        ("text after it", "webhook = \"https://h.example/{t}\" x"),
        ("a missing quote", "ntfy = \"https://h.example/{t}"),
        ("a bad escape", "ping = \"https://h.example/\\q{t}\""),
        ("an array", "webhook = [\"https://h.example/{t}\"]"),
        ("not http", "webhook = \"ftp://h.example/{t}\""),
        ("user-info", "ntfy = \"https://u:{t}@h.example/x\""),
        ("not a URL", "ping = \"https://h.example/<{t}>\""),
    ];
    for (what, line) in cases {
        let (message, path) = error_of(&format!("[notify]\n{}\n", planted(line, &t)));
        assert_hidden(&message, &t, what);
        assert!(
            message.contains(&format!("{path} line 2")),
            "{what}: names the file and line 2: {message}"
        );
    }
}

#[test]
fn a_token_file_that_cannot_be_used_is_named_and_its_content_never_shown() {
    let t = random_token();
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("agent.token");
    let mut invalid_utf8 = t.clone().into_bytes();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    let cases: [(&str, Vec<u8>); 5] = [
        ("two lines", format!("{t}\n{t}\n").into_bytes()),
        ("not UTF-8", invalid_utf8),
        ("a control character", format!("{t}\u{7f}").into_bytes()),
        ("a NUL", format!("{t}\0x").into_bytes()),
        ("empty", b"\n".to_vec()),
    ];
    for (what, content) in cases {
        std::fs::write(&token_file, &content).expect("write the token file");
        let config = format!(
            "[agent]\nurl = \"https://127.0.0.1:9\"\ntoken_file = \"{}\"\npin_sha256 = \"{}\"\n",
            token_file.display(),
            pin()
        );
        let f = file(&config);
        let config = jailed(|| Config::load(Some(f.path()))).expect("the config itself is fine");
        let err = agent_of(&config)
            .expect("[agent]")
            .client()
            .expect_err(what);
        let message = chain(&err);
        assert_hidden(&message, &t, what);
        assert!(
            message.contains(&token_file.display().to_string()),
            "{what}: names the file: {message}"
        );
        assert_hidden(&format!("{config:?}"), &t, what);
    }
}

#[test]
fn a_token_in_the_agent_url_is_not_shown() {
    let t = random_token();
    for url in [
        "https://user:{t}@127.0.0.1:9",
        "https://127.0.0.1:9/?token={t}",
        "https://127.0.0.1:9/#{t}",
    ] {
        let text = format!(
            "[agent]\nurl = \"{}\"\ntoken = \"y\"\npin_sha256 = \"{}\"\n",
            planted(url, &t),
            pin()
        );
        let f = file(&text);
        // The client judges the URL, when it is built.
        let config = jailed(|| Config::load(Some(f.path()))).expect("loads");
        let err = agent_of(&config).expect("[agent]").client().expect_err(url);
        let message = chain(&err);
        assert_hidden(&message, &t, url);
        assert!(message.starts_with("agent.url"), "{url}: {message}");
        assert_hidden(&format!("{config:?}"), &t, url);
    }
}

#[test]
fn debug_of_the_config_shows_no_token_nor_notify_url() {
    let t = random_token();
    let text = format!(
        "[agent]\nurl = \"https://x\"\ntoken = \"{t}\"\npin_sha256 = \"{}\"\n\
         [notify]\nwebhook = \"https://h.example/{t}\"\n",
        pin()
    );
    let f = file(&text);
    let config = jailed(|| Config::load(Some(f.path()))).expect("valid");
    assert_hidden(&format!("{config:?}"), &t, "Debug");
    assert_hidden(&format!("{config:#?}"), &t, "Debug, pretty");
}

/// Loads `text` in a jail whose `CREDENTIALS_DIRECTORY` holds `credential` (when given).
#[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
fn load_with_credential(text: &str, credential: Option<&str>) -> Result<Config, String> {
    let mut out = None;
    figment::Jail::expect_with(|jail| {
        jail.create_file("c.toml", text)?;
        if let Some(content) = credential {
            std::fs::create_dir("creds").map_err(|e| e.to_string())?;
            jail.create_file(format!("creds/{CREDENTIAL}"), content)?;
        }
        let dir = jail.directory().join("creds");
        jail.set_env("CREDENTIALS_DIRECTORY", dir.display());
        out = Some(
            Config::load(Some(Path::new("c.toml")))
                .and_then(strict)
                .map_err(|e| chain(&e)),
        );
        Ok(())
    });
    out.expect("the jail ran the closure")
}

#[test]
fn a_systemd_credential_wins_over_the_files_token_keys() {
    let base = format!("[agent]\nurl = \"https://x\"\npin_sha256 = \"{}\"\n", pin());
    let with_file = format!("{base}token_file = \"/etc/felhom/agent.token\"\n");
    let source = |r: Result<Config, String>| match r.expect("loads").agent {
        AgentSetting::Set(a) => a.token,
        other => panic!("[agent]: {other:?}"),
    };
    // Given by the unit: it wins over token_file, and over token.
    let token = source(load_with_credential(&with_file, Some("s3cret\n")));
    assert!(
        matches!(&token, TokenSource::Credential(p) if p.ends_with(CREDENTIAL)),
        "{token:?}"
    );
    let inline = format!("{base}token = \"t\"\n");
    let token = source(load_with_credential(&inline, Some("s3cret\n")));
    assert!(matches!(token, TokenSource::Credential(_)), "{token:?}");
    // Alone, it is enough.
    let token = source(load_with_credential(&base, Some("s3cret\n")));
    assert!(matches!(token, TokenSource::Credential(_)), "{token:?}");
    // A credentials directory without it (other credentials): the file's key.
    let token = source(load_with_credential(&with_file, None));
    assert!(matches!(token, TokenSource::File(_)), "{token:?}");
    // None of the three: the error names all three.
    let err = load_with_credential(&base, None).expect_err("no token");
    for way in ["agent.token_file", CREDENTIAL, "agent.token"] {
        assert!(err.contains(way), "{err}");
    }
    // Both keys are still refused, credential or not.
    let both = format!("{with_file}token = \"t\"\n");
    let err = load_with_credential(&both, Some("s3cret\n")).expect_err("both keys");
    assert!(err.contains("not both"), "{err}");
}

#[test]
fn a_credential_that_cannot_be_used_is_named_not_shown() {
    let base = format!(
        "[agent]\nurl = \"https://127.0.0.1:9\"\npin_sha256 = \"{}\"\n",
        pin()
    );
    let t = random_token();
    let config = load_with_credential(&base, Some(&format!("{t}\n{t}\n"))).expect("loads");
    let err = agent_of(&config)
        .expect("[agent]")
        .client()
        .expect_err("two lines");
    let message = chain(&err);
    assert_hidden(&message, &t, "a credential of two lines");
    assert!(message.contains(CREDENTIAL), "{message}");
}

#[test]
fn a_non_loopback_listen_needs_allow_remote() {
    for listen in ["0.0.0.0:9787", "10.0.0.17:9787", "[::]:9787"] {
        let (message, _) = error_of(&format!("[status]\nlisten = \"{listen}\"\n"));
        assert!(message.contains("status.allow_remote"), "{message}");
        let f = file(&format!(
            "[status]\nlisten = \"{listen}\"\nallow_remote = true\n"
        ));
        jailed(|| Config::load(Some(f.path()))).expect("allowed");
    }
    for listen in ["127.0.0.1:9787", "127.0.0.2:9787", "[::1]:9787", ""] {
        let f = file(&format!("[status]\nlisten = \"{listen}\"\n"));
        jailed(|| Config::load(Some(f.path()))).expect("loopback needs no allow_remote");
    }
}
