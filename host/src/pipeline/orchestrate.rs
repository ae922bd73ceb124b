//! A multi-agent pipeline's turn: load the conversation, let the router pick
//! an agent, send metadata naming it, run the agent (a plugin, or the built-in
//! model agent), record the turn, end. It runs as a task feeding the
//! pipeline's source channel, so an agent plugin can `emit` while it works;
//! dropping the source (the client left) stops the task and the plugin.
//! Every failure here is an error event: the stream is already the turn's.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures::{StreamExt, stream};
use serde_json::json;
use thiserror::Error;
use tokio::sync::mpsc;
use tracing::{Instrument, info, warn};

use super::Services;
use super::turn::{Downstream, ModelAccess, TurnServices};
use crate::conversation::{ModelMessage, Role};
use crate::error_code::{Code, ErrorCode};
use crate::event::{Event, error_event};
use crate::history::{ConversationKey, HistoryError, Turn};
use crate::manifest::{AgentSpec, Manifest};
use crate::plugin_store::PluginName;
use crate::providers::{EventStream, ModelOptions, ProviderError};
use crate::registry::RoleError;
use crate::request::Request;
use crate::wit;

/// Events the agent may be ahead of the transforms by.
const CHANNEL_EVENTS: usize = 64;

/// The bounds of a multi-agent turn.
#[derive(Debug, Clone, Args)]
pub struct AgentSettings {
    /// The most model calls a router or an agent may make in one turn
    /// (bounds a tool loop that does not end).
    #[arg(long, env = "STREAMHOST_MAX_MODEL_CALLS", default_value_t = 10, value_name = "N")]
    pub max_model_calls: u32,

    /// The longest a whole turn (routing and the agent's answer, model time
    /// included) may take.
    #[arg(long, env = "STREAMHOST_TURN_TIMEOUT_MS", default_value_t = 300_000, value_name = "MS")]
    pub turn_timeout_ms: u64,
}

/// Why a turn failed; each is an error event with its code.
#[derive(Debug, Error)]
enum TurnError {
    #[error("router `{router}` chose `{chosen}`, which is not one of this pipeline's agents ({known})")]
    UnknownAgent { router: PluginName, chosen: String, known: String },
    #[error(transparent)]
    Role(#[from] RoleError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("the agent's answer failed: {}", .0.message)]
    Source(wit::ErrorInfo),
    #[error("the turn took longer than its {} ms limit (--turn-timeout-ms)", .0.as_millis())]
    Timeout(Duration),
}

impl TurnError {
    fn code(&self) -> Code<'_> {
        match self {
            TurnError::UnknownAgent { .. } => ErrorCode::UnknownAgent.into(),
            TurnError::Role(error) => error.code(),
            TurnError::History(error) => error.code().into(),
            TurnError::Provider(error) => error.code().into(),
            TurnError::Source(error) => Code::Plugin(&error.code),
            TurnError::Timeout(_) => ErrorCode::TurnTimeout.into(),
        }
    }

    fn event(&self) -> Event {
        match self {
            TurnError::Source(error) => Event::Error(error.clone()),
            _ => error_event(self.code(), self.to_string()),
        }
    }

    /// Whether the failure was logged where it happened: a plugin's in its
    /// sandbox, a model source's in the stream.
    fn logged(&self) -> bool {
        matches!(self, TurnError::Role(RoleError::Plugin(_)) | TurnError::Source(_))
    }
}

/// Runs multi-agent turns: routes a request to an agent, runs it, and
/// records the turn in the conversation.
pub struct Orchestrator {
    services: Services,
    /// How many earlier turns routers and agents see.
    history_turns: usize,
    settings: AgentSettings,
}

impl Orchestrator {
    /// An orchestrator over `services`; routers and agents see
    /// `history_turns` earlier turns.
    pub fn new(services: Services, history_turns: usize, settings: AgentSettings) -> Self {
        Self { services, history_turns, settings }
    }

