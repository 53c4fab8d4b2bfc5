//! Secrets stay secret (issue 20, SPEC §5 "no output ... ever contains the agent token"): a
//! random token planted in the config is in no output of the real binary — `check`, `once`,
//! `status`, `status --json`, `run`'s logs at debug (JSON and human), `/status`, `/metrics`, the
//! notifications, the state directory — nor in the error of a bad config of any kind, a wrong
//! pin or a refused token; the token's other sources (a file, a systemd credential, the
//! variable) work; and an app's output stays out of `/status`, `/metrics` and notifications.
//! (The endpoint through a reconnect loop: `bins/felhom-controller/src/endpoint/tests.rs`.)

use std::path::Path;

use felhom_devagent::Fault;
use felhom_e2e::{
    container, http_get, random_token, Access, Agent, Controller, Env, Finished, StackSpec,
};

use crate::receiver::Receiver;

/// Everything a test saw the binary write, each with where it came from.
#[derive(Default)]
struct Outputs(Vec<(String, String)>);

impl Outputs {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.0.push((what.into(), text.into()));
    }

    /// A command's stdout and stderr (its log).
    fn finished(&mut self, what: &str, finished: &Finished) {
        self.add(format!("{what}: stdout"), finished.stdout.clone());
        self.add(format!("{what}: stderr"), finished.stderr.clone());
    }

    /// Every file under `dir` (the state directory: history, stranded list, lock).
    fn files_under(&mut self, dir: &Path) {
        for entry in std::fs::read_dir(dir)
            .expect("read the directory")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                self.files_under(&path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                self.add(
                    path.display().to_string(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                );
            }
        }
    }

    /// Panics, naming the output, when any holds `secret`; returns what was looked at.
    fn assert_none_holds(&self, secret: &str) -> Vec<&str> {
        for (what, text) in &self.0 {
            assert!(
                !text.contains(secret),
                "{what} holds the planted secret {secret}:\n{text}"
            );
        }
        self.0.iter().map(|(what, _)| what.as_str()).collect()
    }
}

