//! The long-poll extension of `GET /backup/status` (SPEC §3): the request the client sends,
//! its bound (the wait plus `request_timeout`), and the client against the real development
//! agent, with the extension and without it.

mod support;

use std::time::Duration;

use felhom_agentapi::{AgentApi, AgentClient, AgentError, BackupPhase, ClientConfig, Pin, Token};
use felhom_devagent::{AgentConfig, DevAgent, Event, EventKind, Fault};
use serde_json::json;
use support::{bounded, client_for, json, Reply, TlsServer, TOKEN};

/// Far below the waits these tests ask for: an answer within it was not held to the end.
const PROMPT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_long_poll_sends_wait_and_phase_and_a_zero_wait_is_a_plain_request() {
    bounded(async {
        let server =
            TlsServer::start(|_| json(200, json!({"id": "b-1", "phase": "running"}))).await;
        let client = server.client();
        let asks = [
            (BackupPhase::Running, Duration::from_secs(10)),
            (BackupPhase::Snapshotted, Duration::from_millis(2500)),
            (
                BackupPhase::Unknown("verifying & more".to_owned()),
                Duration::from_secs(1),
            ),
            (BackupPhase::Running, Duration::ZERO),
            (
                BackupPhase::Unknown("p".repeat(200)),
                Duration::from_secs(5),
            ),
        ];
        for (phase, wait) in &asks {
            let checked = client
                .backup_status_wait(phase, *wait)
                .await
                .expect("answered");
            assert_eq!(checked.answer.phase, BackupPhase::Running);
            assert!(checked.ignored.is_empty());
        }
        client.backup_status().await.expect("plain");
        let targets: Vec<String> = server.seen().into_iter().map(|s| s.target).collect();
        assert_eq!(
            targets,
            [
                "/backup/status?wait=10&phase=running",
                "/backup/status?wait=3&phase=snapshotted",
                "/backup/status?wait=1&phase=verifying%20%26%20more",
                "/backup/status",
                "/backup/status",
                "/backup/status",
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_long_poll_that_never_answers_times_out_after_the_wait_plus_request_timeout() {
    bounded(async {
        let server = TlsServer::start(|_| Reply::Hang).await;
        let client = client_for(&server.url(), TOKEN, server.pin, Duration::from_millis(500));
        let asked = tokio::time::Instant::now();
        let err = client
            .backup_status_wait(&BackupPhase::Running, Duration::from_secs(1))
            .await
            .expect_err("never answered");
        assert!(
            matches!(err, AgentError::Timeout { after, .. } if after == Duration::from_millis(1500)),
            "{err:?}"
        );
        assert!(
            asked.elapsed() >= Duration::from_millis(1500),
            "cut before the wait ended: {:?}",
            asked.elapsed()
        );
        assert!(err.to_string().starts_with("GET /backup/status: "), "{err}");
        // A plain request keeps its own bound.
        let err = client.backup_status().await.expect_err("never answered");
        assert!(
            matches!(err, AgentError::Timeout { after, .. } if after == Duration::from_millis(500)),
            "{err:?}"
        );
    })
    .await;
}

/// The development agent on a temporary directory, its backups held by fault `hang` (they stay
/// `running` until it is cleared).
struct Agent {
    agent: DevAgent,
    _dir: tempfile::TempDir,
}

impl Agent {
    async fn start(faults: Vec<Fault>) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("source");
        std::fs::create_dir_all(&source).expect("source");
        std::fs::write(source.join("data"), "x").expect("data");
        let mut config = AgentConfig::new(TOKEN, &source, dir.path().join("out"));
        config.faults = faults;
        // Long enough that `snapshotted` is what a woken long-poll sees.
        config.archive_delay = Duration::from_secs(60);
        let agent = DevAgent::start(config).await.expect("the agent starts");
        Agent { agent, _dir: dir }
    }

    fn client(&self, request_timeout: Duration) -> AgentClient {
        AgentClient::new(ClientConfig {
            url: self.agent.url(),
            token: Token::new(TOKEN.to_owned()),
            pin: self.agent.pin().parse::<Pin>().expect("the agent's pin"),
            connect_timeout: Duration::from_secs(2),
            request_timeout,
        })
        .expect("client")
    }

    fn status_requests(&self) -> usize {
        self.agent
            .events()
            .iter()
            .filter(
                |e| matches!(&e.kind, EventKind::Request { path, .. } if path == "/backup/status"),
            )
            .count()
    }
}

fn held(e: &Event) -> bool {
    matches!(e.kind, EventKind::StatusHeld { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phase_change_answers_a_waiting_request_at_once() {
    bounded(async {
        let agent = Agent::start(vec![Fault::Hang]).await;
        let client = agent.client(Duration::from_secs(5));
        let started = client.start_backup("c-1").await.expect("started");

        let waiting = {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .backup_status_wait(&BackupPhase::Running, Duration::from_secs(60))
                    .await
            })
        };
        agent.agent.wait_for_event(held).await;
        let changed_at = tokio::time::Instant::now();
        agent.agent.clear_faults(); // the backup goes on to its snapshot
        let checked = waiting.await.expect("task").expect("answered");
        assert!(
            changed_at.elapsed() < PROMPT,
            "answered only after {:?}: the change did not end the wait",
            changed_at.elapsed()
        );
        assert_eq!(checked.answer.phase, BackupPhase::Snapshotted);
        assert_eq!(checked.answer.id, Some(started.id));
        assert!(checked.answer.snapshot_at.is_some());
        assert!(checked.ignored.is_empty(), "{:?}", checked.ignored);
        assert_eq!(agent.status_requests(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_without_the_extension_answers_at_once() {
    bounded(async {
        let agent = Agent::start(vec![Fault::Hang, Fault::NoLongPoll]).await;
        let client = agent.client(Duration::from_secs(5));
        client.start_backup("c-1").await.expect("started");
        let asked = tokio::time::Instant::now();
        let checked = client
            .backup_status_wait(&BackupPhase::Running, Duration::from_secs(60))
            .await
            .expect("answered");
        assert!(asked.elapsed() < PROMPT, "held {:?}", asked.elapsed());
        // The same phase, at once: what tells the caller to fall back to its interval.
        assert_eq!(checked.answer.phase, BackupPhase::Running);
        assert!(!agent.agent.events().iter().any(held));
    })
    .await;
}

/// The request budget: polling for 10 s with 3 s waits against an agent whose phase does not
/// change makes a handful of requests — and a held answer longer than `request_timeout` (1 s)
/// is not cut as a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_for_ten_seconds_makes_a_handful_of_requests() {
    bounded(async {
        let agent = Agent::start(vec![Fault::Hang]).await;
        let client = agent.client(Duration::from_secs(1));
        client.start_backup("c-1").await.expect("started");
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut answers = 0;
        while tokio::time::Instant::now() < until {
            let checked = client
                .backup_status_wait(&BackupPhase::Running, Duration::from_secs(3))
                .await
                .expect("a held answer is not a timeout");
            assert_eq!(checked.answer.phase, BackupPhase::Running);
            answers += 1;
        }
        let requests = agent.status_requests();
        assert_eq!(requests, answers);
        assert!(
            (3..=5).contains(&requests),
            "{requests} status requests in 10 s"
        );
        let holds = agent.agent.events().iter().filter(|e| held(e)).count();
        assert_eq!(holds, requests, "every request was held");
    })
    .await;
}
