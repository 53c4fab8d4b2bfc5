//! The plain values of a hook run ([`Stacks::run_hook`](crate::Stacks::run_hook)): what the
//! engine said about a command run in a container, and what kept it from running.

use std::time::Duration;

/// How much of a hook's output is kept: its last 4 KiB (stdout and stderr as they came).
pub const HOOK_OUTPUT_LIMIT: usize = 4096;

/// What a hook did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRun {
    /// Its exit code, from the engine's inspect of the exec once it ended; `None` when the
    /// engine has none (a hook killed at its timeout that had still not ended a few seconds
    /// later).
    pub exit_code: Option<i64>,
    /// The last [`HOOK_OUTPUT_LIMIT`] bytes of its stdout and stderr, interleaved as they
    /// came, as UTF-8 (invalid bytes replaced).
    pub output: String,
    /// From its start until it ended (or was killed).
    pub duration: Duration,
    /// It outlived its timeout and was killed: it counts as failed whatever its exit code
    /// (137 after the kill).
    pub timed_out: bool,
}

impl HookRun {
    /// Whether it succeeded: it ended within its timeout, with exit code 0.
    pub fn succeeded(&self) -> bool {
        !self.timed_out && self.exit_code == Some(0)
    }
}

/// Why a hook could not run, or could not be stopped. Messages name the stack, the service,
/// the container and the hook's program — not the rest of its command line, nor its output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HookError {
    /// The container does not run (exited, created, paused, restarting, removed): no command
    /// can run in it.
    #[error("stack {stack:?}: hook {program:?} in service {service:?} (container {container}): the container is not running ({status})")]
    NotRunning {
        /// The stack.
        stack: String,
        /// The container's service.
        service: String,
        /// The container's name.
        container: String,
        /// The hook's program.
        program: String,
        /// Its state, e.g. `exited`, or `gone` when the engine no longer knows it.
        status: String,
    },
    /// The engine refused or failed a call of the hook (create, start or inspect of the
    /// exec), or the container is not the stack's.
    #[error("stack {stack:?}: hook {program:?} in service {service:?} (container {container}): {detail}")]
    Exec {
        /// The stack.
        stack: String,
        /// The container's service.
        service: String,
        /// The container's name.
        container: String,
        /// The hook's program.
        program: String,
        /// What went wrong.
        detail: String,
    },
    /// The hook outlived its timeout and could not be killed: it may still run.
    #[error("stack {stack:?}: hook {program:?} in service {service:?} (container {container}) outlived its timeout and could not be killed: {detail}")]
    NotKilled {
        /// The stack.
        stack: String,
        /// The container's service.
        service: String,
        /// The container's name.
        container: String,
        /// The hook's program.
        program: String,
        /// Why, with the pid the engine reported, e.g. a missing `CAP_KILL` for a process of
        /// another user.
        detail: String,
    },
    /// The engine cannot be reached: no hook can run, and none can be known to have run.
    #[error("the docker engine cannot be reached: {detail}")]
    EngineUnreachable {
        /// What the attempt to reach it answered.
        detail: String,
    },
    /// The implementation of [`Stacks`](crate::Stacks) does not run hooks (one written before
    /// them).
    #[error("this stacks implementation does not support {call}")]
    Unsupported {
        /// The call: `run_hook`.
        call: &'static str,
    },
}

impl HookError {
    /// Whether this error says only that the engine is away.
    pub fn is_engine_unreachable(&self) -> bool {
        matches!(self, HookError::EngineUnreachable { .. })
    }
}

/// The last `limit` bytes of a stream of output.
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct Tail {
    bytes: std::collections::VecDeque<u8>,
    limit: usize,
}

#[cfg_attr(not(feature = "engine"), allow(dead_code))]
impl Tail {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            bytes: std::collections::VecDeque::with_capacity(limit.min(64 * 1024)),
            limit,
        }
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        let chunk = &chunk[chunk.len().saturating_sub(self.limit)..];
        let overflow = (self.bytes.len() + chunk.len()).saturating_sub(self.limit);
        self.bytes.drain(..overflow);
        self.bytes.extend(chunk);
    }

    /// As text: invalid UTF-8 replaced, and a character cut in two at the front dropped
    /// rather than shown as a replacement.
    pub(crate) fn text(&self) -> String {
        let (front, back) = self.bytes.as_slices();
        let mut all = Vec::with_capacity(front.len() + back.len());
        all.extend_from_slice(front);
        all.extend_from_slice(back);
        let start = all
            .iter()
            .take(3)
            .take_while(|b| (**b & 0b1100_0000) == 0b1000_0000)
            .count();
        String::from_utf8_lossy(&all[start..]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every hook call's `Result` carries it: clippy's `result_large_err` (at most 128 bytes)
    /// fails the users' builds (e.g. the quiesce crate's mocks) once it grows past that.
    #[test]
    fn the_error_stays_within_clippys_large_error_bound() {
        assert!(std::mem::size_of::<HookError>() <= 128);
    }

    #[test]
    fn the_tail_keeps_the_last_bytes() {
        let mut tail = Tail::new(8);
        tail.push(b"abc");
        assert_eq!(tail.text(), "abc");
        tail.push(b"defgh");
        assert_eq!(tail.text(), "abcdefgh");
        tail.push(b"ij");
        assert_eq!(tail.text(), "cdefghij");
        tail.push(b"0123456789xyz");
        assert_eq!(tail.text(), "56789xyz");
        tail.push(b"");
        assert_eq!(tail.text(), "56789xyz");
    }

    #[test]
    fn the_tail_drops_a_character_cut_at_its_front() {
        let mut tail = Tail::new(5);
        // "é" is two bytes: 6 bytes in, the first byte of "é" falls off.
        tail.push("aé€".as_bytes());
        assert_eq!("aé€".len(), 6);
        assert_eq!(tail.text(), "é€");
        tail.push(b"x");
        // Now the tail starts inside "é": its second byte is dropped, not replaced.
        assert_eq!(tail.text(), "€x");
        let mut bad = Tail::new(16);
        bad.push(b"ok \xff end");
        assert_eq!(bad.text(), "ok \u{fffd} end");
    }

    #[test]
    fn a_run_succeeds_only_with_exit_0_in_time() {
        let run = HookRun {
            exit_code: Some(0),
            output: String::new(),
            duration: Duration::from_secs(1),
            timed_out: false,
        };
        assert!(run.succeeded());
        assert!(!HookRun {
            exit_code: Some(3),
            ..run.clone()
        }
        .succeeded());
        assert!(!HookRun {
            timed_out: true,
            ..run.clone()
        }
        .succeeded());
        assert!(!HookRun {
            exit_code: None,
            ..run
        }
        .succeeded());
    }
}
