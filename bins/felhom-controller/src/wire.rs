//! Builds the real collaborators from the config and hands them to the quiesce controller.

use crate::config::{Config, TokenSource};
use crate::counted::{Counted, EngineWatch};
use crate::metrics::Metrics;
use crate::watch::Watch;
use anyhow::{Context, Result};
use felhom_agentapi::{AgentApi, AgentClient, ClientConfig, ConfigError};
use felhom_marker::{StateDir, StateView};
use felhom_notify::Notifier;
use felhom_quiesce::{Collaborators, Controller, CycleConfig, Observer};
use felhom_stacks::{EngineStacks, Stacks, StacksConfig};
use std::sync::Arc;

/// The real collaborators, built from the config.
pub(crate) struct Wired {
    pub controller: Controller,
    pub agent: Option<Arc<dyn AgentApi>>,
    pub stacks: Arc<EngineStacks>,
}

/// The agent client, or `None` when `[agent]` is absent.
pub(crate) fn agent_client(config: &Config) -> Result<Option<AgentClient>> {
    let Some(a) = &config.agent else {
        return Ok(None);
    };
    let token = a.token.load()?;
    tracing::debug!("the agent's token: from {}", a.token);
    let client = AgentClient::new(ClientConfig {
        url: a.url.clone(),
        token,
        pin: a.pin_sha256,
        connect_timeout: a.connect_timeout,
        request_timeout: a.request_timeout,
    })
    .map_err(|e| refused(e, &a.url, &a.token))?;
    Ok(Some(client))
}

/// What the agent client refused, named by its config key (the library names the setting,
/// not this binary's key for it). A refused URL is not shown: the library's message quotes it,
/// and it may carry a secret (`https://user:token@host`); its reason is enough.
fn refused(error: ConfigError, url: &str, token: &TokenSource) -> anyhow::Error {
    let key = match &error {
        ConfigError::InvalidUrl { reason, .. } => {
            let key = if url.contains('@') {
                "agent.url (the token goes in agent.token or agent.token_file)"
            } else {
                "agent.url"
            };
            return anyhow::anyhow!("{key}: {reason} (the URL is not shown)");
        }
        ConfigError::InvalidPin { .. } => "agent.pin_sha256".to_owned(),
        ConfigError::InvalidToken { .. } | ConfigError::TokenFile { .. } => {
            format!("the agent's token (from {token})")
        }
        _ => "agent".to_owned(),
    };
    anyhow::Error::new(error).context(key)
}

/// The agent client as the controller sees it.
pub(crate) fn agent(config: &Config) -> Result<Option<Arc<dyn AgentApi>>> {
    Ok(agent_client(config)?.map(|c| Arc::new(c) as Arc<dyn AgentApi>))
}

/// Who runs the controller: the daemon waits for an engine that is away as long as it takes,
/// a command run by hand or by a timer up to `max_quiesce` (SPEC §2 rule 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Daemon,
    Command,
}

/// The agent, its failures counted into `metrics`.
pub(crate) fn counted(agent: Arc<dyn AgentApi>, metrics: &Arc<Metrics>) -> Arc<dyn AgentApi> {
    Arc::new(Counted::new(agent, metrics.clone()))
}

/// The observer of every command that may stop or start stacks: systemd, `metrics` and the
/// `[notify]` targets. Built inside the runtime (the notifier spawns its deliveries there).
pub(crate) fn watch(config: &Config, metrics: Arc<Metrics>) -> Result<Arc<Watch>> {
    let notifier = match &config.notify {
        Some(notify) => Some(Notifier::new(notify.clone()).context("notify")?),
        None => None,
    };
    Ok(Arc::new(Watch::new(notifier, metrics)))
}

/// The cycle's knobs, from `[quiesce]` and `[stacks]`.
fn cycle_config(config: &Config, role: Role) -> CycleConfig {
    let q = &config.quiesce;
    CycleConfig {
        enabled: q.enabled,
        due_poll_interval: q.due_poll_interval,
        status_poll_interval: q.status_poll_interval,
        max_quiesce: q.max_quiesce,
        resume_on_snapshot: q.resume_on_snapshot,
        min_cycle_interval: q.min_cycle_interval,
        failure_cooldown: q.failure_cooldown,
        parallelism: config.stacks.parallelism,
        start_call_timeout: CycleConfig::start_call_timeout_for(
            config.stacks.start_timeout,
            config.stacks.stop_timeout,
            config.stacks.settle,
        ),
        engine_wait: match role {
            Role::Daemon => None,
            Role::Command => Some(q.max_quiesce),
        },
        ..CycleConfig::default()
    }
}

/// The state directory named by `quiesce.state_dir`.
pub(crate) fn state_dir(config: &Config) -> Result<StateDir> {
    let dir = &config.quiesce.state_dir;
    StateDir::open(dir).with_context(|| format!("quiesce.state_dir {}", dir.display()))
}

/// The state directory named by `quiesce.state_dir`, to read without changing anything (the
/// `status` look, `/metrics`): whatever its mode or owner, and not created when missing.
pub(crate) fn state_view(config: &Config) -> Result<StateView> {
    let dir = &config.quiesce.state_dir;
    StateView::open(dir).with_context(|| format!("quiesce.state_dir {}", dir.display()))
}

/// Builds the controller. The agent is built apart (see [`agent`]) so that `run` can recover
/// a crashed cycle even when the agent's settings are broken.
pub(crate) fn wire(
    config: &Config,
    role: Role,
    agent: Option<Arc<dyn AgentApi>>,
    observer: Arc<dyn Observer>,
) -> Result<Wired> {
    wire_watched(config, role, agent, observer, None)
}

/// [`wire`], the engine's answers watched into `metrics` when given (the daemon).
pub(crate) fn wire_watched(
    config: &Config,
    role: Role,
    agent: Option<Arc<dyn AgentApi>>,
    observer: Arc<dyn Observer>,
    metrics: Option<&Arc<Metrics>>,
) -> Result<Wired> {
    let stacks = Arc::new(
        EngineStacks::new(StacksConfig {
            root: config.stacks.root.clone(),
            protected: config.protected(),
            compose: config.stacks.compose,
            stop_timeout: config.stacks.stop_timeout,
            start_timeout: config.stacks.start_timeout,
            settle: config.stacks.settle,
        })
        .context("stacks")?,
    );
    let state = Arc::new(state_dir(config)?);
    let parts = Collaborators {
        agent: agent.clone(),
        stacks: match metrics {
            Some(m) => Arc::new(EngineWatch::new(stacks.clone(), m.clone())),
            None => stacks.clone() as Arc<dyn Stacks>,
        },
        marker: state.clone(),
        history: state.clone(),
        stranded: state.clone(),
        lock: state,
        observer,
    };
    Ok(Wired {
        controller: Controller::new(parts, cycle_config(config, role)),
        agent,
        stacks,
    })
}
