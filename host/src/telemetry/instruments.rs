//! The instruments, named as the OpenTelemetry GenAI semantic conventions
//! name them where they cover it (`gen_ai.client.*`, semantic conventions
//! 1.41), and `streamhost.*` for the host's own:
//!
//! | instrument | kind, unit | attributes |
//! |---|---|---|
//! | `gen_ai.client.operation.duration` | histogram, s | `gen_ai.operation.name` (`chat`), `gen_ai.provider.name`, `gen_ai.request.model`, `error.type` on failure or cancel |
//! | `gen_ai.client.operation.time_to_first_chunk` | histogram, s | as above, without `error.type` |
//! | `gen_ai.client.token.usage` | histogram, {token} | as above, and `gen_ai.token.type` (`input`, `output`) |
//! | `streamhost.plugin.call.duration` | histogram, s | `streamhost.plugin.name`, `streamhost.plugin.call` (`push`, `handle`, ...), `error.type` on failure |
//!
//! `error.type` is a host code (error_code.rs), `cancelled`, or `_OTHER` for
//! a code a plugin or an upstream chose.
//! | `streamhost.plugin.instances` | gauge, {instance} | none: instances alive now |
//! | `streamhost.stream.cancelled` | counter, {stream} | none: streams whose client left before their end |
//! | `streamhost.stream.cancelled.chunks` | histogram, {chunk} | none: text chunks the source had sent when a stream was cancelled |
//!
//! Before [`super::Telemetry::init`] (in tests, in `streamhost test`) the
//! global meter provider is a no-op and recording costs next to nothing.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, ObservableGauge};

use crate::error_code::ErrorCode;
use crate::event::Event;

/// Every instrument the host records to.
pub struct Instruments {
    operation_duration: Histogram<f64>,
    time_to_first_chunk: Histogram<f64>,
    token_usage: Histogram<u64>,
    plugin_call_duration: Histogram<f64>,
    streams_cancelled: Counter<u64>,
    cancelled_stream_chunks: Histogram<u64>,
}

/// Seconds buckets for model calls (the conventions' advice).
const MODEL_SECONDS: [f64; 14] =
    [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
/// Seconds buckets for plugin calls: microseconds to the time limit.
const PLUGIN_SECONDS: [f64; 12] =
    [0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.01, 0.1, 1.0, 5.0];
/// Token buckets (the conventions' advice), up to a million.
const TOKENS: [f64; 11] = [1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0];

/// The instruments, made from the global meter provider at first use.
pub fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| Instruments::new(&opentelemetry::global::meter("streamhost")))
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        let seconds = |name: &'static str, description: &'static str, buckets: &[f64]| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(buckets.to_vec())
                .build()
        };
        Self {
            operation_duration: seconds("gen_ai.client.operation.duration", "GenAI operation duration", &MODEL_SECONDS),
            time_to_first_chunk: seconds(
                "gen_ai.client.operation.time_to_first_chunk",
                "Time to receive the first chunk of a streaming response",
                &MODEL_SECONDS,
            ),
            token_usage: meter
                .u64_histogram("gen_ai.client.token.usage")
                .with_unit("{token}")
                .with_description("Number of input and output tokens used")
                .with_boundaries(TOKENS.to_vec())
                .build(),
            plugin_call_duration: seconds(
                "streamhost.plugin.call.duration",
                "Time one call into a plugin took, its waits on the host included",
                &PLUGIN_SECONDS,
            ),
            streams_cancelled: meter
                .u64_counter("streamhost.stream.cancelled")
                .with_unit("{stream}")
                .with_description("Streams whose client went away before their end")
                .build(),
            cancelled_stream_chunks: meter
                .u64_histogram("streamhost.stream.cancelled.chunks")
                .with_unit("{chunk}")
                .with_description("Text chunks the source had sent when a stream was cancelled")
                .with_boundaries(TOKENS.to_vec())
                .build(),
        }
    }

    /// A plugin call that took `elapsed`; `error` is its code if it failed
    /// (bounded: see [`error_type`]).
    /// `plugin` is [`plugin_attribute`]'s, made once per instance.
    pub fn plugin_call(&self, plugin: &KeyValue, call: &'static str, elapsed: Duration, error: Option<&str>) {
        let call = KeyValue::new("streamhost.plugin.call", call);
        let seconds = elapsed.as_secs_f64();
        match error {
            None => self.plugin_call_duration.record(seconds, &[plugin.clone(), call]),
            Some(code) => self
                .plugin_call_duration
                .record(seconds, &[plugin.clone(), call, KeyValue::new("error.type", error_type(code))]),
        }
    }

    /// A stream cancelled after its source sent `chunks` text chunks.
    pub fn stream_cancelled(&self, chunks: u64) {
        self.streams_cancelled.add(1, &[]);
        self.cancelled_stream_chunks.record(chunks, &[]);
    }
}

/// `error.type` for `code`: one of the host's codes (error_code.rs),
/// `cancelled`, or `_OTHER`, as the semantic conventions name a value
/// outside a known set: a plugin's own codes and an upstream's are chosen
/// by others, and as attribute values they could multiply the metrics'
/// series without bound.
fn error_type(code: &str) -> &'static str {
    match ErrorCode::ALL.iter().find(|known| known.as_str() == code) {
        Some(known) => known.as_str(),
        None if code == CANCELLED => CANCELLED,
        None => "_OTHER",
    }
}

