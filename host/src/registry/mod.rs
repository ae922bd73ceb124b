//! Plugin name -> compiled, pre-instantiated component.
//!
//! Every lookup asks the store whether the plugin changed (a `stat` for a
//! folder), so a replaced plugin is served by the next request. A changed
//! plugin is compiled once, or loaded from the disk cache, then linked into
//! an `InstancePre`: what is left per stream is a cheap instantiation.

mod imports;
mod output;
mod roles;
mod sandbox;
mod transform;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::sync::Semaphore;
use tracing::{error, info, warn};
use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker};

pub use imports::{Downstream, ModelAccess, ModelStreamState, TurnServices};
pub use sandbox::PluginError;
use sandbox::{PluginState, Sandbox};
pub use transform::TransformInstance;

use crate::engine::{CompileCache, Limits, Origin};
use crate::error_code::{Code, ErrorCode};
use crate::store::{Fetched, ObjectKind, PluginName, PluginStore, Revision, StoreError};
use crate::wit::router::RouterPre;
use crate::wit::{
    self, AgentPre, AgentRequest, Choice, FILTER_INTERFACE, HANDLER_INTERFACE, IncomingRequest, PipelineRequest,
    Refusal, RequestFilterPre, RouteRequest, SELECTOR_INTERFACE, StreamContext, TRANSFORMER_INTERFACE, TransformPre,
};

/// Why a plugin could not serve in a role: it did not load, or it failed.
#[derive(Debug, Error)]
pub enum RoleError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

#[derive(Debug, Error)]
pub enum LoadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("plugin `{0}` is not a WebAssembly file")]
    NotWasm(PluginName),
    #[error(
        "plugin `{0}` is a core WebAssembly module, not a component; build it for wasm32-wasip2 \
         (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule(PluginName),
    #[error("plugin `{name}` does not compile: {message}")]
    Compile { name: PluginName, message: String },
    #[error(
        "plugin `{name}` is not a streamhost plugin: it must export `{TRANSFORMER_INTERFACE}`, `{SELECTOR_INTERFACE}`, \
         `{HANDLER_INTERFACE}` or `{FILTER_INTERFACE}`, and it exports {exports}"
    )]
    WrongWorld { name: PluginName, exports: String },
    #[error("plugin `{name}` is a {role} plugin and imports `{import}`, which only routers and agents may")]
    TurnImport { name: PluginName, role: Role, import: String },
    #[error("plugin `{name}` is a {actual} plugin, used here as a {expected}")]
    WrongRole { name: PluginName, expected: Role, actual: Role },
    #[error(
        "plugin `{name}` imports `{import}`, which this host does not provide (it provides streamhost:plugin and \
         the wasi 0.2 interfaces, with no environment, files or network): {message}"
    )]
    Imports { name: PluginName, import: String, message: String },
    #[error("plugin `{name}` is pinned to sha256 {expected}, but the store holds {actual}")]
    DigestMismatch { name: PluginName, expected: String, actual: String },
}

impl LoadError {
    /// A plugin the store does not hold, or cannot give, keeps the store's
    /// code; a pin that does not match is `digest_mismatch`; every other
    /// plugin that cannot serve is `invalid_plugin`, in every role.
    pub fn code(&self) -> ErrorCode {
        match self {
            LoadError::Store(store) => store.code(),
            LoadError::DigestMismatch { .. } => ErrorCode::DigestMismatch,
            _ => ErrorCode::InvalidPlugin,
        }
    }
}

impl RoleError {
    pub fn code(&self) -> Code<'_> {
        match self {
            RoleError::Load(load) => load.code().into(),
            RoleError::Plugin(plugin) => plugin.code(),
        }
    }
}

/// What a component is, as the host sees it.
#[derive(Debug)]
pub struct ComponentReport {
    /// The sha256 of the component, in hex.
    pub digest: String,
    pub role: Role,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// A plugin's role: the world it was built for, known by what it exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Transform,
    Router,
    Agent,
    RequestFilter,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Transform => "transform",
            Role::Router => "router",
            Role::Agent => "agent",
            Role::RequestFilter => "request-filter",
        })
    }
}

/// A component linked for its role, ready to instantiate.
#[derive(Clone)]
enum Linked {
    Transform(TransformPre<PluginState>),
    Router(RouterPre<PluginState>),
    Agent(AgentPre<PluginState>),
    RequestFilter(RequestFilterPre<PluginState>),
}

/// A loaded plugin, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    pub name: PluginName,
    /// The sha256 of the component, in hex.
    pub digest: Arc<str>,
    linked: Linked,
}

