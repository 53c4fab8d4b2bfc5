//! The engine proxy against the real engine and the real `docker` CLI: on, off ("the engine is
//! away"), on again; keep-alive connections and the streaming `/events` endpoint.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use felhom_testsupport::process::{self, wait_bounded};
use felhom_testsupport::EngineProxy;

/// Only a hang takes this long.
const BOUND: Duration = Duration::from_secs(60);

fn proxy_in(dir: &tempfile::TempDir) -> EngineProxy {
    EngineProxy::start(dir.path().join("docker.sock")).expect("the proxy starts")
}

/// `docker version` through the proxy: the server's version, or the CLI's complaint.
fn docker_version(proxy: &EngineProxy) -> Result<String, String> {
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_HOST", proxy.docker_host()).args([
        "version",
        "--format",
        "{{.Server.Version}}",
    ]);
    let out = process::run(&mut cmd, BOUND).map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(out.stdout.trim().to_owned())
    } else {
        Err(out.stderr)
    }
}

#[test]
fn the_docker_cli_works_through_the_proxy_on_off_and_on_again() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let proxy = proxy_in(&dir);
    assert!(proxy.docker_host().starts_with("unix:///"));

    let version = docker_version(&proxy).expect("the engine answers through the proxy");
    assert!(!version.is_empty());
    let accepted = proxy.accepted();
    assert!(accepted >= 1, "the CLI went through the proxy");

    proxy.off().expect("switches off");
    assert!(!proxy.path().exists(), "off removes the socket path");
    let err = docker_version(&proxy).expect_err("the engine is away");
    assert!(
        err.contains("Cannot connect") || err.contains("connect"),
        "the CLI says it cannot connect: {err}"
    );
    assert_eq!(proxy.accepted(), accepted, "nothing was accepted while off");

    proxy.on().expect("switches on again");
    assert_eq!(
        docker_version(&proxy).expect("the engine answers again"),
        version
    );
    // Switching to the state it is in is a no-op.
    proxy.on().expect("on twice");
    proxy.off().expect("off");
    proxy.off().expect("off twice");
}

/// Sends `GET /_ping` on `stream` and reads one response: its status line.
fn ping(stream: &mut BufReader<UnixStream>) -> std::io::Result<String> {
    stream
        .get_mut()
        .write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")?;
    let mut status = String::new();
    stream.read_line(&mut status)?;
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if stream.read_line(&mut header)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body)?;
    Ok(status)
}

#[test]
fn a_keep_alive_connection_carries_several_requests_and_is_cut_by_off() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let proxy = proxy_in(&dir);
    let stream = UnixStream::connect(proxy.path()).expect("connects");
    stream
        .set_read_timeout(Some(BOUND))
        .expect("a read timeout");
    let mut stream = BufReader::new(stream);
    for _ in 0..3 {
        let status = ping(&mut stream).expect("the engine answers");
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    }
    assert_eq!(proxy.accepted(), 1, "one connection carried every request");

    proxy.off().expect("switches off");
    // The open connection is cut: the next request finds it closed, not the engine.
    assert!(
        ping(&mut stream).is_err(),
        "a connection open at `off` is cut"
    );
    assert!(
        UnixStream::connect(proxy.path()).is_err(),
        "a new connection is refused while off"
    );
}

#[test]
fn the_events_stream_flows_through_the_proxy_and_ends_at_off() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let proxy = proxy_in(&dir);
    let mut events = Command::new("docker")
        .env("DOCKER_HOST", proxy.docker_host())
        .args([
            "events",
            "--filter",
            "type=network",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker events starts");
    let stdout = events.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });

    // An event made on the real engine directly must arrive through the stream. The stream
    // may not be subscribed yet when the first network is made: make one until one arrives.
    let name = format!("felhom-proxy-test-{}", std::process::id());
    let mut seen = false;
    for attempt in 0..20 {
        let net = format!("{name}-{attempt}");
        let mut create = Command::new("docker");
        create.args(["network", "create", &net]);
        process::checked(&mut create, BOUND).expect("a network is created");
        let mut rm = Command::new("docker");
        rm.args(["network", "rm", &net]);
        process::checked(&mut rm, BOUND).expect("the network is removed");
        // Other tests on the shared engine make networks too: theirs are passed over.
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(3)) {
            if line.contains(&name) {
                seen = true;
                break;
            }
        }
        if seen {
            break;
        }
    }
    assert!(seen, "no network event came through the proxy");

    proxy.off().expect("switches off");
    // The stream is cut: the CLI ends (it does not hang on a dead connection).
    let status = wait_bounded(&mut events, BOUND);
    if status.is_none() {
        let _ = events.kill();
        let _ = events.wait();
    }
    assert!(
        status.is_some(),
        "docker events ended when the proxy went off"
    );
}

