//! The host side of the imports: `log` and `config` for every plugin;
//! `history`, `model` and `emit` for routers and agents, which reach them
//! through the turn's [`TurnServices`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, error, info, trace, warn};
use wasmtime::component::Resource;

use super::sandbox::PluginState;
use crate::error_code::ErrorCode;
use crate::providers::{
    Block, EventStream, ModelCall, ModelOptions, Providers, ReasoningBlocks, ToolCall, ToolSpec, Turn,
    call::tool_use_of,
};
use crate::wit::model_api::{Content, ModelEvent, ModelMessage, ModelRequest};
use crate::wit::{self, ErrorInfo, Event, LogLevel, Message};

/// Longer log lines from a plugin are cut.
const MAX_LOG_LINE: usize = 4 * 1024;

/// What a router's or an agent's imports reach during one turn.
pub struct TurnServices {
    /// The earlier turns' messages, oldest first.
    pub history: Vec<Message>,
    pub last_agent: Option<String>,
    /// What the plugin added to this turn's record with `history.append`.
    pub appended: Vec<Message>,
    pub models: ModelAccess,
    /// Where an agent's `emit` sends; a router has none.
    pub downstream: Option<Downstream>,
}

/// Model calls on a plugin's behalf: the host's providers, the pipeline's
/// model options, and how many calls the turn has left.
pub struct ModelAccess {
    pub providers: Arc<Providers>,
    pub defaults: ModelOptions,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub calls_left: u32,
    pub max_calls: u32,
    /// The reasoning each tool call came after, by the call's id: put back
    /// in front of the call when the plugin sends it to the model again.
    pub reasoning_before: HashMap<String, Vec<Block>>,
}

/// The channel to the pipeline's transforms, keeping the answer's text for
/// the conversation's record.
pub struct Downstream {
    sender: mpsc::Sender<Event>,
    pub text: String,
}

impl Downstream {
    pub fn new(sender: mpsc::Sender<Event>) -> Self {
        Self { sender, text: String::new() }
    }

    /// Sends `event` on, waiting while the transforms are behind. Returns
    /// false once the stream is gone (the client left).
    pub async fn send(&mut self, event: Event) -> bool {
        if let Event::Text(text) = &event {
            self.text.push_str(text);
        }
        self.sender.send(event).await.is_ok()
    }
}

/// A model stream a plugin is reading, and the reasoning it has sent.
pub struct ModelStreamState {
    events: EventStream,
    reasoning: ReasoningBlocks,
}

impl wit::streamhost::plugin::types::Host for PluginState {}

impl wit::streamhost::plugin::config::Host for PluginState {
    fn settings(&mut self) -> String {
        self.settings.clone()
    }
}

impl wit::streamhost::plugin::log::Host for PluginState {
    fn log(&mut self, level: LogLevel, mut message: String) {
        if message.len() > MAX_LOG_LINE {
            let cut = (0..=MAX_LOG_LINE).rev().find(|&i| message.is_char_boundary(i)).unwrap_or(0);
            message.truncate(cut);
        }
        let plugin = self.plugin.as_str();
        match level {
            LogLevel::Trace => trace!(plugin, "{message}"),
            LogLevel::Debug => debug!(plugin, "{message}"),
            LogLevel::Info => info!(plugin, "{message}"),
            LogLevel::Warn => warn!(plugin, "{message}"),
            LogLevel::Error => error!(plugin, "{message}"),
        }
    }
}

impl PluginState {
    fn turn(&mut self) -> &mut TurnServices {
        // Only routers and agents link these imports' callers to a turn; a
        // transform importing them is refused at load (`Registry::link`).
        self.turn.as_mut().expect("history, model and emit are for routers and agents")
    }
}

impl wit::streamhost::plugin::history::Host for PluginState {
    fn messages(&mut self) -> Vec<Message> {
        self.turn().history.clone()
    }

    fn last_agent(&mut self) -> Option<String> {
        self.turn().last_agent.clone()
    }

    fn append(&mut self, message: Message) {
        self.turn().appended.push(message);
    }
}

impl wit::streamhost::plugin::model::Host for PluginState {
    /// Waiting for the model's first event is the host's time.
    async fn start(&mut self, request: ModelRequest) -> Result<Resource<ModelStreamState>, ErrorInfo> {
        let waiting_since = Instant::now();
        let started = self.start_model(request).await;
        self.exclude_wait(waiting_since);
        started
    }
}

impl PluginState {
    async fn start_model(&mut self, request: ModelRequest) -> Result<Resource<ModelStreamState>, ErrorInfo> {
        let plugin = self.plugin.clone();
        let models = &mut self.turn().models;
        if models.calls_left == 0 {
            let message = format!(
                "this turn has made its {} model calls (--max-model-calls); is a tool loop not ending?",
                models.max_calls
            );
            return Err(error_info(ErrorCode::ModelCallLimit, message));
        }
        models.calls_left -= 1;
        let mut call = model_call(request, models)?;
        restore_reasoning(&mut call.messages, &models.reasoning_before);
        let providers = models.providers.clone();
        debug!(%plugin, messages = call.messages.len(), tools = call.tools.len(), "model call");
        let events = providers.start(&call).await.map_err(|error| error_info(error.code(), error.to_string()))?;
        self.table
            .push(ModelStreamState { events, reasoning: ReasoningBlocks::default() })
            .map_err(|error| error_info(ErrorCode::InternalError, error.to_string()))
    }
}

