//! Transport failures against real sockets: timeouts, refused connections, cut and oversized
//! bodies, garbage. Each must be a clear error naming the request — never a panic or a hang
//! (every test runs under the support module's hang guard).

mod support;

use std::time::Duration;

use felhom_agentapi::{AgentApi, AgentError, BackupPhase};
use serde_json::json;
use support::{
    assert_no_token, bounded, client_for, json, Identity, Reply, SilentServer, TlsServer, TOKEN,
};

const LIMIT: usize = 64 * 1024;

/// `200` headers plus `body`, framed by `content-length`.
fn with_length(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `200` headers plus `body` in chunked encoding (no `content-length` to check up front).
fn chunked(body: &str) -> Vec<u8> {
    let mut out =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
    for chunk in body.as_bytes().chunks(1000) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// A valid status body padded with JSON whitespace to exactly `len` bytes.
fn padded_status(len: usize) -> String {
    let body = r#"{"id": "b-1", "phase": "done"}"#;
    format!("{body}{}", " ".repeat(len - body.len()))
}

#[tokio::test]
async fn a_body_of_exactly_64_kib_is_read() {
    bounded(async {
        for framing in [with_length, chunked] {
            let server =
                TlsServer::start(move |_| Reply::Raw(framing(&padded_status(LIMIT)))).await;
            let status = server
                .client()
                .backup_status()
                .await
                .expect("64 KiB is allowed");
            assert_eq!(status.phase, BackupPhase::Done);
        }
    })
    .await;
}

#[tokio::test]
async fn a_body_over_64_kib_is_refused_with_or_without_content_length() {
    bounded(async {
        let close_delimited =
            |body: &str| format!("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{body}").into_bytes();
        let framings: [fn(&str) -> Vec<u8>; 3] = [with_length, chunked, close_delimited];
        for framing in framings {
            let server =
                TlsServer::start(move |_| Reply::Raw(framing(&padded_status(LIMIT + 1)))).await;
            let err = server
                .client()
                .backup_status()
                .await
                .expect_err("over the limit");
            assert!(
                matches!(err, AgentError::BodyTooLarge { limit: LIMIT, .. }),
                "{err:?}"
            );
            assert_eq!(err.to_string(), "GET /backup/status: body over 64 KiB");
        }
    })
    .await;
}

#[tokio::test]
async fn an_announced_huge_body_is_refused_before_it_arrives() {
    bounded(async {
        // Announces 1 GiB and sends only a little, then waits: the client must not wait for
        // (or allocate) the rest.
        let server = TlsServer::start(|_| {
            Reply::RawThenHang(
                b"HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n{\"due\": true".to_vec(),
            )
        })
        .await;
        let err = server.client().backup_due().await.expect_err("too large");
        assert!(matches!(err, AgentError::BodyTooLarge { .. }), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn a_truncated_body_is_an_error() {
    bounded(async {
        let server = TlsServer::start(|_| {
            Reply::Raw(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"due\": true".to_vec())
        })
        .await;
        let err = server.client().backup_due().await.expect_err("cut short");
        assert!(matches!(err, AgentError::Transport { .. }), "{err:?}");
        // The cause is the error's source, not a copy of it in its text.
        let cause = std::error::Error::source(&err)
            .expect("a cause")
            .to_string();
        assert!(!err.to_string().contains(&cause), "{err}: {cause}");
        let text = err.to_string();
        assert!(
            text.starts_with("GET /backup/due: reading the answer's body failed"),
            "{text}"
        );
        assert_no_token(&err);
    })
    .await;
}

#[tokio::test]
async fn a_server_that_accepts_tcp_and_never_answers_times_out() {
    bounded(async {
        let silent = SilentServer::start().await;
        let client = client_for(
            &format!("https://{}", silent.addr),
            TOKEN,
            Identity::generate().pin(),
            Duration::from_millis(300),
        );
        let err = client.backup_status().await.expect_err("no TLS, no answer");
        assert!(
            matches!(err, AgentError::Timeout { after, .. } if after == Duration::from_millis(300)),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "GET /backup/status: the agent did not answer within 300ms"
        );
    })
    .await;
}

#[tokio::test]
async fn a_server_that_completes_tls_and_never_answers_times_out() {
    bounded(async {
        let server = TlsServer::start(|_| Reply::Hang).await;
        let client = client_for(&server.url(), TOKEN, server.pin, Duration::from_millis(300));
        let err = client.start_backup("c").await.expect_err("no answer");
        assert!(matches!(err, AgentError::Timeout { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("POST /backup: the agent did not answer"),
            "{err}"
        );
        // The request did arrive: the bound covers waiting for the answer, not only connecting.
        assert_eq!(server.seen().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_body_that_stalls_times_out() {
    bounded(async {
        let server = TlsServer::start(|_| {
            Reply::RawThenHang(b"HTTP/1.1 200 OK\r\ncontent-length: 40\r\n\r\n{\"id\":".to_vec())
        })
        .await;
        let client = client_for(&server.url(), TOKEN, server.pin, Duration::from_millis(300));
        let err = client.backup_status().await.expect_err("stalled body");
        assert!(matches!(err, AgentError::Timeout { .. }), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn connection_refused_names_the_url() {
    bounded(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        drop(listener);
        let url = format!("https://{addr}");
        let client = client_for(
            &url,
            TOKEN,
            Identity::generate().pin(),
            Duration::from_secs(5),
        );
        let err = client.backup_due().await.expect_err("nobody listens");
        assert!(matches!(err, AgentError::Connect { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("GET /backup/due: connection refused ({url})")
        );
        assert_no_token(&err);
    })
    .await;
}

#[tokio::test]
async fn a_server_that_closes_without_answering_is_an_error() {
    bounded(async {
        let server = TlsServer::start(|_| Reply::Raw(Vec::new())).await;
        let err = server
            .client()
            .backup_status()
            .await
            .expect_err("no answer");
        assert!(matches!(err, AgentError::Transport { .. }), "{err:?}");
        assert!(err.to_string().starts_with("GET /backup/status: "), "{err}");
        assert_no_token(&err);
    })
    .await;
}

#[tokio::test]
async fn garbage_instead_of_http_is_an_error() {
    bounded(async {
        let server =
            TlsServer::start(|_| Reply::Raw(b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec())).await;
        let err = server.client().backup_due().await.expect_err("not HTTP");
        assert!(matches!(err, AgentError::Transport { .. }), "{err:?}");
        assert!(err.to_string().starts_with("GET /backup/due: "), "{err}");
    })
    .await;
}

#[tokio::test]
async fn one_client_serves_many_requests_and_clones_share_it() {
    bounded(async {
        let server = TlsServer::start(|seen| {
            if seen.authorized() {
                json(200, json!({"id": "b-1", "phase": "running"}))
            } else {
                json(401, json!({}))
            }
        })
        .await;
        let client = server.client();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let client = client.clone();
            tasks.spawn(async move { client.backup_status().await });
        }
        while let Some(result) = tasks.join_next().await {
            let status = result.expect("task ran").expect("request succeeded");
            assert_eq!(status.phase, BackupPhase::Running);
        }
        assert_eq!(server.seen().len(), 16);
        assert!(server.seen().iter().all(|s| s.authorized()));
    })
    .await;
}

#[tokio::test]
async fn a_base_url_path_is_a_prefix_and_no_url_carries_the_token() {
    bounded(async {
        let server = TlsServer::start(|seen| {
            if seen.target == "/agent/v1/backup/due" {
                json(200, json!({"due": true}))
            } else {
                json(404, json!({}))
            }
        })
        .await;
        let client = client_for(
            &format!("{}/agent/v1/", server.url()),
            TOKEN,
            server.pin,
            Duration::from_secs(5),
        );
        assert!(client.backup_due().await.expect("prefixed path").due);
        for seen in server.seen() {
            assert!(
                !seen.target.contains(TOKEN),
                "token in the URL: {}",
                seen.target
            );
        }
    })
    .await;
}
