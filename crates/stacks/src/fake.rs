//! A recording fake of [`Stacks`] for other crates' tests and examples (feature `mock`): a
//! fixed list of running stacks, every call logged (`stop NAME`, `start NAME svc1,svc2`), and
//! per-stack trouble — a call that fails, hangs or panics — to drive the failure paths.

use crate::{RunningStack, Stacks, StacksError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// What goes wrong with one call of one stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// The call returns [`StacksError::Other`] with this message.
    Fail(String),
    /// The call fails this many times, then succeeds.
    FailTimes(u32),
    /// The call never returns.
    Hang,
    /// The call panics (a bug in a collaborator).
    Panic,
}

/// A log shared between fakes, so a test sees the order of everything that happened.
pub type CallLog = Arc<Mutex<Vec<String>>>;

/// Stacks that exist only in memory; see the module docs.
#[derive(Debug, Default)]
pub struct FakeStacks {
    running: Vec<RunningStack>,
    stop_trouble: Mutex<HashMap<String, Trouble>>,
    start_trouble: Mutex<HashMap<String, Trouble>>,
    log: CallLog,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked mid-call must not hide its own failure behind a poisoned lock.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeStacks {
    /// Stacks `(name, services)` that run; every call on them succeeds.
    pub fn running<'a>(stacks: impl IntoIterator<Item = (&'a str, &'a [&'a str])>) -> Self {
        FakeStacks {
            running: stacks
                .into_iter()
                .map(|(name, services)| RunningStack {
                    name: name.to_owned(),
                    services: services.iter().map(|s| (*s).to_owned()).collect(),
                })
                .collect(),
            ..FakeStacks::default()
        }
    }

    /// Logs into `log` (shared with other fakes) instead of a log of its own.
    pub fn log_into(mut self, log: CallLog) -> Self {
        self.log = log;
        self
    }

    /// The stop of `stack` goes wrong.
    pub fn stop_trouble(self, stack: &str, trouble: Trouble) -> Self {
        locked(&self.stop_trouble).insert(stack.to_owned(), trouble);
        self
    }

    /// The start of `stack` goes wrong.
    pub fn start_trouble(self, stack: &str, trouble: Trouble) -> Self {
        locked(&self.start_trouble).insert(stack.to_owned(), trouble);
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<String> {
        locked(&self.log).clone()
    }

    fn services_of(&self, stack: &str) -> Vec<String> {
        self.running
            .iter()
            .find(|s| s.name == stack)
            .map(|s| s.services.clone())
            .unwrap_or_default()
    }

    async fn call(
        &self,
        entry: String,
        trouble: &Mutex<HashMap<String, Trouble>>,
        stack: &str,
    ) -> Result<(), StacksError> {
        locked(&self.log).push(entry);
        let now = {
            let mut all = locked(trouble);
            match all.get_mut(stack) {
                Some(Trouble::FailTimes(0)) => None,
                Some(Trouble::FailTimes(n)) => {
                    *n -= 1;
                    Some(Trouble::Fail(format!("{stack}: not yet")))
                }
                other => other.cloned(),
            }
        };
        match now {
            None | Some(Trouble::FailTimes(_)) => Ok(()),
            Some(Trouble::Fail(message)) => Err(StacksError::Other(message)),
            Some(Trouble::Hang) => std::future::pending().await,
            Some(Trouble::Panic) => panic!("FakeStacks: {stack} panics, as told"),
        }
    }
}

#[async_trait]
impl Stacks for FakeStacks {
    async fn running_app_stacks(&self) -> Result<Vec<RunningStack>, StacksError> {
        Ok(self.running.clone())
    }

    async fn stop(&self, stack: &str) -> Result<Vec<String>, StacksError> {
        self.call(format!("stop {stack}"), &self.stop_trouble, stack)
            .await?;
        Ok(self.services_of(stack))
    }

    async fn start(&self, stack: &str, services: &[String]) -> Result<(), StacksError> {
        let entry = format!("start {stack} {}", services.join(","));
        self.call(entry, &self.start_trouble, stack).await
    }

    async fn is_running(&self, stack: &str) -> Result<bool, StacksError> {
        Ok(self.running.iter().any(|s| s.name == stack))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn logs_every_call_and_fails_as_told() {
        let fake = FakeStacks::running([("a", &["web"][..]), ("b", &["db"][..])])
            .start_trouble("b", Trouble::FailTimes(1));
        assert_eq!(
            fake.running_app_stacks().await.map(|s| s.len()).ok(),
            Some(2)
        );
        assert_eq!(fake.stop("a").await.ok(), Some(vec!["web".to_owned()]));
        assert!(fake.start("b", &["db".into()]).await.is_err());
        assert!(fake.start("b", &["db".into()]).await.is_ok());
        assert_eq!(fake.calls(), ["stop a", "start b db", "start b db"]);
    }
}
