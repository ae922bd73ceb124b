//! The JSON shapes of event payloads, so that every formatter writes usage
//! and errors alike (and as the host's own encoder does):
//! `{"inputTokens":…,"outputTokens":…,"totalTokens":…,"latencyMs":…}` (with
//! `cacheReadInputTokens` and `cacheWriteInputTokens` when not 0) and
//! `{"code":…,"message":…}`. Enabled by the `json` feature.

use serde::Serialize;

use crate::{ErrorInfo, Usage};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageJson {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub total_tokens: u32,
    pub latency_ms: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub cache_read_input_tokens: u32,
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

#[derive(Debug, Serialize)]
pub struct ErrorJson<'a> {
    pub code: &'a str,
    pub message: &'a str,
}

impl<'a> From<&'a ErrorInfo> for ErrorJson<'a> {
    fn from(error: &'a ErrorInfo) -> Self {
        Self { code: &error.code, message: &error.message }
    }
}
