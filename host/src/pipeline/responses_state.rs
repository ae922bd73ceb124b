//! OpenAI Responses' state: an answer kept under its response id, so that a
//! later call's `previous_response_id` continues its conversation.
//!
//! The conversation store (`history`: memory on `serve`, DynamoDB across
//! Lambda environments) holds one conversation per response, keyed
//! `{caller}#response:{pipeline}:{response id}`, of one turn kept whole (never
//! trimmed to fit): the whole conversation up to and including the answer.
//! A continuation is then one read however long the chain, and two
//! continuations of one response branch, as the API's do. The caller is who
//! the pipeline's inbound plugin identifies and the pipeline the one that
//! answered, so a response is its caller's only, on that pipeline; an
//! anonymous one is reachable by its id alone (a request id: 128 bits from
//! the operating system's random source). Callers' own session ids may not
//! start with `response:` (`request`), so no routed conversation shares a
//! key with a kept response.
//!
//! The answer kept is what the chain wrote before the API's formatter (its
//! text after any `redact`, and the model's calls of the caller's tools,
//! whose results the next call sends), and it is kept before the formatter writes the
//! stream's last event, so a client that continues at once finds it. An
//! answer that failed, or never ended, is not kept; a store that cannot
//! write is logged, and that response cannot be continued (the answer
//! itself is not held back for it).

use std::sync::Arc;

use tracing::warn;

use crate::conversation::{Content, ModelMessage, Role};
use crate::error_code::{ErrorCode, ErrorReply};
use crate::event::Event;
use crate::history::{ConversationKey, HistoryStore, Turn};
use crate::providers::call::tool_use_of;
use crate::request::RESPONSE_SESSION_PREFIX;

/// The longest `previous_response_id` looked up: the host's are `resp_` and
/// 32 hex digits, and a longer one names nothing it issued.
const MAX_RESPONSE_ID_LEN: usize = 128;

/// The key a response that `pipeline` answered is kept under.
pub fn key(pipeline: &str, caller: Option<&str>, response_id: &str) -> ConversationKey {
    ConversationKey {
        user_id: caller.unwrap_or_default().to_string(),
        session_id: format!("{RESPONSE_SESSION_PREFIX}{pipeline}:{response_id}"),
    }
}

/// The response id a call's answer gets: the `openai-responses-format`
/// plugin's, `resp_<request id>`.
pub fn response_id(request_id: &str) -> String {
    format!("resp_{request_id}")
}

/// The conversation `previous_response_id` ended on `pipeline`, answer
/// included, as `caller` may see it.
///
/// # Errors
/// `400 previous_response_not_found` when no such response is kept for the
/// caller; `503 history_unavailable` when the store cannot be read (the
/// store's own error is logged, not answered: it can name the deployment).
pub async fn conversation(
    history: &HistoryStore,
    pipeline: &str,
    caller: Option<&str>,
    previous_response_id: &str,
) -> Result<Vec<ModelMessage>, ErrorReply> {
    let not_found = || {
        let shown: String = previous_response_id.chars().take(MAX_RESPONSE_ID_LEN).collect();
        ErrorReply::new(
            ErrorCode::PreviousResponseNotFound,
            format!(
                "`previous_response_id`: no response `{shown}` of `{pipeline}` is kept for this caller (it was \
                 stored with `store: false`, expired, answered by another pipeline, or is another caller's); send \
                 the whole conversation in `input` instead"
            ),
        )
    };
    if previous_response_id.len() > MAX_RESPONSE_ID_LEN {
        return Err(not_found());
    }
    let turns = history.load(&key(pipeline, caller, previous_response_id), 1).await.map_err(|error| {
        warn!(%error, "a kept response could not be read");
        ErrorReply::new(
            error.code(),
            "the conversation store is unavailable; try again, or send the whole conversation",
        )
    })?;
    turns.into_iter().next_back().map(|turn| turn.messages).ok_or_else(not_found)
}

/// A call's answer on its way to being kept: the text and tool calls that
/// reach the API's formatter, and whether the model's turn ended.
pub struct ResponseKeeper {
    history: Arc<HistoryStore>,
    key: ConversationKey,
    /// The conversation the call ran, the answer to be added.
    conversation: Vec<ModelMessage>,
    /// The answer's blocks, in order.
    answer: Vec<Content>,
    ended: bool,
    /// An error event came by (a plugin's own, say): the answer is not whole.
    failed: bool,
}

impl ResponseKeeper {
    /// A keeper of the answer to `conversation`, under `key`.
    pub fn new(history: Arc<HistoryStore>, key: ConversationKey, conversation: Vec<ModelMessage>) -> Self {
        Self { history, key, conversation, answer: Vec::new(), ended: false, failed: false }
    }

    /// Takes in events on their way to the formatter.
    pub fn observe(&mut self, events: &[Event]) {
        for event in events {
            match event {
                Event::Text(text) => match self.answer.last_mut() {
                    Some(Content::Text(answer)) => answer.push_str(text),
                    _ => self.answer.push(Content::Text(text.clone())),
                },
                Event::Metadata(json) => self.answer.extend(tool_use_of(json).map(Content::ToolCall)),
                Event::End(_) => self.ended = true,
                Event::Error(_) => self.failed = true,
                _ => {}
            }
        }
    }

    /// Keeps the conversation with its answer, unless the stream `failed`
    /// or its turn never ended.
    pub async fn keep(self, failed: bool) {
        if failed || self.failed || !self.ended {
            return;
        }
        let Self { history, key, mut conversation, mut answer, .. } = self;
        if answer.is_empty() {
            answer.push(Content::Text(String::new()));
        }
        conversation.push(ModelMessage { role: Role::Assistant, content: answer });
        if let Err(error) = history.append(&key, Turn { agent: None, messages: conversation, whole: true }).await {
            warn!(%error, "the response was answered but not kept: its id cannot be continued");
        }
    }
}
