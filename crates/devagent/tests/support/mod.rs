//! Shared by the integration tests: an agent on a temporary directory, and `curl` as an
//! independent HTTPS client.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use felhom_devagent::{AgentConfig, DevAgent};
use serde_json::Value;

pub const TOKEN: &str = "test-token-5f3a";

/// Every test body runs under this bound, so a hang fails the test instead of the suite.
pub async fn bounded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(90), fut)
        .await
        .expect("the test did not finish within 90 s")
}

pub struct Fixture {
    pub agent: DevAgent,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn source(&self) -> PathBuf {
        self.dir.path().join("source")
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    pub async fn get(&self, path: &str) -> Reply {
        curl(&self.agent.url(), Some(TOKEN), "GET", path, None, 10).await
    }

    pub async fn post(&self, path: &str, body: &str) -> Reply {
        curl(&self.agent.url(), Some(TOKEN), "POST", path, Some(body), 10).await
    }

    pub async fn status(&self) -> Value {
        let reply = self.get("/backup/status").await;
        assert_eq!(reply.code, 200, "GET /backup/status: {reply:?}");
        reply.json()
    }

    /// Polls the status until `phase`, recording every distinct phase seen on the way.
    pub async fn wait_for_phase(&self, phase: &str, within: Duration) -> (Value, Vec<String>) {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen: Vec<String> = Vec::new();
        loop {
            let status = self.status().await;
            let current = status["phase"].as_str().unwrap_or("<none>").to_owned();
            if seen.last() != Some(&current) {
                seen.push(current.clone());
            }
            if current == phase {
                return (status, seen);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "phase {phase} not reached within {within:?}; seen {seen:?}, last {status}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Fills `source` with a small tree like a stack's data: nested files, a mode-600 file, a symlink.
pub fn write_sample_data(source: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(source.join("postgres/base")).expect("mkdir source");
    std::fs::write(source.join("postgres/PG_VERSION"), "16\n").expect("write");
    std::fs::write(source.join("postgres/base/1234"), vec![7u8; 20_000]).expect("write");
    std::fs::write(source.join(".env"), "SECRET=s3cr3t\n").expect("write");
    std::fs::set_permissions(source.join(".env"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    std::os::unix::fs::symlink("postgres/PG_VERSION", source.join("version")).expect("symlink");
}

pub async fn start_agent(configure: impl FnOnce(&mut AgentConfig)) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("source");
    write_sample_data(&source);
    let mut cfg = AgentConfig::new(TOKEN, &source, dir.path().join("out"));
    configure(&mut cfg);
    let agent = DevAgent::start(cfg).await.expect("start the agent");
    Fixture { agent, dir }
}

#[derive(Debug)]
pub struct Reply {
    /// The HTTP status; 0 when curl got no answer.
    pub code: u16,
    pub body: String,
    /// curl's exit status (28: timed out).
    pub curl_exit: i32,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// One request with curl: `-k` because these tests check the pin separately (and curl cannot
/// pin a self-signed leaf by hash).
pub async fn curl(
    base: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&str>,
    max_time_secs: u32,
) -> Reply {
    let mut cmd = tokio::process::Command::new("/usr/bin/curl");
    cmd.args(["-sk", "-X", method, "-w", "\n%{http_code}"])
        .args(["--max-time", &max_time_secs.to_string()])
        .kill_on_drop(true)
        .stdin(Stdio::null());
    if let Some(token) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    if let Some(body) = body {
        cmd.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ]);
    }
    cmd.arg(format!("{base}{path}"));
    let out = tokio::time::timeout(
        Duration::from_secs(u64::from(max_time_secs) + 10),
        cmd.output(),
    )
    .await
    .expect("curl outlived its own --max-time")
    .expect("run curl");
    let stdout = String::from_utf8(out.stdout).expect("curl output is UTF-8");
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Reply {
        code: code.trim().parse().expect("curl printed the status code"),
        body: body.to_owned(),
        curl_exit: out.status.code().unwrap_or(-1),
    }
}
