//! What a model source is asked: a conversation of text and tool blocks, the
//! tools the model may call, and the model options. A caller's request
//! becomes one (text only); an agent plugin's `model.start` builds one.

use serde_json::{Map, Value, json};

use super::{ModelOptions, ProviderError, ProviderKind};
use crate::event::Event;
use crate::request::{Message, Request, Role};

#[derive(Debug, Clone)]
pub struct ModelCall {
    pub system: Option<String>,
    pub messages: Vec<Turn>,
    pub tools: Vec<ToolSpec>,
    pub options: ModelOptions,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
}

/// One message to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub role: Role,
    pub content: Vec<Block>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text(String),
    /// The model asked for a tool (an assistant's block).
    ToolUse(ToolCall),
    /// What the tool returned (a user's block).
    ToolResult { id: String, content: String, is_error: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// A JSON Schema object.
    pub input_schema: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// A JSON object.
    pub input: Value,
}

impl ModelCall {
    /// A caller's request, as text messages.
    pub fn from_request(request: &Request) -> Self {
        Self {
            system: request.system.clone(),
            messages: request.messages.iter().map(Turn::from).collect(),
            tools: Vec::new(),
            options: request.model.clone(),
            user_id: request.user_id.clone(),
            session_id: request.session_id.clone(),
        }
    }

    /// The conversation as text messages, for sources that take no tools.
    pub fn text_messages(&self, kind: ProviderKind) -> Result<Vec<Message>, ProviderError> {
        let unsupported = || ProviderError::InvalidRequest(format!("the `{kind}` provider takes no tools; use `bedrock`, `openai` or `echo` for tool use"));
        if !self.tools.is_empty() {
            return Err(unsupported());
        }
        self.messages
            .iter()
            .map(|turn| {
                let texts = turn.content.iter().map(|block| match block {
                    Block::Text(text) => Ok(text.as_str()),
                    _ => Err(unsupported()),
                });
                Ok(Message { role: turn.role, content: texts.collect::<Result<String, _>>()? })
            })
            .collect()
    }
}

impl From<&Message> for Turn {
    fn from(message: &Message) -> Self {
        Turn { role: message.role, content: vec![Block::Text(message.content.clone())] }
    }
}

/// A whole tool call travels in the event stream as metadata
/// `{"toolUse":{"toolUseId":…,"name":…,"input":{…}}}`: what a caller of the
/// plain stream sees, and what an agent's `model-stream` turns into a
/// `tool-call`.
pub fn tool_use_event(call: &ToolCall) -> Event {
    Event::Metadata(json!({ "toolUse": { "toolUseId": call.id, "name": call.name, "input": call.input } }).to_string())
}

/// The tool call in a metadata event made by [`tool_use_event`].
pub fn tool_use_of(metadata: &str) -> Option<ToolCall> {
    let value: Map<String, Value> = serde_json::from_str(metadata).ok()?;
    let tool_use = value.get("toolUse")?;
    Some(ToolCall {
        id: tool_use.get("toolUseId")?.as_str()?.to_string(),
        name: tool_use.get("name")?.as_str()?.to_string(),
        input: tool_use.get("input")?.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_call_survives_the_event_stream() {
        let call = ToolCall { id: "t1".into(), name: "add".into(), input: json!({ "a": 1 }) };
        let Event::Metadata(metadata) = tool_use_event(&call) else { unreachable!() };
        assert_eq!(tool_use_of(&metadata), Some(call));
        assert_eq!(tool_use_of(r#"{"toolUse":{"index":0,"input":"{\"a\""}}"#), None);
    }
}
