//! [`OpsObserver`], the controller's [`Observer`] in a service: what the controller does
//! becomes systemd notifications (`STATUS=`, `WATCHDOG=1`, `EXTEND_TIMEOUT_USEC` while a stop
//! resumes stacks), metrics, and `[notify]` events. Every call only queues or sets something:
//! nothing here may delay a cycle.

use crate::brief;
use crate::metrics::Metrics;
use crate::systemd::{Notification, ServiceManager};
use felhom_notify::{Event, EventKind, Notifier};
use felhom_quiesce::machine::Phase;
use felhom_quiesce::{Notice, NoticeKind, Observer, Overview, TICK};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long each `EXTEND_TIMEOUT_USEC` asks for while a stop resumes stacks: a few ticks, so
/// that the extension lapses soon after a wedged loop stops ticking.
const EXTEND_BY: Duration = Duration::from_secs(3 * TICK.as_secs());

/// What the process tells its service manager, the metrics and the notification targets.
pub struct OpsObserver {
    manager: Arc<dyn ServiceManager>,
    notifier: Option<Notifier>,
    metrics: Arc<Metrics>,
    /// Half of `WATCHDOG_USEC` when the service manager watches this process.
    watchdog: Option<Duration>,
    seen: Mutex<Seen>,
    stopping: AtomicBool,
}

/// What was last reported, so that only changes are.
#[derive(Default)]
struct Seen {
    status: String,
    last_cycle: Option<String>,
    fed: Option<Instant>,
}

impl std::fmt::Debug for OpsObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsObserver")
            .field("manager", &self.manager)
            .field("notifier", &self.notifier)
            .field("watchdog", &self.watchdog)
            .finish_non_exhaustive()
    }
}

impl OpsObserver {
    /// The registry the observer reports into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// An observer that notifies `manager`, sends through `notifier` (if `[notify]` is set)
    /// and counts into `metrics`.
    pub fn new(
        manager: Arc<dyn ServiceManager>,
        notifier: Option<Notifier>,
        metrics: Arc<Metrics>,
    ) -> OpsObserver {
        let watchdog = manager.watchdog_interval();
        if watchdog.is_some_and(|every| every < TICK) {
            tracing::warn!(
                "WatchdogSec is below {}s: the loop ticks only every {}s, so systemd may \
                 restart a healthy daemon; raise WatchdogSec",
                2 * TICK.as_secs(),
                TICK.as_secs()
            );
        }
        OpsObserver {
            manager,
            notifier,
            metrics,
            watchdog,
            seen: Mutex::new(Seen::default()),
            stopping: AtomicBool::new(false),
        }
    }

    /// `READY=1`: the status listener is up and the loop runs (its first work, the crash
    /// recovery, shows in `STATUS=` and `felhom_recovering`).
    pub fn ready(&self) {
        self.manager.notify(&Notification::Ready);
    }

    /// The daemon begins to stop: `STOPPING=1`, and from now on every tick extends the
    /// manager's stop timeout while the stacks come back.
    pub fn stopping(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        self.manager.notify(&Notification::Stopping);
        self.extend();
    }

    /// Waits up to `bound` for notifications still in flight (before the process exits).
    pub async fn drain(&self, bound: Duration) {
        if let Some(notifier) = &self.notifier {
            notifier.drain(bound).await;
        }
    }

