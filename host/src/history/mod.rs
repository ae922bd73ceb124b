//! Conversation memory: the turns of each user and session, for routers
//! and agents to see. A turn (the user's messages, what the agent added, the
//! answer's text) is recorded once its answer completes, never after a
//! failure. Backends: in memory, bounded in count and in bytes, optionally
//! kept in a local file (`memory`), and a DynamoDB table for Lambda
//! (`dynamo`).

mod dynamo;
mod memory;

use std::fmt;
use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use dynamo::DynamoHistory;
pub use memory::MemoryHistory;

use crate::conversation::ModelMessage;
use crate::error_code::ErrorCode;

/// Where conversations are kept and how much of them.
#[derive(Debug, Clone, Args)]
pub struct HistorySettings {
    /// How many earlier turns of a conversation routers and agents see, and
    /// the in-memory store keeps.
    #[arg(long, env = "STREAMHOST_HISTORY_TURNS", default_value_t = 20, value_name = "N")]
    pub history_turns: usize,

    /// The most conversations kept in memory; past it the least recently
    /// used one is dropped.
    #[arg(long, env = "STREAMHOST_HISTORY_MAX_CONVERSATIONS", default_value_t = 10_000, value_name = "N")]
    pub history_max_conversations: usize,

    /// The most bytes the conversations kept in memory may hold, each
    /// message counted as its text and 64 bytes (each turn and conversation
    /// as a little more, its key's text included); past it the least
    /// recently used conversations are dropped, whole. A turn larger than
    /// this is kept without its oldest messages, down to the latest that
    /// fit; one whose last message (the answer) alone does not fit is not
    /// kept.
    #[arg(long, env = "STREAMHOST_HISTORY_MAX_BYTES", default_value_t = 64 << 20, value_name = "BYTES")]
    pub history_max_bytes: u64,

    /// Keep the in-memory conversations in this file across restarts: a
    /// journal of JSON lines, appended to at each turn and rewritten now and
    /// then.
    #[arg(long, env = "STREAMHOST_HISTORY_FILE", value_name = "FILE", conflicts_with = "history_table")]
    pub history_file: Option<PathBuf>,

    /// Keep conversations in this DynamoDB table (partition key
    /// `conversation`, string; sort key `turn`, number) instead of memory.
    #[arg(long, env = "STREAMHOST_HISTORY_TABLE", value_name = "TABLE")]
    pub history_table: Option<String>,

    /// Days a conversation's turns live in DynamoDB (its `expiresAt` TTL).
    #[arg(long, env = "STREAMHOST_HISTORY_TTL_DAYS", default_value_t = 30, value_name = "DAYS")]
    pub history_ttl_days: u64,
}

/// Whose conversation: a user's session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConversationKey {
    /// The request's `userId`; empty for an anonymous user.
    pub user_id: String,
    /// The request's `sessionId`.
    pub session_id: String,
}

impl ConversationKey {
    /// The key of a request's conversation: it has one when it names a
    /// session (the user may be anonymous).
    pub fn of(user_id: Option<&str>, session_id: Option<&str>) -> Option<Self> {
        Some(Self { user_id: user_id.unwrap_or_default().to_string(), session_id: session_id?.to_string() })
    }
}

impl fmt::Display for ConversationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither part may hide the separator: escape it in both.
        write!(f, "{}#{}", self.user_id.replace('#', "##"), self.session_id.replace('#', "##"))
    }
}

/// One completed exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// The agent that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The user's messages, what the router and the agent added, and the
    /// answer's text as the last, assistant, message (a kept Responses
    /// answer: the whole conversation, tool turns included).
    pub messages: Vec<ModelMessage>,
    /// Kept whole or not at all: never trimmed to fit the byte bound (a
    /// kept Responses answer, whose conversation a continuation needs
    /// entire).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub whole: bool,
}

/// Why the conversation store could not be read or written.
#[derive(Debug, Error)]
pub enum HistoryError {
    /// DynamoDB could not be reached or refused the call, or a stored turn is
    /// not valid; holds what went wrong.
    #[error("the conversation store is unavailable: {0}")]
    Unavailable(String),
    /// The `--history-file` could not be read, parsed or written.
    #[error("the conversation file {path}: {message}")]
    File {
        /// The conversation file.
        path: PathBuf,
        /// What went wrong with it.
        message: String,
    },
}

impl HistoryError {
    /// The code of this error in the host's table (error_code.rs).
    pub fn code(&self) -> ErrorCode {
        ErrorCode::HistoryUnavailable
    }
}

/// Where conversations are kept, as `--history-table` and `--history-file` say.
pub enum HistoryStore {
    /// In memory, optionally saved to a local file (boxed: it holds the
    /// file's journal state, and a DynamoDB store is a client).
    Memory(Box<MemoryHistory>),
    /// In a DynamoDB table.
    Dynamo(DynamoHistory),
}

impl HistoryStore {
    /// The store the settings name: the DynamoDB table of `--history-table`,
    /// or else memory (read from and saved to `--history-file` when set).
    pub async fn from_settings(settings: &HistorySettings) -> anyhow::Result<Self> {
        Ok(match &settings.history_table {
            Some(table) => {
                let client = aws_sdk_dynamodb::Client::new(&crate::aws::load().await);
                HistoryStore::Dynamo(DynamoHistory::new(client, table.clone(), settings.history_ttl_days))
            }
            None => HistoryStore::Memory(Box::new(MemoryHistory::new(
                settings.history_turns,
                settings.history_max_conversations,
                settings.history_max_bytes,
                settings.history_file.clone(),
            )?)),
        })
    }

    /// The latest `turns` turns, oldest first.
    pub async fn load(&self, key: &ConversationKey, turns: usize) -> Result<Vec<Turn>, HistoryError> {
        match self {
            HistoryStore::Memory(memory) => Ok(memory.load(key, turns)),
            HistoryStore::Dynamo(dynamo) => dynamo.load(key, turns).await,
        }
    }

    /// Records a completed turn as the conversation's latest.
    pub async fn append(&self, key: &ConversationKey, turn: Turn) -> Result<(), HistoryError> {
        match self {
            HistoryStore::Memory(memory) => memory.append(key, turn).await,
            HistoryStore::Dynamo(dynamo) => dynamo.append(key, turn).await,
        }
    }
}

impl fmt::Display for HistoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryStore::Memory(memory) => write!(f, "{memory}"),
            HistoryStore::Dynamo(dynamo) => write!(f, "{dynamo}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_do_not_collide() {
        let key = |user: &str, session: &str| ConversationKey::of(Some(user), Some(session)).unwrap().to_string();
        assert_ne!(key("a#b", "c"), key("a", "b#c"));
        assert_eq!(ConversationKey::of(Some("u"), None), None);
        assert_eq!(ConversationKey::of(None, Some("s")).unwrap().to_string(), "#s");
    }
}
