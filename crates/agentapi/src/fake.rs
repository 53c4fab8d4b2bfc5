//! A recording fake of [`AgentApi`] for other crates' tests and examples (feature `mock`): a
//! scripted agent that logs every request (`due?`, `POST /backup`, `status Running`,
//! `status error`) and can be told to refuse, fail or hang.

use crate::{AgentApi, AgentError, BackupPhase, BackupStart, BackupStatus, Due};
use async_trait::async_trait;
use std::sync::{Arc, Mutex, MutexGuard};

/// One answer of the fake to `GET /backup/status` (or `POST /backup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Our backup (`b-1`) is in this phase.
    Phase(BackupPhase),
    /// The request fails (a refused connection; for `POST /backup` a `503`).
    Error,
    /// The request never returns.
    Hang,
}

/// A log shared between fakes, so a test sees the order of everything that happened.
pub type CallLog = Arc<Mutex<Vec<String>>>;

/// The id of the backup the fake starts.
pub const FAKE_BACKUP_ID: &str = "b-1";

/// A scripted agent; see the module docs.
#[derive(Debug)]
pub struct FakeAgent {
    due: Mutex<bool>,
    start: Answer,
    statuses: Mutex<Vec<Answer>>,
    log: CallLog,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked mid-call must not hide its own failure behind a poisoned lock.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeAgent {
    /// An agent that says due, starts backup `b-1` and answers `GET /backup/status` with
    /// these in turn (the last one repeats).
    pub fn answering(phases: impl IntoIterator<Item = BackupPhase>) -> Self {
        Self::scripted(phases.into_iter().map(Answer::Phase))
    }

    /// Like [`FakeAgent::answering`], with errors and hangs among the answers.
    pub fn scripted(answers: impl IntoIterator<Item = Answer>) -> Self {
        let statuses: Vec<Answer> = answers.into_iter().collect();
        FakeAgent {
            due: Mutex::new(true),
            start: Answer::Phase(BackupPhase::Running),
            statuses: Mutex::new(if statuses.is_empty() {
                vec![Answer::Phase(BackupPhase::Running)]
            } else {
                statuses
            }),
            log: CallLog::default(),
        }
    }

    /// An agent whose every request hangs.
    pub fn hanging() -> Self {
        FakeAgent {
            start: Answer::Hang,
            ..Self::scripted([Answer::Hang])
        }
    }

    /// `POST /backup` answers this way (`Error` is a `503`).
    pub fn start_answer(mut self, answer: Answer) -> Self {
        self.start = answer;
        self
    }

    /// Whether the agent says a backup is due.
    pub fn set_due(&self, due: bool) {
        *locked(&self.due) = due;
    }

    /// Logs into `log` (shared with other fakes) instead of a log of its own.
    pub fn log_into(mut self, log: CallLog) -> Self {
        self.log = log;
        self
    }

    /// Every request so far, in order.
    pub fn calls(&self) -> Vec<String> {
        locked(&self.log).clone()
    }

    fn push(&self, entry: impl Into<String>) {
        locked(&self.log).push(entry.into());
    }
}

fn failed(request: &'static str) -> AgentError {
    AgentError::Other {
        request,
        detail: "connection refused".into(),
    }
}

#[async_trait]
impl AgentApi for FakeAgent {
    async fn backup_due(&self) -> Result<Due, AgentError> {
        self.push("due?");
        if self.start == Answer::Hang {
            return std::future::pending().await;
        }
        Ok(Due {
            due: *locked(&self.due),
            reason: None,
            next_due_at: None,
        })
    }

    async fn start_backup(&self, _cycle_id: &str) -> Result<BackupStart, AgentError> {
        self.push("POST /backup");
        match self.start {
            Answer::Phase(_) => Ok(BackupStart {
                id: FAKE_BACKUP_ID.into(),
                adopted: false,
            }),
            Answer::Error => Err(AgentError::Unavailable {
                request: "POST /backup",
                message: "busy".into(),
            }),
            Answer::Hang => std::future::pending().await,
        }
    }

    async fn backup_status(&self) -> Result<BackupStatus, AgentError> {
        let answer = {
            let mut all = locked(&self.statuses);
            if all.len() > 1 {
                all.remove(0)
            } else {
                all[0].clone()
            }
        };
        match answer {
            Answer::Phase(phase) => {
                self.push(format!("status {phase:?}"));
                Ok(BackupStatus {
                    id: Some(FAKE_BACKUP_ID.into()),
                    phase,
                    started_at: None,
                    snapshot_at: None,
                    finished_at: None,
                    error: None,
                })
            }
            Answer::Error => {
                self.push("status error");
                Err(failed("GET /backup/status"))
            }
            Answer::Hang => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_in_turn_and_logs_each_request() {
        let agent = FakeAgent::scripted([Answer::Error, Answer::Phase(BackupPhase::Done)]);
        assert!(agent.backup_due().await.map(|d| d.due).unwrap_or(false));
        assert_eq!(
            agent.start_backup("c").await.ok().map(|s| s.id),
            Some("b-1".into())
        );
        assert!(agent.backup_status().await.is_err());
        for _ in 0..2 {
            let phase = agent.backup_status().await.ok().map(|s| s.phase);
            assert_eq!(phase, Some(BackupPhase::Done), "the last answer repeats");
        }
        assert_eq!(
            agent.calls(),
            [
                "due?",
                "POST /backup",
                "status error",
                "status Done",
                "status Done"
            ]
        );
    }
}
