//! Hooks: a command of a service's policy run in one of its containers (issue 23). The
//! container is checked first (the stack's, running: [`EngineStacks::hook_container`]), then
//! the command runs in it ([`EngineStacks::exec_hook`], on `exec.rs`); every failure is the
//! [`HookError`] that names the stack, the service, the container and the program.

use std::time::Duration;

use super::EngineStacks;
use crate::engine::{EngineError, State};
use crate::exec::ExecFailure;
use crate::name::check_stack_name;
use crate::{ContainerRef, HookCommand, HookError, HookRun};

/// A hook of a stack, as its errors name it: by its program only, since the rest of a command
/// line may hold what its author would not want in a notice.
pub(super) struct Hook<'a> {
    stack: &'a str,
    program: &'a str,
}

impl<'a> Hook<'a> {
    pub(super) fn new(stack: &'a str, command: &'a HookCommand) -> Self {
        Hook {
            stack,
            program: command.program(),
        }
    }

    fn exec_error(&self, c: &ContainerRef, detail: String) -> HookError {
        HookError::Exec {
            stack: self.stack.to_owned(),
            service: c.service.clone(),
            container: c.name.clone(),
            program: self.program.to_owned(),
            detail,
        }
    }

    fn not_running(&self, c: &ContainerRef, status: &str) -> HookError {
        HookError::NotRunning {
            stack: self.stack.to_owned(),
            service: c.service.clone(),
            container: c.name.clone(),
            program: self.program.to_owned(),
            status: status.to_owned(),
        }
    }

    fn engine_error(&self, c: &ContainerRef, what: &str, e: EngineError) -> HookError {
        let (stack, program) = (self.stack, self.program);
        match e {
            EngineError::Unreachable(detail) => HookError::EngineUnreachable {
                detail: format!(
                    "stack {stack:?}: hook {program:?} in service {:?} (container {}): {what}: {detail}",
                    c.service, c.name
                ),
            },
            other => self.exec_error(c, format!("{what}: {other}")),
        }
    }
}

impl EngineStacks {
    /// The container a hook of `hook`'s stack runs in, as the engine names it now; refused
    /// unless it is the stack's and runs.
    pub(super) async fn hook_container(
        &self,
        hook: &Hook<'_>,
        container: &ContainerRef,
    ) -> Result<ContainerRef, HookError> {
        let stack = hook.stack;
        check_stack_name(stack).map_err(|e| hook.exec_error(container, e.to_string()))?;
        let target = match self.engine.inspect(&container.id).await {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return Err(hook.not_running(container, "gone")),
            Err(e) => return Err(hook.engine_error(container, "inspect of the container", e)),
        };
        // What the engine says now names the container in messages.
        let named = target.to_ref();
        if target.project.as_deref() != Some(stack) {
            return Err(hook.exec_error(
                &named,
                format!(
                    "the container is not the stack's (its project is {})",
                    target
                        .project
                        .as_deref()
                        .map_or("none".to_owned(), |p| format!("{p:?}"))
                ),
            ));
        }
        if target.state != State::Running {
            return Err(hook.not_running(&named, target.state.as_str()));
        }
        Ok(named)
    }

    /// Runs `command` in `container` (checked by [`EngineStacks::hook_container`]), killed
    /// when it outlives `timeout`.
    pub(super) async fn exec_hook(
        &self,
        hook: &Hook<'_>,
        container: ContainerRef,
        command: &HookCommand,
        timeout: Duration,
    ) -> Result<HookRun, HookError> {
        match self
            .engine
            .run_exec(&container.id, command.argv(), timeout)
            .await
        {
            Ok(run) => Ok(run),
            // The container stopped between the inspect and the exec.
            Err(ExecFailure::Engine(EngineError::Api {
                status: 409,
                message,
            })) => Err(hook.not_running(&container, &message)),
            Err(ExecFailure::Engine(e)) if e.is_not_found() => {
                Err(hook.not_running(&container, "gone"))
            }
            Err(ExecFailure::Engine(e)) => Err(hook.engine_error(&container, "exec", e)),
            Err(ExecFailure::NotKilled(detail)) => Err(HookError::NotKilled {
                stack: hook.stack.to_owned(),
                service: container.service,
                container: container.name,
                program: hook.program.to_owned(),
                detail,
            }),
        }
    }
}
