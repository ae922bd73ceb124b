//! An OpenAI-compatible chat completions server (Ollama, vLLM, llama.cpp's
//! server, ...): `POST {base}/chat/completions` with `"stream":true`, read
//! as server-sent events until `data: [DONE]`.

use std::time::Instant;

use futures::{StreamExt, stream};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::warn;

use super::error::StreamErrorCode;
use super::sse::{self, SseFrame};
use crate::event::{Event, Usage};
use super::{EventStream, ModelCall, ProviderError, ProviderKind, Started, UpstreamFailure, http_client, response_failure};

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

    pub fn request_body(&self, model: &str, call: &ModelCall) -> Result<Value, ProviderError> {
        let system = call.system.iter().map(|system| json!({ "role": "system", "content": system }));
        let conversation = call.text_messages(ProviderKind::Openai)?.into_iter().map(|message| json!(message));
        let mut body = json!({
            "model": model,
            "messages": system.chain(conversation).collect::<Vec<_>>(),
            "stream": true,
            "stream_options": { "include_usage": true },
        });
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
}

fn events(frames: Frames, started_at: Instant) -> EventStream {
    let reader = Reader { frames, started_at, done: false };
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
        if let Some(reason) = choice.finish_reason {
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
