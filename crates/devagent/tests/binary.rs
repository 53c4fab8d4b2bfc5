//! The `felhom-devagent` binary as a process: the three lines it prints, the files it writes,
//! flags, and a clean exit on SIGTERM/SIGINT.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use support::{bounded, curl, write_sample_data};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_felhom-devagent");

struct Running {
    child: Child,
    url: String,
    pin: String,
    token: String,
}

/// Starts the binary with `args` (stderr to `stderr_file`) and reads its three lines.
async fn spawn(args: &[&str], stderr_file: &Path) -> Running {
    let stderr = std::fs::File::create(stderr_file).expect("create the stderr file");
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn felhom-devagent");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut read = Vec::new();
    for _ in 0..3 {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the agent printed its lines within 30 s")
            .expect("read stdout")
            .unwrap_or_else(|| {
                panic!(
                    "stdout ended after {read:?}; stderr: {}",
                    std::fs::read_to_string(stderr_file).unwrap_or_default()
                )
            });
        read.push(line);
    }
    let field = |i: usize, name: &str| {
        read[i]
            .strip_prefix(&format!("{name}: "))
            .unwrap_or_else(|| panic!("line {i} is not `{name}: …`: {:?}", read[i]))
            .to_owned()
    };
    Running {
        url: field(0, "url"),
        pin: field(1, "pin"),
        token: field(2, "token"),
        child,
    }
}

