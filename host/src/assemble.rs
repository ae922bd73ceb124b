//! The host assembled from its settings: engine, plugin store, registry,
//! model sources and conversations into a [`Pipeline`], and the runs'
//! store and sinks. What every frontend and the author's tools start from.

use std::sync::Arc;

use tracing::info;

use crate::config::{HostSettings, PluginSource};
use crate::engine::CompileCache;
use crate::history::HistoryStore;
use crate::manifest::Manifests;
use crate::pipeline::{Orchestrator, Pipeline, Services};
use crate::plugin_store::{FolderStore, PluginStore, S3Store};
use crate::providers::Providers;
use crate::registry::Registry;

/// Assembles engine, store, registry and provider into a pipeline, and
/// loads the plugins named for preloading.
pub async fn build_pipeline(settings: &HostSettings) -> anyhow::Result<Pipeline> {
    let limits = settings.limits();
    let (engine, _allocator) = crate::engine::build(&limits)?;
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
    crate::telemetry::instruments::observe_instances(move || {
        observed.upgrade().map_or(0, |registry| u64::from(registry.instances_in_use()))
    });
    let services = Services { registry, providers: Arc::new(providers), history: Arc::new(history) };
    let orchestrator = Orchestrator::new(services.clone(), settings.history.history_turns, settings.agents.clone());
    Ok(Pipeline::new(Manifests::new(store), services, orchestrator))
}

async fn plugin_store(settings: &HostSettings) -> PluginStore {
    match settings.plugin_source() {
        PluginSource::Folder(dir) => {
            let (dir, layers) = settings.plugin_folders(dir);
            PluginStore::Folder(FolderStore::layered(dir, layers))
        }
        PluginSource::S3(location) => {
            let client = crate::aws::s3_client(&crate::aws::load().await, settings.s3_path_style);
            PluginStore::S3(S3Store::new(client, location, settings.s3_revalidate_every()))
        }
    }
}

/// The run store and sinks of detached runs (`runs`).
pub async fn build_runs(settings: &HostSettings) -> anyhow::Result<Arc<crate::runs::Runs>> {
    let runs = crate::runs::Runs::from_settings(&settings.runs).await?;
    info!(store = %runs.store(), "runs");
    Ok(Arc::new(runs))
}
