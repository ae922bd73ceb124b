//! Decoders of raw Bedrock streams (the host's `bedrock-raw` provider, whose
//! chunks arrive as `frame` events in the model family's own JSON). A decoder
//! implements [`Decoder`] for one family and exports
//! `Decoding<ItsDecoder>`; the usage every family's last chunk carries is
//! read here. Enabled by the `bedrock` feature.

use serde::Deserialize;

use crate::{ErrorInfo, Event, StreamContext, Transform, Usage};

/// Turns one chunk of a model family's stream into events.
pub trait Decoder: Default + 'static {
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

/// Parses a chunk as `T`, or says which chunk could not be read.
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvocationMetrics {
    input_token_count: u32,
    output_token_count: u32,
    invocation_latency: u32,
}

/// The usage in `amazon-bedrock-invocationMetrics`, which Bedrock adds to
/// the last chunk of every model's stream.
pub fn usage(chunk: &[u8]) -> Option<Usage> {
    let metrics = serde_json::from_slice::<WithMetrics>(chunk).ok()?.metrics?;
    Some(Usage {
        input_tokens: metrics.input_token_count,
        output_tokens: metrics.output_token_count,
        total_tokens: metrics.input_token_count + metrics.output_token_count,
        latency_ms: metrics.invocation_latency,
        cache_read_input_tokens: 0,
        cache_write_input_tokens: 0,
    })
}
