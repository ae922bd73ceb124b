//! Plugin name -> compiled, pre-instantiated component.
//!
//! Every lookup asks the store whether the plugin changed (a `stat` for a
//! folder), so a replaced plugin is served by the next request. A changed
//! plugin is compiled once, or loaded from the disk cache, then linked into
//! an `InstancePre`: what is left per stream is a cheap instantiation.

//!
//! The module follows the load: `load` (store -> checked, compiled
//! component), `link` (its role, linked for it), `sandbox` (the store and
//! limits of one instance), then one module per role's calls (`transform`,
//! `roles`), and the imports the host provides (`imports`, with a router's or
//! an agent's behind `turn_host`).

mod imports;
mod link;
mod load;
mod output;
mod quota;
mod roles;
mod sandbox;
mod transform;
mod turn_host;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use thiserror::Error;
use tokio::sync::Semaphore;
use tracing::{error, warn};
use wasmtime::Engine;
use wasmtime::component::Linker;

use link::Linked;
pub use link::{Plugin, PluginRole};
pub use load::{ComponentReport, LoadError, inspect, inspect_into};
pub use quota::OutputLimitExceeded;
pub use sandbox::PluginError;
use sandbox::{PluginState, Sandbox, SandboxOptions};
pub use transform::TransformInstance;
pub use turn_host::{ModelStream, ModelStreamState, TurnHost};

use crate::engine::{CompileCache, Limits};
use crate::error_code::Code;
use crate::plugin_store::{PluginName, PluginStore, Revision};
use crate::wit::{AgentRequest, Choice, IncomingRequest, PipelineRequest, Refusal, RouteRequest, StreamContext};

/// Why a plugin could not serve in a role: it did not load, or it failed.
#[derive(Debug, Error)]
pub enum RoleError {
    /// The plugin could not be loaded, or has another role than the one asked for.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// No instance slot was free, or the instance trapped, ran past a limit or returned its own error.
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

impl RoleError {
    /// The code of this error in the host's table (error_code.rs), or the plugin's own for its refusal.
    pub fn code(&self) -> Code<'_> {
        match self {
            RoleError::Load(load) => load.code().into(),
            RoleError::Plugin(plugin) => plugin.code(),
        }
    }
}

impl crate::error_code::CodedError for RoleError {
    fn error_code(&self) -> Code<'_> {
        self.code()
    }

    /// A plugin's failure was logged in its sandbox, where it happened.
    fn logged(&self) -> bool {
        matches!(self, RoleError::Plugin(_))
    }
}

/// Counters for operators and tests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Components compiled since the host started.
    pub compiled: AtomicU64,
    /// Components loaded from the disk cache instead of compiled.
    pub cache_hits: AtomicU64,
    /// Components loaded from a trusted precompiled artifact in the store instead of compiled.
    pub precompiled: AtomicU64,
}

struct Loaded {
    revision: Revision,
    plugin: Plugin,
}

/// One slot per plugin name; its lock makes concurrent first requests for a
/// plugin wait for one compile instead of each doing their own.
type Slot = Arc<tokio::sync::Mutex<Option<Loaded>>>;

/// Plugin name -> loaded plugin: fetches each from the store, compiles it (or loads its compiled code), links
/// it for its role, and instantiates it for a stream or a turn, one store per instance under the host's limits.
pub struct Registry {
    engine: Engine,
    linker: Linker<PluginState>,
    store: Arc<PluginStore>,
    cache: CompileCache,
    limits: Limits,
    slots: Mutex<HashMap<PluginName, Slot>>,
    /// `name -> sha256`: the only versions these plugins may have.
    pins: HashMap<PluginName, String>,
    /// One permit per instance alive, `limits.max_instances` in all: past
    /// that, requests are shed with a clear error, whichever the allocator.
    instances: Arc<Semaphore>,
    /// Whether `<name>.cwasm` artifacts from the store may be loaded.
    trust_precompiled: bool,
    /// What every instance is set up with beyond its limits.
    sandbox_options: SandboxOptions,
    /// How components were loaded, for `GET /healthz`.
    pub stats: Stats,
}

impl Registry {
    /// The plugins of `store`, compiled for `engine` through `cache` and run under `limits`: no pins, no
    /// precompiled artifact trusted, no plugin output shown to callers. Fails only if the host's own interfaces
    /// do not link.
    pub fn new(engine: Engine, store: Arc<PluginStore>, cache: CompileCache, limits: Limits) -> anyhow::Result<Self> {
        let linker = link::linker(&engine)?;
        let instances = Arc::new(Semaphore::new(limits.max_instances as usize));
        let pins = HashMap::new();
        Ok(Self {
            engine,
            linker,
            store,
            cache,
            limits,
            slots: Mutex::default(),
            pins,
            instances,
            trust_precompiled: false,
            sandbox_options: SandboxOptions::default(),
            stats: Stats::default(),
        })
    }

    /// Loads `<name>.cwasm` precompiled artifacts from the store, when they
    /// pass the cache's checks, instead of compiling. Native code is trusted
    /// code: only for stores whose writers are trusted as much as the host.
    pub fn trusting_precompiled(mut self, trust: bool) -> Self {
        self.trust_precompiled = trust;
        self
    }

