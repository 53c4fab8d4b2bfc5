//! What the engine says about a stopped stack now: whether a container of the stop ran again
//! since, and whether a new container of the project appeared. The evidence behind a capture
//! verdict comes from here, not from the controller's memory.

use chrono::{DateTime, Utc};

use super::{engine_error, EngineStacks};
use crate::engine::time_of;
use crate::name::check_stack_name;
use crate::{ContainerRef, DownCheck, StacksError};

impl EngineStacks {
    /// See [`DownCheck`].
    pub(super) async fn check_down_of(
        &self,
        stack: &str,
        stopped: &[ContainerRef],
        down_since: DateTime<Utc>,
    ) -> Result<DownCheck, StacksError> {
        check_stack_name(stack)?;
        let since = down_since.timestamp_nanos_opt().unwrap_or(i64::MIN);
        let listed = self.containers(stack).await?;
        let inspected =
            futures::future::join_all(listed.iter().map(|l| self.engine.inspect(&l.container.id)))
                .await;
        let mut check = DownCheck::default();
        for (result, l) in inspected.into_iter().zip(&listed) {
            let c = match result {
                Ok(c) => c,
                // Removed since the listing: it runs no more.
                Err(e) if e.is_not_found() => continue,
                Err(e) => {
                    return Err(engine_error(
                        stack,
                        &format!("inspect of {}", l.container.name),
                        e,
                    ));
                }
            };
            if stopped.iter().any(|s| s.id == c.id) {
                if c.is_up() || c.started_at > since {
                    let started = time_of(c.started_at).unwrap_or_default();
                    check.ran.push((c.to_ref(), started));
                }
            } else if c.is_up() || c.started_at > since || c.created > since {
                check.appeared.push(c.to_ref());
            }
        }
        if !check.stayed_down() {
            tracing::warn!(stack, ran = ?check.ran, appeared = ?check.appeared, "containers of the stopped stack ran meanwhile");
        }
        Ok(check)
    }
}
