//! What a transform plugin costs, measured in one run:
//! - per event: the `ndjson` and `redact` plugins as components in the host,
//!   against the very same crates compiled natively, for a small text delta
//!   and for a 4 KB chunk;
//! - the floor: a plugin that returns its input unchanged, i.e. the host's
//!   own cost of one call carrying one event each way;
//! - per stream: instantiating a plugin and opening a stream in it;
//! - per plugin: loading it cold (compiling) and warm (from the disk cache).
//!
//! Run: `cargo bench -p streamhost --bench transform`. The ratios are printed
//! at the end and recorded in docs/benchmarks.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use sha2::{Digest, Sha256};
use streamhost::engine::{self, CompileCache, Limits, OutputLimits};
use streamhost::plugin_store::{FolderStore, PluginStore};
use streamhost::registry::{Plugin, Registry, TransformInstance};
use streamhost::wit::{Event, StreamContext};
use streamhost_guest::Transform;
use tokio::runtime::Runtime;

const SMALL_DELTA: &str = " world";
/// Events per call in the batched case: the pipeline hands a plugin all the
/// events its source has ready in one call.
const BATCH: usize = 16;

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
        call_timeout: Duration::from_secs(10),
        memory_bytes: 64 << 20,
        max_instances: 16,
        output: UNLIMITED_OUTPUT,
    }
}

fn context(plugin: &str) -> StreamContext {
    StreamContext { plugin: plugin.into(), user_id: None, session_id: None }
}

fn guest_context(plugin: &str) -> streamhost_guest::StreamContext {
    streamhost_guest::StreamContext { plugin: plugin.into(), user_id: None, session_id: None }
}

fn inputs() -> [(&'static str, String); 2] {
    // Text with spaces and no candidates, so `redact` passes it straight on.
    let four_kb = "lorem ipsum dolor sit amet ".repeat(152)[..4096].to_string();
    [("small", SMALL_DELTA.to_string()), ("4KB", four_kb)]
}

struct Host {
    runtime: Runtime,
    registry: Registry,
    _plugins: tempfile::TempDir,
}

impl Host {
    fn new() -> Self {
        let runtime = Runtime::new().unwrap();
        let (engine, _) = engine::build(&limits()).unwrap();
        let cache = CompileCache::new(&engine, None);
        let plugins = tempfile::tempdir().unwrap();
        for name in ["ndjson", "redact"] {
            std::fs::copy(example(name), plugins.path().join(format!("{name}.wasm"))).unwrap();
        }
        // The `trap` fixture passes events through until its `trapAt`-th push.
        let fixture = Path::new(streamhost_artifacts::FIXTURES_DIR).join("trap.wasm");
        std::fs::copy(fixture, plugins.path().join("passthrough.wasm")).unwrap();
        let store = PluginStore::Folder(FolderStore::new(plugins.path()));
        let registry = Registry::new(engine, std::sync::Arc::new(store), cache, limits()).unwrap();
        Self { runtime, registry, _plugins: plugins }
    }

    fn plugin(&self, name: &str) -> Plugin {
        self.runtime.block_on(self.registry.load(&name.parse().unwrap())).unwrap()
    }

    fn open(&self, plugin: &Plugin) -> TransformInstance {
        self.open_with(plugin, "{}")
    }

    fn open_with(&self, plugin: &Plugin, settings: &str) -> TransformInstance {
        self.runtime.block_on(self.registry.open(plugin, &context(plugin.name.as_str()), settings.into())).unwrap()
    }
}

fn example(name: &str) -> PathBuf {
    Path::new(streamhost_artifacts::EXAMPLES_DIR).join(format!("{name}.wasm"))
}

/// Times `iterations` pushes of `events` into `instance`.
fn time_pushes(host: &Host, instance: &mut TransformInstance, events: &[Event], iterations: u64) -> Duration {
    host.runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(instance.push(events).await.unwrap());
        }
        start.elapsed()
    })
}

fn per_event<T: Transform>(criterion: &mut Criterion, host: &Host, name: &str) {
    let plugin = host.plugin(name);
    let mut group = criterion.benchmark_group(format!("push-{name}"));
    for (size, text) in inputs() {
        let mut instance = host.open(&plugin);
        let events = [Event::Text(text.clone())];
        group.bench_function(BenchmarkId::new("wasm", size), |bench| {
            bench.iter_custom(|iterations| time_pushes(host, &mut instance, &events, iterations))
        });
        let mut native = T::open(guest_context(name), "{}").ok().unwrap();
        group.bench_function(BenchmarkId::new("native", size), |bench| {
            bench.iter(|| {
                std::hint::black_box(native.push(vec![streamhost_guest::Event::Text(text.clone())]).ok().unwrap())
            })
        });
    }
    let mut instance = host.open(&plugin);
    let batch = vec![Event::Text(SMALL_DELTA.into()); BATCH];
    group.bench_function(BenchmarkId::new("wasm", "batch"), |bench| {
        bench.iter_custom(|iterations| time_pushes(host, &mut instance, &batch, iterations))
    });
    let mut native = T::open(guest_context(name), "{}").ok().unwrap();
    group.bench_function(BenchmarkId::new("native", "batch"), |bench| {
        bench.iter(|| {
            std::hint::black_box(
                native.push(vec![streamhost_guest::Event::Text(SMALL_DELTA.into()); BATCH]).ok().unwrap(),
            )
        })
    });
    group.finish();
}