impl wit::streamhost::plugin::model::HostModelStream for PluginState {
    /// Waiting for the model's next event is the host's time.
    async fn next(&mut self, stream: Resource<ModelStreamState>) -> Result<Option<ModelEvent>, ErrorInfo> {
        let waiting_since = Instant::now();
        let next = self.next_model_event(stream).await;
        self.exclude_wait(waiting_since);
        next
    }

    async fn drop(&mut self, stream: Resource<ModelStreamState>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}

impl PluginState {
    async fn next_model_event(&mut self, stream: Resource<ModelStreamState>) -> Result<Option<ModelEvent>, ErrorInfo> {
        let stream =
            self.table.get_mut(&stream).map_err(|error| error_info(ErrorCode::InternalError, error.to_string()))?;
        while let Some(event) = stream.events.next().await {
            match event {
                Event::Text(text) => return Ok(Some(ModelEvent::Text(text))),
                Event::Usage(usage) => return Ok(Some(ModelEvent::Usage(usage))),
                Event::End(reason) => return Ok(Some(ModelEvent::End(reason))),
                Event::Error(error) => return Err(error),
                Event::Metadata(metadata) => match tool_use_of(&metadata) {
                    Some(call) => {
                        let reasoning = stream.reasoning.blocks();
                        if !reasoning.is_empty() {
                            self.turn().models.reasoning_before.insert(call.id.clone(), reasoning);
                        }
                        return Ok(Some(ModelEvent::ToolCall(wit_tool_call(call))));
                    }
                    None => stream.reasoning.observe(&metadata),
                },
                Event::Status(_) | Event::Raw(_) | Event::Frame(_) => {}
            }
        }
        Ok(None)
    }
}

impl wit::streamhost::plugin::emit::Host for PluginState {
    async fn emit(&mut self, event: Event) {
        let plugin = self.plugin.clone();
        let Some(downstream) = self.turn().downstream.as_mut() else {
            warn!(%plugin, "a router emitted an event; only agents send downstream");
            return;
        };
        if matches!(event, Event::End(_) | Event::Error(_)) {
            warn!(%plugin, "an agent emitted `end` or `error`, which come from `handle`'s result; dropped");
            return;
        }
        // A closed stream means the client left; the turn is being dropped.
        // A slow client's backpressure is the host's time.
        let waiting_since = Instant::now();
        downstream.send(event).await;
        self.exclude_wait(waiting_since);
    }
}

fn error_info(code: ErrorCode, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo { code: code.to_string(), message: message.into() }
}

/// A plugin's model request as the providers take it, with the pipeline's
/// options where the plugin gives none.
fn model_call(request: ModelRequest, models: &ModelAccess) -> Result<ModelCall, ErrorInfo> {
    let options = match request.options.as_deref().filter(|options| !options.trim().is_empty()) {
        Some(options) => serde_json::from_str::<ModelOptions>(options).map_err(|error| {
            error_info(ErrorCode::InvalidModelOptions, format!("the model request's `options`: {error}"))
        })?,
        None => ModelOptions::default(),
    };
    let tools = request.tools.into_iter().map(tool_spec).collect::<Result<_, _>>()?;
    let messages = request.messages.into_iter().map(turn).collect::<Result<_, _>>()?;
    Ok(ModelCall {
        system: request.system,
        messages,
        tools,
        options: options.or(&models.defaults),
        user_id: models.user_id.clone(),
        session_id: models.session_id.clone(),
    })
}

/// Puts the reasoning a tool call came after back in front of it, in an
/// assistant turn that carries none of its own (see `ReasoningBlocks`).
fn restore_reasoning(turns: &mut [Turn], reasoning_before: &HashMap<String, Vec<Block>>) {
    for turn in turns {
        let has_reasoning =
            turn.content.iter().any(|block| matches!(block, Block::Reasoning { .. } | Block::RedactedReasoning(_)));
        let first_call = turn.content.iter().find_map(|block| match block {
            Block::ToolUse(call) => reasoning_before.get(&call.id),
            _ => None,
        });
        if let Some(reasoning) = first_call.filter(|_| !has_reasoning) {
            turn.content.splice(0..0, reasoning.iter().cloned());
        }
    }
}

fn tool_spec(spec: wit::model_api::ToolSpec) -> Result<ToolSpec, ErrorInfo> {
    let input_schema = json_object(&spec.input_schema).ok_or_else(|| {
        error_info(ErrorCode::InvalidToolSpec, format!("the input schema of tool `{}` is not a JSON object", spec.name))
    })?;
    Ok(ToolSpec { name: spec.name, description: spec.description, input_schema })
}

fn turn(message: ModelMessage) -> Result<Turn, ErrorInfo> {
    let content = message.content.into_iter().map(block).collect::<Result<_, _>>()?;
    Ok(Turn { role: message.role.into(), content })
}

fn block(content: Content) -> Result<Block, ErrorInfo> {
    Ok(match content {
        Content::Text(text) => Block::Text(text),
        Content::ToolCall(call) => {
            let input = json_object(&call.input).ok_or_else(|| {
                error_info(
                    ErrorCode::InvalidToolCall,
                    format!("the input of tool call `{}` is not a JSON object", call.id),
                )
            })?;
            Block::ToolUse(ToolCall { id: call.id, name: call.name, input })
        }
        Content::ToolResult(result) => {
            Block::ToolResult { id: result.id, content: result.content, is_error: result.is_error }
        }
    })
}

fn wit_tool_call(call: ToolCall) -> wit::model_api::ToolCall {
    wit::model_api::ToolCall { id: call.id, name: call.name, input: call.input.to_string() }
}

fn json_object(text: &str) -> Option<Value> {
    serde_json::from_str::<Value>(text).ok().filter(Value::is_object)
}