impl Plugin {
    pub fn role(&self) -> Role {
        match self.linked {
            Linked::Transform(_) => Role::Transform,
            Linked::Router(_) => Role::Router,
            Linked::Agent(_) => Role::Agent,
            Linked::RequestFilter(_) => Role::RequestFilter,
        }
    }

    fn wrong_role(&self, expected: Role) -> LoadError {
        LoadError::WrongRole { name: self.name.clone(), expected, actual: self.role() }
    }
}

/// Counters for operators and tests.
#[derive(Debug, Default)]
pub struct Stats {
    pub compiled: AtomicU64,
    pub cache_hits: AtomicU64,
    pub precompiled: AtomicU64,
}

struct Loaded {
    revision: Revision,
    plugin: Plugin,
}

/// One slot per plugin name; its lock makes concurrent first requests for a
/// plugin wait for one compile instead of each doing their own.
type Slot = Arc<tokio::sync::Mutex<Option<Loaded>>>;

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
    /// Whether a trap's message to the caller carries what the plugin printed.
    expose_plugin_output: bool,
    pub stats: Stats,
}

impl Registry {
    pub fn new(engine: Engine, store: Arc<PluginStore>, cache: CompileCache, limits: Limits) -> anyhow::Result<Self> {
        let linker = linker(&engine)?;
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
            expose_plugin_output: false,
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
        self.expose_plugin_output = expose;
        self
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
            if let Err(failure) = self.get(name).await {
                error!(plugin = %name, error = %failure, "could not preload plugin");
            }
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The transform plugin `name`, instantiated and opened for one stream.
    pub async fn open_transform(
        &self,
        name: &PluginName,
        context: &StreamContext,
        settings: String,
    ) -> Result<TransformInstance, RoleError> {
        let plugin = self.get(name).await?;
        self.open(&plugin, context, settings).await
    }

    /// Instantiates the transform `plugin`, loaded already, for one stream.
    pub async fn open(
        &self,
        plugin: &Plugin,
        context: &StreamContext,
        settings: String,
    ) -> Result<TransformInstance, RoleError> {
        let Linked::Transform(pre) = &plugin.linked else { return Err(plugin.wrong_role(Role::Transform).into()) };
        let sandbox = self.sandbox(plugin, settings, None)?;
        Ok(TransformInstance::open(sandbox, pre, context).await?)
    }

    /// Asks the router plugin `name` to choose; gives the turn back after.
    pub async fn select(
        &self,
        name: &PluginName,
        settings: String,
        turn: TurnServices,
        request: &RouteRequest,
    ) -> Result<(Choice, TurnServices), RoleError> {
        let plugin = self.get(name).await?;
        let Linked::Router(pre) = &plugin.linked else { return Err(plugin.wrong_role(Role::Router).into()) };
        let sandbox = self.sandbox(&plugin, settings, Some(turn))?;
        Ok(roles::select(sandbox, pre, request).await?)
    }

    /// Runs the agent plugin `name` for one turn; gives the turn back after.
    pub async fn handle(
        &self,
        name: &PluginName,
        settings: String,
        turn: TurnServices,
        request: &AgentRequest,
    ) -> Result<(String, TurnServices), RoleError> {
        let plugin = self.get(name).await?;
        let Linked::Agent(pre) = &plugin.linked else { return Err(plugin.wrong_role(Role::Agent).into()) };
        let sandbox = self.sandbox(&plugin, settings, Some(turn))?;
        Ok(roles::handle(sandbox, pre, request).await?)
    }

    /// Asks the request-filter plugin `name` to map the caller's request.
    /// `Ok(Err(refusal))` is the plugin's own answer to the caller.
    pub async fn filter(
        &self,
        name: &PluginName,
        settings: String,
        request: &IncomingRequest,
    ) -> Result<Result<PipelineRequest, Refusal>, RoleError> {
        let plugin = self.get(name).await?;
        let Linked::RequestFilter(pre) = &plugin.linked else {
            return Err(plugin.wrong_role(Role::RequestFilter).into());
        };
        let sandbox = self.sandbox(&plugin, settings, None)?;
        Ok(roles::filter(sandbox, pre, request).await?)
    }

    /// A store for one instance of `plugin`, if an instance slot is free.
    fn sandbox(&self, plugin: &Plugin, settings: String, turn: Option<TurnServices>) -> Result<Sandbox, PluginError> {
        let permit = self
            .instances
            .clone()
            .try_acquire_owned()
            .map_err(|_| PluginError::Overloaded { limit: self.limits.max_instances })?;
        Ok(Sandbox::new(&self.engine, &plugin.name, settings, self.limits, permit, turn, self.expose_plugin_output))
    }

    /// The current version of the plugin, loading it if it is new or changed.
    pub async fn get(&self, name: &PluginName) -> Result<Plugin, LoadError> {
        let slot = self.slots.lock().unwrap().entry(name.clone()).or_default().clone();
        let mut loaded = slot.lock().await;
        let known = loaded.as_ref().map(|loaded| &loaded.revision);
        let (wasm, revision) = match self.store.fetch(name, ObjectKind::Component, known).await? {
            Fetched::Unchanged => return Ok(loaded.as_ref().expect("unchanged means loaded").plugin.clone()),
            Fetched::Changed { bytes, revision } => (bytes, revision),
        };
        let digest = sha256_hex(&wasm);
        if let Some(expected) = self.pins.get(name).filter(|expected| **expected != digest) {
            return Err(LoadError::DigestMismatch { name: name.clone(), expected: expected.clone(), actual: digest });
        }
        if let Some(current) = loaded.as_mut().filter(|current| *current.plugin.digest == digest) {
            current.revision = revision;
            return Ok(current.plugin.clone());
        }
        let plugin = self.prepare(name, &wasm, digest).await?;
        *loaded = Some(Loaded { revision, plugin: plugin.clone() });
        Ok(plugin)
    }

    /// Checks a component, gets its compiled form (the disk cache, else a
    /// trusted precompiled artifact, else the compiler) and links it.
    async fn prepare(&self, name: &PluginName, wasm: &[u8], digest: String) -> Result<Plugin, LoadError> {
        check_header(name, wasm)?;
        // Loading and compiling take milliseconds to seconds of CPU: keep
        // them off the threads that serve streams.
        let cached = tokio::task::block_in_place(|| self.cache.cached(&self.engine, &digest));
        let (component, origin) = match cached {
            Some(component) => (component, Origin::DiskCache),
            None => match self.precompiled(name, &digest).await {
                Some(component) => (component, Origin::Precompiled),
                None => (
                    tokio::task::block_in_place(|| compile(&self.engine, &self.cache, name, wasm, &digest))?,
                    Origin::Compiled,
                ),
            },
        };
        let counter = match origin {
            Origin::Compiled => &self.stats.compiled,
            Origin::DiskCache => &self.stats.cache_hits,
            Origin::Precompiled => &self.stats.precompiled,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let linked = link(&self.engine, &self.linker, name, &component)?;
        let plugin = Plugin { name: name.clone(), digest: digest.into(), linked };
        info!(plugin = %name, digest = %plugin.digest, ?origin, role = %plugin.role(), "plugin loaded");
        Ok(plugin)
    }

    /// The store's precompiled artifact of this component, if trusted,
    /// present and sound; why not is logged.
    async fn precompiled(&self, name: &PluginName, digest: &str) -> Option<Component> {
        if !self.trust_precompiled {
            return None;
        }
        let artifact = match self.store.fetch(name, ObjectKind::Precompiled, None).await {
            Ok(Fetched::Changed { bytes, .. }) => bytes,
            Ok(Fetched::Unchanged) | Err(StoreError::NotFound(_)) => return None,
            Err(error) => {
                warn!(plugin = %name, %error, "could not fetch the precompiled artifact; compiling");
                return None;
            }
        };
        match tokio::task::block_in_place(|| self.cache.adopt(&self.engine, digest, &artifact)) {
            Ok(component) => Some(component),
            Err(error) => {
                warn!(plugin = %name, %error, "precompiled artifact refused; compiling");
                None
            }
        }
    }
}

/// Checks `wasm` exactly as the host does when it loads a plugin, and says
/// what it imports and exports. Compiles it, so it takes a moment.
pub fn inspect(engine: &Engine, name: &PluginName, wasm: &[u8]) -> Result<ComponentReport, LoadError> {
    let digest = sha256_hex(wasm);
    check_header(name, wasm)?;
    let component = compile(engine, &CompileCache::new(engine, None), name, wasm, &digest)?;
    let linker = linker(engine).expect("the host's own interfaces link");
    let role =
        Plugin { name: name.clone(), digest: digest.clone().into(), linked: link(engine, &linker, name, &component)? }
            .role();
    let ty = component.component_type();
    Ok(ComponentReport {
        digest,
        role,
        imports: ty.imports(engine).map(|(import, _)| import.to_string()).collect(),
        exports: ty.exports(engine).map(|(export, _)| export.to_string()).collect(),
    })
}

/// The sha256 of a component, in hex: its identity in pins, caches and
/// object metadata.
fn sha256_hex(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}

/// Compiles a component (keeping the result in `cache`).
fn compile(
    engine: &Engine,
    cache: &CompileCache,
    name: &PluginName,
    wasm: &[u8],
    digest: &str,
) -> Result<Component, LoadError> {
    cache
        .compile(engine, wasm, digest)
        .map_err(|error| LoadError::Compile { name: name.clone(), message: format!("{error:#}") })
}

/// What every plugin instance may import: the host's interfaces and WASI.
fn linker(engine: &Engine) -> wasmtime::Result<Linker<PluginState>> {
    let mut linker = Linker::new(engine);
    // A wasip2 guest imports wasi:cli and wasi:io even when it does no I/O;
    // each instance gets a WASI context with nothing in it.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wit::Agent::add_to_linker::<_, HasSelf<_>>(&mut linker, |state: &mut PluginState| state)?;
    Ok(linker)
}

/// Checks the component's world and links it for its role, ready to
/// instantiate.
fn link(
    engine: &Engine,
    linker: &Linker<PluginState>,
    name: &PluginName,
    component: &Component,
) -> Result<Linked, LoadError> {
    let role = role_of(engine, name, component)?;
    let mismatched = |error: wasmtime::Error| LoadError::WrongWorld {
        name: name.clone(),
        exports: format!("a mismatched interface ({error:#})"),
    };
    let pre = linker.instantiate_pre(component).map_err(|error| {
        let message = format!("{error:#}");
        LoadError::Imports {
            name: name.clone(),
            import: missing_import(&message).unwrap_or("an interface").to_string(),
            message,
        }
    })?;
    Ok(match role {
        Role::Transform => {
            refuse_turn_imports(engine, name, role, component)?;
            Linked::Transform(TransformPre::new(pre).map_err(mismatched)?)
        }
        Role::Router => Linked::Router(RouterPre::new(pre).map_err(mismatched)?),
        Role::Agent => Linked::Agent(AgentPre::new(pre).map_err(mismatched)?),
        Role::RequestFilter => {
            refuse_turn_imports(engine, name, role, component)?;
            Linked::RequestFilter(RequestFilterPre::new(pre).map_err(mismatched)?)
        }
    })
}

/// Transforms and request filters run with no turn: `history`, `model` and
/// `emit` are for routers and agents.
fn refuse_turn_imports(engine: &Engine, name: &PluginName, role: Role, component: &Component) -> Result<(), LoadError> {
    const TURN_IMPORTS: [&str; 3] =
        ["streamhost:plugin/history@0.1.0", "streamhost:plugin/model@0.1.0", "streamhost:plugin/emit@0.1.0"];
    let ty = component.component_type();
    match ty.imports(engine).map(|(import, _)| import).find(|import| TURN_IMPORTS.contains(import)) {
        Some(import) => Err(LoadError::TurnImport { name: name.clone(), role, import: import.to_string() }),
        None => Ok(()),
    }
}

/// The import wasmtime names, between backticks, in "component imports
/// instance `acme:vault/secrets`, but a matching implementation was not
/// found in the linker".
fn missing_import(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once('`')?;
    rest.split_once('`').map(|(import, _)| import)
}

fn role_of(engine: &Engine, name: &PluginName, component: &Component) -> Result<Role, LoadError> {
    let ty = component.component_type();
    let exports: Vec<&str> = ty.exports(engine).map(|(export, _)| export).collect();
    let roles = [
        (TRANSFORMER_INTERFACE, Role::Transform),
        (SELECTOR_INTERFACE, Role::Router),
        (HANDLER_INTERFACE, Role::Agent),
        (FILTER_INTERFACE, Role::RequestFilter),
    ];
    if let Some((_, role)) = roles.iter().find(|(interface, _)| exports.contains(interface)) {
        return Ok(*role);
    }
    let exports = if exports.is_empty() { "nothing".into() } else { format!("`{}`", exports.join("`, `")) };
    Err(LoadError::WrongWorld { name: name.clone(), exports })
}

/// Tells "not wasm" and "a core module" apart from a component before
/// handing the bytes to the compiler, whose messages are less direct.
fn check_header(name: &PluginName, wasm: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_VERSION: &[u8] = &[1, 0, 0, 0];
    match wasm.get(..8) {
        Some(header) if header.starts_with(MAGIC) && &header[4..] == CORE_VERSION => {
            Err(LoadError::CoreModule(name.clone()))
        }
        Some(header) if header.starts_with(MAGIC) => Ok(()),
        _ => Err(LoadError::NotWasm(name.clone())),
    }
}