/// `vars` as the harness takes them.
fn with<'a>(vars: &[(&'a str, &str)]) -> Vec<(&'a str, String)> {
    vars.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// Runs `felhom-controller --config <config> --log-format json <args>` with `vars`, to its end.
fn run_with(config: &Path, args: &[&str], vars: &[(&str, &str)]) -> Finished {
    Controller::spawn_with(Some(config), args, &with(vars)).wait()
}

const DEBUG: [(&str, &str); 1] = [("RUST_LOG", "debug")];

#[test]
fn a_planted_token_shows_in_no_output_of_any_command() {
    let mut env = Env::new("tkn");
    let app = env.deploy("notes", &StackSpec::app());
    env.up(&app);
    let token = random_token();
    let agent = Agent::start(&env, |c| c.token = token.clone());
    let receiver = Receiver::answering();
    let base = env
        .config(&agent.access())
        .set("status.listen", "127.0.0.1:0")
        .set("notify.webhook", receiver.url("/hook"))
        .set("notify.ntfy", receiver.url("/topic"))
        .set("notify.events", vec!["done", "failed", "recovered"]);
    let config = base.clone().write();
    // Each `run` below has a state directory of its own, so that it does a cycle at once (a
    // cycle just done holds the next off for minutes).
    let state = |n: &str| env.path().join(format!("state-{n}"));
    let for_run = |n: &str| {
        base.clone()
            .set("quiesce.state_dir", state(n).display().to_string())
            .named(&format!("controller-{n}.toml"))
            .write()
    };
    let mut seen = Outputs::default();

    let check = run_with(&config, &["check"], &DEBUG);
    assert_eq!(check.code, Some(0), "{check}");
    assert!(check.stdout.contains("pin and token accepted"), "{check}");
    seen.finished("check (RUST_LOG=debug)", &check);
    let check = run_with(&config, &["check"], &[("RUST_LOG", "trace")]);
    assert_eq!(check.code, Some(0), "{check}");
    seen.finished("check (RUST_LOG=trace)", &check);

    let once = run_with(&config, &["once", "--force"], &DEBUG);
    assert_eq!(once.code, Some(0), "{once}");
    seen.finished("once --force (RUST_LOG=debug)", &once);

    for args in [&["status"][..], &["status", "--json"][..]] {
        let status = run_with(&config, args, &DEBUG);
        assert_eq!(status.code, Some(0), "{status}");
        seen.finished(&args.join(" "), &status);
    }

    // The daemon, JSON log: a whole cycle, then /status and /metrics, then SIGTERM.
    let vars = with(&DEBUG);
    let mut run = Controller::spawn_with(Some(&for_run("json")), &["run"], &vars);
    let port = run.endpoint_port();
    run.wait_log("cycle finished");
    for path in ["/status", "/metrics"] {
        let body = http_get(port, path).unwrap_or_else(|| panic!("{path} answers"));
        seen.add(format!("GET {path}"), body);
    }
    run.terminate();
    let run = run.wait();
    assert_eq!(run.code, Some(0), "{run}");
    seen.finished("run, JSON log (RUST_LOG=debug)", &run);

    // The daemon, human log, as journald shows it.
    let human = with(&[
        ("FELHOM_CONFIG", &for_run("human").display().to_string()),
        ("FELHOM_LOG_FORMAT", "human"),
        ("RUST_LOG", "debug"),
    ]);
    let mut run = Controller::spawn_with(None, &["run"], &human);
    run.wait_log_where("a cycle's end", |l| l.raw.contains("cycle finished"));
    run.terminate();
    let run = run.wait();
    assert_eq!(run.code, Some(0), "{run}");
    seen.finished("run, human log (RUST_LOG=debug)", &run);

    let hooks = receiver.wait_for("a webhook event", |r| r.path == "/hook");
    assert_eq!(hooks.json()["event"], "done");
    for request in receiver.requests() {
        seen.add(
            format!("notification {} {}", request.method, request.path),
            request.body,
        );
    }
    for dir in [env.state_dir(), state("json"), state("human")] {
        seen.files_under(&dir);
    }
    let looked_at = seen.assert_none_holds(&token);
    assert!(looked_at.len() >= 16, "{looked_at:#?}");
}

/// A config with an `[agent]` that cannot be reached (nothing listens on port 9).
fn agent_section(line: &str) -> String {
    format!(
        "[agent]\nurl = \"https://127.0.0.1:9\"\npin_sha256 = \"{}\"\nconnect_timeout = \"1s\"\n{line}\n",
        vec!["ab"; 32].join(":")
    )
}

#[test]
fn a_bad_config_of_any_kind_never_shows_the_token() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("controller.toml");
    let shown = file.display().to_string();
    let t = random_token();
    let mut seen = Outputs::default();
    // (what, a line of `[agent]` with `{t}` for the token, the line the error names; exit 2)
    let agent_cases = [
        ("a bad escape", "token = \"ab\\q{t}\"", 5),
        ("a missing quote", "token = \"{t}", 5),
        ("a duplicate key", "token = \"{t}\"\ntoken = \"{t}\"", 6),
        ("no quotes", "token = {t}", 5),
        ("the token alone", "{t}", 5),
        ("the wrong type", "token = [\"{t}\"]", 5),
        ("the token as the file", "token_file = \"{t}\"", 5),
    ];
    let notify_cases = [
        (
            "a notify URL with a syntax error",
            "webhook = \"https://h.example/{t}\" x",
            2,
        ),
        (
            "a notify URL of another scheme",
            "ntfy = \"ftp://h.example/{t}\"",
            2,
        ),
    ];
    let texts =
        agent_cases
            .into_iter()
            .map(|(what, line, n)| (what, agent_section(&line.replace("{t}", &t)), n))
            .chain(notify_cases.into_iter().map(|(what, line, n)| {
                (what, format!("[notify]\n{}\n", line.replace("{t}", &t)), n)
            }));
    for (what, text, line) in texts {
        std::fs::write(&file, &text).expect("write the config");
        let check = run_with(&file, &["check"], &DEBUG);
        assert_eq!(check.code, Some(2), "{what}: {check}");
        assert!(
            check.stderr.contains(&format!("{shown} line {line}")),
            "{what}: names the file and line {line}: {check}"
        );
        seen.finished(&format!("check, {what}"), &check);
    }
    // The token file's content cannot be used: `check` fails on the agent (exit 1).
    let token_file = dir.path().join("agent.token");
    for (what, content) in [
        ("a token file of two lines", format!("{t}\n{t}\n")),
        (
            "a token file with a control character",
            format!("{t}\u{7f}"),
        ),
    ] {
        std::fs::write(&token_file, content).expect("write the token file");
        let line = format!("token_file = \"{}\"", token_file.display());
        std::fs::write(&file, agent_section(&line)).expect("write the config");
        let check = run_with(&file, &["check"], &DEBUG);
        assert_eq!(check.code, Some(1), "{what}: {check}");
        assert!(
            check.stderr.contains(&token_file.display().to_string()),
            "{what}: names the file: {check}"
        );
        seen.finished(&format!("check, {what}"), &check);
    }
    // The token in the variable, another key broken.
    std::fs::write(
        &file,
        format!("{}[quiesce]\nmax_quiesce = \"soon\"\n", agent_section("")),
    )
    .expect("write the config");
    let check = run_with(
        &file,
        &["check"],
        &[("RUST_LOG", "debug"), ("FELHOM_AGENT__TOKEN", &t)],
    );
    assert_eq!(check.code, Some(2), "{check}");
    assert!(check.stderr.contains("quiesce.max_quiesce"), "{check}");
    seen.finished("check, FELHOM_AGENT__TOKEN and a bad duration", &check);
    seen.assert_none_holds(&t);
}

