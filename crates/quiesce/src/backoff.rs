//! One schedule for every wait that repeats: the status polls while the stacks are down, the
//! outcome polls after an early resume, a stack's start retries, the looks at an engine that
//! is away, and the slow retries of a stranded stack.

use crate::machine::Event;
use crate::CycleConfig;
use std::time::Duration;

/// The pause before the next try: it grows by `growth` after each answer up to `cap`, and
/// faster after an error, up to `error_cap`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Backoff {
    delay: Duration,
    growth: f64,
    cap: Duration,
    error_cap: Duration,
}

/// The least pause after an error: an agent that fails fast is not hammered.
const ERROR_FLOOR: Duration = Duration::from_millis(500);
/// The least cap of the pause after errors; the bound (not a retry count) ends the wait.
const ERROR_CAP: Duration = Duration::from_secs(30);

impl Backoff {
    /// Starts at `first`, grows by `growth` up to `cap`; errors double the pause (at least
    /// [`ERROR_FLOOR`]) up to the larger of `cap` and [`ERROR_CAP`].
    pub(crate) fn new(first: Duration, growth: f64, cap: Duration) -> Backoff {
        Backoff {
            delay: first,
            growth,
            cap,
            error_cap: cap.max(ERROR_CAP),
        }
    }

    /// The pause before the next try.
    pub(crate) fn delay(&self) -> Duration {
        self.delay
    }

    /// The try was answered: the next pause is `growth` times longer, up to the cap.
    pub(crate) fn grow(&mut self) {
        self.delay = self.delay.mul_f64(self.growth).min(self.cap);
    }

    /// The try failed: back off faster.
    pub(crate) fn grow_after_error(&mut self) {
        self.delay = (self.delay.max(ERROR_FLOOR) * 2).min(self.error_cap);
    }
}

/// How much the pause between two status polls grows while the stacks are down. Every poll
/// pause is idle downtime for the apps: on average a snapshot is noticed half a pause late.
/// Growing by half (rather than doubling) keeps that lateness near a quarter of the time
/// waited so far, for a few more requests: about 12 in the first 10 s from a 50 ms start,
/// against 8 when doubling from 100 ms; `status_poll_interval` still caps the pause.
const WAIT_GROWTH: f64 = 1.5;

/// While the stacks are down, a status poll's pause is also at most the larger of
/// [`LATENESS_FLOOR`] and a tenth of the time waited so far: a snapshot of a few seconds
/// (a real guest's) is then noticed at most 0.7 s late, not up to `status_poll_interval`
/// late, for about 18 requests in the first 10 s (issue 11 allows about 20). After 20 s of
/// waiting `status_poll_interval` caps the pause again, as before.
const LATENESS_FLOOR: Duration = Duration::from_millis(700);

/// The first pause of the outcome wait after an early resume (or the interval, if shorter).
const OUTCOME_FIRST: Duration = Duration::from_millis(500);

impl Backoff {
    /// The slow schedule of the stranded stacks' retries (and of a marker held back because
    /// the stranded list could not take its stacks): 2 min, doubling up to 30 min.
    pub(crate) fn stranded() -> Backoff {
        Backoff::new(
            Duration::from_secs(2 * 60),
            2.0,
            Duration::from_secs(30 * 60),
        )
    }

    /// The status polls while the stacks are down (see [`Backoff::pause_while_down`]).
    pub(crate) fn backup_wait(config: &CycleConfig) -> Backoff {
        Backoff::new(config.first_poll, WAIT_GROWTH, config.status_poll_interval)
    }

    /// The status polls after an early resume: the stacks run, only the record waits.
    pub(crate) fn outcome_wait(config: &CycleConfig) -> Backoff {
        let first = config.status_poll_interval.min(OUTCOME_FIRST);
        Backoff::new(first, 2.0, config.status_poll_interval)
    }

    /// The pause before the next status poll while the stacks are down, `waited` after the
    /// first: the schedule's, but never more than [`LATENESS_FLOOR`] or a tenth of `waited`.
    pub(crate) fn pause_while_down(&self, waited: Duration) -> Duration {
        self.delay.min(LATENESS_FLOOR.max(waited / 10))
    }

    /// The next poll's pause after `event`: longer after an answer, backed off after an error.
    pub(crate) fn pace(&mut self, event: Event) {
        match event {
            Event::StatusError => self.grow_after_error(),
            _ => self.grow(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_while_down_is_never_late_by_more_than_a_tenth_of_the_time_waited() {
        let mut wait = Backoff::backup_wait(&CycleConfig::default());
        for _ in 0..20 {
            wait.pace(Event::Status(crate::machine::Observed::Running));
        }
        assert_eq!(wait.delay(), Duration::from_secs(2), "the interval caps it");
        assert_eq!(
            wait.pause_while_down(Duration::from_secs(1)),
            LATENESS_FLOOR
        );
        assert_eq!(
            wait.pause_while_down(Duration::from_secs(15)),
            Duration::from_millis(1500)
        );
        assert_eq!(
            wait.pause_while_down(Duration::from_secs(60)),
            Duration::from_secs(2)
        );
        wait.pace(Event::StatusError);
        assert_eq!(wait.delay(), Duration::from_secs(4), "an error backs off");
    }

    #[test]
    fn answers_grow_the_pause_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), 2.0, Duration::from_millis(350));
        let mut seen = vec![b.delay()];
        for _ in 0..3 {
            b.grow();
            seen.push(b.delay());
        }
        let ms: Vec<u128> = seen.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 350, 350]);
    }

    #[test]
    fn errors_back_off_from_half_a_second_up_to_thirty_seconds() {
        let mut b = Backoff::new(Duration::from_millis(50), 1.5, Duration::from_secs(2));
        let mut seen = vec![];
        for _ in 0..8 {
            b.grow_after_error();
            seen.push(b.delay().as_secs_f64());
        }
        assert_eq!(seen, [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
        // A long interval is never shortened by the error cap.
        let mut slow = Backoff::new(Duration::from_secs(60), 2.0, Duration::from_secs(60));
        slow.grow_after_error();
        assert_eq!(slow.delay(), Duration::from_secs(60));
    }
}
