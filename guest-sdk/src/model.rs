//! Model calls, made by the host with its own credentials through the
//! pipeline's model source; for routers and agents.
//!
//! ```no_run
//! use streamhost_guest::model::{self, ModelMessage, ModelRequest};
//!
//! # fn main() -> Result<(), streamhost_guest::ErrorInfo> {
//! let request = ModelRequest::new(vec![ModelMessage::user("Hello")]).system("Answer briefly.");
//! let reply = model::call(&request, |text| streamhost_guest::agent::emit_text(text))?;
//! # Ok(()) }
//! ```

pub use crate::bindings::imports::streamhost::plugin::model::{
    Content, ModelEvent, ModelMessage, ModelRequest, ModelStream, ToolCall, ToolResult, ToolSpec,
};
use crate::bindings::imports::streamhost::plugin::model as host;
use crate::{ErrorInfo, Message, Role, Usage};

/// A model's whole answer.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reply {
    pub text: String,
    /// The tools the model asked for, in order.
    pub tool_calls: Vec<ToolCall>,
    /// `end_turn`, `tool_use`, `max_tokens`, ...
    pub stop_reason: String,
    pub usage: Option<Usage>,
}

/// Calls the model and reads its whole answer, handing each piece of text to
/// `on_text` as it arrives (to stream it on with `agent::emit_text`, say).
pub fn call(request: &ModelRequest, mut on_text: impl FnMut(&str)) -> Result<Reply, ErrorInfo> {
    let stream = host::start(request)?;
    let mut reply = Reply::default();
    while let Some(event) = stream.next()? {
        match event {
            ModelEvent::Text(text) => {
                on_text(&text);
                reply.text.push_str(&text);
            }
            ModelEvent::ToolCall(call) => reply.tool_calls.push(call),
            ModelEvent::Usage(usage) => reply.usage = Some(usage),
            ModelEvent::End(reason) => reply.stop_reason = reason,
        }
    }
    Ok(reply)
}

impl ModelRequest {
    pub fn new(messages: Vec<ModelMessage>) -> Self {
        Self { system: None, messages, tools: Vec::new(), options: None }
    }

    pub fn system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    pub fn tools(mut self, tools: Vec<ToolSpec>) -> Self {
        self.tools = tools;
        self
    }

    /// Model options as a JSON object, as in a request's `model`.
    pub fn options(mut self, options: impl Into<String>) -> Self {
        self.options = Some(options.into());
        self
    }
}

impl ModelMessage {
    pub fn user(text: impl Into<String>) -> Self {
        Self { role: Role::User, content: vec![Content::Text(text.into())] }
    }

    pub fn assistant(text: impl Into<String>) -> Self {
        Self { role: Role::Assistant, content: vec![Content::Text(text.into())] }
    }
}

impl From<&Message> for ModelMessage {
    fn from(message: &Message) -> Self {
        Self { role: message.role, content: vec![Content::Text(message.content.clone())] }
    }
}

/// Earlier turns, then this request's messages: the conversation as a model
/// takes it.
pub fn conversation(history: &[Message], request: &[Message]) -> Vec<ModelMessage> {
    history.iter().chain(request).map(ModelMessage::from).collect()
}