#[test]
fn a_wrong_pin_or_a_refused_token_never_shows_the_token() {
    let env = Env::new("tknpin");
    let token = random_token();
    let agent = Agent::start(&env, |c| c.token = token.clone());
    let mut seen = Outputs::default();
    let other_pin = {
        let pin = agent.access().pin;
        let other = if pin.starts_with("ab") { "cd" } else { "ab" };
        vec![other; 32].join(":")
    };
    let wrong_pin = env
        .config(&Access {
            pin: other_pin,
            ..agent.access()
        })
        .named("wrong-pin.toml")
        .write();
    // `status` reports the agent's error and exits 0: nothing needs a person on this guest.
    for (args, code) in [
        (&["check"][..], 1),
        (&["once", "--force"][..], 1),
        (&["status"][..], 0),
    ] {
        let out = run_with(&wrong_pin, args, &DEBUG);
        assert_eq!(out.code, Some(code), "{out}");
        assert!(
            out.stdout.contains("certificate pin mismatch")
                || out.stderr.contains("certificate pin mismatch"),
            "{out}"
        );
        seen.finished(&format!("{}, a wrong pin", args.join(" ")), &out);
    }
    // The agent knows another token: the planted one is refused (401).
    let refused = random_token();
    let wrong_token = env
        .config(&Access {
            token: refused.clone(),
            ..agent.access()
        })
        .named("wrong-token.toml")
        .write();
    let out = run_with(&wrong_token, &["check"], &DEBUG);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.contains("refused the token"), "{out}");
    seen.finished("check, a refused token", &out);
    seen.assert_none_holds(&token);
    seen.assert_none_holds(&refused);
}

