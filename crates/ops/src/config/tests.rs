use super::*;
use std::io::Write;

pub(super) fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

/// Loads inside figment's `Jail`, which serializes the tests that read the process
/// environment: one of them sets `FELHOM_*` variables, which must not leak into the others.
#[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
pub(super) fn jailed<T>(f: impl FnOnce() -> T) -> T {
    let mut out = None;
    figment::Jail::expect_with(|_| {
        out = Some(f());
        Ok(())
    });
    out.expect("the jail ran the closure")
}

/// Loads `text` as the config file; an unusable `[agent]` is an error here, as for the
/// commands that need the agent.
pub(super) fn load(text: &str) -> Result<Config, ConfigError> {
    let f = file(text);
    jailed(|| Config::load(Some(f.path()))).and_then(strict)
}

/// `config`, or the error of its unusable `[agent]`.
pub(super) fn strict(config: Config) -> Result<Config, ConfigError> {
    match config.agent {
        AgentSetting::Unusable(e) => Err(e),
        _ => Ok(config),
    }
}

/// The usable `[agent]`, if any.
pub(super) fn agent_of(config: &Config) -> Option<&AgentSection> {
    config.agent.usable().ok().flatten()
}

/// The error and its causes on one line, as people see it.
pub(super) fn chain(e: &ConfigError) -> String {
    felhom_quiesce::error_chain(e)
}

const AGENT: &str = r#"
[agent]
url = "https://127.0.0.1:8443"
token = "secret-token"
pin_sha256 = "5F:3A:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd"
"#;

#[test]
fn the_spec_example_parses_with_every_key() {
    let text = format!(
        "{AGENT}connect_timeout = \"5s\"\nrequest_timeout = \"15s\"\n{}",
        r#"
[stacks]
root = "/opt/felhom/stacks"
protected = ["traefik", "cloudflared", "felhom-controller"]
compose = "auto"
stop_timeout = "30s"
start_timeout = "120s"
parallelism = 4
settle = "10s"

[quiesce]
enabled = true
state_dir = "/var/lib/felhom-controller"
due_poll_interval = "60s"
status_poll_interval = "2s"
max_quiesce = "30m"
resume_on_snapshot = true
min_cycle_interval = "1h"
failure_cooldown = "1h"

[status]
listen = "127.0.0.1:9787"
"#
    );
    let c = load(&text).expect("valid");
    assert_eq!(c.quiesce.max_quiesce, Duration::from_secs(1800));
    assert_eq!(c.stacks.parallelism, 4);
    assert_eq!(c.stacks.settle, Duration::from_secs(10));
    assert_eq!(
        agent_of(&c).map(|a| a.request_timeout),
        Some(Duration::from_secs(15))
    );
}

#[test]
fn an_empty_file_means_defaults_and_no_agent() {
    let c = load("").expect("valid");
    assert!(matches!(c.agent, AgentSetting::Absent));
    assert_eq!(c.stacks.root, PathBuf::from("/opt/felhom/stacks"));
    assert_eq!(c.quiesce.min_cycle_interval, Duration::from_secs(3600));
    assert_eq!(c.status.listen, "127.0.0.1:9787");
}

