//! A conversation's messages in host types:
//! - in blocks, as callers send them (a request's `messages`), the history
//!   keeps them and a model call carries them: the WIT's `model-message` and
//!   `content` (`wit/plugin.wit`), with JSON parsed and the reasoning blocks
//!   only the host sees. In JSON a message's `content` is its text, or,
//!   where it holds tool calls or results, a list of blocks
//!   (`{"type":"text","text"}`, `{"type":"toolUse","toolUseId","name","input"}`,
//!   `{"type":"toolResult","toolUseId","content","isError"}`);
//! - as text only, what routers and agents see of a conversation (the
//!   WIT's `message`), and what sources without tools take ([`Message`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who wrote a message: the WIT's `role`. Not a plugin's role
/// ([`PluginRole`](crate::registry::PluginRole)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The caller (or a tool's result, in a model call).
    User,
    /// The model or agent that answers.
    Assistant,
}

impl Role {
    /// The name in the request's JSON (`user`, `assistant`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// The WIT's role and message (what plugins see) are the same data.
impl From<crate::wit::Role> for Role {
    fn from(role: crate::wit::Role) -> Self {
        match role {
            crate::wit::Role::User => Role::User,
            crate::wit::Role::Assistant => Role::Assistant,
        }
    }
}

impl From<Role> for crate::wit::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::User => crate::wit::Role::User,
            Role::Assistant => crate::wit::Role::Assistant,
        }
    }
}

impl From<crate::wit::Message> for ModelMessage {
    fn from(message: crate::wit::Message) -> Self {
        ModelMessage::text(message.role.into(), message.content)
    }
}

/// What a router or an agent sees of a message: its text.
impl From<&ModelMessage> for crate::wit::Message {
    fn from(message: &ModelMessage) -> Self {
        crate::wit::Message { role: message.role.into(), content: message.text_content() }
    }
}

/// A message as text alone, for model sources that take no tool blocks
/// (`ModelCall::text_messages`); serialised as `{"role":…,"content":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
}

/// One message of a conversation: the WIT's `model-message`. In JSON
/// `{"role":…,"content":…}`, the content a string when the message is one
/// text block (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "MessageJson", into = "MessageJson")]
pub struct ModelMessage {
    /// Who wrote it.
    pub role: Role,
    /// Its blocks, in order.
    pub content: Vec<Content>,
}

/// One block of a model message: the WIT's `content`, and the reasoning
/// blocks a model sent, which only the host sees.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// A piece of text.
    Text(String),
    /// The model asked for a tool (an assistant's block).
    ToolCall(ToolCall),
    /// What the tool returned (a user's block).
    ToolResult {
        /// The id of the [`ToolCall`] it answers.
        id: String,
        /// What the tool returned, as text.
        content: String,
        /// Whether the tool failed, `content` saying how.
        is_error: bool,
    },
    /// The model's reasoning, with the signature that lets it be sent back
    /// (an assistant's block; Bedrock's extended thinking).
    Reasoning {
        /// The reasoning's text.
        text: String,
        /// The provider's signature over it, once it has sent one.
        signature: Option<String>,
    },
    /// Reasoning the provider encrypted, sent back as it came.
    RedactedReasoning(Vec<u8>),
}

/// A tool the model may ask for: the WIT's `tool-spec`, its schema parsed.
/// In a request's JSON `{"name", "description", "inputSchema": {…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolSpec {
    /// The tool's name, as calls name it.
    pub name: String,
    /// What the tool does, for the model to decide when to ask for it.
    #[serde(default)]
    pub description: String,
    /// A JSON Schema object.
    #[serde(deserialize_with = "json_object")]
    pub input_schema: Value,
}

/// A tool call the model made: the WIT's `tool-call`, its input parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The model's id for the call, which its result names.
    pub id: String,
    /// The tool asked for.
    pub name: String,
    /// A JSON object.
    pub input: Value,
}

