//! An OpenAI-compatible chat completions server (Ollama, vLLM, llama.cpp's
//! server, SGLang, LiteLLM, ...): `POST {base}/chat/completions` with
//! `"stream":true`, read as server-sent events of chunks
//! (<https://platform.openai.com/docs/api-reference/chat-streaming>), or, from
//! a server that ignores `stream`, one JSON completion.
//!
//! What servers in the field send, and the rules that hold for all of it
//! (each case is a file in `tests/corpus/openai/`):
//! - **null and `""` are absent**: every field is an `Option`, which serde
//!   reads `null` into as `None`, and every optional string field that is a
//!   signal or a name (`finish_reason`, a tool call's `id` and `name`,
//!   reasoning, `error`) is read by [`non_empty`], so a server that fills
//!   every field of every chunk with `""` finishes nothing early;
//! - **tool calls are assembled by id, then by index, and never glued**
//!   ([`ToolCalls`]); each goes on as one `toolUse` metadata event when the
//!   choice finishes, or when the answer ends with it still open; a call
//!   that is not whole (no name, arguments that are not a JSON object) ends
//!   the stream with an error instead, and is never dropped;
//! - **usage is merged field by field** ([`UsageSoFar`]) and sent once, when
//!   the answer is complete;
//! - **complete means the server said it finished** (`[DONE]`, or a finish
//!   reason) **and the body ended cleanly**; otherwise the stream ends with
//!   `upstream_disconnected`;
//! - **an answer says something**: one that ends with no content (text,
//!   reasoning, a tool call) and no finish reason (`data: [DONE]` alone,
//!   choices that are empty) is an `upstream_unexpected_content` error, never
//!   an empty success;
//! - reasoning deltas (`reasoning_content`: vLLM, DeepSeek, SGLang;
//!   `reasoning`: Ollama, llama.cpp) go on as `{"reasoning":{"text":…}}`
//!   metadata, never as text;
//! - an error object in the stream ends it with an error event.

use std::time::Instant;

use futures::{StreamExt, stream};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::warn;

use super::body::{self, BodyKind};
use super::call::tool_use_event;
use super::error::{StreamErrorCode, end_at_error};
use super::source::{ModelSource, required_model};
use super::sse::{self, FrameError, SseFrame};
use super::{
    EventStream, ModelCall, ProviderError, ProviderKind, Started, ToolChoice, ToolChoiceMode, UpstreamFailure,
    http_client, response_failure, send_failure,
};
use crate::conversation::{Content, ToolCall};
use crate::event::{Event, Usage};

/// How this source is named in errors and logs.
const SOURCE: &str = "the OpenAI-compatible server";

pub struct OpenAi {
    client: reqwest::Client,
    completions_url: reqwest::Url,
    api_key: Option<String>,
}

impl OpenAi {
    pub fn new(base_url: &str, api_key: Option<String>) -> anyhow::Result<Self> {
        let base = reqwest::Url::parse(&format!("{}/", base_url.trim_end_matches('/')))
            .map_err(|error| anyhow::anyhow!("--openai-base-url {base_url:?} is not a URL: {error}"))?;
        Ok(Self { client: http_client()?, completions_url: base.join("chat/completions")?, api_key })
    }
}

/// `POST {base}/chat/completions` with `"stream": true`.
impl ModelSource for OpenAi {
    /// The JSON body.
    type Request = Value;
    const KIND: ProviderKind = ProviderKind::Openai;

    fn request(&self, call: &ModelCall, model: Option<&str>) -> Result<Value, ProviderError> {
        let model = required_model(Self::KIND, model)?;
        let mut body = json!({
            "model": model,
            "messages": messages(call),
            "stream": true,
            "stream_options": { "include_usage": true },
        });
        if !call.tools.is_empty() {
            let tools = call.tools.iter().map(|tool| {
                json!({ "type": "function", "function": { "name": tool.name, "description": tool.description, "parameters": tool.input_schema } })
            });
            body["tools"] = Value::Array(tools.collect());
            if let Some(choice) = &call.options.tool_choice {
                body["tool_choice"] = tool_choice(choice);
            }
        }
        let options = &call.options;
        let settings = [
            ("temperature", options.temperature.map(Value::from)),
            ("max_tokens", options.max_tokens.map(Value::from)),
            ("top_p", options.top_p.map(Value::from)),
            ("stop", options.stop_sequences.clone().map(Value::from)),
        ];
        for (key, value) in settings {
            if let Some(value) = value {
                body[key] = value;
            }
        }
        Ok(body)
    }