async fn signal_and_wait(running: &mut Running, signal: &str) -> Option<i32> {
    let pid = running.child.id().expect("the agent is still running");
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
    let exit = tokio::time::timeout(Duration::from_secs(30), running.child.wait())
        .await
        .expect("the agent exited within 30 s of the signal")
        .expect("wait for the agent");
    exit.code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_its_url_pin_and_token_serves_and_exits_0_on_sigterm() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        write_sample_data(&d.join("source"));
        std::fs::write(d.join("token"), "  file-token-77\n").expect("write token file");
        let path = |name: &str| d.join(name).display().to_string();
        let (source, out, token_file, pin_file, events, stderr) = (
            path("source"),
            path("out"),
            path("token"),
            path("pin"),
            path("events.jsonl"),
            d.join("stderr.log"),
        );
        let mut agent = spawn(
            &[
                "--listen",
                "127.0.0.1:0",
                "--token-file",
                &token_file,
                "--source",
                &source,
                "--out",
                &out,
                "--pin-file",
                &pin_file,
                "--events",
                &events,
                "--due",
                "once",
                "--snapshot-delay",
                "100ms",
                "--archive-delay",
                "100ms",
            ],
            &stderr,
        )
        .await;
        assert!(agent.url.starts_with("https://127.0.0.1:"), "{}", agent.url);
        assert_eq!(agent.token, "file-token-77");
        assert_eq!(agent.pin.len(), 95, "{}", agent.pin);
        assert_eq!(
            std::fs::read_to_string(&pin_file).expect("pin file"),
            format!("{}\n", agent.pin)
        );

        let token = Some(agent.token.as_str());
        let due = curl(&agent.url, token, "GET", "/backup/due", None, 10).await;
        assert_eq!(due.json()["due"], true, "{due:?}");
        let started = curl(
            &agent.url,
            token,
            "POST",
            "/backup",
            Some(r#"{"cycle_id":"c-bin"}"#),
            10,
        )
        .await;
        assert_eq!(started.code, 202, "{started:?}");
        let id = started.json()["id"].as_str().expect("id").to_owned();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let status = curl(&agent.url, token, "GET", "/backup/status", None, 10)
                .await
                .json();
            if status["phase"] == "done" {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "not done: {status}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            curl(&agent.url, token, "GET", "/backup/due", None, 10)
                .await
                .json()["due"],
            false,
            "--due once is spent"
        );
        assert!(Path::new(&out).join(format!("{id}.tar")).is_file());

        let timeline = std::fs::read_to_string(&events).expect("events file");
        let names: Vec<String> = timeline
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
                v["event"].as_str().expect("event name").to_owned()
            })
            .filter(|n| n != "request")
            .collect();
        assert_eq!(
            names,
            ["backup_requested", "snapshot_taken", "archive_finished"]
        );

        assert_eq!(signal_and_wait(&mut agent, "TERM").await, Some(0));
        let log = std::fs::read_to_string(&stderr).expect("stderr log");
        assert!(log.contains("/backup/due") && log.contains("202"), "{log}");
        assert!(!log.contains("\u{1b}["), "no colour codes in a log file");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_it_makes_one_and_faults_come_from_flags_and_sigint_stops_it() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        write_sample_data(&d.join("source"));
        let (source, out) = (
            d.join("source").display().to_string(),
            d.join("out").display().to_string(),
        );
        let mut agent = spawn(
            &[
                "--listen",
                "127.0.0.1:0",
                "--source",
                &source,
                "--out",
                &out,
                "--fault",
                "unavailable",
                "--fault",
                "status500:1",
            ],
            &d.join("stderr.log"),
        )
        .await;
        assert_eq!(agent.token.len(), 32, "{}", agent.token);
        assert!(agent
            .token
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));

        let token = Some(agent.token.as_str());
        let post = curl(
            &agent.url,
            token,
            "POST",
            "/backup",
            Some(r#"{"cycle_id":"c"}"#),
            10,
        )
        .await;
        assert_eq!(post.code, 503, "{post:?}");
        assert_eq!(
            curl(&agent.url, token, "GET", "/backup/status", None, 10)
                .await
                .code,
            500
        );
        assert_eq!(
            curl(&agent.url, token, "GET", "/backup/status", None, 10)
                .await
                .code,
            200
        );
        assert_eq!(
            curl(&agent.url, Some("guess"), "GET", "/backup/due", None, 10)
                .await
                .code,
            401
        );

        assert_eq!(signal_and_wait(&mut agent, "INT").await, Some(0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_exit_2_and_a_bad_source_exits_1_naming_it() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        write_sample_data(&d.join("source"));
        let source = d.join("source").display().to_string();
        let out = d.join("out").display().to_string();
        let run = |args: Vec<String>| async move {
            tokio::time::timeout(
                Duration::from_secs(30),
                Command::new(BIN).args(args).kill_on_drop(true).output(),
            )
            .await
            .expect("exited within 30 s")
            .expect("run felhom-devagent")
        };
        let strings = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();

        let bad_fault = run(strings(&[
            "--source", &source, "--out", &out, "--fault", "explode",
        ]))
        .await;
        assert_eq!(bad_fault.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&bad_fault.stderr).contains("explode"));

        let bad_due = run(strings(&[
            "--source",
            &source,
            "--out",
            &out,
            "--due",
            "every:soon",
        ]))
        .await;
        assert_eq!(bad_due.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&bad_due.stderr).contains("every:soon"));

        let missing = d.join("no-such-source").display().to_string();
        let bad_source = run(strings(&[
            "--listen",
            "127.0.0.1:0",
            "--token",
            "t",
            "--source",
            &missing,
            "--out",
            &out,
        ]))
        .await;
        assert_eq!(bad_source.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&bad_source.stderr).contains("no-such-source"));
        assert!(
            bad_source.stdout.is_empty(),
            "nothing printed before it listens"
        );

        // An OS error is shown once, after what the agent was doing.
        let blocker = d.join("a-file");
        std::fs::write(&blocker, b"").expect("a file");
        let under_a_file = blocker.join("out").display().to_string();
        let bad_out = run(strings(&[
            "--listen",
            "127.0.0.1:0",
            "--token",
            "t",
            "--source",
            &source,
            "--out",
            &under_a_file,
        ]))
        .await;
        assert_eq!(bad_out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&bad_out.stderr);
        assert!(
            stderr.contains(&format!("output directory {under_a_file}: ")),
            "{stderr}"
        );
        assert_eq!(stderr.matches("Not a directory").count(), 1, "{stderr}");
    })
    .await;
}
