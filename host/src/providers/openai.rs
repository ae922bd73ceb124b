//! An OpenAI-compatible chat completions server (Ollama, vLLM, llama.cpp's
//! server, ...): `POST {base}/chat/completions` with `"stream":true`, read
//! as server-sent events until `data: [DONE]`. Tools go as `tools`
//! (functions); a tool call's streamed pieces are put together and sent on
//! as one `toolUse` metadata event when the choice finishes.

use std::time::Instant;

use futures::{StreamExt, stream};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::warn;

use super::error::StreamErrorCode;
use super::sse::{self, SseFrame};
use crate::event::{Event, Usage};
use super::call::tool_use_event;
use super::{Block, EventStream, ModelCall, Started, ToolCall, UpstreamFailure, http_client, response_failure};

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

    pub fn request_body(&self, model: &str, call: &ModelCall) -> Value {
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
        body
    }

    pub async fn chat(&self, body: &Value) -> Result<Started, UpstreamFailure> {
        let started_at = Instant::now();
        let mut call = self.client.post(self.completions_url.clone()).json(body).header("accept", "text/event-stream");
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key);
        }
        let response = call.send().await.map_err(|error| UpstreamFailure::Unavailable(error.without_url().to_string()))?;
        let response = response_failure(response, "the OpenAI-compatible server").await?;
        Ok(Started::new(events(sse::frames(response.bytes_stream()), started_at)))
    }
}

/// The conversation in OpenAI's messages: a text message per turn, an
/// assistant's tool calls as its `tool_calls`, each tool result as a `tool`
/// message of its own.
fn messages(call: &ModelCall) -> Vec<Value> {
    let mut messages: Vec<Value> = call.system.iter().map(|system| json!({ "role": "system", "content": system })).collect();
    for turn in &call.messages {
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        for block in &turn.content {
            match block {
                Block::Text(part) => text.push_str(part),
                Block::ToolUse(tool) => tool_calls.push(json!({
                    "id": tool.id, "type": "function", "function": { "name": tool.name, "arguments": tool.input.to_string() }
                })),
                Block::ToolResult { id, content, .. } => messages.push(json!({ "role": "tool", "tool_call_id": id, "content": content })),
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

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<ChunkUsage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Default, Deserialize)]
struct Delta {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCallDelta>,
}

/// A piece of a tool call: the first names it, the rest add to its
/// arguments' JSON text.
#[derive(Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: usize,
    id: Option<String>,
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    name: Option<String>,
    arguments: Option<String>,
}

/// A tool call being put together: id, name, arguments so far.
#[derive(Default)]
struct PendingToolCall {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Deserialize)]
struct ChunkUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Deserialize)]
struct PromptTokensDetails {
    cached_tokens: Option<u32>,
}

type Frames = futures::stream::BoxStream<'static, Result<SseFrame, reqwest::Error>>;

/// The stream's state: where it is, and what the `[DONE]` line completes.
struct Reader {
    frames: Frames,
    started_at: Instant,
    done: bool,
    tool_calls: Vec<PendingToolCall>,
}

fn events(frames: Frames, started_at: Instant) -> EventStream {
    let reader = Reader { frames, started_at, done: false, tool_calls: Vec::new() };
    stream::unfold(reader, |mut reader| async move {
        if reader.done {
            return None;
        }
        let events = match reader.frames.next().await {
            Some(Ok(frame)) => decode(&frame, &mut reader),
            Some(Err(error)) => {
                reader.done = true;
                warn!(error = %error.without_url(), "the OpenAI-compatible stream broke");
                vec![StreamErrorCode::Disconnected.event("the connection to the model server broke before the stream ended")]
            }
            None => {
                reader.done = true;
                vec![StreamErrorCode::Disconnected.event("the model server's stream ended without [DONE]")]
            }
        };
        Some((stream::iter(events), reader))
    })
    .flatten()
    .boxed()
}

fn decode(frame: &SseFrame, reader: &mut Reader) -> Vec<Event> {
    let Some(data) = frame.data.as_deref() else { return Vec::new() };
    if data.trim() == "[DONE]" {
        reader.done = true;
        return Vec::new();
    }
    let chunk: Chunk = match serde_json::from_str(data) {
        Ok(chunk) => chunk,
        Err(error) => {
            reader.done = true;
            return vec![StreamErrorCode::Other.event(format!("the model server sent a chunk that is not a completion: {error}"))];
        }
    };
    if let Some(error) = chunk.error {
        reader.done = true;
        let message = error.get("message").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_string);
        return vec![StreamErrorCode::Other.event(message)];
    }
    let mut events = Vec::new();
    for choice in chunk.choices.into_iter().take(1) {
        if let Some(text) = choice.delta.content.filter(|text| !text.is_empty()) {
            events.push(Event::Text(text));
        }
        for piece in choice.delta.tool_calls {
            add_tool_call_piece(&mut reader.tool_calls, piece);
        }
        if let Some(reason) = choice.finish_reason {
            events.extend(reader.tool_calls.drain(..).map(finished_tool_call));
            events.push(Event::End(stop_reason(&reason)));
        }
    }
    if let Some(usage) = chunk.usage {
        events.push(Event::Usage(Usage {
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
            total_tokens: usage.total_tokens,
            latency_ms: reader.started_at.elapsed().as_millis().min(u32::MAX.into()) as u32,
            cache_read_input_tokens: usage.prompt_tokens_details.and_then(|details| details.cached_tokens).unwrap_or(0),
            cache_write_input_tokens: 0,
        }));
    }
    events
}

fn add_tool_call_piece(calls: &mut Vec<PendingToolCall>, piece: ToolCallDelta) {
    if calls.len() <= piece.index {
        calls.resize_with(piece.index + 1, PendingToolCall::default);
    }
    let call = &mut calls[piece.index];
    if let Some(id) = piece.id {
        call.id = id;
    }
    if let Some(function) = piece.function {
        call.name.extend(function.name);
        call.arguments.extend(function.arguments);
    }
}

/// A whole tool call as its event, or an error event if its arguments are
/// not a JSON object.
fn finished_tool_call(call: PendingToolCall) -> Event {
    let input = if call.arguments.trim().is_empty() { Ok(json!({})) } else { serde_json::from_str::<Value>(&call.arguments) };
    match input {
        Ok(input @ Value::Object(_)) => tool_use_event(&ToolCall { id: call.id, name: call.name, input }),
        _ => StreamErrorCode::Other.event(format!("the model's arguments for tool `{}` are not a JSON object", call.name)),
    }
}

/// OpenAI's finish reasons in the names Bedrock and the other sources use.
fn stop_reason(finish_reason: &str) -> String {
    match finish_reason {
        "stop" => "end_turn",
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        other => other,
    }
    .to_string()
}