impl ModelMessage {
    /// A message of one text block.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        ModelMessage { role, content: vec![Content::Text(text.into())] }
    }

    /// Its text blocks, joined.
    pub fn text_content(&self) -> String {
        self.content
            .iter()
            .filter_map(|block| match block {
                Content::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Whether it holds a tool call or a tool's result.
    pub fn has_tool_blocks(&self) -> bool {
        self.content.iter().any(|block| matches!(block, Content::ToolCall(_) | Content::ToolResult { .. }))
    }

    /// What it counts as, in bytes: its texts, inputs and results.
    pub fn size(&self) -> usize {
        self.content
            .iter()
            .map(|block| match block {
                Content::Text(text) | Content::Reasoning { text, .. } => text.len(),
                Content::ToolCall(call) => call.id.len() + call.name.len() + call.input.to_string().len(),
                Content::ToolResult { id, content, .. } => id.len() + content.len(),
                Content::RedactedReasoning(bytes) => bytes.len(),
            })
            .sum()
    }
}

/// A message as JSON: see the module doc.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageJson {
    role: Role,
    /// Text, or a list of [`BlockJson`]s (read apart, so that a block's
    /// own error is the one reported).
    content: Value,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
enum BlockJson {
    Text {
        text: String,
    },
    #[serde(rename_all = "camelCase")]
    ToolUse {
        tool_use_id: String,
        name: String,
        #[serde(deserialize_with = "tool_input")]
        input: Value,
    },
    #[serde(rename_all = "camelCase")]
    ToolResult {
        tool_use_id: String,
        content: String,
        #[serde(default)]
        is_error: bool,
    },
}

impl TryFrom<MessageJson> for ModelMessage {
    type Error = String;

    fn try_from(json: MessageJson) -> Result<Self, String> {
        let content = match json.content {
            Value::String(text) => vec![Content::Text(text)],
            Value::Array(blocks) if blocks.is_empty() => return Err("a message's `content` is empty".into()),
            Value::Array(blocks) => blocks
                .into_iter()
                .map(|block| serde_json::from_value::<BlockJson>(block).map(Content::from))
                .collect::<Result<_, _>>()
                .map_err(|error| format!("a block of a message's `content`: {error}"))?,
            _ => return Err("a message's `content` is its text or a list of blocks".into()),
        };
        Ok(ModelMessage { role: json.role, content })
    }
}

impl From<BlockJson> for Content {
    fn from(block: BlockJson) -> Self {
        match block {
            BlockJson::Text { text } => Content::Text(text),
            BlockJson::ToolUse { tool_use_id, name, input } => {
                Content::ToolCall(ToolCall { id: tool_use_id, name, input })
            }
            BlockJson::ToolResult { tool_use_id, content, is_error } => {
                Content::ToolResult { id: tool_use_id, content, is_error }
            }
        }
    }
}

/// Reasoning blocks are the host's, between a model's calls: they are not
/// written.
impl From<ModelMessage> for MessageJson {
    fn from(message: ModelMessage) -> Self {
        let content = match message.content.as_slice() {
            [Content::Text(text)] => Value::String(text.clone()),
            blocks => {
                let blocks: Vec<BlockJson> = blocks.iter().filter_map(block_json).collect();
                serde_json::to_value(blocks).expect("plain data serialises")
            }
        };
        MessageJson { role: message.role, content }
    }
}

fn block_json(block: &Content) -> Option<BlockJson> {
    Some(match block {
        Content::Text(text) => BlockJson::Text { text: text.clone() },
        Content::ToolCall(call) => {
            BlockJson::ToolUse { tool_use_id: call.id.clone(), name: call.name.clone(), input: call.input.clone() }
        }
        Content::ToolResult { id, content, is_error } => {
            BlockJson::ToolResult { tool_use_id: id.clone(), content: content.clone(), is_error: *is_error }
        }
        Content::Reasoning { .. } | Content::RedactedReasoning(_) => return None,
    })
}

fn json_object<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    let value = Value::deserialize(deserializer)?;
    if value.is_object() { Ok(value) } else { Err(serde::de::Error::custom("expected a JSON object")) }
}

/// A tool call's input as JSON: an object, nested no deeper than
/// [`MAX_TOOL_INPUT_DEPTH`].
fn tool_input<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    let input = json_object(deserializer)?;
    if json_depth(&input) > MAX_TOOL_INPUT_DEPTH {
        return Err(serde::de::Error::custom(format!(
            "a tool call's input nests deeper than {MAX_TOOL_INPUT_DEPTH} levels"
        )));
    }
    Ok(input)
}

/// The deepest a tool call's input may nest, wherever it comes from (a
/// caller's conversation, a model's answer). Why: the host puts it inside
/// documents of its own (a request, a kept response, a journal line) that
/// it must read back, and serde_json reads at most 128 levels; a bound well
/// within that keeps every such document readable. Real tools' inputs nest
/// a few levels.
pub const MAX_TOOL_INPUT_DEPTH: usize = 32;

/// How deeply `value` nests: 1 for a scalar, one more per array or object.
pub fn json_depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(json_depth).max().unwrap_or(0),
        Value::Object(fields) => 1 + fields.values().map(json_depth).max().unwrap_or(0),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_message_is_written_as_its_text_and_tool_turns_as_blocks() {
        let text: ModelMessage = serde_json::from_str(r#"{"role":"user","content":"hi"}"#).unwrap();
        assert_eq!(text, ModelMessage::text(Role::User, "hi"));
        assert_eq!(serde_json::to_string(&text).unwrap(), r#"{"role":"user","content":"hi"}"#);
        let call = r#"{"role":"assistant","content":[{"type":"text","text":"Let me look."},{"type":"toolUse","toolUseId":"t1","name":"lookup","input":{"order":"A-1"}}]}"#;
        let parsed: ModelMessage = serde_json::from_str(call).unwrap();
        assert!(parsed.has_tool_blocks());
        assert_eq!(parsed.text_content(), "Let me look.");
        assert_eq!(serde_json::to_string(&parsed).unwrap(), call);
        let result =
            r#"{"role":"user","content":[{"type":"toolResult","toolUseId":"t1","content":"shipped","isError":false}]}"#;
        assert_eq!(serde_json::to_string(&serde_json::from_str::<ModelMessage>(result).unwrap()).unwrap(), result);
    }

    #[test]
    fn a_tool_input_nested_past_the_bound_is_refused() {
        let nested = |depth: usize| format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        let call = |depth: usize| {
            format!(
                r#"{{"role":"assistant","content":[{{"type":"toolUse","toolUseId":"t","name":"f","input":{}}}]}}"#,
                nested(depth)
            )
        };
        assert!(serde_json::from_str::<ModelMessage>(&call(MAX_TOOL_INPUT_DEPTH - 1)).is_ok());
        let error = serde_json::from_str::<ModelMessage>(&call(MAX_TOOL_INPUT_DEPTH)).unwrap_err().to_string();
        assert!(error.contains("nests deeper than 32 levels"), "{error}");
    }

    #[test]
    fn malformed_blocks_are_refused() {
        for json in [
            r#"{"role":"user","content":[]}"#,
            r#"{"role":"assistant","content":[{"type":"toolUse","toolUseId":"t","name":"f","input":"x"}]}"#,
            r#"{"role":"user","content":[{"type":"image","url":"x"}]}"#,
            r#"{"role":"user","content":"hi","extra":1}"#,
        ] {
            assert!(serde_json::from_str::<ModelMessage>(json).is_err(), "{json}");
        }
    }
}
