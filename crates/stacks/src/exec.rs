//! A command run in a container through the engine (exec create, start attached, inspect),
//! bounded by a timeout after which it is killed ([`crate::kill`]).
//!
//! The exec's end is its process's end as the engine reports it (`ExecInspect.Running`), not
//! the end of its output: a hook that leaves a child in the background holding its stdout has
//! ended when its own process has. So the output is read while the exec is inspected every
//! second (every 50 ms once the output has ended, until the engine records the exit).

use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::Docker;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

use crate::engine::{classify, Engine, EngineError};
use crate::hook::{Tail, HOOK_OUTPUT_LIMIT};
use crate::kill::{kill_exec, Killed};
use crate::HookRun;

/// How often a running exec is inspected while its output flows.
const POLL: Duration = Duration::from_secs(1);
/// How often once its output has ended (the engine records the exit a moment later).
const POLL_ENDING: Duration = Duration::from_millis(50);
/// How long the output of an ended exec is still read: a child left in the background may
/// hold it open for ever.
const DRAIN: Duration = Duration::from_millis(500);
/// How long a killed exec is waited for until the engine records its end.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Why an exec did not give a [`HookRun`].
#[derive(Debug)]
pub(crate) enum ExecFailure {
    /// An engine call failed (a 409 at the create: the container does not run).
    Engine(EngineError),
    /// It outlived its timeout and SIGKILL could not be sent: why.
    NotKilled(String),
}

impl From<EngineError> for ExecFailure {
    fn from(e: EngineError) -> Self {
        Self::Engine(e)
    }
}

/// The engine's state of an exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ExecState {
    running: bool,
    exit_code: Option<i64>,
    pid: i64,
}

impl Engine {
    /// Runs `argv` in container `container_id` (its full id), attached, until it ends or
    /// `timeout` has passed since its start; then kills it. Dropped before the end, it leaves
    /// a task that kills the exec if it still runs.
    pub(crate) async fn run_exec(
        &self,
        container_id: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<HookRun, ExecFailure> {
        let docker = self.client()?;
        let (exec, mut guard) = self.create_exec(&docker, container_id, argv).await?;
        let began = Instant::now();
        let options = StartExecOptions {
            detach: false,
            tty: false,
            output_capacity: None,
        };
        let started = self
            .bounded(self.call_timeout, docker.start_exec(&exec, Some(options)))
            .await?;
        let StartExecResults::Attached { mut output, .. } = started else {
            return Err(
                EngineError::Other("the engine started the exec detached".to_owned()).into(),
            );
        };
        let mut tail = Tail::new(HOOK_OUTPUT_LIMIT);
        let (ended, open) = self
            .follow(&docker, &exec, &mut output, &mut tail, began + timeout)
            .await?;
        let duration = began.elapsed();
        let (exit_code, timed_out) = match ended {
            Some(state) => (state.exit_code, false),
            None => {
                self.end_overdue(&docker, &exec, container_id, &mut guard)
                    .await?
            }
        };
        guard.armed = false;
        if open {
            let drain = async {
                while let Some(Ok(chunk)) = output.next().await {
                    tail.push(chunk.as_ref());
                }
            };
            let _ = tokio::time::timeout(DRAIN, drain).await;
        }
        Ok(HookRun {
            exit_code,
            output: tail.text(),
            duration,
            timed_out,
        })
    }

    /// Creates the exec of `argv` in the container, and the guard that kills it if its
    /// caller stops waiting for it.
    async fn create_exec(
        &self,
        docker: &Docker,
        container_id: &str,
        argv: &[String],
    ) -> Result<(String, KillOnDrop), EngineError> {
        let config = CreateExecOptions {
            cmd: Some(argv.to_vec()),
            attach_stdin: Some(false),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            ..CreateExecOptions::default()
        };
        let exec = self
            .bounded(self.call_timeout, docker.create_exec(container_id, config))
            .await?
            .id;
        let guard = KillOnDrop {
            docker: docker.clone(),
            host: self.host().to_owned(),
            exec: exec.clone(),
            container: container_id.to_owned(),
            armed: true,
        };
        Ok((exec, guard))
    }

    /// Reads the exec's output into `tail` until its process ends (`Some`: its state) or
    /// `deadline` comes (`None`); and whether the output is still open.
    async fn follow<C: AsRef<[u8]>>(
        &self,
        docker: &Docker,
        exec: &str,
        output: &mut (impl Stream<Item = Result<C, bollard::errors::Error>> + Unpin),
        tail: &mut Tail,
        deadline: Instant,
    ) -> Result<(Option<ExecState>, bool), EngineError> {
        let mut open = true;
        let ended = loop {
            let poll = if open { POLL } else { POLL_ENDING };
            // The deadline first: output that never stops must not starve it.
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(deadline) => break None,
                chunk = output.next(), if open => match chunk {
                    Some(Ok(chunk)) => tail.push(chunk.as_ref()),
                    Some(Err(e)) => {
                        tracing::debug!(exec, "the exec's output ended with an error: {e}");
                        open = false;
                    }
                    None => open = false,
                },
                () = tokio::time::sleep(poll) => {
                    let state = self.exec_state(docker, exec).await?;
                    if !state.running {
                        break Some(state);
                    }
                }
            }
        };
        Ok((ended, open))
    }

