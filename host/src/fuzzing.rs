//! Fuzz targets: what a fuzzer feeds the host's parsers and plugins, and
//! what must hold for every input. `fuzz/` runs them under libFuzzer
//! (`cargo +nightly fuzz run <target>`); `tests/all/fuzz_corpus.rs` replays
//! each target's corpus (`fuzz/corpus/<target>/`) on stable, in seconds.
//! Every function panics when its property fails; a plugin failure that is
//! an answer (a refusal) is not one.
//!
//! Not fuzzed here: the Bedrock event-stream decoder, which is the AWS SDK's
//! (`aws-smithy-eventstream`, fuzzed upstream).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, stream};

use crate::engine::{self, CompileCache, Limits, OutputLimits};
use crate::plugin_store::{FolderStore, PluginName, PluginStore};
use crate::providers::sse;
use crate::registry::{PluginError, PluginRole, Registry, RoleError, TransformInstance};
use crate::request::Request;
use crate::wit::{ErrorInfo, Event, StreamContext, Usage};

/// A request body: parsing never panics, and a request that parses writes
/// a body (`Request::to_json`) that parses back to the same request.
pub fn request_json(data: &[u8]) {
    let chain: Vec<PluginName> = ["redact", "ndjson"].iter().map(|name| name.parse().expect("a plugin name")).collect();
    let Ok(request) = Request::from_json(chain.clone(), &[], data) else { return };
    let written = request.to_json().to_string();
    let again = Request::from_json(chain, &[], written.as_bytes()).expect("a written request parses");
    assert_eq!(again.to_json(), request.to_json(), "the request changed through its JSON");
}

/// A pipeline manifest: parsing never panics, whatever the bytes.
pub fn manifest(data: &[u8]) {
    let _ = crate::manifest::Manifest::parse(&"fuzzed".parse().expect("a plugin name"), data);
}

/// An SSE body: the frames are the same however the body is cut into reads.
/// The first byte picks the cuts: read sizes cycle through `1..=first+1`.
pub fn sse_frames(data: &[u8]) {
    let Some((&seed, body)) = data.split_first() else { return };
    let whole = frames_of(vec![Bytes::copy_from_slice(body)]);
    let mut reads = Vec::new();
    let (mut at, mut size) = (0, 1);
    while at < body.len() {
        let end = (at + size).min(body.len());
        reads.push(Bytes::copy_from_slice(&body[at..end]));
        at = end;
        size = size % (usize::from(seed) + 1) + 1;
    }
    assert_eq!(frames_of(reads), whole, "the frames depend on how the body was cut");
}

fn frames_of(reads: Vec<Bytes>) -> Vec<sse::SseFrame> {
    let body = stream::iter(reads.into_iter().map(Ok::<_, std::convert::Infallible>));
    futures::executor::block_on(sse::frames(body).map(|frame| frame.expect("no body error")).collect())
}

/// Random batches of events through every transform in a folder (the
/// bundled ones): each may refuse (its own error), but none traps, runs out
/// of fuel, time or memory, or goes over its output limits.
pub struct TransformTarget {
    runtime: tokio::runtime::Runtime,
    registry: Registry,
    names: Vec<PluginName>,
}

impl TransformTarget {
    /// Loads every transform in `plugins` (a folder of `.wasm` files).
    pub fn new(plugins: &Path) -> Self {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("a runtime");
        let limits = Limits {
            call_fuel: 10_000_000_000,
            call_timeout: Duration::from_secs(10),
            memory_bytes: 64 << 20,
            max_instances: 64,
            output: OutputLimits::default(),
        };
        let (engine, _) = engine::build(&limits).expect("an engine");
        let cache = CompileCache::new(&engine, None);
        let store = Arc::new(PluginStore::Folder(FolderStore::new(plugins)));
        let registry = Registry::new(engine, store, cache, limits).expect("a registry");
        let mut names: Vec<PluginName> = std::fs::read_dir(plugins)
            .expect("the plugin folder")
            .filter_map(|entry| entry.ok()?.path().file_stem()?.to_str()?.parse().ok())
            .collect();
        names.sort();
        names.retain(|name| {
            runtime.block_on(registry.load(name)).is_ok_and(|plugin| plugin.role() == PluginRole::Transform)
        });
        Self { runtime, registry, names }
    }

    /// The transforms it runs.
    pub fn names(&self) -> &[PluginName] {
        &self.names
    }

    /// Pushes the batches `data` describes through each transform, then
    /// finishes it.
    pub fn run(&self, data: &[u8]) {
        let batches = batches(data);
        for name in &self.names {
            self.runtime.block_on(self.run_one(name, &batches));
        }
    }

    async fn run_one(&self, name: &PluginName, batches: &[Vec<Event>]) {
        let context = StreamContext { plugin: name.to_string(), user_id: None, session_id: None };
        let mut instance = match self.registry.open_transform(name, &context, "{}".into()).await {
            Ok(instance) => instance,
            Err(RoleError::Plugin(error)) => return acceptable(name, error),
            Err(error) => panic!("{name} could not be opened: {error}"),
        };
        for batch in batches {
            if let Err(error) = instance.push(batch).await {
                return acceptable(name, error);
            }
        }
        if let Err(error) = TransformInstance::finish(&mut instance).await {
            acceptable(name, error);
        }
    }
}

/// A plugin's own refusal is an answer; anything else is a finding.
fn acceptable(name: &PluginName, error: PluginError) {
    assert!(matches!(error, PluginError::Refused { .. }), "{name}: {error}");
}

/// Batches of events read from `data`: each byte's low 3 bits pick the
/// event, the high bits its length; a zero byte ends a batch.
fn batches(data: &[u8]) -> Vec<Vec<Event>> {
    let mut batches = vec![Vec::new()];
    let mut bytes = data.iter().copied();
    while let Some(byte) = bytes.next() {
        if byte == 0 {
            batches.push(Vec::new());
            continue;
        }
        let length = usize::from(byte >> 3);
        let payload: Vec<u8> = bytes.by_ref().take(length).collect();
        let text = String::from_utf8_lossy(&payload).into_owned();
        let event = match byte & 7 {
            0 | 1 => Event::Text(text),
            // The host passes a plugin metadata only as a JSON object
            // (`event::check_metadata`): the payload is its text.
            2 => Event::Metadata(serde_json::json!({ "fuzzed": text }).to_string()),
            3 => Event::Status(text),
            4 => Event::Raw(payload),
            5 => Event::Frame(payload),
            6 => Event::Usage(Usage {
                input_tokens: u32::from(byte),
                output_tokens: length as u32,
                total_tokens: u32::from(byte) + length as u32,
                latency_ms: 0,
                cache_read_input_tokens: 0,
                cache_write_input_tokens: 0,
            }),
            _ if length % 2 == 0 => Event::End(text),
            _ => Event::Error(ErrorInfo { code: "fuzzed".into(), message: text }),
        };
        batches.last_mut().expect("never empty").push(event);
    }
    batches
}
