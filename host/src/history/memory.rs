//! Conversations in memory, each cut to its latest turns; with a file, saved
//! after every turn (written aside, then renamed over) and read at start-up.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;

use super::{ConversationKey, HistoryError, Turn};

type Conversations = HashMap<String, VecDeque<Turn>>;

pub struct MemoryHistory {
    max_turns: usize,
    conversations: Mutex<Conversations>,
    file: Option<PathBuf>,
    /// Writes of the file one at a time, in order.
    writing: tokio::sync::Mutex<()>,
}

impl MemoryHistory {
    pub fn new(max_turns: usize, file: Option<PathBuf>) -> Result<Self, HistoryError> {
        let conversations = match &file {
            Some(path) if path.exists() => {
                let failed = |message: String| HistoryError::File { path: path.clone(), message };
                let json = std::fs::read(path).map_err(|error| failed(error.to_string()))?;
                serde_json::from_slice(&json).map_err(|error| failed(format!("not a conversation file: {error}")))?
            }
            _ => Conversations::new(),
        };
        Ok(Self { max_turns, conversations: Mutex::new(conversations), file, writing: tokio::sync::Mutex::default() })
    }

    pub fn load(&self, key: &ConversationKey, turns: usize) -> Vec<Turn> {
        let conversations = self.conversations.lock().unwrap();
        let Some(conversation) = conversations.get(&key.to_string()) else { return Vec::new() };
        conversation.iter().skip(conversation.len().saturating_sub(turns)).cloned().collect()
    }

    pub async fn append(&self, key: &ConversationKey, turn: Turn) -> Result<(), HistoryError> {
        let _writing = self.writing.lock().await;
        let snapshot = {
            let mut conversations = self.conversations.lock().unwrap();
            let conversation = conversations.entry(key.to_string()).or_default();
            conversation.push_back(turn);
            while conversation.len() > self.max_turns {
                conversation.pop_front();
            }
            self.file.as_ref().map(|_| serde_json::to_vec(&*conversations).expect("turns serialise"))
        };
        match (&self.file, snapshot) {
            (Some(path), Some(json)) => save(path, &json).await,
            _ => Ok(()),
        }
    }
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
    use crate::request::{Message, Role};

    fn turn(text: &str) -> Turn {
        Turn { agent: Some("a".into()), messages: vec![Message { role: Role::User, content: text.into() }] }
    }

    #[tokio::test]
    async fn keeps_the_latest_turns_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("history.json");
        let key = ConversationKey::of(Some("u"), Some("s")).unwrap();
        let history = MemoryHistory::new(2, Some(file.clone())).unwrap();
        for text in ["one", "two", "three"] {
            history.append(&key, turn(text)).await.unwrap();
        }
        assert_eq!(history.load(&key, 10), [turn("two"), turn("three")]);
        assert_eq!(history.load(&key, 1), [turn("three")]);
        let restarted = MemoryHistory::new(2, Some(file)).unwrap();
        assert_eq!(restarted.load(&key, 10), [turn("two"), turn("three")]);
    }
}