    /// The exec's time ran out: it is killed if it still runs (`NotKilled` if that cannot be
    /// done, the guard then disarmed) and its end waited for; its exit code and whether it
    /// timed out.
    async fn end_overdue(
        &self,
        docker: &Docker,
        exec: &str,
        container_id: &str,
        guard: &mut KillOnDrop,
    ) -> Result<(Option<i64>, bool), ExecFailure> {
        let state = self.exec_state(docker, exec).await?;
        if !state.running {
            // It ended as its time ran out.
            return Ok((state.exit_code, false));
        }
        let target = container_id.to_owned();
        let killed = tokio::task::spawn_blocking(move || kill_exec(state.pid, &target))
            .await
            .unwrap_or_else(|e| Err(format!("the kill task failed: {e}")));
        if let Err(detail) = killed {
            guard.armed = false;
            return Err(ExecFailure::NotKilled(detail));
        }
        let end = self.wait_for_end(docker, exec, KILL_WAIT).await?;
        Ok((end.and_then(|s| s.exit_code), true))
    }

    async fn exec_state(&self, docker: &Docker, exec: &str) -> Result<ExecState, EngineError> {
        let r = self
            .bounded(self.call_timeout, docker.inspect_exec(exec))
            .await?;
        Ok(ExecState {
            running: r.running.unwrap_or(false),
            exit_code: r.exit_code,
            pid: r.pid.unwrap_or(0),
        })
    }

    /// Waits up to `limit` until the engine records the exec's end; `None` if it does not.
    async fn wait_for_end(
        &self,
        docker: &Docker,
        exec: &str,
        limit: Duration,
    ) -> Result<Option<ExecState>, EngineError> {
        let until = Instant::now() + limit;
        loop {
            let state = self.exec_state(docker, exec).await?;
            if !state.running {
                return Ok(Some(state));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            tokio::time::sleep(POLL_ENDING).await;
        }
    }
}

/// Kills an exec that its caller stopped waiting for (the call was dropped: the cycle's bound,
/// a cancellation; or an engine call failed midway): a hook must never outlive the call that
/// ran it unbounded.
struct KillOnDrop {
    docker: Docker,
    host: String,
    exec: String,
    container: String,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                exec = self.exec,
                "a hook was abandoned with no runtime left to kill it"
            );
            return;
        };
        let (docker, host, exec, container) = (
            self.docker.clone(),
            self.host.clone(),
            std::mem::take(&mut self.exec),
            std::mem::take(&mut self.container),
        );
        runtime.spawn(async move {
            let inspect =
                tokio::time::timeout(crate::engine::CALL_TIMEOUT, docker.inspect_exec(&exec)).await;
            let state = match inspect {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    let e = classify(&host, e);
                    tracing::warn!(
                        exec,
                        "an abandoned hook may still run: its inspect failed: {e}"
                    );
                    return;
                }
                Err(_) => {
                    tracing::warn!(
                        exec,
                        "an abandoned hook may still run: its inspect got no answer"
                    );
                    return;
                }
            };
            if state.running != Some(true) {
                return;
            }
            let pid = state.pid.unwrap_or(0);
            match tokio::task::spawn_blocking(move || kill_exec(pid, &container)).await {
                Ok(Ok(Killed::Sent)) => tracing::info!(exec, pid, "an abandoned hook was killed"),
                Ok(Ok(Killed::Gone)) => {}
                Ok(Err(detail)) => {
                    tracing::warn!(exec, pid, "an abandoned hook could not be killed: {detail}")
                }
                Err(e) => tracing::warn!(exec, pid, "the kill of an abandoned hook failed: {e}"),
            }
        });
    }
}