    async fn send(&self, body: &Value) -> Result<Started, UpstreamFailure> {
        let started_at = Instant::now();
        let mut call = self.client.post(self.completions_url.clone()).json(body).header("accept", "text/event-stream");
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key);
        }
        let response = call.send().await.map_err(send_failure)?;
        let response = response_failure(response, SOURCE).await?;
        let reader = Reader::new(started_at);
        let events = match BodyKind::of(&response) {
            BodyKind::EventStream => reader.read_stream(sse::frames(response.bytes_stream())),
            BodyKind::Json => stream::once(reader.read_whole(response)).flat_map(stream::iter).boxed(),
            other => {
                let what = other.describe();
                stream::once(async move {
                    vec![body::unexpected(SOURCE, &what, &body::whole(response, SOURCE).await.unwrap_or_default())]
                })
                .flat_map(stream::iter)
                .boxed()
            }
        };
        Ok(Started::new(events))
    }
}

/// The conversation in OpenAI's messages: a text message per turn, an
/// assistant's tool calls as its `tool_calls`, each tool result as a `tool`
/// message of its own.
fn messages(call: &ModelCall) -> Vec<Value> {
    let mut messages: Vec<Value> =
        call.system.iter().map(|system| json!({ "role": "system", "content": system })).collect();
    for turn in &call.messages {
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        for block in &turn.content {
            match block {
                Content::Text(part) => text.push_str(part),
                Content::ToolCall(tool) => tool_calls.push(json!({
                    "id": tool.id, "type": "function", "function": { "name": tool.name, "arguments": tool.input.to_string() }
                })),
                Content::ToolResult { id, content, .. } => messages.push(json!({ "role": "tool", "tool_call_id": id, "content": content })),
                // OpenAI-compatible servers take no reasoning back.
                Content::Reasoning { .. } | Content::RedactedReasoning(_) => {}
            }
        }
        if tool_calls.is_empty() {
            if !text.is_empty() {
                messages.push(json!({ "role": turn.role.as_str(), "content": text }));
            }
        } else {
            let content = if text.is_empty() { Value::Null } else { Value::String(text) };
            messages.push(json!({ "role": turn.role.as_str(), "content": content, "tool_calls": tool_calls }));
        }
    }
    messages
}

/// A [`ToolChoice`] as Chat Completions' `tool_choice`.
fn tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Mode(ToolChoiceMode::Auto) => json!("auto"),
        ToolChoice::Mode(ToolChoiceMode::Any) => json!("required"),
        ToolChoice::Mode(ToolChoiceMode::None) => json!("none"),
        ToolChoice::Tool { tool } => json!({ "type": "function", "function": { "name": tool } }),
    }
}

/// A streamed chunk, or a whole completion (`message` in place of `delta`).
/// Every field is optional and `null` is the same as absent.
#[derive(Deserialize)]
struct Chunk {
    choices: Option<Vec<Choice>>,
    usage: Option<ChunkUsage>,
    error: Option<Value>,
    /// `chat.completion.chunk`; vLLM sends a failure mid-stream as a chunk
    /// of its own whose `object` is `error` (`{"object":"error","message",…}`).
    #[serde(default, deserialize_with = "non_empty")]
    object: Option<String>,
}

impl Chunk {
    /// The error the chunk reports; `null`, `false` and `""` report none.
    fn reported_error(&self) -> Option<&Value> {
        self.error
            .as_ref()
            .filter(|error| !matches!(error, Value::Null | Value::Bool(false)) && error.as_str() != Some(""))
    }
}

#[derive(Deserialize)]
struct Choice {
    index: Option<u32>,
    delta: Option<MessagePart>,
    message: Option<MessagePart>,
    /// Only a real reason finishes the choice: `""` on every chunk (seen in
    /// the field) is no reason.
    #[serde(default, deserialize_with = "non_empty")]
    finish_reason: Option<String>,
    /// The legacy completions API's text (`choices[].text`), which some
    /// servers still stream.
    #[serde(default, deserialize_with = "non_empty")]
    text: Option<String>,
}