#[test]
fn a_bad_value_names_the_key_the_file_and_the_line() {
    let f = file("# a comment\n[quiesce]\nmax_quiesce = \"soon\"\n");
    let err = jailed(|| Config::load(Some(f.path())))
        .expect_err("bad duration")
        .to_string();
    assert!(err.contains("quiesce.max_quiesce"), "{err}");
    assert!(
        err.contains(&format!("{} line 3", f.path().display())),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_refused() {
    let err = load("[quiesce]\nmax_quiesse = \"10m\"\n")
        .expect_err("typo")
        .to_string();
    assert!(err.contains("max_quiesse"), "{err}");
}

#[test]
fn invalid_values_are_refused_with_their_key() {
    for (text, key) in [
        ("[stacks]\nparallelism = 0\n", "stacks.parallelism"),
        ("[stacks]\ncompose = \"podman\"\n", "stacks.compose"),
        ("[stacks]\nprotected = [\"Bad Name\"]\n", "stacks.protected"),
        ("[quiesce]\nmax_quiesce = \"0s\"\n", "quiesce.max_quiesce"),
        ("[status]\nlisten = \"nowhere\"\n", "status.listen"),
        (
            "[agent]\nurl = \"http://x\"\ntoken = \"t\"\npin_sha256 = \"00\"\n",
            "agent.url",
        ),
        (
            "[agent]\nurl = \"https://x\"\ntoken = \"t\"\npin_sha256 = \"00\"\n",
            "agent.pin_sha256",
        ),
        (
            "[agent]\nurl = \"https://x\"\npin_sha256 = \"00\"\n",
            "agent.token_file",
        ),
    ] {
        let err = chain(&load(text).expect_err(text));
        assert!(err.contains(key), "{text:?}: {err}");
    }
}

#[test]
fn a_missing_explicit_file_is_an_error() {
    let err = jailed(|| Config::load(Some(Path::new("/nonexistent/controller.toml"))))
        .expect_err("missing");
    assert!(
        err.to_string().contains("/nonexistent/controller.toml"),
        "{err}"
    );
}

#[test]
fn the_built_in_protected_stacks_cannot_be_removed() {
    let c = load("[stacks]\nprotected = [\"mail\"]\n").expect("valid");
    assert_eq!(
        c.protected(),
        ["traefik", "cloudflared", "felhom-controller", "mail"]
    );
    let c = load("[stacks]\nprotected = []\n").expect("valid");
    assert_eq!(
        c.protected(),
        ["traefik", "cloudflared", "felhom-controller"]
    );
}

/// Loads [`AGENT`] with the environment variables `vars` set, in figment's `Jail`.
#[allow(clippy::result_large_err)] // figment's Jail fixes the closure's error type
fn load_with_env(vars: &[(&str, &str)]) -> Result<Config, String> {
    let mut out = None;
    figment::Jail::expect_with(|jail| {
        jail.create_file("c.toml", AGENT)?;
        for (key, value) in vars {
            jail.set_env(key, value);
        }
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
fn the_environment_overrides_the_file() {
    let c = load_with_env(&[
        ("FELHOM_QUIESCE__MAX_QUIESCE", "10m"),
        ("FELHOM_AGENT__TOKEN", "from-env"),
    ])
    .expect("loads");
    assert_eq!(c.quiesce.max_quiesce, Duration::from_secs(600));
    // The variable wins over the file's `token` (what it holds: the e2e tests, which use it).
    assert!(
        matches!(agent_of(&c).map(|a| &a.token), Some(TokenSource::Inline(_))),
        "{c:?}"
    );
}

#[test]
fn the_command_line_variables_are_not_config_keys() {
    // `--help` offers FELHOM_CONFIG and FELHOM_LOG_FORMAT; they once failed every command
    // with `unknown field: config`.
    load_with_env(&[("FELHOM_CONFIG", "c.toml"), ("FELHOM_LOG_FORMAT", "json")]).expect("loads");
}

#[test]
fn a_token_that_looks_like_a_number_is_a_string() {
    // Read by figment's environment provider it would be the number 12345678, refused as a
    // token of the wrong type.
    let c = load_with_env(&[("FELHOM_AGENT__TOKEN", "00012345678")]).expect("loads");
    assert!(
        matches!(agent_of(&c).map(|a| &a.token), Some(TokenSource::Inline(_))),
        "{c:?}"
    );
}

#[test]
fn a_token_of_the_wrong_type_is_never_echoed() {
    let text = AGENT.replace("token = \"secret-token\"", "token = 987654321");
    let e = load(&text).expect_err("a number is not a token");
    let message = chain(&e);
    assert!(message.contains("agent.token"), "{message}");
    assert!(!message.contains("987654321"), "{message}");
}

#[test]
fn absurd_durations_are_refused_naming_the_key() {
    for key in [
        "max_quiesce",
        "due_poll_interval",
        "min_cycle_interval",
        "failure_cooldown",
    ] {
        let text = format!("{AGENT}\n[quiesce]\n{key} = \"300000000000y\"\n");
        let e = load(&text).expect_err("refused");
        let message = chain(&e);
        assert!(message.contains(&format!("quiesce.{key}")), "{message}");
    }
    let text = format!("{AGENT}\n[stacks]\nstart_timeout = \"400d\"\n");
    let message = chain(&load(&text).expect_err("refused"));
    assert!(message.contains("stacks.start_timeout"), "{message}");
    // A year is still a duration.
    load(&format!(
        "{AGENT}\n[quiesce]\nmin_cycle_interval = \"365d\"\n"
    ))
    .expect("accepted");
}

#[test]
fn what_the_agent_client_refuses_is_named_by_its_config_key() {
    let with_credentials = AGENT.replace("https://127.0.0.1", "https://user@127.0.0.1");
    let c = load(&with_credentials).expect("the file itself is valid");
    let e = agent_of(&c)
        .expect("[agent]")
        .client()
        .expect_err("credentials in the URL");
    let message = chain(&e);
    assert!(
        message.starts_with("agent.url (the token goes in agent.token or agent.token_file)")
            && message.contains("credentials in the URL are not allowed"),
        "{message}"
    );
    let with_query = AGENT.replace("8443\"", "8443/?x=1\"");
    let e = agent_of(&load(&with_query).expect("valid"))
        .expect("[agent]")
        .client()
        .expect_err("a query");
    let message = chain(&e);
    assert!(message.starts_with("agent.url: "), "{message}");
}

#[test]
fn an_unusable_agent_section_leaves_the_rest_of_the_file_usable() {
    let f = file(
        "[agent]\nurl = \"https://x\"\ntoken = \"t\"\npin_sha256 = \"00\"\n\
         [quiesce]\nmax_quiesce = \"10m\"\n",
    );
    let c = jailed(|| Config::load(Some(f.path()))).expect("the rest loads");
    assert_eq!(c.quiesce.max_quiesce, Duration::from_secs(600));
    let AgentSetting::Unusable(e) = &c.agent else {
        panic!("{:?}", c.agent);
    };
    let message = chain(e);
    assert!(message.contains("agent.pin_sha256"), "{message}");
    assert!(
        message.contains(&format!("{} line", f.path().display())),
        "{message}"
    );
    assert!(c.agent.usable().is_err());
}

#[test]
fn a_gap_below_the_floor_is_noted_naming_its_key() {
    let c =
        load("[quiesce]\nmin_cycle_interval = \"1m\"\nfailure_cooldown = \"0s\"\n").expect("valid");
    let notes = c.notes();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].starts_with("quiesce.min_cycle_interval = 1m is below the floor of 5m"),
        "{notes:?}"
    );
    assert!(
        notes[1].starts_with("quiesce.failure_cooldown = 0s"),
        "{notes:?}"
    );
    // The knob itself is handed over as written: the floor is the loop's to apply.
    assert_eq!(c.cycle_config().min_cycle_interval, Duration::from_secs(60));
    assert!(load("").expect("defaults").notes().is_empty());
}
