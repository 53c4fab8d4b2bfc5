//! Hooks: a command of a service's policy run in one of its containers (issue 23).

use std::time::Duration;

use super::EngineStacks;
use crate::engine::{EngineError, State};
use crate::exec::ExecFailure;
use crate::name::check_stack_name;
use crate::{ContainerRef, HookCommand, HookError, HookRun};

impl EngineStacks {
    pub(super) async fn hook(
        &self,
        stack: &str,
        container: &ContainerRef,
        command: &HookCommand,
        timeout: Duration,
    ) -> Result<HookRun, HookError> {
        let program = command.program().to_owned();
        let exec_error = |c: &ContainerRef, detail: String| HookError::Exec {
            stack: stack.to_owned(),
            service: c.service.clone(),
            container: c.name.clone(),
            program: program.clone(),
            detail,
        };
        check_stack_name(stack).map_err(|e| exec_error(container, e.to_string()))?;
        let not_running = |c: &ContainerRef, status: &str| HookError::NotRunning {
            stack: stack.to_owned(),
            service: c.service.clone(),
            container: c.name.clone(),
            program: program.clone(),
            status: status.to_owned(),
        };
        let engine_error = |c: &ContainerRef, what: &str, e: EngineError| {
            match e {
            EngineError::Unreachable(detail) => HookError::EngineUnreachable {
                detail: format!(
                    "stack {stack:?}: hook {program:?} in service {:?} (container {}): {what}: {detail}",
                    c.service, c.name
                ),
            },
            other => exec_error(c, format!("{what}: {other}")),
        }
        };
        let target = match self.engine.exec_target(&container.id).await {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return Err(not_running(container, "gone")),
            Err(e) => return Err(engine_error(container, "inspect of the container", e)),
        };
        // What the engine says now names the container in messages.
        let named = ContainerRef {
            id: target.id.clone(),
            name: target.name.clone(),
            service: target.service.clone(),
        };
        if target.project.as_deref() != Some(stack) {
            return Err(exec_error(
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
            return Err(not_running(&named, target.state.as_str()));
        }
        match self
            .engine
            .run_exec(&target.id, command.argv(), timeout)
            .await
        {
            Ok(run) => Ok(run),
            // The container stopped between the inspect and the exec.
            Err(ExecFailure::Engine(EngineError::Api {
                status: 409,
                message,
            })) => Err(not_running(&named, &message)),
            Err(ExecFailure::Engine(e)) if e.is_not_found() => Err(not_running(&named, "gone")),
            Err(ExecFailure::Engine(e)) => Err(engine_error(&named, "exec", e)),
            Err(ExecFailure::NotKilled(detail)) => Err(HookError::NotKilled {
                stack: stack.to_owned(),
                service: named.service,
                container: named.name,
                program,
                detail,
            }),
        }
    }
}
