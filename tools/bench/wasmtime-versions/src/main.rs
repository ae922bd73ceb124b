//! The two costs of issue #15 that belong to wasmtime, measured on one
//! wasmtime version with the host's engine settings and call sequence
//! (host/src/engine/mod.rs, host/src/registry/{sandbox,transform}.rs):
//!
//! - the per-call floor: `push` of one small text event into a pass-through
//!   transform, the fuel and the epoch deadline armed before each call;
//! - instantiate + open: a fresh store and WASI context, `instantiate_async`
//!   from an `InstancePre`, `open`, `content-type`, the whole dropped.
//!
//! It is not the host (no output metering, metrics or spans), so its floor
//! is the part of the host's that a wasmtime upgrade can move. `run.sh`
//! builds it once per version and prints the figures side by side.
//!
//! Usage: `wasmtime-versions PASSTHROUGH.wasm NDJSON.wasm`
//! (the `trap` fixture, which passes events through below its `trapAt`,
//! and the `ndjson` example).

use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "../../../wit",
    world: "transform",
    exports: { default: async },
});

use exports::streamhost::plugin::transformer::Event;
use streamhost::plugin::types::StreamContext;

/// The host's defaults (`host/src/config.rs`: `--plugin-fuel`,
/// `--max-instances`, `--plugin-memory-mb`), copied: this crate cannot
/// depend on the host, which is built on another wasmtime.
const CALL_FUEL: u64 = 1_000_000_000;
const MAX_INSTANCES: u32 = 4096;
const MEMORY_BYTES: usize = 64 << 20;

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    settings: String,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl streamhost::plugin::types::Host for State {}

impl streamhost::plugin::log::Host for State {
    fn log(&mut self, _level: streamhost::plugin::log::Level, _message: String) {}
}

impl streamhost::plugin::config::Host for State {
    fn settings(&mut self) -> String {
        self.settings.clone()
    }
}

fn engine() -> Engine {
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .total_component_instances(MAX_INSTANCES)
        .total_core_instances(MAX_INSTANCES * 8)
        .total_memories(MAX_INSTANCES * 2)
        .total_tables(MAX_INSTANCES * 8)
        .total_stacks(MAX_INSTANCES)
        .max_memory_size(MEMORY_BYTES);
    tune(&mut pooling);
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.consume_fuel(true);
    config.concurrency_support(false);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    Engine::new(&config).expect("the engine builds")
}

/// Pool settings to try against the host's (its defaults): `POOL_TUNING`,
/// comma-separated `keep_resident=BYTES` (linear memory and tables),
/// `stack_keep_resident=BYTES`, `decommit_batch=N`, `pagemap_scan`.
fn tune(pooling: &mut PoolingAllocationConfig) {
    let tuning = std::env::var("POOL_TUNING").unwrap_or_default();
    for setting in tuning.split(',').filter(|setting| !setting.is_empty()) {
        if setting == "pagemap_scan" {
            pooling.pagemap_scan(wasmtime::Enabled::Yes);
            continue;
        }
        let Some((name, value)) = setting.split_once('=') else {
            panic!("POOL_TUNING setting {setting} needs a value: {setting}=N");
        };
        let value: usize = value.parse().unwrap_or_else(|_| panic!("POOL_TUNING {name}: {value} is not a number"));
        match name {
            "keep_resident" => pooling.linear_memory_keep_resident(value).table_keep_resident(value),
            "stack_keep_resident" => pooling.async_stack_keep_resident(value),
            "decommit_batch" => pooling.decommit_batch_size(value),
            other => panic!("unknown POOL_TUNING setting {other}"),
        };
    }
}

fn store(engine: &Engine, settings: &str) -> Store<State> {
    let mut wasi = WasiCtx::builder();
    wasi.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
    let state = State { wasi: wasi.build(), table: ResourceTable::new(), settings: settings.into() };
    let mut store = Store::new(engine, state);
    // The host's callback yields to the executor; this run has nothing else to do.
    store.epoch_deadline_async_yield_and_update(1);
    store
}

fn arm(store: &mut Store<State>) {
    store.set_fuel(CALL_FUEL).expect("fuel is on");
    store.set_epoch_deadline(1);
}

fn context() -> StreamContext {
    StreamContext { plugin: "bench".into(), user_id: None, session_id: None }
}

