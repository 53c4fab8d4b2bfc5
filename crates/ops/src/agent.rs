//! The agent as the daemon uses it: its failures counted by kind
//! (`felhom_agent_errors_total{kind}`), so that an operator sees a flaky agent before a failed
//! backup; and an `[agent]` whose settings cannot be used yet kept apart from the rest of the
//! daemon, which goes on recovering markers and retrying stranded stacks without it.

use crate::metrics::Metrics;
use async_trait::async_trait;
use felhom_agentapi::{
    AgentApi, AgentError, Answered, BackupPhase, BackupStart, BackupStatus, Due,
};
use felhom_quiesce::error_chain;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Builds the agent from its settings; the error says (secret-free) why it cannot be used.
type Build = dyn Fn() -> Result<Arc<dyn AgentApi>, String> + Send + Sync;

/// An agent whose calls are counted into the metrics; every call goes through unchanged.
pub struct CountedAgent {
    agent: Source,
    metrics: Arc<Metrics>,
    /// Whether the config keys of a refused token were named since the last answer that was
    /// not a refusal: the daemon's log says them once, not at every due poll.
    told_token: AtomicBool,
}

/// Where the calls go.
enum Source {
    Built(Arc<dyn AgentApi>),
    /// Built at the first call that finds the settings usable; until then each call answers
    /// why not. A token file that appears later, or a credential, is read then.
    Later {
        build: Box<Build>,
        built: Mutex<Option<Arc<dyn AgentApi>>>,
        /// The last reason it could not be built: logged when it changes.
        last: Mutex<Option<String>>,
    },
}

impl std::fmt::Debug for CountedAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountedAgent").finish_non_exhaustive()
    }
}

impl CountedAgent {
    /// `agent`, its failures counted into `metrics`.
    pub fn new(agent: Arc<dyn AgentApi>, metrics: Arc<Metrics>) -> CountedAgent {
        CountedAgent {
            agent: Source::Built(agent),
            metrics,
            told_token: AtomicBool::new(false),
        }
    }

    /// The agent `build` makes: tried at once, and again at each call until it succeeds.
    /// While its settings cannot be used each call fails with why (the daemon's due poll
    /// logs it, the recovery's question about a backup notes it), counted as `config`; the
    /// reason is logged as an error at once and whenever it changes.
    pub fn when_usable(
        build: impl Fn() -> Result<Arc<dyn AgentApi>, String> + Send + Sync + 'static,
        metrics: Arc<Metrics>,
    ) -> CountedAgent {
        let agent = CountedAgent {
            agent: Source::Later {
                build: Box::new(build),
                built: Mutex::new(None),
                last: Mutex::new(None),
            },
            metrics,
            told_token: AtomicBool::new(false),
        };
        // Said now, not at the first due poll, which a cooldown may put an hour away.
        let _ = agent.agent("the daemon's start");
        agent
    }

    /// The agent to call, or the error that stands for its answer.
    fn agent(&self, request: &'static str) -> Result<Arc<dyn AgentApi>, AgentError> {
        let (build, built, last) = match &self.agent {
            Source::Built(agent) => return Ok(agent.clone()),
            Source::Later { build, built, last } => (build, built, last),
        };
        let mut built = built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(agent) = &*built {
            return Ok(agent.clone());
        }
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        match build() {
            Ok(agent) => {
                if last.take().is_some() {
                    tracing::info!("the agent's settings can be used now: backups resume");
                }
                *built = Some(agent.clone());
                Ok(agent)
            }
            Err(why) => {
                if last.as_deref() != Some(why.as_str()) {
                    tracing::error!(
                        "the agent's settings cannot be used: {why}; no backup is taken until \
                         they are fixed (markers are still recovered, stranded stacks retried)"
                    );
                    *last = Some(why.clone());
                }
                self.metrics.agent_error("config");
                Err(AgentError::Other {
                    request,
                    detail: format!("the agent's settings cannot be used: {why}"),
                })
            }
        }
    }

    fn count<T>(&self, answer: Result<T, AgentError>) -> Result<T, AgentError> {
        match &answer {
            Err(e @ AgentError::Unauthorized { .. }) => {
                if !self.told_token.swap(true, Ordering::Relaxed) {
                    tracing::warn!("{}: check agent.token / agent.token_file", error_chain(e));
                }
            }
            _ => self.told_token.store(false, Ordering::Relaxed),
        }
        if let Err(e) = &answer {
            self.metrics.agent_error(kind(e));
        }
        answer
    }
}

/// A short fixed word per kind of failure: few series, nothing the agent wrote.
fn kind(e: &AgentError) -> &'static str {
    match e {
        AgentError::Unavailable { .. } => "unavailable",
        AgentError::Unauthorized { .. } => "unauthorized",
        AgentError::PinMismatch { .. } => "pin",
        AgentError::Tls { .. } => "tls",
        AgentError::Connect { .. }
        | AgentError::Transport {
            what: "could not connect",
            ..
        } => "connect",
        AgentError::Transport { .. } => "transport",
        AgentError::Timeout { .. } => "timeout",
        AgentError::BodyTooLarge { .. } | AgentError::Malformed { .. } => "body",
        AgentError::Status { .. } => "status",
        _ => "other",
    }
}