#[derive(Deserialize)]
struct MessagePart {
    /// Text, or (Mistral and a few others) a list of parts with `text`;
    /// empty text is sent on as nothing.
    content: Option<Value>,
    #[serde(default, deserialize_with = "non_empty")]
    reasoning_content: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    reasoning: Option<String>,
    /// The model's refusal, in place of content: its text is the answer.
    #[serde(default, deserialize_with = "non_empty")]
    refusal: Option<String>,
    tool_calls: Option<Vec<ToolCallPiece>>,
}

/// A piece of a tool call: the first names it, the rest add to its
/// arguments' JSON text.
#[derive(Deserialize)]
struct ToolCallPiece {
    index: Option<usize>,
    #[serde(default, deserialize_with = "non_empty")]
    id: Option<String>,
    function: Option<FunctionPiece>,
}

#[derive(Deserialize)]
struct FunctionPiece {
    #[serde(default, deserialize_with = "non_empty")]
    name: Option<String>,
    /// JSON text; a few servers send the object itself.
    arguments: Option<Value>,
}

/// An optional string field: `null` and `""` are both absent. Servers fill
/// fields they have nothing for with either.
fn non_empty<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|text| !text.is_empty()))
}

/// Counts are read leniently (`body::token_count`): a float, a negative or
/// a huge count costs the count, never the answer.
#[derive(Deserialize)]
struct ChunkUsage {
    #[serde(default, deserialize_with = "lenient_count")]
    prompt_tokens: Option<u32>,
    #[serde(default, deserialize_with = "lenient_count")]
    completion_tokens: Option<u32>,
    #[serde(default, deserialize_with = "lenient_count")]
    total_tokens: Option<u32>,
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Deserialize)]
struct PromptTokensDetails {
    #[serde(default, deserialize_with = "lenient_count")]
    cached_tokens: Option<u32>,
}

fn lenient_count<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    Ok(Option::<Value>::deserialize(deserializer)?.as_ref().and_then(body::token_count))
}

/// The tool calls of the answer so far, put together from their pieces.
///
/// The rule: a piece belongs to the call with its id; a piece without an id
/// to the latest call at its index. A piece whose id is new starts a call,
/// even at an index already used (servers that number parallel calls all
/// `0`), and so does a name arriving for a call that has one already
/// (servers that send neither ids nor distinct indexes). A repeated
/// identical name is not appended (servers that repeat it in every piece).
#[derive(Default)]
struct ToolCalls(Vec<PendingToolCall>);

#[derive(Default)]
struct PendingToolCall {
    index: Option<usize>,
    id: String,
    name: String,
    arguments: String,
}

impl ToolCalls {
    fn add(&mut self, piece: ToolCallPiece) {
        let id = piece.id;
        let (name, arguments) = piece.function.map_or((None, None), |function| (function.name, function.arguments));
        // A piece that carries nothing (a server's placeholder) starts no call.
        let no_arguments =
            arguments.as_ref().is_none_or(|arguments| arguments.is_null() || arguments.as_str() == Some(""));
        if id.is_none() && name.is_none() && no_arguments {
            return;
        }
        let call = self.call_for(piece.index, id.as_deref(), name.as_deref());
        if let Some(id) = id {
            call.id = id;
        }
        if let Some(name) = name {
            call.name = name;
        }
        match arguments {
            Some(Value::String(text)) => call.arguments.push_str(&text),
            Some(Value::Null) | None => {}
            Some(object) => call.arguments = object.to_string(),
        }
    }

    /// The call a piece adds to, started anew if it is the first piece.
    fn call_for(&mut self, index: Option<usize>, id: Option<&str>, name: Option<&str>) -> &mut PendingToolCall {
        let latest_at_index = self.0.iter().rposition(|call| index.is_none() || call.index == index);
        let position = match id {
            Some(id) => self
                .0
                .iter()
                .position(|call| call.id == id)
                .or_else(|| latest_at_index.filter(|&at| self.0[at].id.is_empty())),
            None => latest_at_index
                .filter(|&at| name.is_none_or(|name| self.0[at].name.is_empty() || self.0[at].name == name)),
        };
        let position = position.unwrap_or_else(|| {
            self.0.push(PendingToolCall { index, ..PendingToolCall::default() });
            self.0.len() - 1
        });
        &mut self.0[position]
    }

