//! Leaf pinning against a real TLS server (SPEC §3): the pinned certificate is accepted, any
//! other is refused with both pins named, and a server that shows the pinned certificate
//! without its key is refused too — over TLS 1.3 and TLS 1.2.

mod support;

use std::time::Duration;

use felhom_agentapi::{AgentApi, AgentError, Pin};
use serde_json::json;
use support::{
    assert_no_token, bounded, client_for, impostor_config, json, server_config, Identity,
    TlsServer, TOKEN,
};

const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

fn idle(_: &support::Seen) -> support::Reply {
    json(200, json!({"id": null, "phase": "idle"}))
}

#[tokio::test]
async fn pinned_certificate_is_accepted_over_tls13_and_tls12() {
    bounded(async {
        for versions in [TLS13, TLS12] {
            let identity = Identity::generate();
            let server =
                TlsServer::with_config(server_config(&identity, versions), identity.pin(), idle)
                    .await;
            let status = server
                .client()
                .backup_status()
                .await
                .expect("the pinned server answers");
            assert_eq!(status.id, None);
            assert_eq!(server.seen().len(), 1);
        }
    })
    .await;
}

#[tokio::test]
async fn pin_given_with_colons_and_upper_case_is_the_same_pin() {
    bounded(async {
        let server = TlsServer::start(idle).await;
        let written = server.pin.to_string().to_uppercase();
        assert!(written.contains(':'));
        let pin: Pin = written.parse().expect("pin parses");
        let client = client_for(&server.url(), TOKEN, pin, Duration::from_secs(5));
        client
            .backup_status()
            .await
            .expect("same pin, other spelling");
    })
    .await;
}

#[tokio::test]
async fn other_certificate_is_refused_and_both_pins_are_shown() {
    bounded(async {
        let server = TlsServer::start(idle).await;
        let expected = Identity::generate().pin();
        let client = client_for(&server.url(), TOKEN, expected, Duration::from_secs(5));

        let err = client
            .backup_status()
            .await
            .expect_err("a certificate other than the pinned one is refused");
        match &err {
            AgentError::PinMismatch {
                request,
                expected: e,
                actual,
            } => {
                assert_eq!(*request, "GET /backup/status");
                assert_eq!(*e, expected);
                assert_eq!(*actual, server.pin);
            }
            other => panic!("expected PinMismatch, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.starts_with("GET /backup/status: certificate pin mismatch"),
            "{text}"
        );
        assert!(text.contains(&expected.to_string()), "{text}");
        assert!(text.contains(&server.pin.to_string()), "{text}");
        assert_no_token(&err);
        // The handshake failed, so the token never went to the impostor.
        assert!(
            server.seen().is_empty(),
            "a request reached an unpinned server"
        );
    })
    .await;
}

#[tokio::test]
async fn pinned_certificate_signed_with_another_key_is_refused() {
    bounded(async {
        for versions in [TLS13, TLS12] {
            let genuine = Identity::generate();
            let thief = Identity::generate();
            let server = TlsServer::with_config(
                impostor_config(&genuine, &thief, versions),
                genuine.pin(),
                idle,
            )
            .await;
            let err = server
                .client()
                .start_backup("cycle-1")
                .await
                .expect_err("a server without the pinned key is refused");
            assert!(
                matches!(
                    err,
                    AgentError::Tls {
                        request: "POST /backup",
                        ..
                    }
                ),
                "expected a TLS error, got {err:?}"
            );
            assert!(
                err.to_string().starts_with("POST /backup: TLS handshake"),
                "{err}"
            );
            assert_no_token(&err);
            assert!(server.seen().is_empty(), "a request reached the impostor");
        }
    })
    .await;
}

#[tokio::test]
async fn a_plain_http_server_is_a_tls_error_not_a_hang() {
    bounded(async {
        // Speaks HTTP without TLS: the client's ClientHello gets a plaintext answer.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut tcp, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let client = client_for(
            &format!("https://{addr}"),
            TOKEN,
            Identity::generate().pin(),
            Duration::from_secs(5),
        );
        let err = client.backup_due().await.expect_err("not TLS");
        assert!(
            matches!(
                err,
                AgentError::Tls {
                    request: "GET /backup/due",
                    ..
                }
            ),
            "expected a TLS error, got {err:?}"
        );
        task.abort();
    })
    .await;
}