/// One `push` of a small text event, in ns; `armed`: fuel and the epoch
/// deadline set before each call, as the host does.
async fn floor_ns(pre: &TransformPre<State>, engine: &Engine, iterations: u32, armed: bool) -> f64 {
    let mut store = store(engine, r#"{"trapAt": 18446744073709551615}"#);
    arm(&mut store);
    let bindings = pre.instantiate_async(&mut store).await.unwrap();
    let transform = bindings.streamhost_plugin_transformer().transform();
    arm(&mut store);
    let handle = transform.call_open(&mut store, &context()).await.unwrap().unwrap();
    let events = [Event::Text("Hello, wor".into())];
    // Unarmed, one tank lasts the whole run.
    store.set_fuel(u64::MAX).expect("fuel is on");
    let start = Instant::now();
    for _ in 0..iterations {
        if armed {
            arm(&mut store);
        }
        std::hint::black_box(transform.call_push(&mut store, handle, &events).await.unwrap().unwrap());
    }
    start.elapsed().as_nanos() as f64 / f64::from(iterations)
}

/// A stream's start, instantiate + open, in µs each: [store and WASI
/// context, instantiate, `open`, `content-type`, dropping the store
/// (returning its slot)], and their sum, averaged over `iterations`.
async fn stream_start_us(pre: &TransformPre<State>, engine: &Engine, iterations: u32) -> [f64; 6] {
    let mut phases = [Duration::ZERO; 5];
    let mut lap = |phase: usize, since: &mut Instant| {
        let now = Instant::now();
        phases[phase] += now - *since;
        *since = now;
    };
    for _ in 0..iterations {
        let mut since = Instant::now();
        let mut store = store(engine, "{}");
        lap(0, &mut since);
        arm(&mut store);
        let bindings = pre.instantiate_async(&mut store).await.unwrap();
        lap(1, &mut since);
        let transform = bindings.streamhost_plugin_transformer().transform();
        arm(&mut store);
        let handle = transform.call_open(&mut store, &context()).await.unwrap().unwrap();
        lap(2, &mut since);
        arm(&mut store);
        std::hint::black_box(transform.call_content_type(&mut store, handle).await.unwrap());
        lap(3, &mut since);
        drop(store);
        lap(4, &mut since);
    }
    let us = phases.map(|phase| phase.as_nanos() as f64 / f64::from(iterations) / 1e3);
    [us[0], us[1], us[2], us[3], us[4], us.iter().sum()]
}

fn pre(engine: &Engine, path: &str) -> TransformPre<State> {
    let component = Component::from_file(engine, path).expect("a component");
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    Transform::add_to_linker::<_, HasSelf<_>>(&mut linker, |state: &mut State| state).unwrap();
    TransformPre::new(linker.instantiate_pre(&component).unwrap()).unwrap()
}

/// The best of `rounds` runs of `measure`, the one with the least
/// `total`: the figure least disturbed by the machine.
async fn best<T, F: Future<Output = T>>(rounds: u32, mut measure: impl FnMut() -> F, total: impl Fn(&T) -> f64) -> T {
    let mut best = measure().await;
    for _ in 1..rounds {
        let run = measure().await;
        if total(&run) < total(&best) {
            best = run;
        }
    }
    best
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, passthrough, ndjson] = args.as_slice() else {
        eprintln!("usage: wasmtime-versions PASSTHROUGH.wasm NDJSON.wasm");
        std::process::exit(2);
    };
    let engine = engine();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let passthrough = pre(&engine, passthrough);
    let ndjson = pre(&engine, ndjson);
    runtime.block_on(async {
        // Warm up the pool's slots and the caches.
        floor_ns(&passthrough, &engine, 10_000, true).await;
        stream_start_us(&ndjson, &engine, 2_000).await;
        let floor = best(7, || floor_ns(&passthrough, &engine, 200_000, true), |&ns| ns).await;
        let unarmed = best(7, || floor_ns(&passthrough, &engine, 200_000, false), |&ns| ns).await;
        let open = best(7, || stream_start_us(&ndjson, &engine, 5_000), |phases| phases[5]).await;
        println!("floor_ns {floor:.0}");
        println!("floor_without_arming_ns {unarmed:.0}");
        println!("instantiate_open_us {:.1}", open[5]);
        println!(
            "  store_and_wasi_us {:.1} instantiate_us {:.1} open_us {:.1} content_type_us {:.1} drop_us {:.1}",
            open[0], open[1], open[2], open[3], open[4]
        );
    });
}
