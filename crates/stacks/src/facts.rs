//! The plain values of the v2 calls of [`Stacks`](crate::Stacks): which containers a call is
//! about, and what the engine said about them. No engine type appears here: the quiesce crate
//! records these values in its marker and cycle record, and its tests build them by hand.

use chrono::{DateTime, Utc};

/// One container of a stack, as the controller records it (marker, record, stranded list).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerRef {
    /// The engine's full id.
    pub id: String,
    /// Its name, without the leading `/`.
    pub name: String,
    /// Its `com.docker.compose.service` label (any text: only the compose fallback needs a
    /// valid service name).
    pub service: String,
}

/// The engine's account of one container's stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedContainer {
    /// The container.
    pub container: ContainerRef,
    /// Whether it ran when its stop came. `false`: it had exited before (on its own, or by
    /// someone else's stop) and was sent no signal; `exited_at` is then that earlier exit.
    pub was_running: bool,
    /// Just before its stop call (this process's clock).
    pub stop_requested_at: DateTime<Utc>,
    /// `State.FinishedAt` after the stop (the engine's clock); `None` if the engine has none.
    pub exited_at: Option<DateTime<Utc>>,
    /// `State.ExitCode` after the stop.
    pub exit_code: Option<i64>,
    /// Its grace ran out and the engine killed it. The rule: the kernel killed it for memory
    /// (`State.OOMKilled`), or it ended by SIGKILL (exit code 137) although its own stop
    /// signal is not SIGKILL, and no earlier than its grace after the stop request (less a
    /// tolerance of a second, or half the grace if that is shorter, for the call's way to the
    /// engine and the engine's clock). A SIGKILL well before the end of its grace is someone
    /// else's kill or the app's own exit code, not a grace that ran out (`exit_code` still
    /// says 137); a container whose `StopTimeout` is negative is never killed by the engine.
    pub killed: bool,
}

/// What a stop did, container by container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopReport {
    /// Every container of the request that still existed, in the request's order.
    pub containers: Vec<StoppedContainer>,
    /// Containers of the request that no longer existed (removed since they were listed).
    pub vanished: Vec<ContainerRef>,
}

/// What the engine says about a stopped stack now: the check at the snapshot, and the
/// re-check before `POST /backup`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownCheck {
    /// Containers of the list that run now, or whose `StartedAt` is after `down_since` (they
    /// ran meanwhile even if they stopped again), each with that `StartedAt`.
    pub ran: Vec<(ContainerRef, DateTime<Utc>)>,
    /// Containers of the project that are not in the list and run now, or were created or
    /// started after `down_since` (Watchtower, a redeploy, a `compose up`). One-off
    /// (`compose run`) containers are not the stack's and are left out.
    pub appeared: Vec<ContainerRef>,
}

impl DownCheck {
    /// Whether the stack stayed down: nothing ran, nothing appeared.
    pub fn stayed_down(&self) -> bool {
        self.ran.is_empty() && self.appeared.is_empty()
    }

    /// Leaves out the containers `left_out` says are not the stop's (those of services a
    /// cycle keeps running, say).
    pub fn leave_out(&mut self, left_out: impl Fn(&ContainerRef) -> bool) {
        self.ran.retain(|(c, _)| !left_out(c));
        self.appeared.retain(|c| !left_out(c));
    }
}

/// How to start a stack again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartRequest {
    /// Exactly these containers; those that vanished are brought back by compose for their
    /// service, with a warning, where [`StartRequest::recreate_vanished`] allows it. Nothing
    /// outside the list is started.
    pub containers: Vec<ContainerRef>,
    /// A stop of these containers may still be in flight (the stop was abandoned by the bound,
    /// a cancellation, a crash): a running container of the list is waited for until it has
    /// exited, and never sent another stop signal; bounded by its grace plus a margin, summed
    /// along the chain of containers that stop before it. One still running after that bound
    /// counts as started. Without it, a running container counts as started at once.
    pub stop_may_be_in_flight: bool,
    /// Containers of the list that no longer exist are recreated by compose for their
    /// service. Set it only where the caller itself just stopped them (its own cycle): a
    /// removal then is an accident (a prune) that would leave the app down. Off, a vanished
    /// container ends the start with [`crate::StacksError::Vanished`] before anything is
    /// started or created: what an operator removed stays removed.
    pub recreate_vanished: bool,
}

/// What a successful start noticed without failing it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartReport {
    /// Services with a health check that did not pass before the stop (unhealthy, or still
    /// starting): they were waited for only until they ran, not until healthy.
    pub not_waited_for_health: Vec<String>,
    /// Services whose containers had vanished while the stack was down (or that joined the
    /// network namespace of one that had), brought back with compose `up`.
    pub recreated: Vec<String>,
    /// Containers found running when their start came, counted as started (started by
    /// someone else, or still running at the end of the wait for a stop in flight). Known
    /// where the start looked at them first: without this instance's record of their stop
    /// (after a crash), or with `stop_may_be_in_flight`; a start right after this instance's
    /// own stop asks the engine nothing before its start calls, to keep the downtime short.
    pub already_running: Vec<ContainerRef>,
    /// Containers whose stop was still in flight: waited for until they exited, then started.
    pub waited_for_stop: Vec<ContainerRef>,
    /// When every container of the start ran (and was healthy, where it was waited for):
    /// the end of the stack's downtime. The watch for `settle` that follows is not downtime.
    /// `None` when nothing was started.
    pub ready_at: Option<DateTime<Utc>>,
}