    /// Lets callers see what a trapping plugin printed (development only).
    pub fn exposing_plugin_output(mut self, expose: bool) -> Self {
        self.sandbox_options.expose_output = expose;
        self
    }

    /// Fixes the wall clock plugins read at `since_epoch` (golden tests).
    pub fn with_frozen_wall_clock(mut self, since_epoch: Option<std::time::Duration>) -> Self {
        self.sandbox_options.frozen_wall_clock = since_epoch;
        self
    }

    /// The sha256 `name` is pinned to, if it is.
    pub fn pinned(&self, name: &PluginName) -> Option<&str> {
        self.pins.get(name).map(String::as_str)
    }

    /// Refuses any version of these plugins but the pinned one.
    pub fn with_pins(mut self, pins: impl IntoIterator<Item = (PluginName, String)>) -> Self {
        self.pins.extend(pins);
        self
    }

    /// Loads plugins ahead of their first request (on Lambda: during the
    /// init phase), so the first caller does not wait for a compile. A plugin
    /// that fails to load is logged and left for its requests to report.
    pub async fn preload(&self, names: &[PluginName]) {
        for name in names {
            if let Err(failure) = self.load(name).await {
                error!(plugin = %name, error = %failure, "could not preload plugin");
            }
        }
    }

    /// Where the plugins come from.
    pub fn store(&self) -> &PluginStore {
        &self.store
    }

    /// Plugin instances alive now, of `--max-instances`.
    pub fn instances_in_use(&self) -> u32 {
        self.limits.max_instances.saturating_sub(self.instances.available_permits() as u32)
    }

    /// The wasmtime engine its plugins are compiled for and run on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Where its plugins' compiled forms are kept.
    pub fn compile_cache(&self) -> &CompileCache {
        &self.cache
    }

    /// The transform plugin `name`, instantiated and opened for one stream.
    pub async fn open_transform(
        &self,
        name: &PluginName,
        context: &StreamContext,
        settings: String,
    ) -> Result<TransformInstance, RoleError> {
        let plugin = self.load(name).await?;
        self.open(&plugin, context, settings).await
    }

    /// Instantiates the transform `plugin`, loaded already, for one stream.
    pub async fn open(
        &self,
        plugin: &Plugin,
        context: &StreamContext,
        settings: String,
    ) -> Result<TransformInstance, RoleError> {
        let Linked::Transform(pre) = &plugin.linked else {
            return Err(plugin.wrong_role(PluginRole::Transform).into());
        };
        let sandbox = self.sandbox(plugin, settings, None)?;
        Ok(TransformInstance::open(sandbox, pre, context).await?)
    }

    /// Asks the router plugin `name` to choose; gives the turn back after.
    pub async fn select<T: TurnHost>(
        &self,
        name: &PluginName,
        settings: String,
        turn: T,
        request: &RouteRequest,
    ) -> Result<(Choice, T), RoleError> {
        let plugin = self.load(name).await?;
        let Linked::Router(pre) = &plugin.linked else { return Err(plugin.wrong_role(PluginRole::Router).into()) };
        let sandbox = self.sandbox(&plugin, settings, Some(Box::new(turn)))?;
        let (choice, turn) = roles::select(sandbox, pre, request).await?;
        Ok((choice, turn_host::take_back(turn)))
    }

    /// Runs the agent plugin `name` for one turn; gives the turn back after.
    pub async fn handle<T: TurnHost>(
        &self,
        name: &PluginName,
        settings: String,
        turn: T,
        request: &AgentRequest,
    ) -> Result<(String, T), RoleError> {
        let plugin = self.load(name).await?;
        let Linked::Agent(pre) = &plugin.linked else { return Err(plugin.wrong_role(PluginRole::Agent).into()) };
        let sandbox = self.sandbox(&plugin, settings, Some(Box::new(turn)))?;
        let (stop_reason, turn) = roles::handle(sandbox, pre, request).await?;
        Ok((stop_reason, turn_host::take_back(turn)))
    }

    /// Asks the request-filter plugin `name` to map the caller's request.
    /// `Ok(Err(refusal))` is the plugin's own answer to the caller.
    pub async fn filter(
        &self,
        name: &PluginName,
        settings: String,
        request: &IncomingRequest,
    ) -> Result<Result<PipelineRequest, Refusal>, RoleError> {
        let plugin = self.load(name).await?;
        let Linked::RequestFilter(pre) = &plugin.linked else {
            return Err(plugin.wrong_role(PluginRole::RequestFilter).into());
        };
        let sandbox = self.sandbox(&plugin, settings, None)?;
        Ok(roles::filter(sandbox, pre, request).await?)
    }

    /// A store for one instance of `plugin`, if an instance slot is free.
    fn sandbox(
        &self,
        plugin: &Plugin,
        settings: String,
        turn: Option<Box<dyn TurnHost>>,
    ) -> Result<Sandbox, PluginError> {
        let Ok(permit) = self.instances.clone().try_acquire_owned() else {
            let error = PluginError::Overloaded { limit: self.limits.max_instances };
            warn!(plugin = %plugin.name, code = error.code().as_str(), %error, "request shed");
            return Err(error);
        };
        Ok(Sandbox::new(&self.engine, plugin, settings, self.limits, permit, turn, self.sandbox_options))
    }
}
