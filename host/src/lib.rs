//! streamhost: a streaming host for WebAssembly plugins.
//!
//! The modules follow the data flow, in layers (`layers.rs` lists them and
//! a test holds each module to using only the layers below it):
//! `store` (where plugins come from) -> `registry` (compiled, linked
//! plugins) and `manifest` (named pipelines) -> `pipeline` (the inbound
//! step, then source -> transforms -> encoder; a source is a model, or a
//! router and an agent) -> `runs` (detached runs: store, sinks) ->
//! `frontends` (HTTP, Lambda, CLI: they only carry).
//! Beside them: `engine` configures wasmtime, `providers` are the model
//! sources, `history` and `conversation` the conversations, `request` and
//! `callers` what a caller asks and may set, `event` the data that flows,
//! `wit` the bindings of the contract, `telemetry` the metrics and traces,
//! `error_code` the one table of errors and the one place an error becomes
//! an answer, `request_id` the id every answer and log line carries,
//! `authoring` the plugin author's tools, `publish` uploads to a store.

#![warn(missing_docs)]

pub mod authoring;
pub mod aws;
pub mod callers;
pub mod config;
pub mod conversation;
pub mod engine;
pub mod error_code;
pub mod event;
pub mod frontends;
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
#[cfg(test)]
mod layers;
pub mod log_text;
pub mod manifest;
pub mod pipeline;
pub mod providers;
pub mod publish;
pub mod registry;
pub mod request;
pub mod request_id;
pub mod runs;
pub mod store;
pub mod telemetry;
// `bindgen!` carries the WIT's docs onto what it generates (wit/ is where
// the contract is documented); the namespace modules it adds have none.
#[allow(missing_docs)]
pub mod wit;

use std::sync::Arc;

use tracing::info;

use crate::config::{HostSettings, PluginSource};
use crate::engine::CompileCache;
use crate::history::HistoryStore;
use crate::manifest::Manifests;
use crate::pipeline::{Orchestrator, Pipeline, Services};
use crate::providers::Providers;
use crate::registry::Registry;
use crate::store::{FolderStore, PluginStore, S3Store};

/// Assembles engine, store, registry and provider into a pipeline, and
/// loads the plugins named for preloading.
pub async fn build_pipeline(settings: &HostSettings) -> anyhow::Result<Pipeline> {
    let limits = settings.limits();
    let (engine, _allocator) = engine::build(&limits)?;
    let cache = CompileCache::new(&engine, settings.disk_cache_dir());
    let store = Arc::new(plugin_store(settings).await);
    info!(%store, cache = ?settings.disk_cache_dir(), "plugin store");
    let pins = settings.pins.iter().map(|pin| (pin.name.clone(), pin.sha256.clone()));
    let registry = Registry::new(engine, store.clone(), cache, limits)?
        .with_pins(pins)
        .trusting_precompiled(settings.trust_precompiled)
        .exposing_plugin_output(settings.expose_plugin_output)
        .with_frozen_wall_clock(settings.frozen_wall_clock_ms.map(std::time::Duration::from_millis));
    registry.preload(&settings.preload).await;
    let providers = Providers::new(&settings.providers).await?;
    info!(default = %providers.default_kind(), "model source");
    let history = HistoryStore::from_settings(&settings.history).await?;
    info!(%history, "conversations");
    let registry = Arc::new(registry);
    let observed = Arc::downgrade(&registry);
    telemetry::instruments::observe_instances(move || {
        observed.upgrade().map_or(0, |registry| u64::from(registry.instances_in_use()))
    });
    let services = Services { registry, providers: Arc::new(providers), history: Arc::new(history) };
    let orchestrator = Orchestrator::new(services.clone(), settings.history.history_turns, settings.agents.clone());
    Ok(Pipeline::new(Manifests::new(store), services, orchestrator))
}

async fn plugin_store(settings: &HostSettings) -> PluginStore {
    match settings.plugin_source() {
        PluginSource::Folder(dir) => PluginStore::Folder(FolderStore::new(dir)),
        PluginSource::S3(location) => {
            let client = aws::s3_client(&aws::load().await, settings.s3_path_style);
            PluginStore::S3(S3Store::new(client, location, settings.s3_revalidate_every()))
        }
    }
}

/// The run store and sinks of detached runs (`runs`).
pub async fn build_runs(settings: &HostSettings) -> anyhow::Result<Arc<runs::Runs>> {
    let runs = runs::Runs::from_settings(&settings.runs).await?;
    info!(store = %runs.store(), "runs");
    Ok(Arc::new(runs))
}