    /// Each call as its event (or its error: see [`finished_tool_call`]),
    /// in the order they began.
    fn finish(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.0).into_iter().map(finished_tool_call).collect()
    }
}

/// The usage reported so far. Servers report it in pieces (a prompt count on
/// the first chunk, `{}` on the next, everything on the last): each count
/// reported replaces the one before, and a missing one is never fatal.
#[derive(Default)]
struct UsageSoFar {
    reported: bool,
    input: Option<u32>,
    output: Option<u32>,
    total: Option<u32>,
    cache_read: Option<u32>,
}

impl UsageSoFar {
    fn merge(&mut self, usage: ChunkUsage) {
        self.reported = true;
        self.input = usage.prompt_tokens.or(self.input);
        self.output = usage.completion_tokens.or(self.output);
        self.total = usage.total_tokens.or(self.total);
        self.cache_read = usage.prompt_tokens_details.and_then(|details| details.cached_tokens).or(self.cache_read);
    }

    fn event(&self, started_at: Instant) -> Option<Event> {
        let (input, output) = (self.input.unwrap_or(0), self.output.unwrap_or(0));
        self.reported.then(|| {
            Event::Usage(Usage {
                input_tokens: input,
                output_tokens: output,
                total_tokens: self
                    .total
                    .filter(|&total| total >= input.saturating_add(output))
                    .unwrap_or(input.saturating_add(output)),
                latency_ms: started_at.elapsed().as_millis().min(u32::MAX.into()) as u32,
                cache_read_input_tokens: self.cache_read.unwrap_or(0),
                cache_write_input_tokens: 0,
            })
        })
    }
}

type Frames = futures::stream::BoxStream<'static, Result<SseFrame, FrameError<reqwest::Error>>>;

/// One answer being read: what it has said so far.
struct Reader {
    started_at: Instant,
    /// The choice reported its finish reason.
    finished: bool,
    /// Nothing more is read: `[DONE]`, an error, or the body's end.
    over: bool,
    tool_calls: ToolCalls,
    usage: UsageSoFar,
    /// Some content has come: text, reasoning or a piece of a tool call.
    answered: bool,
    /// Chunks that held nothing the host could read (an unknown shape): what
    /// an answer without content says of itself.
    unreadable_chunks: usize,
}

impl Reader {
    fn new(started_at: Instant) -> Self {
        Self {
            started_at,
            finished: false,
            over: false,
            tool_calls: ToolCalls::default(),
            usage: UsageSoFar::default(),
            answered: false,
            unreadable_chunks: 0,
        }
    }

    fn read_stream(self, frames: Frames) -> EventStream {
        stream::unfold((self, frames), |(mut reader, mut frames)| async move {
            if reader.over {
                return None;
            }
            let events =
                match frames.next().await {
                    Some(Ok(frame)) => reader.frame(&frame),
                    Some(Err(FrameError::Body(error))) => {
                        warn!(error = %error.without_url(), "the OpenAI-compatible stream broke");
                        reader.end_early("the connection to the model server broke before the answer ended")
                    }
                    Some(Err(FrameError::TooLarge)) => {
                        reader.over = true;
                        vec![StreamErrorCode::UnexpectedContent.event(format!(
                            "the model server sent an event larger than {} bytes",
                            sse::MAX_EVENT_BYTES
                        ))]
                    }
                    None if reader.finished => reader.complete(),
                    None => reader.end_early("the model server's stream ended before it said the answer was finished"),
                };
            Some((stream::iter(events), (reader, frames)))
        })
        .flatten()
        .boxed()
    }