fn floor(criterion: &mut Criterion, host: &Host) {
    let plugin = host.plugin("passthrough");
    let mut instance = host.open_with(&plugin, r#"{"trapAt": 18446744073709551615}"#);
    let mut group = criterion.benchmark_group("push-passthrough");
    for (size, text) in inputs() {
        let events = [Event::Text(text)];
        group.bench_function(BenchmarkId::new("wasm", size), |bench| {
            bench.iter_custom(|iterations| time_pushes(host, &mut instance, &events, iterations))
        });
    }
    group.finish();
}

fn per_stream(criterion: &mut Criterion, host: &Host) {
    let plugin = host.plugin("ndjson");
    criterion.bench_function("open-ndjson", |bench| bench.iter(|| host.open(&plugin)));
}

fn load(criterion: &mut Criterion, host: &Host) {
    let wasm = std::fs::read(example("ndjson")).unwrap();
    let digest = hex::encode(Sha256::digest(&wasm));
    let engine = host.registry.engine();
    let mut group = criterion.benchmark_group("load-ndjson");
    group.sample_size(10);
    let uncached = CompileCache::new(engine, None);
    group.bench_function("cold", |bench| bench.iter(|| uncached.load(engine, &wasm, &digest).unwrap()));
    let dir = tempfile::tempdir().unwrap();
    let cached = CompileCache::new(engine, Some(dir.path().to_path_buf()));
    cached.load(engine, &wasm, &digest).unwrap();
    group.bench_function("warm", |bench| bench.iter(|| cached.load(engine, &wasm, &digest).unwrap()));
    group.finish();
}

/// The mean of one benchmark, from the estimates criterion wrote.
fn mean_ns(dir: &Path, id: &str) -> Option<f64> {
    let json = std::fs::read_to_string(dir.join(id).join("new/estimates.json")).ok()?;
    let estimates: serde_json::Value = serde_json::from_str(&json).ok()?;
    estimates["mean"]["point_estimate"].as_f64()
}

fn print_row(plugin: &str, input: &str, wasm: f64, native: f64) {
    println!(
        "{plugin:<10} {input:<6} {wasm:>9.0} ns {native:>9.0} ns {:>9.0} ns {:>7.1}x",
        wasm - native,
        wasm / native
    );
}

fn print_summary(dir: &Path) {
    println!("\nsummary (means of this run)");
    println!("{:<10} {:<6} {:>12} {:>12} {:>12} {:>8}", "plugin", "input", "wasm", "native", "overhead", "ratio");
    for plugin in ["ndjson", "redact"] {
        for (size, _) in inputs() {
            let wasm = mean_ns(dir, &format!("push-{plugin}/wasm/{size}"));
            let native = mean_ns(dir, &format!("push-{plugin}/native/{size}"));
            let (Some(wasm), Some(native)) = (wasm, native) else { return };
            print_row(plugin, size, wasm, native);
        }
        let wasm = mean_ns(dir, &format!("push-{plugin}/wasm/batch"));
        let native = mean_ns(dir, &format!("push-{plugin}/native/batch"));
        if let (Some(wasm), Some(native)) = (wasm, native) {
            print_row(
                plugin,
                &format!("small, per event in batches of {BATCH}"),
                wasm / BATCH as f64,
                native / BATCH as f64,
            );
        }
    }
    for (size, _) in inputs() {
        if let Some(floor) = mean_ns(dir, &format!("push-passthrough/wasm/{size}")) {
            println!("floor: one call, one {size} text event each way, no work in the plugin: {floor:.0} ns");
        }
    }
    if let (Some(open), Some(cold), Some(warm)) =
        (mean_ns(dir, "open-ndjson"), mean_ns(dir, "load-ndjson/cold"), mean_ns(dir, "load-ndjson/warm"))
    {
        println!("instantiate + open a stream (ndjson): {:.1} us", open / 1e3);
        println!(
            "load ndjson cold (compile): {:.1} ms; warm (disk cache): {:.3} ms; cold/warm {:.0}x",
            cold / 1e6,
            warm / 1e6,
            cold / warm
        );
    }
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("criterion");
    let mut criterion = Criterion::default()
        .output_directory(&dir)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let host = Host::new();
    per_event::<ndjson_plugin::Ndjson>(&mut criterion, &host, "ndjson");
    per_event::<redact_plugin::Redact>(&mut criterion, &host, "redact");
    floor(&mut criterion, &host);
    per_stream(&mut criterion, &host);
    load(&mut criterion, &host);
    criterion.final_summary();
    print_summary(&dir);
}