#[test]
fn the_token_from_a_file_a_credential_or_the_variable_is_accepted_and_never_shown() {
    let env = Env::new("tknsrc");
    let token = random_token();
    let agent = Agent::start(&env, |c| c.token = token.clone());
    let mut seen = Outputs::default();
    let accepted = |out: &Finished, what: &str| {
        assert_eq!(out.code, Some(0), "{what}: {out}");
        assert!(
            out.stdout.contains("pin and token accepted"),
            "{what}: {out}"
        );
    };
    let token_file = env.path().join("agent.token");
    std::fs::write(&token_file, format!("{token}\n")).expect("token file");
    let from_file = env
        .config(&agent.access())
        .remove("agent.token")
        .set("agent.token_file", token_file.display().to_string())
        .named("from-file.toml")
        .write();
    let out = run_with(&from_file, &["check"], &DEBUG);
    accepted(&out, "agent.token_file");
    seen.finished("check, agent.token_file", &out);

    // The unit's credential wins over a token_file that holds a stale token.
    let credentials = env.path().join("credentials");
    std::fs::create_dir(&credentials).expect("credentials dir");
    std::fs::write(credentials.join("agent-token"), format!("{token}\n")).expect("credential");
    std::fs::write(&token_file, "a-stale-token\n").expect("stale token file");
    let out = run_with(
        &from_file,
        &["check"],
        &[
            ("RUST_LOG", "debug"),
            ("CREDENTIALS_DIRECTORY", &credentials.display().to_string()),
        ],
    );
    accepted(&out, "the credential agent-token");
    assert!(
        out.stderr.contains("the systemd credential agent-token"),
        "the log says where the token came from: {out}"
    );
    seen.finished("check, the credential agent-token", &out);

    // The variable works, and under systemd it is warned about.
    let no_token = env
        .config(&agent.access())
        .remove("agent.token")
        .named("no-token.toml")
        .write();
    let out = run_with(
        &no_token,
        &["check"],
        &[
            ("RUST_LOG", "debug"),
            ("FELHOM_AGENT__TOKEN", &token),
            ("INVOCATION_ID", "0123456789abcdef0123456789abcdef"),
        ],
    );
    accepted(&out, "FELHOM_AGENT__TOKEN");
    assert!(
        out.stderr
            .contains("the agent token comes from FELHOM_AGENT__TOKEN in a systemd unit"),
        "{out}"
    );
    seen.finished("check, FELHOM_AGENT__TOKEN under systemd", &out);
    seen.assert_none_holds(&token);
}

/// What the test app writes to its log when it cannot start (its running flag is a directory).
const APP_ERROR: &str = "cannot write /data/running";

#[test]
fn an_apps_output_stays_out_of_status_metrics_and_notifications() {
    let mut env = Env::new("appout");
    let app = env.deploy("notes", &StackSpec::app());
    env.up(&app);
    let agent = Agent::start(&env, |c| c.faults = vec![Fault::Hang]);
    let receiver = Receiver::answering();
    let config = env
        .config(&agent.access())
        .set("status.listen", "127.0.0.1:0")
        .set("notify.webhook", receiver.url("/hook"))
        .set("notify.ntfy", receiver.url("/topic"))
        .write();
    let vars = with(&DEBUG);
    let mut run = Controller::spawn_with(Some(&config), &["run"], &vars);
    let port = run.endpoint_port();
    run.wait_log("backup started");
    // While it is down, a directory takes the place of the app's running flag: it dies at every
    // start, logging why, and is stranded.
    std::fs::create_dir(env.data_dir().join(&app).join("running")).expect("a directory");
    agent.clear_faults();
    run.wait_log("cycle finished");
    let status = http_get(port, "/status").expect("/status answers");
    let metrics = http_get(port, "/metrics").expect("/metrics answers");
    let failed = receiver.wait_for("the failed event", |r| {
        r.path == "/hook" && r.json()["event"] == "failed"
    });
    let stranded = receiver.wait_for("the stranded event", |r| {
        r.path == "/hook" && r.json()["event"] == "stranded"
    });
    receiver.wait_for("an ntfy message", |r| r.path == "/topic");
    // The app's words are in what root reads: the history, `status --json`.
    let shown = run_with(&config, &["status", "--json"], &DEBUG);
    assert!(
        shown.stdout.contains(APP_ERROR),
        "the container's log lines stay available to root: {shown}"
    );
    run.terminate();
    let run = run.wait();
    assert_eq!(run.code, Some(0), "{run}");
    assert!(!container(&app).running, "the app cannot start");

    let doc: serde_json::Value = serde_json::from_str(&status).expect("/status is JSON");
    assert_eq!(doc["stranded"], serde_json::json!([app]), "{doc}");
    assert!(!doc["last"]["errors"].as_array().expect("errors").is_empty());
    let mut seen = Outputs::default();
    seen.add("GET /status", status);
    seen.add("GET /metrics", metrics);
    for request in receiver.requests() {
        seen.add(
            format!("notification {} {}", request.method, request.path),
            request.body,
        );
    }
    seen.assert_none_holds(APP_ERROR);
    for event in [failed.json(), stranded.json()] {
        let message = event["message"].as_str().expect("a message");
        assert!(!message.contains('\n'), "one line: {event}");
        assert!(message.chars().count() <= 210, "bounded: {event}");
    }
}