    /// The turn's events, starting now in a task of their own.
    pub fn start(self: &Arc<Self>, request: Request, manifest: Arc<Manifest>) -> EventStream {
        let (sender, receiver) = mpsc::channel(CHANNEL_EVENTS);
        let key = ConversationKey::of(request.user_id.as_deref(), request.session_id.as_deref());
        let job = TurnJob { host: self.clone(), request, manifest, key };
        // In the request's span: the turn's log lines and spans name the request.
        let task = tokio::spawn(job.run(sender).in_current_span());
        // Dropping the stream aborts the task, which drops the plugin.
        let abort = AbortOnDrop(task.abort_handle());
        stream::unfold((receiver, abort), |(mut receiver, abort)| async move {
            receiver.recv().await.map(|event| (event, (receiver, abort)))
        })
        .boxed()
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct TurnJob {
    host: Arc<Orchestrator>,
    request: Request,
    manifest: Arc<Manifest>,
    key: Option<ConversationKey>,
}

/// The router's choice.
struct Routed<'a> {
    agent: &'a AgentSpec,
    confidence: f64,
    reason: String,
    appended: Vec<ModelMessage>,
}

impl TurnJob {
    async fn run(self, sender: mpsc::Sender<Event>) {
        let limit = Duration::from_millis(self.host.settings.turn_timeout_ms);
        let outcome = match tokio::time::timeout(limit, self.turn(&sender)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(TurnError::Timeout(limit)),
        };
        if let Err(error) = outcome {
            if !error.logged() {
                warn!(code = error.code().as_str(), %error, "turn failed");
            }
            // A failed send means the client left; nothing is waiting.
            let _ = sender.send(error.event()).await;
        }
    }

    async fn turn(&self, sender: &mpsc::Sender<Event>) -> Result<(), TurnError> {
        let earlier = match &self.key {
            Some(key) => self.host.services.history.load(key, self.host.history_turns).await?,
            None => Vec::new(),
        };
        let routed = self.route(&earlier).await?;
        info!(agent = %routed.agent.name, confidence = routed.confidence, "routed");
        // The user's message too, as orchestrators' metadata carries it
        // (Agent Squad's `userInput`), for formatters that write their shape.
        let user_input = self.request.messages.last().map(ModelMessage::text_content).unwrap_or_default();
        let metadata = json!({ "agent": routed.agent.name, "confidence": routed.confidence, "reason": routed.reason, "userInput": user_input });
        if sender.send(Event::Metadata(metadata.to_string())).await.is_err() {
            return Ok(());
        }
        let downstream = Downstream::new(sender.clone());
        let (stop_reason, appended, mut downstream) = match &routed.agent.plugin {
            Some(plugin) => self.run_plugin(plugin, routed.agent, &earlier, downstream).await?,
            None => {
                let mut downstream = downstream;
                (self.run_model(routed.agent, &earlier, &mut downstream).await?, Vec::new(), downstream)
            }
        };
        if let Some(key) = &self.key {
            let mut messages = self.request.messages.clone();
            messages.extend(routed.appended);
            messages.extend(appended);
            messages.push(ModelMessage::text(Role::Assistant, std::mem::take(&mut downstream.text)));
            let turn = Turn { agent: Some(routed.agent.name.clone()), messages, whole: false };
            self.host.services.history.append(key, turn).await?;
        }
        downstream.send(Event::End(stop_reason)).await;
        Ok(())
    }