    /// A whole completion, from a server that did not stream.
    async fn read_whole(mut self, response: reqwest::Response) -> Vec<Event> {
        let bytes = match body::whole(response, SOURCE).await {
            Ok(bytes) => bytes,
            Err(error) => return vec![error],
        };
        let Ok(chunk) = serde_json::from_slice::<Chunk>(&bytes) else {
            return vec![body::unexpected(SOURCE, "JSON that is not a completion", &bytes)];
        };
        if chunk.choices.is_none() && chunk.error.is_none() {
            return vec![body::unexpected(SOURCE, "JSON that is not a completion", &bytes)];
        }
        let mut events = self.chunk(chunk);
        if !self.over {
            events.extend(self.complete());
        }
        events
    }

    fn frame(&mut self, frame: &SseFrame) -> Vec<Event> {
        let Some(data) = frame.data.as_deref().map(str::trim).filter(|data| !data.is_empty()) else {
            return Vec::new();
        };
        if data == "[DONE]" {
            return self.complete();
        }
        match serde_json::from_str::<Chunk>(data) {
            Ok(chunk) if chunk.object.as_deref() == Some("error") => {
                self.over = true;
                let error = serde_json::from_str::<Value>(data).unwrap_or_default();
                vec![in_band_error(&error)]
            }
            Ok(chunk) => {
                let readable = chunk
                    .choices
                    .as_ref()
                    .is_some_and(|choices| choices.iter().any(|choice| choice.index.unwrap_or(0) == 0))
                    || chunk.usage.is_some()
                    || chunk.reported_error().is_some();
                if !readable {
                    self.unreadable_chunks += 1;
                }
                self.chunk(chunk)
            }
            Err(error) => {
                self.over = true;
                warn!(%error, data = %data.chars().take(2000).collect::<String>(), "the OpenAI-compatible server sent a chunk that is not a completion");
                vec![
                    StreamErrorCode::UnexpectedContent
                        .event(format!("the model server sent a chunk that is not a completion: {error}")),
                ]
            }
        }
    }

    fn chunk(&mut self, chunk: Chunk) -> Vec<Event> {
        if let Some(error) = chunk.reported_error() {
            self.over = true;
            return vec![in_band_error(error)];
        }
        let mut events = Vec::new();
        // Only the first choice is streamed (`n` is never more than 1 here).
        for choice in chunk.choices.unwrap_or_default().into_iter().filter(|choice| choice.index.unwrap_or(0) == 0) {
            if let Some(part) = choice.delta.or(choice.message) {
                events.extend(self.part(part));
            }
            if let Some(text) = choice.text {
                self.answered = true;
                events.push(Event::Text(text));
            }
            if let Some(reason) = choice.finish_reason.filter(|_| !self.finished) {
                self.finished = true;
                events.extend(self.tool_calls.finish());
                if end_at_error(&mut events) {
                    self.over = true;
                    return events;
                }
                events.push(Event::End(stop_reason(&reason)));
            }
        }
        if let Some(usage) = chunk.usage {
            self.usage.merge(usage);
        }
        events
    }

    fn part(&mut self, part: MessagePart) -> Vec<Event> {
        let mut events = Vec::new();
        for reasoning in [part.reasoning_content, part.reasoning].into_iter().flatten().filter(|text| !text.is_empty())
        {
            events.push(Event::Metadata(json!({ "reasoning": { "text": reasoning } }).to_string()));
        }
        events.extend(part.content.as_ref().and_then(content_text).filter(|text| !text.is_empty()).map(Event::Text));
        events.extend(part.refusal.map(Event::Text));
        for piece in part.tool_calls.unwrap_or_default() {
            self.tool_calls.add(piece);
        }
        self.answered |= !events.is_empty() || !self.tool_calls.0.is_empty();
        events
    }

    /// The answer is complete: the tool calls still open, then its usage; or
    /// an error, when a call is not whole, or when the answer said nothing
    /// (no content, no finish reason).
    fn complete(&mut self) -> Vec<Event> {
        self.over = true;
        if !self.answered && !self.finished {
            let mut missing = String::from("no content and no finish reason");
            if self.unreadable_chunks > 0 {
                missing.push_str(&format!(
                    " ({} of its chunks were not completions the host can read)",
                    self.unreadable_chunks
                ));
            }
            return vec![body::no_answer(SOURCE, &missing)];
        }
        let mut events = self.tool_calls.finish();
        if !end_at_error(&mut events) {
            events.extend(self.usage.event(self.started_at));
        }
        events
    }