    fn extend(&self) {
        self.manager.notify(&Notification::ExtendTimeout(EXTEND_BY));
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Observer for OpsObserver {
    fn changed(&self, overview: &Overview) {
        let text = status_line(overview);
        let finished = {
            let mut seen = self.seen();
            let finished = match &overview.last {
                Some(r) if seen.last_cycle.as_deref() != Some(r.cycle_id.as_str()) => {
                    seen.last_cycle = Some(r.cycle_id.clone());
                    Some(r)
                }
                _ => None,
            };
            if seen.status != text {
                seen.status = text.clone();
                self.manager.notify(&Notification::status(&text));
            }
            finished
        };
        if let Some(record) = finished {
            self.metrics.cycle_finished(record);
        }
        self.metrics.overview(overview);
    }

    fn tick(&self) {
        if let Some(every) = self.watchdog {
            let mut seen = self.seen();
            // Fed on the first tick after half the interval, so a burst of ticks (a new wait
            // starts ticking at once) does not flood the manager.
            if seen.fed.is_none_or(|at| at.elapsed() >= every / 2) {
                seen.fed = Some(Instant::now());
                self.manager.notify(&Notification::Watchdog);
            }
        }
        if self.stopping.load(Ordering::SeqCst) {
            self.extend();
        }
    }

    fn notice(&self, notice: &Notice) {
        let Some(notifier) = &self.notifier else {
            return;
        };
        let Some(event) = event_of(notice) else {
            tracing::debug!(event = ?notice.event, "a notice of a kind this build does not send");
            return;
        };
        let kind = event.event;
        notifier.send(event);
        // The dead-man's switch hears of every cycle's end, whatever `events` says; a
        // recovered cycle took no backup (docs/decisions.md, "Notifications").
        match kind {
            EventKind::Done => notifier.ping(true),
            EventKind::Failed | EventKind::Inconsistent | EventKind::Recovered => {
                notifier.ping(false)
            }
            _ => {}
        }
    }
}

/// The event sent for `notice`: its fields, and one bounded line of the controller's own
/// words. A notification may go to a public ntfy topic: it never carries an app's output.
fn event_of(notice: &Notice) -> Option<Event> {
    let kind = event_kind(notice.event)?;
    let mut event = Event::new(kind, notice_message(notice));
    event.cycle_id = notice.cycle_id.clone();
    event.outcome = notice.outcome.clone();
    event.stacks = notice.stacks.clone();
    event.stranded = notice.stranded.clone();
    Some(event)
}

/// The quiesce crate's message, which is made of the notice's fields and the controller's own
/// words only (never an error's text: it may be a failed start's with the container's log
/// lines), cut to one bounded line all the same; a failed cycle's says where to look. The
/// errors themselves stay in the journal and the history.
fn notice_message(notice: &Notice) -> String {
    if notice.event != NoticeKind::Failed {
        return brief::one_line(&notice.message);
    }
    brief::one_line(&format!(
        "{}; why: `felhom-controller status` and the journal on the guest",
        notice.message
    ))
}

fn event_kind(kind: NoticeKind) -> Option<EventKind> {
    Some(match kind {
        NoticeKind::Done => EventKind::Done,
        NoticeKind::Failed => EventKind::Failed,
        NoticeKind::Inconsistent => EventKind::Inconsistent,
        NoticeKind::Stranded => EventKind::Stranded,
        NoticeKind::Recovered => EventKind::Recovered,
        NoticeKind::EngineUnreachable => EventKind::EngineUnreachable,
        NoticeKind::MarkerCorrupt => EventKind::MarkerCorrupt,
        _ => return None,
    })
}

/// The one line `systemctl status` shows: the start-up recovery, the cycle's phase, or when
/// the next check is.
fn status_line(overview: &Overview) -> String {
    if overview.recovering {
        return "recovering: bringing back the stacks of an interrupted cycle and the stranded \
                stacks (the loop's first work)"
            .to_owned();
    }
    let phase = match overview.phase {
        None => None,
        Some(Phase::Quiescing) => Some("stopping the app stacks"),
        Some(Phase::BackingUp) => Some("stacks down, the backup runs"),
        Some(Phase::Resuming { .. }) => Some("starting the app stacks again"),
        Some(Phase::AwaitingOutcome) => Some("stacks back, awaiting the backup's outcome"),
        Some(Phase::Finished(_)) => Some("finishing the cycle"),
    };
    match (phase, overview.next_check_at) {
        (Some(p), _) => format!("cycle: {p}"),
        (None, Some(at)) => format!("idle; next due check at {}", at.format("%H:%M:%S UTC")),
        (None, None) => "idle".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(event: NoticeKind, message: &str) -> Notice {
        Notice {
            event,
            cycle_id: Some("c-1".into()),
            outcome: Some("failed".into()),
            stacks: vec!["notes".into(), "photos".into()],
            stranded: vec!["notes".into()],
            message: message.to_owned(),
        }
    }

    /// The quiesce crate's message of a failed cycle whose start failed.
    const FAILED: &str =
        "backup cycle ended failed; stranded: notes; 2 error(s), in the cycle's record";

    #[test]
    fn a_failed_cycle_is_told_with_where_to_look() {
        let event = event_of(&notice(NoticeKind::Failed, FAILED)).expect("sent");
        assert_eq!(event.event, EventKind::Failed);
        assert_eq!(
            event.message,
            "backup cycle ended failed; stranded: notes; 2 error(s), in the cycle's record; \
             why: `felhom-controller status` and the journal on the guest"
        );
        assert_eq!(event.stacks, ["notes", "photos"]);
        assert_eq!(event.stranded, ["notes"]);
        assert_eq!(event.cycle_id.as_deref(), Some("c-1"));
        assert_eq!(event.outcome.as_deref(), Some("failed"));
    }

    #[test]
    fn every_notice_is_one_bounded_line() {
        for kind in [
            NoticeKind::Done,
            NoticeKind::Failed,
            NoticeKind::Stranded,
            NoticeKind::Recovered,
            NoticeKind::EngineUnreachable,
            NoticeKind::MarkerCorrupt,
        ] {
            let long = format!("{}\nsecond line", "x".repeat(5 * brief::MAX_CHARS));
            let event = event_of(&notice(kind, &long)).expect("sent");
            assert!(!event.message.contains('\n'), "{kind:?}: {}", event.message);
            assert!(
                event.message.chars().count() <= brief::MAX_CHARS + 4,
                "{kind:?}: {}",
                event.message
            );
            assert!(!event.message.contains("second line"), "{kind:?}");
        }
        // A message of ours that fits is sent as it is.
        let event = event_of(&notice(
            NoticeKind::Recovered,
            "recovered an interrupted cycle: 2 stack(s) started again",
        ))
        .expect("sent");
        assert_eq!(
            event.message,
            "recovered an interrupted cycle: 2 stack(s) started again"
        );
    }

    /// A service manager that records what it is told.
    #[derive(Debug, Default)]
    struct Told {
        sent: Mutex<Vec<String>>,
        watchdog: Option<Duration>,
    }

    impl ServiceManager for Told {
        fn notify(&self, notification: &Notification) {
            self.sent
                .lock()
                .expect("told")
                .push(notification.to_string());
        }
        fn watchdog_interval(&self) -> Option<Duration> {
            self.watchdog
        }
    }

    fn observer(watchdog: Option<Duration>) -> (Arc<Told>, OpsObserver, Arc<Metrics>) {
        let told = Arc::new(Told {
            watchdog,
            ..Told::default()
        });
        let metrics = Arc::new(Metrics::new(Duration::from_secs(60)));
        let observer = OpsObserver::new(told.clone(), None, metrics.clone());
        (told, observer, metrics)
    }

    fn sent(told: &Told) -> Vec<String> {
        told.sent.lock().expect("told").clone()
    }

    #[test]
    fn the_recovery_and_each_phase_are_a_status_line_sent_when_it_changes() {
        let (told, observer, metrics) = observer(None);
        let recovering = Overview {
            recovering: true,
            ..Overview::default()
        };
        observer.changed(&recovering);
        observer.changed(&recovering);
        assert!(metrics.encode().contains("felhom_recovering 1"));
        observer.changed(&Overview {
            phase: Some(Phase::Quiescing),
            ..Overview::default()
        });
        observer.changed(&Overview::default());
        let sent = sent(&told);
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert!(sent[0].starts_with("STATUS=recovering"), "{sent:?}");
        assert_eq!(sent[1], "STATUS=cycle: stopping the app stacks");
        assert_eq!(sent[2], "STATUS=idle");
        let text = metrics.encode();
        assert!(text.contains("felhom_recovering 0"), "{text}");
        assert!(text.contains("felhom_cycle_running 0"), "{text}");
    }

    #[test]
    fn stopping_is_said_once_and_each_tick_then_asks_for_more_time() {
        let (told, observer, _) = observer(None);
        observer.ready();
        observer.tick();
        observer.stopping();
        observer.stopping();
        observer.tick();
        let extend = format!("EXTEND_TIMEOUT_USEC={}", EXTEND_BY.as_micros());
        assert_eq!(
            sent(&told),
            ["READY=1", "STOPPING=1", extend.as_str(), extend.as_str()],
            "no watchdog asked for: none fed"
        );
    }

    #[test]
    fn the_watchdog_is_fed_from_the_ticks_at_most_once_per_half_interval() {
        let (told, observer, _) = observer(Some(Duration::from_secs(3600)));
        observer.tick();
        observer.tick();
        assert_eq!(sent(&told), ["WATCHDOG=1"]);
    }
}
