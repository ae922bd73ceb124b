//! Decoders of raw Bedrock streams (the host's `bedrock-raw` provider, whose
//! chunks arrive as `frame` events in the model family's own JSON). A decoder
//! implements [`Decoder`] for one family and exports
//! `Decoding<ItsDecoder>`; the usage every family's last chunk carries is
//! read here. Enabled by the `bedrock` feature.
//!
//! Null is absent. Bedrock's chunks send explicit nulls for fields that have
//! no value yet (`"stop_reason":null`, `"prompt_token_count":null`, even
//! `"generation":null`), so a decoder declares every field it does not need
//! in every chunk as `Option<T>`, which serde reads as `None` both when the
//! field is missing and when it is `null`. (`#[serde(default)] T` is not
//! enough: it covers a missing field but fails on `null`.)

use serde::Deserialize;

use crate::{ErrorInfo, Event, StreamContext, Transform, Usage};

/// Turns one chunk of a model family's stream into events.
pub trait Decoder: Default + 'static {
    /// The events in one chunk (a `frame` event's bytes, in the family's own
    /// JSON), possibly none. [`Decoding`] adds the chunk's usage; an error
    /// fails the stream.
    fn decode(&mut self, chunk: &[u8]) -> Result<Vec<Event>, ErrorInfo>;
}

/// A transform that decodes `frame` events with `D`, appends the usage
/// of the chunk that carries Bedrock's invocation metrics, and passes
/// every other event through.
#[derive(Default)]
pub struct Decoding<D>(D);

impl<D: Decoder> Transform for Decoding<D> {
    fn open(_context: StreamContext, _settings: &str) -> Result<Self, ErrorInfo> {
        Ok(Self::default())
    }

    fn push(&mut self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            match event {
                Event::Frame(chunk) => {
                    out.extend(self.0.decode(&chunk)?);
                    out.extend(usage(&chunk).map(Event::Usage));
                }
                other => out.push(other),
            }
        }
        Ok(out)
    }
}

/// Parses a chunk as `T`, or says which chunk could not be read. Declare
/// `T`'s optional fields as `Option<…>` (see the module doc): a `null` must
/// not make a chunk undecodable.
pub fn parse<'a, T: Deserialize<'a>>(chunk: &'a [u8]) -> Result<T, ErrorInfo> {
    serde_json::from_slice(chunk).map_err(|error| {
        let shown = String::from_utf8_lossy(&chunk[..chunk.len().min(200)]);
        crate::error("undecodable_chunk", format!("a chunk is not the model family's JSON ({error}): {shown}"))
    })
}

#[derive(Deserialize)]
struct WithMetrics {
    #[serde(rename = "amazon-bedrock-invocationMetrics")]
    metrics: Option<InvocationMetrics>,
}

/// Each count optional: a metrics object missing one (or with a `null`) still
/// gives the usage, with 0 there, rather than none at all.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvocationMetrics {
    input_token_count: Option<u32>,
    output_token_count: Option<u32>,
    invocation_latency: Option<u32>,
}

/// The usage in `amazon-bedrock-invocationMetrics`, which Bedrock adds to
/// the last chunk of every model's stream. A count that is missing or `null`
/// is 0; a chunk without the metrics (or with `null` ones) has no usage.
pub fn usage(chunk: &[u8]) -> Option<Usage> {
    let metrics = serde_json::from_slice::<WithMetrics>(chunk).ok()?.metrics?;
    let input_tokens = metrics.input_token_count.unwrap_or(0);
    let output_tokens = metrics.output_token_count.unwrap_or(0);
    Some(Usage {
        input_tokens,
        output_tokens,
        total_tokens: input_tokens.saturating_add(output_tokens),
        latency_ms: metrics.invocation_latency.unwrap_or(0),
        cache_read_input_tokens: 0,
        cache_write_input_tokens: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage_of(input: u32, output: u32, latency: u32) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            total_tokens: input + output,
            latency_ms: latency,
            cache_read_input_tokens: 0,
            cache_write_input_tokens: 0,
        }
    }

    #[test]
    fn a_missing_or_null_count_is_zero_not_a_lost_usage() {
        let full = br#"{"amazon-bedrock-invocationMetrics":{"inputTokenCount":12,"outputTokenCount":2,"invocationLatency":310,"firstByteLatency":120}}"#;
        assert_eq!(usage(full), Some(usage_of(12, 2, 310)));
        let nulls = br#"{"amazon-bedrock-invocationMetrics":{"inputTokenCount":12,"outputTokenCount":null,"invocationLatency":null,"firstByteLatency":null}}"#;
        assert_eq!(usage(nulls), Some(usage_of(12, 0, 0)));
        assert_eq!(usage(br#"{"amazon-bedrock-invocationMetrics":{"outputTokenCount":3}}"#), Some(usage_of(0, 3, 0)));
    }

    #[test]
    fn no_metrics_no_usage() {
        assert_eq!(usage(br#"{"generation":"Hel"}"#), None);
        assert_eq!(usage(br#"{"generation":"Hel","amazon-bedrock-invocationMetrics":null}"#), None);
        assert_eq!(usage(b"<html>"), None);
    }
}