/// The most model ids the metrics name; later ones are `_OTHER`.
const MAX_MODELS: usize = 64;
/// The longest model id the metrics name (Bedrock's ARNs fit); longer are `_OTHER`.
const MAX_MODEL_LENGTH: usize = 256;

/// `gen_ai.request.model` for `model`: the first [`MAX_MODELS`] ids seen
/// (of at most [`MAX_MODEL_LENGTH`] bytes), else `_OTHER`. A caller may
/// name any model id, and each id would be series of its own.
pub fn bounded_model(model: &str) -> String {
    static SEEN: OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> = OnceLock::new();
    let mut seen = SEEN.get_or_init(Default::default).lock().expect("not poisoned");
    if model.len() <= MAX_MODEL_LENGTH && (seen.contains(model) || seen.len() < MAX_MODELS) {
        seen.insert(model.to_string());
        return model.to_string();
    }
    "_OTHER".to_string()
}

/// `error.type` of a model call whose stream was dropped before its end.
const CANCELLED: &str = "cancelled";

/// The `streamhost.plugin.name` attribute of `plugin`'s calls: shared, so
/// each call clones a pointer, not the name.
pub fn plugin_attribute(plugin: &str) -> KeyValue {
    KeyValue::new("streamhost.plugin.name", opentelemetry::StringValue::from(std::sync::Arc::<str>::from(plugin)))
}

/// Reports `instances_in_use()` as `streamhost.plugin.instances` whenever
/// the metrics are read. The gauge lives as long as the process.
pub fn observe_instances(instances_in_use: impl Fn() -> u64 + Send + Sync + 'static) {
    static GAUGE: OnceLock<ObservableGauge<u64>> = OnceLock::new();
    GAUGE.get_or_init(|| {
        opentelemetry::global::meter("streamhost")
            .u64_observable_gauge("streamhost.plugin.instances")
            .with_unit("{instance}")
            .with_description("Plugin instances alive")
            .with_callback(move |observer| observer.observe(instances_in_use(), &[]))
            .build()
    });
}

/// One model call's metrics, recorded as its events go by
/// ([`ModelCallMeter::observe`]): the first text chunk, the usage, the
/// duration at `end` or `error`, or at its drop before either (the client
/// went away: `error.type` `cancelled`).
pub struct ModelCallMeter {
    attributes: Vec<KeyValue>,
    /// `gen_ai.request.model`, bounded ([`bounded_model`]).
    model: Option<String>,
    started: Instant,
    first_chunk: bool,
    ended: bool,
}

impl ModelCallMeter {
    /// A `chat` call to `provider` for `model` (none when the source names none), started now.
    pub fn start(provider: &str, model: Option<&str>) -> Self {
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.provider.name", provider.to_string()),
        ];
        let model = model.map(bounded_model);
        if let Some(model) = &model {
            attributes.push(KeyValue::new("gen_ai.request.model", model.clone()));
        }
        Self { attributes, model, started: Instant::now(), first_chunk: false, ended: false }
    }

    /// The model the metrics name (bounded), for the call's span too.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// How long since the call started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records what `event`, the call's next, tells.
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::Text(_) if !self.first_chunk => {
                self.first_chunk = true;
                instruments().time_to_first_chunk.record(self.started.elapsed().as_secs_f64(), &self.attributes);
            }
            Event::Usage(usage) => {
                for (kind, tokens) in [("input", usage.input_tokens), ("output", usage.output_tokens)] {
                    let mut attributes = self.attributes.clone();
                    attributes.push(KeyValue::new("gen_ai.token.type", kind));
                    instruments().token_usage.record(u64::from(tokens), &attributes);
                }
            }
            Event::End(_) => self.end(None),
            Event::Error(error) => self.end(Some(&error.code)),
            _ => {}
        }
    }

    /// The call failed before its stream started, with `code`.
    pub fn fail(&mut self, code: &str) {
        self.end(Some(code));
    }

    fn end(&mut self, error: Option<&str>) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let mut attributes = self.attributes.clone();
        if let Some(code) = error {
            attributes.push(KeyValue::new("error.type", error_type(code)));
        }
        instruments().operation_duration.record(self.started.elapsed().as_secs_f64(), &attributes);
    }
}

impl Drop for ModelCallMeter {
    fn drop(&mut self) {
        self.end(Some(CANCELLED));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_are_the_hosts_codes_cancelled_or_other() {
        assert_eq!(error_type("plugin_trapped"), "plugin_trapped");
        assert_eq!(error_type("cancelled"), "cancelled");
        assert_eq!(error_type("a_code_a_plugin_made_up_7"), "_OTHER");
    }

    #[test]
    fn model_ids_are_named_up_to_a_bound() {
        assert_eq!(bounded_model(&"m".repeat(MAX_MODEL_LENGTH + 1)), "_OTHER");
        let named = (0..2 * MAX_MODELS).filter(|index| bounded_model(&format!("model-{index}")) != "_OTHER").count();
        assert!(named <= MAX_MODELS, "{named}");
        assert_eq!(bounded_model("model-0"), "model-0", "an id seen stays named");
    }
}