#[test]
fn an_upstream_that_is_not_there_drops_the_client() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let proxy = EngineProxy::start_to(dir.path().join("p.sock"), dir.path().join("nothing.sock"))
        .expect("the proxy starts");
    let mut stream = UnixStream::connect(proxy.path()).expect("the proxy accepts");
    stream
        .set_read_timeout(Some(BOUND))
        .expect("a read timeout");
    let _ = stream.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n");
    let mut buf = [0u8; 16];
    assert_eq!(
        stream.read(&mut buf).unwrap_or(0),
        0,
        "the client sees its connection closed"
    );
}

#[test]
fn dropping_the_proxy_removes_its_socket() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("docker.sock");
    // A stale socket file (a crashed test) does not keep the proxy from binding.
    std::fs::write(&path, b"").expect("a stale file");
    let proxy = EngineProxy::start(&path).expect("the proxy starts over a stale file");
    assert!(path.exists());
    drop(proxy);
    assert!(!path.exists(), "the socket is removed on drop");
}

/// Sends one request line on a new connection; returns the connection, to read the answer.
fn send(proxy: &EngineProxy, request: &str) -> BufReader<UnixStream> {
    let mut stream = UnixStream::connect(proxy.path()).expect("connects");
    stream
        .set_read_timeout(Some(BOUND))
        .expect("a read timeout");
    stream
        .write_all(format!("{request} HTTP/1.1\r\nHost: docker\r\n\r\n").as_bytes())
        .expect("sent");
    BufReader::new(stream)
}

#[test]
fn a_held_request_waits_until_released_while_others_are_answered() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let proxy = proxy_in(&dir);
    proxy.hold("/version", None);
    let mut held = send(&proxy, "GET /version");
    held.get_ref()
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("a short read timeout");
    let mut line = String::new();
    let err = held.read_line(&mut line).expect_err("no answer while held");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    // Another call is answered meanwhile: the engine is slow for one call only.
    let mut other = send(&proxy, "GET /_ping");
    let mut status = String::new();
    other.read_line(&mut status).expect("answered");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    proxy.release();
    held.get_ref()
        .set_read_timeout(Some(BOUND))
        .expect("a read timeout");
    let mut status = String::new();
    held.read_line(&mut status).expect("answered once released");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");

    // A hold with a delay lets the request through after it; the empty pattern holds all.
    proxy.hold("", Some(Duration::from_millis(300)));
    let asked = std::time::Instant::now();
    let mut delayed = send(&proxy, "GET /_ping");
    let mut status = String::new();
    delayed
        .read_line(&mut status)
        .expect("answered after the delay");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(asked.elapsed() >= Duration::from_millis(300));
}

/// Reads lines of an event stream's response until its headers are over.
fn stream_headers(stream: &mut BufReader<UnixStream>) -> String {
    let mut status = String::new();
    stream.read_line(&mut status).expect("a status line");
    loop {
        let mut header = String::new();
        stream.read_line(&mut header).expect("a header");
        if header == "\r\n" || header.is_empty() {
            return status;
        }
    }
}

#[test]
fn cut_streams_resets_the_event_streams_only() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let proxy = proxy_in(&dir);
    let mut events = send(&proxy, "GET /events");
    let status = stream_headers(&mut events);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(proxy.streams(), 1);
    // A keep-alive connection that is not a stream.
    let stream = UnixStream::connect(proxy.path()).expect("connects");
    stream
        .set_read_timeout(Some(BOUND))
        .expect("a read timeout");
    let mut plain = BufReader::new(stream);
    assert!(ping(&mut plain)
        .expect("answered")
        .starts_with("HTTP/1.1 200"));

    proxy.cut_streams();
    let mut rest = Vec::new();
    // The stream ends (EOF or reset); it does not go on until the read times out.
    if let Err(e) = events.read_to_end(&mut rest) {
        assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the stream was not cut: {e}"
        );
    }
    assert!(
        ping(&mut plain)
            .expect("still answered")
            .starts_with("HTTP/1.1 200"),
        "other connections go on"
    );
    let mut again = send(&proxy, "GET /events");
    let status = stream_headers(&mut again);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(proxy.streams(), 2, "a new stream is not cut");
}
