//! OpenAI Responses' state: an answer kept under its response id, so that a
//! later call's `previous_response_id` continues its conversation.
//!
//! The conversation store (`history`: memory on `serve`, DynamoDB across
//! Lambda environments) holds one conversation per response, keyed
//! `{caller}#response:{response id}`, of one turn: the whole conversation up
//! to and including the answer. A continuation is then one read however
//! long the chain, and two continuations of one response branch, as the
//! API's do. The caller is who the pipeline's inbound plugin identifies, so
//! a response is its caller's only; an anonymous one is reachable by its id
//! alone (a request id: 128 random bits).
//!
//! The answer kept is the text the chain wrote before the API's formatter
//! (after any `redact`), and it is kept before the formatter writes the
//! stream's last event, so a client that continues at once finds it. An
//! answer that failed, or never ended, is not kept; a store that cannot
//! write is logged, and that response cannot be continued (the answer
//! itself is not held back for it).

use std::sync::Arc;

use tracing::warn;

use crate::conversation::{Message, Role};
use crate::error_code::{ErrorCode, ErrorReply};
use crate::event::Event;
use crate::history::{ConversationKey, HistoryStore, Turn};

/// The key a response is kept under.
pub fn key(caller: Option<&str>, response_id: &str) -> ConversationKey {
    ConversationKey { user_id: caller.unwrap_or_default().to_string(), session_id: format!("response:{response_id}") }
}

/// The response id a call's answer gets: the `openai-responses-format`
/// plugin's, `resp_<request id>`.
pub fn response_id(request_id: &str) -> String {
    format!("resp_{request_id}")
}

/// The conversation `previous_response_id` ended, answer included, as
/// `caller` may see it.
///
/// # Errors
/// `400 previous_response_not_found` when no such response is kept for the
/// caller; `503 history_unavailable` when the store cannot be read.
pub async fn conversation(
    history: &HistoryStore,
    caller: Option<&str>,
    previous_response_id: &str,
) -> Result<Vec<Message>, ErrorReply> {
    let turns = history
        .load(&key(caller, previous_response_id), 1)
        .await
        .map_err(|error| ErrorReply::new(error.code(), error.to_string()))?;
    match turns.into_iter().next_back() {
        Some(turn) => Ok(turn.messages),
        None => Err(ErrorReply::new(
            ErrorCode::PreviousResponseNotFound,
            format!(
                "`previous_response_id`: no response `{previous_response_id}` is kept for this caller (it was \
                 stored with `store: false`, expired, or is another caller's); send the whole conversation in \
                 `input` instead"
            ),
        )),
    }
}

/// A call's answer on its way to being kept: the text that reaches the
/// API's formatter, and whether the model's turn ended.
pub struct ResponseKeeper {
    history: Arc<HistoryStore>,
    key: ConversationKey,
    /// The conversation the call ran, the answer to be added.
    conversation: Vec<Message>,
    answer: String,
    ended: bool,
}

impl ResponseKeeper {
    /// A keeper of the answer to `conversation`, under `key`.
    pub fn new(history: Arc<HistoryStore>, key: ConversationKey, conversation: Vec<Message>) -> Self {
        Self { history, key, conversation, answer: String::new(), ended: false }
    }

    /// Takes in events on their way to the formatter.
    pub fn observe(&mut self, events: &[Event]) {
        for event in events {
            match event {
                Event::Text(text) => self.answer.push_str(text),
                Event::End(_) => self.ended = true,
                _ => {}
            }
        }
    }

    /// Keeps the conversation with its answer, unless the stream `failed`
    /// or its turn never ended.
    pub async fn keep(self, failed: bool) {
        if failed || !self.ended {
            return;
        }
        let Self { history, key, mut conversation, answer, .. } = self;
        conversation.push(Message { role: Role::Assistant, content: answer });
        if let Err(error) = history.append(&key, Turn { agent: None, messages: conversation }).await {
            warn!(%error, "the response was answered but not kept: its id cannot be continued");
        }
    }
}