const DUE: &str = "GET /backup/due";
const START: &str = "POST /backup";
const STATUS: &str = "GET /backup/status";

#[async_trait]
impl AgentApi for CountedAgent {
    async fn backup_due(&self) -> Result<Due, AgentError> {
        let agent = self.agent(DUE)?;
        self.count(agent.backup_due().await)
    }

    async fn start_backup(&self, cycle_id: &str) -> Result<BackupStart, AgentError> {
        let agent = self.agent(START)?;
        self.count(agent.start_backup(cycle_id).await)
    }

    async fn backup_status(&self) -> Result<BackupStatus, AgentError> {
        let agent = self.agent(STATUS)?;
        self.count(agent.backup_status().await)
    }

    // Forwarded explicitly: the trait's defaults would turn them into the plain requests,
    // losing the long-poll and the list of ignored fields.
    async fn backup_due_checked(&self) -> Result<Answered<Due>, AgentError> {
        let agent = self.agent(DUE)?;
        self.count(agent.backup_due_checked().await)
    }

    async fn backup_status_wait(
        &self,
        last_phase: &BackupPhase,
        wait: std::time::Duration,
    ) -> Result<Answered<BackupStatus>, AgentError> {
        let agent = self.agent(STATUS)?;
        self.count(agent.backup_status_wait(last_phase, wait).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use felhom_agentapi::fake::FakeAgent;
    use std::time::Duration;

    fn metrics() -> Arc<Metrics> {
        Arc::new(Metrics::new(Duration::from_secs(60)))
    }

    #[tokio::test]
    async fn failures_are_counted_by_kind_and_answers_pass_through() {
        let metrics = metrics();
        let counted = CountedAgent::new(Arc::new(FakeAgent::answering([])), metrics.clone());
        assert!(counted.backup_due().await.is_ok());
        let unavailable = AgentError::Unavailable {
            request: "POST /backup",
            message: "busy".into(),
        };
        assert_eq!(kind(&unavailable), "unavailable");
        assert!(counted.count::<()>(Err(unavailable)).is_err());
        let text = metrics.encode();
        assert!(
            text.contains("felhom_agent_errors_total{kind=\"unavailable\"} 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_long_poll_and_the_ignored_fields_reach_the_real_agent() {
        use felhom_agentapi::{IgnoredField, MockAgentApi};
        let mut agent = MockAgentApi::new();
        agent.expect_backup_status().never();
        agent
            .expect_backup_status_wait()
            .withf(|phase, wait| *phase == BackupPhase::Running && *wait == Duration::from_secs(9))
            .times(1)
            .returning(|_, _| {
                Ok(Answered {
                    answer: BackupStatus {
                        id: Some("b-1".into()),
                        phase: BackupPhase::Snapshotted,
                        started_at: None,
                        snapshot_at: None,
                        finished_at: None,
                        error: None,
                    },
                    ignored: vec![IgnoredField {
                        field: "started_at",
                        reason: "a number, not a string".into(),
                    }],
                })
            });
        let counted = CountedAgent::new(Arc::new(agent), metrics());
        let checked = counted
            .backup_status_wait(&BackupPhase::Running, Duration::from_secs(9))
            .await
            .expect("forwarded");
        assert_eq!(checked.answer.phase, BackupPhase::Snapshotted);
        assert_eq!(checked.ignored.len(), 1);
    }

    #[tokio::test]
    async fn unusable_settings_answer_why_until_they_can_be_used() {
        let metrics = metrics();
        // A token file that appears later: the second build works.
        let usable = Arc::new(AtomicBool::new(false));
        let builds = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (u, b) = (usable.clone(), builds.clone());
        let counted = CountedAgent::when_usable(
            move || {
                b.fetch_add(1, Ordering::SeqCst);
                if u.load(Ordering::SeqCst) {
                    Ok(Arc::new(FakeAgent::answering([])) as Arc<dyn AgentApi>)
                } else {
                    Err("the agent's token (from agent.token_file /x): no such file".to_owned())
                }
            },
            metrics.clone(),
        );
        let err = counted.backup_due().await.expect_err("unusable");
        let text = err.to_string();
        assert!(
            text.starts_with("GET /backup/due: the agent's settings cannot be used")
                && text.contains("agent.token_file"),
            "{text}"
        );
        assert!(counted.backup_status().await.is_err());
        // Tried at once (said at the start), then at each call.
        assert!(metrics
            .encode()
            .contains("felhom_agent_errors_total{kind=\"config\"} 3"));
        usable.store(true, Ordering::SeqCst);
        assert!(counted.backup_due().await.is_ok());
        assert!(counted.backup_due().await.is_ok());
        assert_eq!(builds.load(Ordering::SeqCst), 4, "built once it could be");
    }
}
