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

use crate::bindings::imports::streamhost::plugin::model as host;
pub use crate::bindings::imports::streamhost::plugin::model::{
    Content, ModelEvent, ModelMessage, ModelRequest, ModelStream, ToolCall, ToolResult, ToolSpec,
};
use crate::{ErrorInfo, Message, Role, Usage};

/// A model's whole answer.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reply {
    /// All of the answer's text, as the model streamed it (reasoning blocks
    /// included: see [`Reply::answer`]).
    pub text: String,
    /// The tools the model asked for, in order.
    pub tool_calls: Vec<ToolCall>,
    /// `end_turn`, `tool_use`, `max_tokens`, ...
    pub stop_reason: String,
    /// Token counts and latency, as the model source reported them; `None`
    /// when it reported none.
    pub usage: Option<Usage>,
}

impl Reply {
    /// The answer's text outside reasoning blocks: what a router or any
    /// plugin that reads the model's decision must look at. See
    /// [`outside_reasoning`].
    pub fn answer(&self) -> String {
        outside_reasoning(&self.text)
    }
}

/// The tags reasoning models wrap their thinking in, inside the text
/// (DeepSeek R1, Qwen3, QwQ: `think`; others `thinking`, `reasoning`).
const REASONING_TAGS: [&str; 3] = ["think", "thinking", "reasoning"];

/// `text` without its reasoning blocks (`<think>…</think>` and the like,
/// any case). The rule: a model's decision is read outside its reasoning,
/// where it may have weighed, and written, other answers. A block left
/// open (the answer was cut short) drops everything after its tag; a
/// closing tag with no opening one (servers whose chat template opens the
/// block in the prompt) drops everything before it.
pub fn outside_reasoning(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut kept = String::new();
    let mut at = 0;
    // An orphan closing tag before any opening one: the model began inside
    // a block.
    let first_open = REASONING_TAGS.iter().filter_map(|tag| lower.find(&format!("<{tag}>"))).min();
    if let Some((close_at, close_len)) = REASONING_TAGS
        .iter()
        .filter_map(|tag| lower.find(&format!("</{tag}>")).map(|found| (found, tag.len() + 3)))
        .min()
        && first_open.is_none_or(|open| close_at < open)
    {
        at = close_at + close_len;
    }
    while at < text.len() {
        let next_open = REASONING_TAGS
            .iter()
            .filter_map(|tag| lower[at..].find(&format!("<{tag}>")).map(|found| (at + found, *tag)))
            .min();
        let Some((open_at, tag)) = next_open else {
            kept.push_str(&text[at..]);
            break;
        };
        kept.push_str(&text[at..open_at]);
        let close = format!("</{tag}>");
        match lower[open_at..].find(&close) {
            Some(found) => at = open_at + found + close.len(),
            None => break,
        }
    }
    kept
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
    /// A request for `messages`: no system prompt, no tools and no model
    /// options of its own (the pipeline's apply).
    pub fn new(messages: Vec<ModelMessage>) -> Self {
        Self { system: None, messages, tools: Vec::new(), options: None }
    }

    /// Sets the system prompt.
    pub fn system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    /// Sets the tools the model may ask for, replacing any set before; its
    /// calls come back in [`Reply::tool_calls`].
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
    /// A user's message of one text block.
    pub fn user(text: impl Into<String>) -> Self {
        Self { role: Role::User, content: vec![Content::Text(text.into())] }
    }

    /// An assistant's message of one text block.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self { role: Role::Assistant, content: vec![Content::Text(text.into())] }
    }

    /// Its text blocks, joined.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|block| match block {
                Content::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use super::outside_reasoning;

    #[test]
    fn the_answer_is_read_outside_reasoning_blocks() {
        assert_eq!(
            outside_reasoning("<think>maybe {\"agent\":\"tech\"}</think>{\"agent\":\"billing\"}"),
            "{\"agent\":\"billing\"}"
        );
        assert_eq!(outside_reasoning("a<THINKING>x</THINKING>b<reasoning>y</reasoning>c"), "abc");
        assert_eq!(outside_reasoning("tech, I think</think> billing"), " billing", "a block opened by the prompt");
        assert_eq!(outside_reasoning("billing <think>or tech"), "billing ", "a block cut short");
        assert_eq!(outside_reasoning("no reasoning at all"), "no reasoning at all");
        assert_eq!(outside_reasoning("<think>a</think>b<think>c</think>d"), "bd");
    }
}