    /// The router's choice, or the pipeline's only agent.
    async fn route(&self, earlier: &[Turn]) -> Result<Routed<'_>, TurnError> {
        let Some(router) = &self.manifest.router else {
            let agent = &self.manifest.agents[0];
            return Ok(Routed {
                agent,
                confidence: 1.0,
                reason: "the pipeline's only agent".into(),
                appended: Vec::new(),
            });
        };
        let request = wit::RouteRequest {
            context: self.context(router),
            messages: self.request.messages.iter().map(Into::into).collect(),
            agents: self
                .manifest
                .agents
                .iter()
                .map(|agent| wit::AgentCard { name: agent.name.clone(), description: agent.description.clone() })
                .collect(),
        };
        let services = self.services(router, earlier, self.request.model.clone().or(&self.manifest.model), None);
        let (choice, services) =
            self.host.services.registry.select(router, self.request.settings_for(router), services, &request).await?;
        let agent = self.manifest.agent(&choice.agent).ok_or_else(|| TurnError::UnknownAgent {
            router: router.clone(),
            chosen: choice.agent.clone(),
            known: self.manifest.agents.iter().map(|agent| agent.name.as_str()).collect::<Vec<_>>().join(", "),
        })?;
        Ok(Routed {
            agent,
            confidence: choice.confidence.clamp(0.0, 1.0),
            reason: choice.reason,
            appended: services.appended.into_iter().map(Into::into).collect(),
        })
    }

    /// Runs an agent plugin, which sends its answer down `downstream`;
    /// returns its stop reason, what it appended, and the downstream back.
    async fn run_plugin(
        &self,
        plugin: &PluginName,
        agent: &AgentSpec,
        earlier: &[Turn],
        downstream: Downstream,
    ) -> Result<(String, Vec<ModelMessage>, Downstream), TurnError> {
        let request = wit::AgentRequest {
            context: self.context(plugin),
            agent: agent.name.clone(),
            messages: self.request.messages.iter().map(Into::into).collect(),
            system: self.request.system.clone().or_else(|| agent.system.clone()),
        };
        let services = self.services(plugin, earlier, self.agent_model(agent), Some(downstream));
        let settings = self.request.settings_over(plugin, &agent.config);
        let (stop_reason, services) = self.host.services.registry.handle(plugin, settings, services, &request).await?;
        let downstream = services.downstream.expect("an agent's turn keeps its downstream");
        Ok((stop_reason, services.appended.into_iter().map(Into::into).collect(), downstream))
    }

    /// The built-in model agent: the agent's system prompt and model over
    /// the conversation; returns the model's stop reason.
    async fn run_model(
        &self,
        agent: &AgentSpec,
        earlier: &[Turn],
        downstream: &mut Downstream,
    ) -> Result<String, TurnError> {
        let mut call = self.request.model_call();
        call.system = self.request.system.clone().or_else(|| agent.system.clone());
        call.options = self.agent_model(agent);
        let history = earlier.iter().flat_map(|turn| &turn.messages).cloned();
        call.messages = history.chain(call.messages).collect();
        let mut events = self.host.services.providers.start(&call).await?;
        let mut stop_reason = String::from("end_turn");
        while let Some(event) = events.next().await {
            match event {
                // The turn's own `end` comes once it is recorded.
                Event::End(reason) => stop_reason = reason,
                Event::Error(error) => return Err(TurnError::Source(error)),
                event => {
                    if !downstream.send(event).await {
                        break;
                    }
                }
            }
        }
        Ok(stop_reason)
    }

    fn agent_model(&self, agent: &AgentSpec) -> ModelOptions {
        self.request.model.clone().or(&agent.model).or(&self.manifest.model)
    }

    fn context(&self, plugin: &PluginName) -> wit::StreamContext {
        wit::StreamContext {
            plugin: plugin.to_string(),
            user_id: self.request.user_id.clone(),
            session_id: self.request.session_id.clone(),
        }
    }

    fn services(
        &self,
        plugin: &PluginName,
        earlier: &[Turn],
        defaults: ModelOptions,
        downstream: Option<Downstream>,
    ) -> TurnServices {
        TurnServices {
            plugin: plugin.to_string(),
            history: earlier.iter().flat_map(|turn| &turn.messages).map(Into::into).collect(),
            last_agent: earlier.last().and_then(|turn| turn.agent.clone()),
            appended: Vec::new(),
            models: ModelAccess {
                reasoning_before: Default::default(),
                providers: self.host.services.providers.clone(),
                defaults,
                user_id: self.request.user_id.clone(),
                session_id: self.request.session_id.clone(),
                calls_left: self.host.settings.max_model_calls,
                max_calls: self.host.settings.max_model_calls,
            },
            downstream,
        }
    }
}
