//! One schedule for every wait that repeats: the status polls while the stacks are down, the
//! outcome polls after an early resume, and a stack's start retries.

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

#[cfg(test)]
mod tests {
    use super::*;

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
