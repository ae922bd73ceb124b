//! The wasmtime engine every plugin runs on: the allocator, the epoch clock
//! that enforces call deadlines, and (in `cache`) compiled code kept on disk.

mod cache;

use std::time::Duration;

use tracing::{info, warn};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use cache::{CompileCache, Origin};

/// How often the epoch advances. A plugin call overruns its deadline by at
/// most about this much, and a busy plugin yields to the executor this often.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Limits on every plugin instance.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The wasm instructions one call into a plugin may execute, in
    /// wasmtime's fuel (about one unit per instruction): the limit on a
    /// plugin's own work, the same on a busy host as on an idle one.
    pub call_fuel: u64,
    /// The longest one call into a plugin may run on the wall clock, less
    /// its waits on the host: a backstop behind `call_fuel`, for work fuel
    /// does not count (a bulk memory copy is one instruction).
    pub call_timeout: Duration,
    /// The most linear memory one instance may grow to.
    pub memory_bytes: usize,
    /// The most instances alive at once.
    pub max_instances: u32,
    /// The most output a plugin may produce.
    pub output: OutputLimits,
}

/// The most output one plugin may produce, counted where it crosses into the
/// host: what a transform's `push` or `finish` returns, what an agent passes
/// to `emit`. Bytes are an event's payload (its text, JSON or raw bytes). A
/// plugin over a limit ends its stream with `plugin_output_limit`, which
/// names it, before its output reaches the next stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Bytes per call.
    pub call_bytes: usize,
    /// Events per call.
    pub call_events: usize,
    /// Bytes per stream: everything one instance produces.
    pub stream_bytes: usize,
    /// Events per stream.
    pub stream_events: usize,
}

impl Default for OutputLimits {
    /// 1 MiB and 4,096 events per call, 16 MiB and 1,000,000 events per
    /// stream: a long model answer is well under 1 MiB in some thousands of
    /// events, a batch is at most 64 events in.
    fn default() -> Self {
        Self { call_bytes: 1 << 20, call_events: 4096, stream_bytes: 16 << 20, stream_events: 1_000_000 }
    }
}

/// Which instance allocator the engine ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    /// wasmtime's pooling allocator: address space for `max_instances` instances reserved up front.
    Pooling,
    /// wasmtime's on-demand allocator, used where the pool's address space was refused.
    OnDemand,
}

/// Builds the engine and starts its epoch clock. The pooling allocator
/// reserves address space for every slot up front; where that is refused
/// (a small `ulimit -v`, say) the on-demand allocator is used instead.
pub fn build(limits: &Limits) -> anyhow::Result<(Engine, Allocator)> {
    let mut config = base_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(limits)));
    let (engine, allocator) = match Engine::new(&config) {
        Ok(engine) => (engine, Allocator::Pooling),
        Err(error) => {
            warn!(%error, "pooling allocator unavailable; using on-demand allocation");
            (Engine::new(&base_config())?, Allocator::OnDemand)
        }
    };
    info!(?allocator, "wasm engine ready");
    start_epoch_clock(&engine);
    Ok((engine, allocator))
}

/// An engine for checking and precompiling components (`publish`, `plugins
/// inspect`): the host's code generation settings, without the allocator
/// pool or the clock, for hosts on `target` (a target triple such as
/// `aarch64-unknown-linux-gnu`, for Lambda on arm64) or on this machine.
/// Another architecture than this one needs the `all-arch` feature.
pub fn build_for_checks(target: Option<&str>) -> anyhow::Result<Engine> {
    let mut config = base_config();
    if let Some(target) = target {
        config.target(target)?;
    }
    Engine::new(&config).map_err(|error| {
        anyhow::anyhow!(
            "no engine for {}: {error:#} (is streamhost built with the `all-arch` feature?)",
            target.unwrap_or("this machine")
        )
    })
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Fuel counts a plugin's own work (docs/design/006-deadlines.md); it is
    // on in every engine, so compiled code is the same for all of them.
    config.consume_fuel(true);
    // Plugins use no component-model concurrency; turning its bookkeeping off
    // roughly halves the cost of a call.
    config.concurrency_support(false);
    config
}

fn pooling(limits: &Limits) -> PoolingAllocationConfig {
    let instances = limits.max_instances;
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .total_component_instances(instances)
        // Components from other languages link several core modules.
        .total_core_instances(instances * 8)
        .total_memories(instances * 2)
        .total_tables(instances * 8)
        .total_stacks(instances)
        .max_memory_size(limits.memory_bytes);
    pooling
}

/// Advances the epoch every tick for as long as the engine is alive.
fn start_epoch_clock(engine: &Engine) {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("streamhost-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("the epoch thread starts");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `publish --precompile` compiles with the checking engine, for hosts
    /// whose engine has an allocator pool and a clock: their compiled code
    /// must be interchangeable, whatever the limits.
    #[test]
    fn the_checking_engine_compiles_what_the_serving_engine_loads() {
        let limits = Limits {
            call_fuel: 1 << 30,
            call_timeout: Duration::from_secs(1),
            memory_bytes: 32 << 20,
            max_instances: 4,
            output: OutputLimits::default(),
        };
        let (serving, _) = build(&limits).unwrap();
        assert_eq!(cache::engine_hash(&serving), cache::engine_hash(&build_for_checks(None).unwrap()));
    }
}
