//! One client connection through the proxy: its request line read, held where a hold
//! matches it, then forwarded both ways to a new upstream connection — cut with the event
//! streams when it is one.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::watch;

/// Requests whose request line contains `pattern` wait `delay` (`None`: until released)
/// before they are forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hold {
    pub(super) pattern: String,
    pub(super) delay: Option<Duration>,
}

/// What the test tells every connection, beyond on and off.
#[derive(Debug)]
pub(super) struct Control {
    pub(super) holds: watch::Sender<Vec<Hold>>,
    /// Bumped to cut every event stream open then.
    pub(super) cuts: watch::Sender<u64>,
    /// Event streams opened so far.
    pub(super) streams: AtomicU64,
}

/// The longest request head read before the request line must have come.
const MAX_HEAD: usize = 64 * 1024;

/// Forwards one client connection to a new upstream connection, both ways, until either side
/// closes; held first where a hold matches its request line, and cut with the event streams
/// when it is one. A client whose upstream cannot be reached is dropped (as a dead engine
/// would).
pub(super) async fn forward(mut client: UnixStream, upstream: PathBuf, control: Arc<Control>) {
    let Some(head) = read_head(&mut client).await else {
        return;
    };
    let end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    let line = String::from_utf8_lossy(&head[..end]).into_owned();
    if !wait_for_holds(&line, &control).await {
        return;
    }
    let Ok(mut engine) = UnixStream::connect(&upstream).await else {
        return;
    };
    if engine.write_all(&head).await.is_err() {
        return;
    }
    if is_event_stream(&line) {
        let mut cuts = control.cuts.subscribe();
        control.streams.fetch_add(1, Ordering::SeqCst);
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut engine) => {}
            // Both ends are dropped: the client sees its stream reset.
            _ = cuts.changed() => {}
        }
    } else {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
    }
}

/// What the client sent until its request line is complete (or [`MAX_HEAD`] bytes); `None`
/// when it closed first.
async fn read_head(client: &mut UnixStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < MAX_HEAD {
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    Some(head)
}

/// Waits as long as a hold matching the request `line` says; `false` when the proxy is gone
/// meanwhile.
async fn wait_for_holds(line: &str, control: &Control) -> bool {
    let mut holds = control.holds.subscribe();
    loop {
        let delay = holds
            .borrow_and_update()
            .iter()
            .find(|h| line.contains(&h.pattern))
            .map(|h| h.delay);
        match delay {
            None => return true,
            Some(Some(delay)) => {
                tokio::time::sleep(delay).await;
                return true;
            }
            // Until the holds change; then looked at again.
            Some(None) => {
                if holds.changed().await.is_err() {
                    return false;
                }
            }
        }
    }
}

/// Whether the request line asks for the engine's event stream (`GET /events?...`).
fn is_event_stream(line: &str) -> bool {
    let path = line.split(' ').nth(1).unwrap_or_default();
    path.split('?')
        .next()
        .unwrap_or_default()
        .ends_with("/events")
}
