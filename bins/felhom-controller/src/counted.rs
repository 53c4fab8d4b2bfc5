//! The collaborators as the controller uses them, watched for the metrics: the agent's
//! failures counted by kind (`felhom_agent_errors_total{kind}`), so that an operator sees a
//! flaky agent before a failed backup; the engine's reachability (`felhom_engine_reachable`)
//! from the answers of the stacks calls. Every call goes through unchanged.

use crate::metrics::Metrics;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use felhom_agentapi::{
    AgentApi, AgentError, Answered, BackupPhase, BackupStart, BackupStatus, Due,
};
use felhom_stacks::{RunningStack, Stacks, StacksError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Wraps an agent; every call goes through unchanged.
pub(crate) struct Counted {
    agent: Arc<dyn AgentApi>,
    metrics: Arc<Metrics>,
    /// Whether the config keys of a refused token were named since the last answer that was
    /// not a refusal: the daemon's log says them once, not at every due poll.
    told_token: AtomicBool,
}

impl Counted {
    pub(crate) fn new(agent: Arc<dyn AgentApi>, metrics: Arc<Metrics>) -> Counted {
        Counted {
            agent,
            metrics,
            told_token: AtomicBool::new(false),
        }
    }

    fn count<T>(&self, answer: Result<T, AgentError>) -> Result<T, AgentError> {
        match &answer {
            Err(e @ AgentError::Unauthorized { .. }) => {
                if !self.told_token.swap(true, Ordering::Relaxed) {
                    tracing::warn!("{}", crate::errors::chain(e));
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
        AgentError::Connect { .. } => "connect",
        AgentError::Timeout { .. } => "timeout",
        AgentError::BodyTooLarge { .. } | AgentError::Malformed { .. } => "body",
        AgentError::Status { .. } => "status",
        _ => "other",
    }
}

#[async_trait]
impl AgentApi for Counted {
    async fn backup_due(&self) -> Result<Due, AgentError> {
        self.count(self.agent.backup_due().await)
    }

    async fn start_backup(&self, cycle_id: &str) -> Result<BackupStart, AgentError> {
        self.count(self.agent.start_backup(cycle_id).await)
    }

    async fn backup_status(&self) -> Result<BackupStatus, AgentError> {
        self.count(self.agent.backup_status().await)
    }

    // Forwarded explicitly: the trait's defaults would turn them into the plain requests,
    // losing the long-poll and the list of ignored fields.
    async fn backup_due_checked(&self) -> Result<Answered<Due>, AgentError> {
        self.count(self.agent.backup_due_checked().await)
    }

    async fn backup_status_wait(
        &self,
        last_phase: &BackupPhase,
        wait: std::time::Duration,
    ) -> Result<Answered<BackupStatus>, AgentError> {
        self.count(self.agent.backup_status_wait(last_phase, wait).await)
    }
}

/// Wraps the stacks manager: each answer says whether the engine is reachable.
pub(crate) struct EngineWatch {
    stacks: Arc<dyn Stacks>,
    metrics: Arc<Metrics>,
    /// Since when the engine has not answered; `None` while it does.
    away_since: Mutex<Option<DateTime<Utc>>>,
}

impl EngineWatch {
    pub(crate) fn new(stacks: Arc<dyn Stacks>, metrics: Arc<Metrics>) -> EngineWatch {
        EngineWatch {
            stacks,
            metrics,
            away_since: Mutex::new(None),
        }
    }

    fn seen<T>(&self, answer: Result<T, StacksError>) -> Result<T, StacksError> {
        let away = matches!(&answer, Err(e) if e.is_engine_unreachable());
        let mut since = self.away_since.lock().unwrap_or_else(|p| p.into_inner());
        // Any other answer, an error of a stack included, came from the engine.
        *since = if away {
            Some(since.unwrap_or_else(Utc::now))
        } else {
            None
        };
        self.metrics.set_engine_reachable(!away, *since);
        answer
    }
}

#[async_trait]
impl Stacks for EngineWatch {
    async fn running_app_stacks(&self) -> Result<Vec<RunningStack>, StacksError> {
        self.seen(self.stacks.running_app_stacks().await)
    }

    async fn stop(&self, stack: &str) -> Result<Vec<String>, StacksError> {
        self.seen(self.stacks.stop(stack).await)
    }

    async fn start(&self, stack: &str, services: &[String]) -> Result<(), StacksError> {
        self.seen(self.stacks.start(stack, services).await)
    }

    async fn is_running(&self, stack: &str) -> Result<bool, StacksError> {
        self.seen(self.stacks.is_running(stack).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use felhom_agentapi::fake::FakeAgent;

    #[tokio::test]
    async fn failures_are_counted_by_kind_and_answers_pass_through() {
        let metrics = Arc::new(Metrics::new(std::time::Duration::from_secs(60)));
        let counted = Counted::new(Arc::new(FakeAgent::answering([])), metrics.clone());
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
            .withf(|phase, wait| {
                *phase == BackupPhase::Running && *wait == std::time::Duration::from_secs(9)
            })
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
        let metrics = Arc::new(Metrics::new(std::time::Duration::from_secs(60)));
        let counted = Counted::new(Arc::new(agent), metrics);
        let checked = counted
            .backup_status_wait(&BackupPhase::Running, std::time::Duration::from_secs(9))
            .await
            .expect("forwarded");
        assert_eq!(checked.answer.phase, BackupPhase::Snapshotted);
        assert_eq!(checked.ignored.len(), 1);
    }

    #[tokio::test]
    async fn the_engine_is_unreachable_from_its_first_such_answer_until_any_other() {
        let metrics = Arc::new(Metrics::new(std::time::Duration::from_secs(60)));
        let mut mock = felhom_stacks::MockStacks::new();
        let mut answers = vec![true, false, false].into_iter();
        mock.expect_is_running()
            .returning(move |_| match answers.next() {
                Some(false) => Err(StacksError::EngineUnreachable {
                    detail: "connection refused".into(),
                }),
                _ => Ok(true),
            });
        let watch = EngineWatch::new(Arc::new(mock), metrics.clone());
        let gauge = |name: &str| -> f64 {
            let text = metrics.encode();
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} in {text}"));
            line[name.len() + 1..].parse().expect("a number")
        };
        assert!(watch.is_running("a").await.is_ok());
        assert_eq!(gauge("felhom_engine_reachable"), 1.0);
        assert!(watch.is_running("a").await.is_err());
        let since = gauge("felhom_engine_unreachable_since_timestamp_seconds");
        assert_eq!(gauge("felhom_engine_reachable"), 0.0);
        assert!(since > 0.0);
        assert!(watch.is_running("a").await.is_err());
        assert_eq!(
            gauge("felhom_engine_unreachable_since_timestamp_seconds"),
            since,
            "the first failure's time is kept"
        );
        assert!(watch.is_running("a").await.is_ok());
        assert_eq!(gauge("felhom_engine_reachable"), 1.0);
        assert_eq!(
            gauge("felhom_engine_unreachable_since_timestamp_seconds"),
            0.0
        );
    }
}
