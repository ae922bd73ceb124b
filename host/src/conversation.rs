//! A conversation's messages in host types:
//! - as callers send them and the history keeps them, text only: the WIT's
//!   `message` and `role` (`wit/plugin.wit`), serialised as the request's
//!   JSON;
//! - as a model call carries them, in blocks: the WIT's `model-message` and
//!   `content` (`wit/orchestration.wit`), with JSON parsed and the reasoning
//!   blocks only the host sees.

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

impl From<crate::wit::Message> for Message {
    fn from(message: crate::wit::Message) -> Self {
        Message { role: message.role.into(), content: message.content }
    }
}

impl From<&Message> for crate::wit::Message {
    fn from(message: &Message) -> Self {
        crate::wit::Message { role: message.role.into(), content: message.content.clone() }
    }
}

/// One turn of the conversation; serialised as `{"role":…,"content":…}`,
/// which is also what model sources that take JSON messages expect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
}

/// One message of a model call: the WIT's `model-message`.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// The tool's name, as calls name it.
    pub name: String,
    /// What the tool does, for the model to decide when to ask for it.
    pub description: String,
    /// A JSON Schema object.
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

impl From<&Message> for ModelMessage {
    fn from(message: &Message) -> Self {
        ModelMessage { role: message.role, content: vec![Content::Text(message.content.clone())] }
    }
}