    /// The body ended, or broke, before the server said it had finished.
    fn end_early(&mut self, message: &str) -> Vec<Event> {
        self.over = true;
        let mut events: Vec<Event> = self.usage.event(self.started_at).into_iter().collect();
        events.push(StreamErrorCode::Disconnected.event(message));
        events
    }
}

/// A message's content: a string, or the text of its `{"type":"text",
/// "text":…}` parts.
fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => Some(parts.iter().filter_map(|part| part.get("text").and_then(Value::as_str)).collect()),
        _ => None,
    }
}

/// An error object sent inside the stream (`{"error":{"message":…,"type":…,
/// "code":…}}`, or a bare string), as an error event coded by what it says.
fn in_band_error(error: &Value) -> Event {
    let message = match error {
        Value::String(message) => message.clone(),
        other => other.get("message").and_then(Value::as_str).map_or_else(|| other.to_string(), str::to_string),
    };
    let said = |key: &str| error.get(key).map(|value| value.to_string().to_ascii_lowercase()).unwrap_or_default();
    let said = format!("{} {}", said("code"), said("type"));
    let code = if said.contains("429") || said.contains("rate_limit") {
        StreamErrorCode::Throttled
    } else if said.contains("503") || said.contains("overloaded") || said.contains("unavailable") {
        StreamErrorCode::ServiceUnavailable
    } else {
        StreamErrorCode::Other
    };
    code.event(message)
}

/// A whole tool call as its event, or an error event if it names no tool
/// (pieces the host could not put with any call) or its arguments are not
/// a JSON object.
fn finished_tool_call(call: PendingToolCall) -> Event {
    if call.name.is_empty() {
        return StreamErrorCode::UnexpectedContent
            .event(format!("the model server sent tool call arguments that name no tool: {:?}", call.arguments));
    }
    let input =
        if call.arguments.trim().is_empty() { Ok(json!({})) } else { serde_json::from_str::<Value>(&call.arguments) };
    match input {
        Ok(input @ Value::Object(_)) => tool_use_event(&ToolCall { id: call.id, name: call.name, input }),
        _ => StreamErrorCode::Other
            .event(format!("the model's arguments for tool `{}` are not a JSON object", call.name)),
    }
}

