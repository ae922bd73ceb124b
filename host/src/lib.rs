//! streamhost: a streaming host for WebAssembly plugins.
//!
//! The modules follow the data flow:
//! `store` (where plugins come from) -> `registry` (compiled, linked plugins)
//! -> `pipeline` (source -> transforms -> encoder) -> `frontends` (HTTP, CLI).
//! `engine` configures wasmtime, `providers` are the model sources, `event`
//! and `request` are the data that flows, `wit` the bindings of the contract.

pub mod config;
pub mod engine;
pub mod event;
pub mod frontends;
pub mod pipeline;
pub mod providers;
pub mod registry;
pub mod request;
pub mod store;
pub mod wit;

use tracing::info;

use crate::config::HostSettings;
use crate::engine::CompileCache;
use crate::pipeline::Pipeline;
use crate::providers::{EchoProvider, Provider};
use crate::registry::Registry;
use crate::store::{FolderStore, PluginStore};

/// Assembles engine, store, registry and provider into a pipeline.
pub fn build_pipeline(settings: &HostSettings) -> anyhow::Result<Pipeline> {
    let limits = settings.limits();
    let (engine, _allocator) = engine::build(&limits)?;
    let cache = CompileCache::new(&engine, settings.disk_cache_dir());
    let store = PluginStore::Folder(FolderStore::new(settings.plugin_dir()));
    info!(%store, cache = ?settings.disk_cache_dir(), "plugin store");
    let registry = Registry::new(engine, store, cache, limits)?;
    let provider = Provider::Echo(EchoProvider::new(&settings.echo));
    Ok(Pipeline::new(registry, provider))
}
