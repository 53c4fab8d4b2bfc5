//! An engine that goes away in the middle of a stop or a start: the error is
//! `EngineUnreachable` (the cycle then waits for the engine instead of spending attempts).
//!
//! The engine here is a stand-in on a unix socket that answers the listing and the inspect of
//! one running container like Docker does, and then drops the connection of the call under
//! test (and every ping), as a dockerd that is restarted mid-call does; or, for the compose fallback, lists no
//! container at all and then goes away with its socket, as a dockerd that stops does.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use felhom_stacks::{
    ContainerRef, EngineStacks, Slots, Stacks, StacksConfig, StacksError, StartRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

const STACK: &str = "gone";
const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Which call the stand-in drops.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// `GET /containers/<id>/json`, the inspect before the stop.
    Inspect,
    /// `POST /containers/<id>/stop`.
    Stop,
    /// The event stream, right after its headers (the start itself succeeds).
    Events,
    /// Knows no container (so a start hands the service to the compose fallback), and goes
    /// away, socket and all, after the first listing: the fallback's own look at the project.
    Compose,
}

/// The stand-in's one container, as a cycle recorded it.
fn web() -> ContainerRef {
    ContainerRef {
        id: ID.to_owned(),
        name: "gone-web-1".to_owned(),
        service: "web".to_owned(),
    }
}

/// Starts the stand-in's container, as after a stop of this instance.
async fn start(stacks: &EngineStacks) -> Result<felhom_stacks::StartReport, StacksError> {
    let request = StartRequest {
        containers: vec![web()],
        stop_may_be_in_flight: false,
        recreate_vanished: true,
    };
    stacks
        .start_containers(STACK, &request, &Slots::new(1))
        .await
}

fn listing() -> String {
    format!(
        r#"[{{"Id":"{ID}","Names":["/gone-web-1"],"State":"running","Labels":{{"com.docker.compose.project":"{STACK}","com.docker.compose.service":"web","com.docker.compose.oneoff":"False"}}}}]"#
    )
}

fn inspect() -> String {
    format!(
        r#"{{"Id":"{ID}","Name":"/gone-web-1","State":{{"Status":"running","Running":true,"StartedAt":"2026-01-01T00:00:00.000000000Z","ExitCode":0}},"Config":{{"Labels":{{"com.docker.compose.project":"{STACK}","com.docker.compose.service":"web","com.docker.compose.depends_on":""}}}},"HostConfig":{{"NetworkMode":"gone_default"}}}}"#
    )
}

/// Serves one request per connection, as bollard makes them (no idle pooling).
async fn serve(listener: UnixListener, socket: PathBuf, cut: Cut) {
    let listings = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            return;
        };
        let listings = Arc::clone(&listings);
        let socket = socket.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let head = String::from_utf8_lossy(&buf).into_owned();
            let line = head.lines().next().unwrap_or_default().to_owned();
            let path = line.split(' ').nth(1).unwrap_or_default();
            let path = path.split('?').next().unwrap_or_default();
            let body = match (line.split(' ').next().unwrap_or_default(), path) {
                // An engine that has gone answers no ping either (a ping is how a cut stream
                // or a slow call is told from an engine that is away).
                ("GET", "/_ping") => None,
                ("GET", "/containers/json") if matches!(cut, Cut::Compose) => Some("[]".to_owned()),
                ("GET", "/containers/json") => Some(listing()),
                ("GET", p) if p.ends_with("/json") && matches!(cut, Cut::Compose) => {
                    let _ = conn
                        .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 34\r\nConnection: close\r\n\r\n{\"message\":\"No such container: x\"}")
                        .await;
                    return;
                }
                ("GET", p) if p == format!("/containers/{ID}/json") => {
                    (!matches!(cut, Cut::Inspect)).then(inspect)
                }
                ("POST", p) if p.ends_with("/stop") && matches!(cut, Cut::Stop) => None,
                ("POST", p) if p.ends_with("/start") => {
                    let _ = conn
                        .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                        .await;
                    return;
                }
                ("GET", "/events") => {
                    // The headers of a stream, then the engine is gone.
                    let _ = conn
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                        .await;
                    return;
                }
                _ => Some(String::from(r#"{"message":"not in this stand-in"}"#)),
            };
            if let Some(body) = body {
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
            }
            if matches!(cut, Cut::Compose)
                && path == "/containers/json"
                && listings.fetch_add(1, Ordering::SeqCst) == 0
            {
                let _ = std::fs::remove_file(&socket);
            }
            // Otherwise: dropped without an answer, as by an engine that goes away.
        });
    }
}

/// A stand-in engine that cuts `cut`, in a temporary directory that also holds the stacks
/// root with the one stack, and the stacks on it.
fn on_stand_in(cut: Cut) -> (tempfile::TempDir, EngineStacks) {
    let root = tempfile::tempdir().expect("tempdir");
    let socket = root.path().join("engine.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    tokio::spawn(serve(listener, socket.clone(), cut));
    let dir = root.path().join(STACK);
    std::fs::create_dir_all(&dir).expect("stack directory");
    std::fs::write(dir.join("compose.yaml"), "services: {web: {image: x}}\n")
        .expect("compose file");
    let stacks = EngineStacks::new(StacksConfig {
        root: root.path().to_path_buf(),
        start_timeout: Duration::from_secs(20),
        // Longer than the stand-in's event stream lives: the start cannot be over before it
        // ends.
        settle: Duration::from_secs(10),
        ..StacksConfig::default()
    })
    .expect("valid")
    .with_docker_host(format!("unix://{}", socket.display()));
    (root, stacks)
}

/// Runs `call` (bounded: only a hang takes this long), which must fail with the engine
/// unreachable; returns the error's text.
async fn unreachable<T: std::fmt::Debug>(
    call: impl Future<Output = Result<T, StacksError>>,
) -> String {
    let err = tokio::time::timeout(Duration::from_secs(120), call)
        .await
        .expect("bounded")
        .expect_err("the engine is gone");
    let text = err.to_string();
    assert!(err.is_engine_unreachable(), "{text}");
    text
}

#[tokio::test]
async fn an_engine_gone_mid_stop_is_unreachable() {
    let (_root, stacks) = on_stand_in(Cut::Stop);
    let text = unreachable(stacks.stop_containers(STACK, &[web()], &Slots::new(1))).await;
    assert!(
        text.contains(STACK) && text.contains("web") && text.contains("stop"),
        "{text}"
    );
}

#[tokio::test]
async fn an_engine_gone_mid_inspect_is_unreachable() {
    let (_root, stacks) = on_stand_in(Cut::Inspect);
    let text = unreachable(stacks.stop_containers(STACK, &[web()], &Slots::new(1))).await;
    assert!(text.contains(STACK) && text.contains("inspect"), "{text}");
}

#[tokio::test]
async fn an_engine_gone_mid_start_is_unreachable() {
    let (_root, stacks) = on_stand_in(Cut::Events);
    let text = unreachable(start(&stacks)).await;
    assert!(text.contains(STACK), "{text}");
}

/// The compose fallback meets an engine that has gone: compose's "Cannot connect" is the
/// engine unreachable, as the engine calls' own errors are, not a failed command.
#[tokio::test]
async fn an_engine_gone_before_the_compose_fallback_is_unreachable() {
    let (root, stacks) = on_stand_in(Cut::Compose);
    let text = unreachable(start(&stacks)).await;
    assert!(text.contains(STACK) && text.contains(" up "), "{text}");
    assert!(
        !root.path().join("engine.sock").exists(),
        "the stand-in went away before compose ran"
    );
}
