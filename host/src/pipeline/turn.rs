//! One turn's services for its router or agent: the earlier turns, the
//! model calls it may make, and, for an agent, the stream downstream. This
//! is the [`TurnHost`] the registry links a router's or an agent's imports
//! to; the orchestrator gives one to each plugin and takes it back after.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::conversation::{Content, ModelMessage, ToolCall, ToolSpec};
use crate::error_code::ErrorCode;
use crate::event::{Event, error_info};
use crate::providers::call::tool_use_of;
use crate::providers::{EventStream, ModelCall, ModelOptions, Providers, ReasoningBlocks};
use crate::registry::{ModelStream, TurnHost};
use crate::wit::model_api::{self as api, ModelEvent, ModelRequest};
use crate::wit::{ErrorInfo, Message};

/// What a router's or an agent's imports reach during one turn.
pub struct TurnServices {
    /// The earlier turns' messages, oldest first.
    pub history: Vec<Message>,
    /// The agent that answered the last turn.
    pub last_agent: Option<String>,
    /// What the plugin added to this turn's record with `history.append`.
    pub appended: Vec<Message>,
    /// The model calls the plugin may make.
    pub models: ModelAccess,
    /// Where an agent's `emit` sends; a router has none.
    pub downstream: Option<Downstream>,
    /// The plugin's name, for the log.
    pub plugin: String,
}

/// Model calls on a plugin's behalf: the host's providers, the pipeline's
/// model options, and how many calls the turn has left.
pub struct ModelAccess {
    /// The host's model sources.
    pub providers: Arc<Providers>,
    /// The pipeline's model options, under what the plugin's request sets.
    pub defaults: ModelOptions,
    /// The request's user id, passed to sources that take one.
    pub user_id: Option<String>,
    /// The request's session id, passed to sources that keep sessions.
    pub session_id: Option<String>,
    /// Calls left in this turn.
    pub calls_left: u32,
    /// `--max-model-calls`, for the error that says so.
    pub max_calls: u32,
    /// The reasoning each tool call came after, by the call's id: put back
    /// in front of the call when the plugin sends it to the model again.
    /// Shared with the turn's model streams, which fill it.
    pub reasoning_before: Arc<Mutex<HashMap<String, Vec<Content>>>>,
}

/// The channel to the pipeline's transforms, keeping the answer's text for
/// the conversation's record.
pub struct Downstream {
    sender: mpsc::Sender<Event>,
    /// The text sent so far.
    pub text: String,
}

impl Downstream {
    /// A downstream that sends on `sender`.
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

impl TurnHost for TurnServices {
    fn messages(&self) -> Vec<Message> {
        self.history.clone()
    }

    fn last_agent(&self) -> Option<String> {
        self.last_agent.clone()
    }

    fn append(&mut self, message: Message) {
        self.appended.push(message);
    }

    fn start_model(&mut self, request: ModelRequest) -> BoxFuture<'_, Result<Box<dyn ModelStream>, ErrorInfo>> {
        Box::pin(async move {
            let models = &mut self.models;
            if models.calls_left == 0 {
                let message = format!(
                    "this turn has made its {} model calls (--max-model-calls); is a tool loop not ending?",
                    models.max_calls
                );
                return Err(error_info(ErrorCode::ModelCallLimit, message));
            }
            models.calls_left -= 1;
            let mut call = model_call(request, models)?;
            restore_reasoning(&mut call.messages, &models.reasoning_before.lock().expect("not poisoned"));
            debug!(plugin = %self.plugin, messages = call.messages.len(), tools = call.tools.len(), "model call");
            let events =
                models.providers.start(&call).await.map_err(|error| error_info(error.code(), error.to_string()))?;
            let stream = TurnModelStream {
                events,
                reasoning: ReasoningBlocks::default(),
                reasoning_before: models.reasoning_before.clone(),
            };
            Ok(Box::new(stream) as Box<dyn ModelStream>)
        })
    }

    fn emit(&mut self, event: Event) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some(downstream) = self.downstream.as_mut() else {
                warn!(plugin = %self.plugin, "a router emitted an event; only agents send downstream");
                return;
            };
            if matches!(event, Event::End(_) | Event::Error(_)) {
                warn!(plugin = %self.plugin, "an agent emitted `end` or `error`, which come from `handle`'s result; dropped");
                return;
            }
            // A closed stream means the client left; the turn is being dropped.
            downstream.send(event).await;
        })
    }
}

