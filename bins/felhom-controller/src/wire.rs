//! Builds the real collaborators from the config and hands them to the quiesce controller.

use crate::errors;
use anyhow::{anyhow, Context, Result};
use felhom_agentapi::{AgentApi, AgentClient};
use felhom_marker::{StateDir, StateView};
use felhom_notify::Notifier;
use felhom_ops::config::{AgentSetting, Config};
use felhom_ops::{CountedAgent, Metrics, NotifySocket, OpsObserver, ServiceManager};
use felhom_quiesce::{Collaborators, Controller, CycleConfig, Observer};
use felhom_stacks::EngineStacks;
use std::sync::Arc;

/// The agent client, or `None` when `[agent]` is absent.
pub(crate) fn agent_client(config: &Config) -> Result<Option<AgentClient>> {
    match config.agent.usable() {
        Ok(None) => Ok(None),
        Ok(Some(section)) => Ok(Some(section.client()?)),
        Err(e) => Err(anyhow!("{}", errors::chain(e))),
    }
}

/// The agent of a command that goes on without it (`recover`): `None`, with a warning, when
/// it cannot be built.
pub(crate) fn agent_if_usable(config: &Config) -> Option<Arc<dyn AgentApi>> {
    match agent_client(config) {
        Ok(agent) => agent.map(|c| Arc::new(c) as Arc<dyn AgentApi>),
        Err(e) => {
            tracing::warn!("the agent cannot be asked: {}", errors::chain(e.as_ref()));
            None
        }
    }
}

/// The daemon's agent: counted into `metrics`, and built at its first use — settings that
/// cannot be used keep the backups off, not the daemon (SPEC §2 rules 3, 6 and 9).
pub(crate) fn daemon_agent(
    setting: AgentSetting,
    metrics: &Arc<Metrics>,
) -> Option<Arc<dyn AgentApi>> {
    let agent = match setting {
        AgentSetting::Absent => return None,
        AgentSetting::Set(section) => CountedAgent::when_usable(
            move || {
                let client = section.client().map_err(|e| errors::chain(&e))?;
                Ok(Arc::new(client) as Arc<dyn AgentApi>)
            },
            metrics.clone(),
        ),
        AgentSetting::Unusable(e) => {
            let why = errors::chain(&e);
            CountedAgent::when_usable(move || Err(why.clone()), metrics.clone())
        }
    };
    Some(Arc::new(agent))
}

/// The observer of every command that may stop or start stacks: the service manager,
/// `metrics` and the `[notify]` targets. Built inside the runtime (the notifier spawns its
/// deliveries there); notifications that cannot be set up are off, with an error.
pub(crate) fn observer(
    config: &Config,
    metrics: Arc<Metrics>,
    manager: Arc<dyn ServiceManager>,
) -> Arc<OpsObserver> {
    let notifier = config
        .notify
        .as_ref()
        .and_then(|notify| match Notifier::new(notify.clone()) {
            Ok(notifier) => Some(notifier),
            Err(e) => {
                tracing::error!("notify: notifications are off: {}", errors::chain(&e));
                None
            }
        });
    Arc::new(OpsObserver::new(manager, notifier, metrics))
}

/// The state directory named by `quiesce.state_dir`.
pub(crate) fn state_dir(config: &Config) -> Result<StateDir> {
    let dir = &config.quiesce.state_dir;
    StateDir::open(dir).with_context(|| format!("quiesce.state_dir {}", dir.display()))
}

/// The state directory named by `quiesce.state_dir`, to read without changing anything (the
/// `status` look, `recover --if-stale`): whatever its mode or owner, and not created.
pub(crate) fn state_view(config: &Config) -> Result<StateView> {
    let dir = &config.quiesce.state_dir;
    StateView::open(dir).with_context(|| format!("quiesce.state_dir {}", dir.display()))
}

/// The stacks manager on the Docker engine. Its compose and docker commands do not inherit
/// systemd's `NOTIFY_SOCKET`, which stays in this process's environment for `sd-notify`
/// (main.rs, `forget_environment`): no child speaks to systemd in the daemon's name.
pub(crate) fn stacks(config: &Config) -> Result<Arc<EngineStacks>> {
    Ok(Arc::new(
        EngineStacks::new(config.stacks_config())
            .context("stacks")?
            .without_env([felhom_ops::NOTIFY_SOCKET]),
    ))
}

/// The controller over the real stacks manager and the state directory `state`.
pub(crate) fn controller(
    config: &Config,
    cycle: CycleConfig,
    agent: Option<Arc<dyn AgentApi>>,
    state: Arc<StateDir>,
    observer: Arc<dyn Observer>,
) -> Result<Controller> {
    let parts = Collaborators {
        agent,
        stacks: stacks(config)?,
        marker: state.clone(),
        history: state.clone(),
        stranded: state.clone(),
        lock: state,
        observer,
    };
    Ok(Controller::new(parts, cycle))
}

/// The controller of a command that runs one cycle or one recovery (`once`, `recover`): its
/// own metrics and observer (returned, to drain its notifications), the state directory, and
/// the cycle bounded as a command's (`CycleConfig::for_command`).
pub(crate) fn command_controller(
    config: &Config,
    manager: NotifySocket,
    agent: Option<Arc<dyn AgentApi>>,
) -> Result<(Controller, Arc<OpsObserver>)> {
    let metrics = Arc::new(Metrics::new(config.quiesce.max_quiesce));
    let observer = observer(config, metrics, Arc::new(manager));
    let state = Arc::new(state_dir(config)?);
    let cycle = config.cycle_config().for_command();
    let controller = controller(config, cycle, agent, state, observer.clone())?;
    Ok((controller, observer))
}
