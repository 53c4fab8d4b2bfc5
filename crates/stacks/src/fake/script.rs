//! What a test scripts the fake to do: trouble with a call, facts the engine will tell, how
//! long the calls take, what a hook does.

use std::time::Duration;

use crate::HookError;

/// What goes wrong with one call of one stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// The call returns [`StacksError::Other`](crate::StacksError::Other) with this message.
    Fail(String),
    /// The call fails this many times, then succeeds.
    FailTimes(u32),
    /// The call never returns.
    Hang,
    /// The call panics (a bug in a collaborator).
    Panic,
    /// The call returns [`StacksError::EngineUnreachable`](crate::StacksError::EngineUnreachable).
    EngineAway,
}

/// Something the engine will tell about one service's container in the v2 calls. Each fact
/// happens once; add it again to make it happen again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    /// Its next stop runs out of grace: reported `killed`, exit 137.
    Killed,
    /// Right after its next stop, someone starts it again: it runs, with a `StartedAt` after
    /// the stop, until it is stopped again.
    RestartedAfterStop,
    /// Right after the stack's next stop, a new container of this service appears and runs
    /// (id `<stack>-<service>-new<N>`).
    AppearsAfterStop,
    /// Its next start by `start_containers` dies within the settle window (exit 2): the call
    /// fails with [`StacksError::StartFailed`](crate::StacksError::StartFailed) and the container is down.
    DiesAfterStart,
    /// Its next stop is left in flight: the stop call signals it and never returns (the caller
    /// gives up on it), and the container goes on running until a start waits for that stop
    /// (`stop_may_be_in_flight`), the stop ends by [`FakeStacks::finish_stops`](super::FakeStacks::finish_stops), or a start
    /// without the flag counts it as started — after which the stop ends and it is down.
    StopInFlight,
}

/// How long the fake's v2 calls take (all zero by default): `stop` and `start` inside a
/// slot, `ready` (until running, healthy and settled) after the start, outside any slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    /// A stack's stop calls, holding a slot.
    pub stop: Duration,
    /// A stack's start calls, holding a slot.
    pub start: Duration,
    /// The wait after the start calls, holding no slot.
    pub ready: Duration,
}

/// What one hook run by the fake's [`Stacks::run_hook`](crate::Stacks::run_hook) does. Scripted per service
/// ([`FakeStacks::hook`](super::FakeStacks::hook)), each used once, in order; without one a hook exits 0 at once,
/// with no output. Every run is logged `hook STACK SERVICE COMMAND-LINE`; a container that
/// does not run in the model is [`HookError::NotRunning`] before any script is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookScript {
    /// Runs for `after` (tokio's clock), then exits `code` having printed `output`. One whose
    /// `after` is longer than its timeout is killed at the timeout: `timed_out`, exit 137.
    Exit {
        /// Its exit code.
        code: i64,
        /// What it printed.
        output: String,
        /// How long it runs.
        after: Duration,
    },
    /// Never ends by itself: killed at its timeout.
    Hang,
    /// The call fails with this error (e.g. [`HookError::NotKilled`]).
    Fail(HookError),
    /// The call never returns (an engine that hangs).
    Stuck,
}

impl HookScript {
    /// Exits `code` at once with `output`.
    pub fn exit(code: i64, output: &str) -> Self {
        Self::Exit {
            code,
            output: output.to_owned(),
            after: Duration::ZERO,
        }
    }
}