/// OpenAI's finish reasons in the names Bedrock and the other sources use.
fn stop_reason(finish_reason: &str) -> String {
    match finish_reason {
        "stop" | "eos" => "end_turn",
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "content_filtered",
        other => other,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(index: Option<usize>, id: Option<&str>, name: Option<&str>, arguments: &str) -> ToolCallPiece {
        let function =
            FunctionPiece { name: name.map(str::to_string), arguments: Some(Value::String(arguments.into())) };
        ToolCallPiece { index, id: id.map(str::to_string), function: Some(function) }
    }

    fn assembled(pieces: Vec<ToolCallPiece>) -> Vec<(String, String, String)> {
        let mut calls = ToolCalls::default();
        pieces.into_iter().for_each(|piece| calls.add(piece));
        calls.0.into_iter().map(|call| (call.id, call.name, call.arguments)).collect()
    }

    fn call(id: &str, name: &str, arguments: &str) -> (String, String, String) {
        (id.into(), name.into(), arguments.into())
    }

    #[test]
    fn tool_calls_are_told_apart_by_id_then_index_and_never_glued() {
        // Parallel calls all at index 0, told apart by id.
        let same_index = vec![
            piece(Some(0), Some("a"), Some("f"), "{\"x\":"),
            piece(Some(0), None, None, "1}"),
            piece(Some(0), Some("b"), Some("f"), "{}"),
        ];
        assert_eq!(assembled(same_index), [call("a", "f", "{\"x\":1}"), call("b", "f", "{}")]);
        // Distinct indexes, interleaved, ids only on the first piece.
        let interleaved = vec![
            piece(Some(0), Some("a"), Some("f"), "{"),
            piece(Some(1), Some("b"), Some("g"), "{"),
            piece(Some(0), None, None, "}"),
            piece(Some(1), None, None, "}"),
        ];
        assert_eq!(assembled(interleaved), [call("a", "f", "{}"), call("b", "g", "{}")]);
        // No ids, no index: a second name is a second call; a repeated name is not glued.
        let anonymous = vec![
            piece(None, None, Some("f"), "{}"),
            piece(None, None, Some("f"), ""),
            piece(None, None, Some("g"), "{}"),
        ];
        assert_eq!(assembled(anonymous), [call("", "f", "{}"), call("", "g", "{}")]);
        // An id that arrives after the name names the same call.
        let late_id = vec![piece(Some(0), None, Some("f"), "{"), piece(Some(0), Some("a"), None, "}")];
        assert_eq!(assembled(late_id), [call("a", "f", "{}")]);
    }

    #[test]
    fn usage_is_merged_field_by_field() {
        let mut usage = UsageSoFar::default();
        for chunk in [
            r#"{"prompt_tokens":11,"total_tokens":11}"#,
            "{}",
            r#"{"prompt_tokens":null,"completion_tokens":2,"total_tokens":13}"#,
        ] {
            usage.merge(serde_json::from_str(chunk).unwrap());
        }
        let Some(Event::Usage(usage)) = usage.event(Instant::now()) else { panic!("no usage") };
        assert_eq!((usage.input_tokens, usage.output_tokens, usage.total_tokens), (11, 2, 13));
        assert!(UsageSoFar::default().event(Instant::now()).is_none(), "no usage reported, none sent");
    }

    #[test]
    fn a_piece_that_carries_nothing_starts_no_call_and_a_nameless_call_is_an_error() {
        assert!(assembled(vec![piece(Some(0), None, None, "")]).is_empty());
        let nameless = PendingToolCall { index: Some(0), arguments: "{}".into(), ..PendingToolCall::default() };
        assert!(
            matches!(finished_tool_call(nameless), Event::Error(error) if error.code == "upstream_unexpected_content")
        );
    }

    /// The events `chunks` (each an SSE event's data) make.
    fn read(chunks: &[&str]) -> Vec<Event> {
        let mut reader = Reader::new(Instant::now());
        chunks
            .iter()
            .flat_map(|data| reader.frame(&SseFrame { data: Some(data.to_string()), ..SseFrame::default() }))
            .collect()
    }

    #[test]
    fn an_empty_finish_reason_finishes_nothing() {
        let events = read(&[
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"f","arguments":"{\"a\":"}}]},"finish_reason":""}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"","function":{"name":"","arguments":"1}"}}]},"finish_reason":""}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ]);
        let call = ToolCall { id: "c1".into(), name: "f".into(), input: json!({ "a": 1 }) };
        assert_eq!(events, [tool_use_event(&call), Event::End("tool_use".into())]);
    }

    #[test]
    fn an_answer_that_says_nothing_is_an_error() {
        let empty: [&[&str]; 4] = [
            &["[DONE]"],
            &[r#"{"choices":[]}"#, r#"{"choices":[],"usage":{"prompt_tokens":3}}"#, "[DONE]"],
            &[r#"{"choices":[{"index":0,"delta":{"content":"","reasoning":""},"finish_reason":""}]}"#, "[DONE]"],
            &[r#"{"choices":[{"index":0,"delta":{"content":null},"finish_reason":null}],"error":""}"#, "[DONE]"],
        ];
        for chunks in empty {
            let events = read(chunks);
            assert!(
                matches!(&events[..], [Event::Error(error)] if error.code == "upstream_unexpected_content"),
                "{chunks:?}: {events:?}"
            );
        }
        let stopped = read(&[r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#, "[DONE]"]);
        assert_eq!(stopped, [Event::End("end_turn".into())], "a real finish reason is an answer, if an empty one");
    }

    #[test]
    fn nulls_are_absent_everywhere() {
        let chunk = r#"{"id":null,"choices":[{"index":0,"delta":{"role":null,"content":"Hello","tool_calls":null,"reasoning_content":null},"finish_reason":null,"logprobs":null}],"usage":null,"error":null}"#;
        let mut reader = Reader::new(Instant::now());
        assert_eq!(reader.chunk(serde_json::from_str(chunk).unwrap()), [Event::Text("Hello".into())]);
        assert!(!reader.over && !reader.finished);
    }
}