/// A model stream a plugin is reading, and the reasoning it has sent.
struct TurnModelStream {
    events: EventStream,
    reasoning: ReasoningBlocks,
    reasoning_before: Arc<Mutex<HashMap<String, Vec<Content>>>>,
}

impl ModelStream for TurnModelStream {
    fn next(&mut self) -> BoxFuture<'_, Result<Option<ModelEvent>, ErrorInfo>> {
        Box::pin(async move {
            while let Some(event) = self.events.next().await {
                match event {
                    Event::Text(text) => return Ok(Some(ModelEvent::Text(text))),
                    Event::Usage(usage) => return Ok(Some(ModelEvent::Usage(usage))),
                    Event::End(reason) => return Ok(Some(ModelEvent::End(reason))),
                    Event::Error(error) => return Err(error),
                    Event::Metadata(metadata) => match tool_use_of(&metadata) {
                        Some(call) => {
                            let reasoning = self.reasoning.blocks();
                            if !reasoning.is_empty() {
                                self.reasoning_before.lock().expect("not poisoned").insert(call.id.clone(), reasoning);
                            }
                            return Ok(Some(ModelEvent::ToolCall(wit_tool_call(call))));
                        }
                        None => self.reasoning.observe(&metadata),
                    },
                    Event::Status(_) | Event::Raw(_) | Event::Frame(_) => {}
                }
            }
            Ok(None)
        })
    }
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
    let messages = request.messages.into_iter().map(model_message).collect::<Result<_, _>>()?;
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
fn restore_reasoning(turns: &mut [ModelMessage], reasoning_before: &HashMap<String, Vec<Content>>) {
    for turn in turns {
        let has_reasoning =
            turn.content.iter().any(|block| matches!(block, Content::Reasoning { .. } | Content::RedactedReasoning(_)));
        let first_call = turn.content.iter().find_map(|block| match block {
            Content::ToolCall(call) => reasoning_before.get(&call.id),
            _ => None,
        });
        if let Some(reasoning) = first_call.filter(|_| !has_reasoning) {
            turn.content.splice(0..0, reasoning.iter().cloned());
        }
    }
}

/// A plugin's tool spec, its schema parsed (a model request's, or a request
/// filter's client tools).
pub(super) fn tool_spec(spec: api::ToolSpec) -> Result<ToolSpec, ErrorInfo> {
    let input_schema = json_object(&spec.input_schema).ok_or_else(|| {
        error_info(ErrorCode::InvalidToolSpec, format!("the input schema of tool `{}` is not a JSON object", spec.name))
    })?;
    Ok(ToolSpec { name: spec.name, description: spec.description, input_schema })
}

/// A plugin's message, tool inputs parsed (a model request's, or a request
/// filter's conversation).
pub(super) fn model_message(message: api::ModelMessage) -> Result<ModelMessage, ErrorInfo> {
    let content = message.content.into_iter().map(content).collect::<Result<_, _>>()?;
    Ok(ModelMessage { role: message.role.into(), content })
}

fn content(content: api::Content) -> Result<Content, ErrorInfo> {
    Ok(match content {
        api::Content::Text(text) => Content::Text(text),
        api::Content::ToolCall(call) => {
            let input = json_object(&call.input).ok_or_else(|| {
                error_info(
                    ErrorCode::InvalidToolCall,
                    format!("the input of tool call `{}` is not a JSON object", call.id),
                )
            })?;
            Content::ToolCall(ToolCall { id: call.id, name: call.name, input })
        }
        api::Content::ToolResult(result) => {
            Content::ToolResult { id: result.id, content: result.content, is_error: result.is_error }
        }
    })
}

fn wit_tool_call(call: ToolCall) -> api::ToolCall {
    api::ToolCall { id: call.id, name: call.name, input: call.input.to_string() }
}

fn json_object(text: &str) -> Option<Value> {
    serde_json::from_str::<Value>(text).ok().filter(Value::is_object)
}
