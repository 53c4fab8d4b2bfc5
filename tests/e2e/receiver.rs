//! A real HTTP receiver on 127.0.0.1 for the notification tests: it records every request,
//! and answers `200` — or, told to, reads the request and never answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use felhom_e2e::WAIT;

/// One request as received.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub body: String,
    /// What the receiver's probe said when the request arrived (`true` without a probe).
    pub apps_ran: bool,
}

impl Request {
    /// The body as JSON (a webhook event).
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!("the body of {} {} is not JSON: {e}", self.method, self.path)
        })
    }
}

/// The receiver; stops accepting when dropped.
pub(crate) struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    /// Answers every request with `200`.
    pub(crate) fn answering() -> Receiver {
        Receiver::start(true, || true)
    }

    /// Answers every request with `200`, noting in it what `probe` says as it arrives.
    pub(crate) fn answering_with(probe: impl Fn() -> bool + Send + 'static) -> Receiver {
        Receiver::start(true, probe)
    }

    /// Reads every request and never answers (the connection stays open).
    pub(crate) fn silent() -> Receiver {
        Receiver::start(false, || true)
    }

    fn start(answer: bool, probe: impl Fn() -> bool + Send + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sink, halt) = (got.clone(), stop.clone());
        thread::spawn(move || {
            // Unanswered connections are kept open until the receiver is dropped.
            let mut held = Vec::new();
            while !halt.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let sink = sink.clone();
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                        if let Some((mut request, stream)) = read_request(stream) {
                            request.apps_ran = probe();
                            sink.lock().unwrap_or_else(|p| p.into_inner()).push(request);
                            if answer {
                                let mut stream = stream;
                                let _ = stream.write_all(
                                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                                );
                            } else {
                                held.push(stream);
                            }
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Receiver { port, got, stop }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request so far.
    pub(crate) fn requests(&self) -> Vec<Request> {
        self.got.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits (bounded by [`WAIT`]) until a request matches.
    pub(crate) fn wait_for(&self, what: &str, matches: impl Fn(&Request) -> bool) -> Request {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(r) = self.requests().into_iter().find(|r| matches(r)) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver did not get {what}; it got {:#?}",
                self.requests()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A port on which nothing listens (connections are refused).
pub(crate) fn down_url(path: &str) -> String {
    let port = felhom_e2e::free_port();
    format!("http://127.0.0.1:{port}{path}")
}

fn read_request(stream: TcpStream) -> Option<(Request, TcpStream)> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    let request = Request {
        method,
        path,
        body: String::from_utf8_lossy(&body).into_owned(),
        apps_ran: true,
    };
    Some((request, reader.into_inner()))
}
