//! The JSON shapes of event payloads, so that every formatter writes usage
//! and errors alike (and as the host's own encoder does):
//! `{"inputTokens":…,"outputTokens":…,"totalTokens":…,"latencyMs":…}` (with
//! `cacheReadInputTokens` and `cacheWriteInputTokens` when not 0) and
//! `{"code":…,"message":…}`. Enabled by the `json` feature.

use serde::{Deserialize, Serialize};

use crate::{ErrorInfo, Usage};

/// A [`Usage`] as JSON:
/// `{"inputTokens":…,"outputTokens":…,"totalTokens":…,"latencyMs":…}`, with
/// the cache counts only when not 0.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageJson {
    /// `inputTokens`: tokens of the model's input.
    pub input_tokens: u32,
    /// `outputTokens`: tokens the model generated.
    pub output_tokens: u32,
    /// `totalTokens`: input and output together, as the source counts them.
    pub total_tokens: u32,
    /// `latencyMs`: how long the model took, in milliseconds.
    pub latency_ms: u32,
    /// `cacheReadInputTokens`: input tokens read from the prompt cache; left
    /// out when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache_read_input_tokens: u32,
    /// `cacheWriteInputTokens`: input tokens written to the prompt cache;
    /// left out when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache_write_input_tokens: u32,
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}

impl From<&Usage> for UsageJson {
    fn from(usage: &Usage) -> Self {
        Self {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            total_tokens: usage.total_tokens,
            latency_ms: usage.latency_ms,
            cache_read_input_tokens: usage.cache_read_input_tokens,
            cache_write_input_tokens: usage.cache_write_input_tokens,
        }
    }
}

/// An [`ErrorInfo`] as JSON, `{"code":…,"message":…}`, borrowing its
/// strings.
#[derive(Debug, Serialize)]
pub struct ErrorJson<'a> {
    /// The stable, snake_case code (`throttled`).
    pub code: &'a str,
    /// What went wrong, for people.
    pub message: &'a str,
}

impl<'a> From<&'a ErrorInfo> for ErrorJson<'a> {
    fn from(error: &'a ErrorInfo) -> Self {
        Self { code: &error.code, message: &error.message }
    }
}

/// A tool call the model made, as a model source sends it downstream in a
/// `metadata` event (see [`ToolUseMetadataJson`]): its id, the tool's name
/// and its input. `I` keeps the input: `serde_json::Value`, or
/// `Box<serde_json::value::RawValue>` for its bytes as the source wrote them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseJson<I> {
    /// `toolUseId`: the model's id for the call, which its result carries.
    pub tool_use_id: String,
    /// The tool's name.
    pub name: String,
    /// The tool's input, a JSON object.
    pub input: I,
}

/// The `metadata` event of a tool call: `{"toolUse": {"toolUseId", "name",
/// "input"}}` (the host's `providers::call::tool_use_event`). A metadata
/// event that does not parse as this is some other fact about the stream.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseMetadataJson<I> {
    /// `toolUse`: the call.
    pub tool_use: ToolUseJson<I>,
}
