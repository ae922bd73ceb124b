//! Conversations in memory, each cut to its latest turns, at most
//! `max_conversations` of them, the least recently used dropped first
//! (`lru`); with a file, saved after every turn (written aside, then renamed
//! over) and read at start-up. The file is a JSON object, conversation key
//! to turns, least recently used first.

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Mutex;

use lru::LruCache;

use super::{ConversationKey, HistoryError, Turn};

type Conversations = LruCache<String, VecDeque<Turn>>;

/// Conversations in memory, least recently used dropped first, optionally
/// saved to a JSON file.
pub struct MemoryHistory {
    max_turns: usize,
    conversations: Mutex<Conversations>,
    file: Option<PathBuf>,
    /// Writes of the file one at a time, in order.
    writing: tokio::sync::Mutex<()>,
}

impl MemoryHistory {
    /// A store keeping `max_turns` turns of each of `max_conversations`
    /// conversations; with a `file`, what it holds is loaded first, if it exists.
    pub fn new(max_turns: usize, max_conversations: usize, file: Option<PathBuf>) -> Result<Self, HistoryError> {
        let mut conversations = Conversations::new(NonZeroUsize::new(max_conversations).unwrap_or(NonZeroUsize::MIN));
        if let Some(path) = file.as_ref().filter(|path| path.exists()) {
            let failed = |message: String| HistoryError::File { path: path.clone(), message };
            let json = std::fs::read(path).map_err(|error| failed(error.to_string()))?;
            // An object keeps its order (serde_json's `preserve_order`): least recently used first.
            let saved: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&json).map_err(|error| failed(format!("not a conversation file: {error}")))?;
            for (key, turns) in saved {
                let turns = serde_json::from_value(turns)
                    .map_err(|error| failed(format!("not a conversation file: {error}")))?;
                conversations.put(key, turns);
            }
        }
        Ok(Self { max_turns, conversations: Mutex::new(conversations), file, writing: tokio::sync::Mutex::default() })
    }

    /// The latest `turns` turns, oldest first; a read counts as a use.
    pub fn load(&self, key: &ConversationKey, turns: usize) -> Vec<Turn> {
        let mut conversations = self.conversations.lock().unwrap();
        let Some(conversation) = conversations.get(&key.to_string()) else { return Vec::new() };
        conversation.iter().skip(conversation.len().saturating_sub(turns)).cloned().collect()
    }

    /// Adds the turn, dropping the conversation's oldest past `max_turns`, and
    /// saves every conversation to the file when there is one.
    pub async fn append(&self, key: &ConversationKey, turn: Turn) -> Result<(), HistoryError> {
        let _writing = self.writing.lock().await;
        let snapshot = {
            let mut conversations = self.conversations.lock().unwrap();
            let conversation = conversations.get_or_insert_mut(key.to_string(), VecDeque::new);
            conversation.push_back(turn);
            while conversation.len() > self.max_turns {
                conversation.pop_front();
            }
            self.file.as_ref().map(|_| saved(&conversations))
        };
        match (&self.file, snapshot) {
            (Some(path), Some(json)) => save(path, &json).await,
            _ => Ok(()),
        }
    }
}

/// The conversations as the file keeps them: least recently used first.
fn saved(conversations: &Conversations) -> Vec<u8> {
    let object: serde_json::Map<String, serde_json::Value> = conversations
        .iter()
        .rev()
        .map(|(key, turns)| (key.clone(), serde_json::to_value(turns).expect("turns serialise")))
        .collect();
    serde_json::to_vec(&object).expect("turns serialise")
}

async fn save(path: &PathBuf, json: &[u8]) -> Result<(), HistoryError> {
    let failed = |error: std::io::Error| HistoryError::File { path: path.clone(), message: error.to_string() };
    let aside = path.with_extension("tmp");
    tokio::fs::write(&aside, json).await.map_err(failed)?;
    tokio::fs::rename(&aside, path).await.map_err(failed)
}

impl fmt::Display for MemoryHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(path) => write!(f, "memory, saved to {}", path.display()),
            None => write!(f, "memory"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::{Message, Role};

    fn turn(text: &str) -> Turn {
        Turn { agent: Some("a".into()), messages: vec![Message { role: Role::User, content: text.into() }] }
    }

    #[tokio::test]
    async fn keeps_the_latest_turns_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("history.json");
        let key = ConversationKey::of(Some("u"), Some("s")).unwrap();
        let history = MemoryHistory::new(2, 10, Some(file.clone())).unwrap();
        for text in ["one", "two", "three"] {
            history.append(&key, turn(text)).await.unwrap();
        }
        assert_eq!(history.load(&key, 10), [turn("two"), turn("three")]);
        assert_eq!(history.load(&key, 1), [turn("three")]);
        let restarted = MemoryHistory::new(2, 10, Some(file)).unwrap();
        assert_eq!(restarted.load(&key, 10), [turn("two"), turn("three")]);
    }

    #[tokio::test]
    async fn keeps_at_most_its_conversations_the_least_recently_used_going_first() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("history.json");
        let key = |session: &str| ConversationKey::of(Some("u"), Some(session)).unwrap();
        let history = MemoryHistory::new(5, 2, Some(file.clone())).unwrap();
        history.append(&key("a"), turn("to a")).await.unwrap();
        history.append(&key("b"), turn("to b")).await.unwrap();
        assert_eq!(history.load(&key("a"), 5), [turn("to a")], "a read is a use");
        history.append(&key("c"), turn("to c")).await.unwrap();
        assert_eq!(history.load(&key("b"), 5), [], "b was the least recently used");
        assert_eq!((history.load(&key("a"), 5), history.load(&key("c"), 5)), (vec![turn("to a")], vec![turn("to c")]));
        // The file keeps the order of its last write (a, then c): after a
        // restart, a goes first.
        let restarted = MemoryHistory::new(5, 2, Some(file)).unwrap();
        restarted.append(&key("d"), turn("to d")).await.unwrap();
        assert_eq!(restarted.load(&key("a"), 5), [], "a was the least recently used when the file was written");
        assert_eq!(restarted.load(&key("c"), 5), [turn("to c")]);
    }
}
