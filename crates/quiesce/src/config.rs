//! The knobs of the cycle: plain values, no parsing (the binary reads the config file).

use std::time::Duration;

/// How the cycle behaves. [`Default`] gives SPEC §5's defaults.
#[derive(Debug, Clone)]
pub struct CycleConfig {
    /// Whether the daemon's loop runs cycles at all; off, it only recovers (`quiesce.enabled`).
    pub enabled: bool,
    /// How often the loop asks the agent whether a backup is due.
    pub due_poll_interval: Duration,
    /// The longest pause between two `GET /backup/status` while waiting. Polling starts at
    /// [`CycleConfig::first_poll`] right after the backup starts and grows by half each
    /// time up to this (while the stacks are down, also to at most 0.7 s or a tenth of the
    /// time waited: a snapshot is noticed soon).
    pub status_poll_interval: Duration,
    /// The first pause between `POST /backup` and the first `GET /backup/status`.
    pub first_poll: Duration,
    /// The longest the stacks stay down, from the first stop until the resume begins.
    pub max_quiesce: Duration,
    /// Resume on `snapshotted` rather than on `done` (SPEC §2 rule 8).
    pub resume_on_snapshot: bool,
    /// The least time between the end of a cycle and the start of the next.
    pub min_cycle_interval: Duration,
    /// The least time between the end of a failed cycle and the start of the next.
    pub failure_cooldown: Duration,
    /// How many stacks are stopped or started at once; 1 keeps the strict order.
    pub parallelism: usize,
    /// How many times a stack's start is tried before it is reported stranded.
    pub restart_attempts: u32,
    /// The pause after the first failed start; it doubles on each further failure.
    pub restart_backoff: Duration,
    /// The longest one start call may take (the stacks manager's own wait included) before
    /// it counts as a failed attempt.
    pub start_call_timeout: Duration,
    /// How long a resume waits for a Docker engine that cannot be reached before it gives up
    /// with the marker kept; `None`: as long as it takes (the daemon). `once` and `recover`
    /// wait up to `max_quiesce`.
    pub engine_wait: Option<Duration>,
}

impl Default for CycleConfig {
    fn default() -> Self {
        CycleConfig {
            enabled: true,
            due_poll_interval: Duration::from_secs(60),
            status_poll_interval: Duration::from_secs(2),
            // A snapshot of a small guest can take well under a second; see docs/performance.md.
            first_poll: Duration::from_millis(50),
            max_quiesce: Duration::from_secs(30 * 60),
            resume_on_snapshot: true,
            min_cycle_interval: Duration::from_secs(3600),
            failure_cooldown: Duration::from_secs(3600),
            parallelism: 4,
            restart_attempts: 5,
            restart_backoff: Duration::from_secs(2),
            // The stacks manager's defaults (SPEC §5): start_timeout 120s, stop_timeout 30s,
            // settle 10s.
            start_call_timeout: CycleConfig::start_call_timeout_for(
                Duration::from_secs(120),
                Duration::from_secs(30),
                Duration::from_secs(10),
            ),
            engine_wait: None,
        }
    }
}

impl CycleConfig {
    /// These knobs for the daemon: a resume waits for an engine that is away as long as it
    /// takes (SPEC §2 rule 6), the stacks' only chance is that it comes back.
    pub fn for_daemon(self) -> Self {
        CycleConfig {
            engine_wait: None,
            ..self
        }
    }

    /// These knobs for a command run by hand or by a timer (`once`, `recover`): a resume
    /// waits for an engine that is away up to `max_quiesce`, then gives up with the marker
    /// kept for the daemon (SPEC §2 rule 6). Call it once `max_quiesce` is set.
    pub fn for_command(self) -> Self {
        CycleConfig {
            engine_wait: Some(self.max_quiesce),
            ..self
        }
    }

    /// The bound of one start call for a stacks manager that waits up to `start_timeout` for a
    /// stack to run, then watches it for `settle`, and gives each container up to
    /// `stop_timeout` to stop: its whole wait, plus a stop's grace, plus 30 s for the engine and
    /// compose themselves. Past this a start is a failed attempt, not a stuck resume. A start
    /// that may first wait out a stop in flight (whose grace may be far longer, or unbounded)
    /// is also given `max_quiesce`.
    pub fn start_call_timeout_for(
        start_timeout: Duration,
        stop_timeout: Duration,
        settle: Duration,
    ) -> Duration {
        start_timeout + settle + stop_timeout + Duration::from_secs(30)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_start_call_bound_is_the_formula_on_the_stacks_defaults() {
        // SPEC §5's stacks defaults: start_timeout 120s, stop_timeout 30s, settle 10s.
        let bound = CycleConfig::start_call_timeout_for(
            Duration::from_secs(120),
            Duration::from_secs(30),
            Duration::from_secs(10),
        );
        assert_eq!(bound, Duration::from_secs(190));
        assert_eq!(bound, CycleConfig::default().start_call_timeout);
    }

    #[test]
    fn the_daemon_waits_for_the_engine_as_long_as_it_takes_a_command_up_to_max_quiesce() {
        let config = CycleConfig {
            max_quiesce: Duration::from_secs(600),
            ..CycleConfig::default()
        };
        assert_eq!(config.clone().for_daemon().engine_wait, None);
        let command = config.for_command();
        assert_eq!(command.engine_wait, Some(Duration::from_secs(600)));
        assert_eq!(command.for_daemon().engine_wait, None);
    }
}
