//! What a plugin costs by the language it is written in, in one run: the
//! component's size, compiling it, loading it from the disk cache,
//! instantiating it and opening a stream, and one small text delta pushed
//! through it. The plugins differ in what they do, but each does little per
//! delta, so the figures are mostly the language runtime's.
//!
//! Run: `cargo bench -p streamhost --bench languages` (it builds the Python
//! and JavaScript examples with their toolchains first, as the tests do).
//! Under `cargo test --benches` it checks itself on the Rust plugin only.

mod common;

// The builder of the non-Rust examples that the tests use.
use streamhost_test_support::polyglot;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use streamhost::engine::{self, CompileCache, Limits, OutputLimits};
use streamhost::plugin_store::{FolderStore, PluginStore};
use streamhost::registry::Registry;
use streamhost::wit::{Event, StreamContext};

use common::median;

struct Figures {
    size: usize,
    compile: Duration,
    cache_load: Duration,
    open: Duration,
    per_event: Duration,
}

/// A bench pushes millions of events through one stream.
const UNLIMITED_OUTPUT: OutputLimits = OutputLimits {
    call_bytes: usize::MAX,
    call_events: usize::MAX,
    stream_bytes: usize::MAX,
    stream_events: usize::MAX,
};

fn limits() -> Limits {
    Limits {
        call_fuel: 1_000_000_000,
        call_timeout: Duration::from_secs(30),
        memory_bytes: 256 << 20,
        max_instances: 8,
        output: UNLIMITED_OUTPUT,
    }
}

fn measure(name: &str, wasm_path: PathBuf, runs: usize, pushes: u32) -> Figures {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (engine, _) = engine::build(&limits()).unwrap();
    let wasm = std::fs::read(&wasm_path).unwrap();
    let digest = hex::encode(Sha256::digest(&wasm));

    let start = Instant::now();
    CompileCache::new(&engine, None).load(&engine, &wasm, &digest).unwrap();
    let compile = start.elapsed();

    let cache_dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(&engine, Some(cache_dir.path().into()));
    cache.load(&engine, &wasm, &digest).unwrap();
    let cache_load = median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                cache.load(&engine, &wasm, &digest).unwrap();
                start.elapsed()
            })
            .collect(),
    );

    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(&wasm_path, plugins.path().join(format!("{name}.wasm"))).unwrap();
    let store = PluginStore::Folder(FolderStore::new(plugins.path()));
    let registry = Registry::new(
        engine.clone(),
        Arc::new(store),
        CompileCache::new(&engine, Some(cache_dir.path().into())),
        limits(),
    )
    .unwrap();
    let context = StreamContext { plugin: name.into(), user_id: None, session_id: None };
    runtime.block_on(async {
        let plugin = registry.load(&name.parse().unwrap()).await.unwrap();
        let mut opens = Vec::new();
        for _ in 0..runs * 10 {
            let start = Instant::now();
            let instance = registry.open(&plugin, &context, "{}".into()).await.unwrap();
            opens.push(start.elapsed());
            drop(instance);
        }
        let open = median(opens);
        let mut instance = registry.open(&plugin, &context, "{}".into()).await.unwrap();
        let delta = [Event::Text(" world".into())];
        instance.push(&delta).await.unwrap();
        let start = Instant::now();
        for _ in 0..pushes {
            std::hint::black_box(instance.push(&delta).await.unwrap());
        }
        let per_event = start.elapsed() / pushes;
        Figures { size: wasm.len(), compile, cache_load, open, per_event }
    })
}

fn rust_plugin(name: &str) -> PathBuf {
    PathBuf::from(streamhost_artifacts::EXAMPLES_DIR).join(format!("{name}.wasm"))
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let plugins: Vec<(&str, &str, PathBuf)> = if full {
        vec![
            ("Rust", "ndjson", rust_plugin("ndjson")),
            ("Rust", "redact", rust_plugin("redact")),
            ("Python", "word-filter-py", polyglot::component("word-filter-py")),
            ("JavaScript", "markdown-js", polyglot::component("markdown-js")),
            ("C", "sse-reframe-c", polyglot::component("sse-reframe-c")),
        ]
    } else {
        vec![("Rust", "ndjson", rust_plugin("ndjson"))]
    };
    let (runs, pushes) = if full { (11, 20_000) } else { (1, 10) };
    println!("| language | plugin | size | compile | load from cache | instantiate + open | per event |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (language, name, path) in plugins {
        let figures = measure(name, path, runs, pushes);
        println!(
            "| {language} | `{name}` | {:.1} MB | {:.0} ms | {:.2} ms | {:.0} µs | {:.2} µs |",
            figures.size as f64 / 1e6,
            figures.compile.as_secs_f64() * 1e3,
            figures.cache_load.as_secs_f64() * 1e3,
            figures.open.as_secs_f64() * 1e6,
            figures.per_event.as_secs_f64() * 1e6,
        );
    }
}
