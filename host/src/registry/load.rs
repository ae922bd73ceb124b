//! Loading: a plugin's bytes from the store to a compiled component, its
//! pin and header checked, from the disk cache, a trusted precompiled
//! artifact or the compiler; then linked (`link`) for its role.

use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};
use thiserror::Error;
use tracing::{info, warn};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::link::{PluginRole, linker};
use super::{Loaded, Plugin, Registry};

use crate::engine::{CompileCache, Origin};
use crate::error_code::ErrorCode;
use crate::plugin_store::{Fetched, ObjectKind, PluginName, StoreError};
use crate::wit::{FILTER_INTERFACE, HANDLER_INTERFACE, SELECTOR_INTERFACE, TRANSFORMER_INTERFACE};

/// Why a plugin could not be loaded for its role.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The store could not give the component: it has none by that name, or could not be read or reached.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file does not start with wasm's magic bytes (`\0asm`).
    #[error("plugin `{0}` is not a WebAssembly file")]
    NotWasm(PluginName),
    /// The file is a core module (wasm version 1), not a component.
    #[error(
        "plugin `{0}` is a core WebAssembly module, not a component; build it for wasm32-wasip2 \
         (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule(PluginName),
    /// wasmtime refused to compile the component (it is not a valid component, say).
    #[error("plugin `{name}` does not compile: {message}")]
    Compile {
        /// The plugin.
        name: PluginName,
        /// wasmtime's error, with its causes.
        message: String,
    },
    /// The component exports none of the four roles' interfaces, or exports one whose functions do not match
    /// the host's WIT.
    #[error(
        "plugin `{name}` is not a streamhost plugin: it must export `{TRANSFORMER_INTERFACE}`, `{SELECTOR_INTERFACE}`, \
         `{HANDLER_INTERFACE}` or `{FILTER_INTERFACE}`, and it exports {exports}"
    )]
    WrongWorld {
        /// The plugin.
        name: PluginName,
        /// What it exports, for the message: its export names in backticks, `nothing`, or, for an interface
        /// that does not match, wasmtime's error.
        exports: String,
    },
    /// A transform or a request filter imports `history`, `model` or `emit`, which need a router's or an
    /// agent's turn.
    #[error("plugin `{name}` is a {role} plugin and imports `{import}`, which only routers and agents may")]
    TurnImport {
        /// The plugin.
        name: PluginName,
        /// Its role, known by what it exports.
        role: PluginRole,
        /// The interface refused, such as `streamhost:plugin/model@0.1.0`.
        import: String,
    },
    /// The plugin is named where another role is needed (a router in a transform chain, say).
    #[error("plugin `{name}` is a {actual} plugin, used here as a {expected}")]
    WrongRole {
        /// The plugin.
        name: PluginName,
        /// The role its place needs.
        expected: PluginRole,
        /// The role its component has.
        actual: PluginRole,
    },
    /// The component imports something the host's linker does not provide (or not with that type), so no
    /// `InstancePre` could be made.
    #[error(
        "plugin `{name}` imports `{import}`, which this host does not provide (it provides streamhost:plugin and \
         the wasi 0.2 interfaces, with no environment, files or network): {message}"
    )]
    Imports {
        /// The plugin.
        name: PluginName,
        /// The import wasmtime's error names (such as `acme:vault/secrets`), or `an interface` when it names none.
        import: String,
        /// wasmtime's linking error, with its causes.
        message: String,
    },
    /// The component's sha256 is not the one its name is pinned to (`--pin`).
    #[error("plugin `{name}` is pinned to sha256 {expected}, but the store holds {actual}")]
    DigestMismatch {
        /// The plugin.
        name: PluginName,
        /// The pinned sha256, in hex.
        expected: String,
        /// The sha256 of the component the store holds, in hex.
        actual: String,
    },
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

/// What a component is, as the host sees it.
#[derive(Debug)]
pub struct ComponentReport {
    /// The sha256 of the component, in hex.
    pub digest: String,
    /// Its role, known by what it exports.
    pub role: PluginRole,
    /// The names of its imports, as the component model names them (`streamhost:plugin/log@0.1.0`).
    pub imports: Vec<String>,
    /// The names of its exports, as the component model names them (`streamhost:plugin/transformer@0.1.0`).
    pub exports: Vec<String>,
}

impl Registry {
    /// The current version of the plugin, loading it if it is new or
    /// changed: a new digest is compiled (milliseconds to seconds of CPU)
    /// unless the disk cache or a trusted precompiled artifact has it.
    /// Concurrent first requests for one plugin wait for a single load.
    pub async fn load(&self, name: &PluginName) -> Result<Plugin, LoadError> {
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
        let plugin = Plugin::new(&self.engine, &self.linker, name, digest, &component)?;
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
    inspect_into(engine, &CompileCache::new(engine, None), name, wasm)
}

/// [`inspect`], keeping the compiled component in `cache`: an upload
/// checked with the host's own cache is not compiled again by the first
/// request that runs it (for a Python or JavaScript plugin, seconds).
pub fn inspect_into(
    engine: &Engine,
    cache: &CompileCache,
    name: &PluginName,
    wasm: &[u8],
) -> Result<ComponentReport, LoadError> {
    let digest = sha256_hex(wasm);
    check_header(name, wasm)?;
    let component = compile(engine, cache, name, wasm, &digest)?;
    let linker = linker(engine).expect("the host's own interfaces link");
    let plugin = Plugin::new(engine, &linker, name, digest.clone(), &component)?;
    let exports = component.component_type().exports(engine).map(|(export, _)| export.to_string()).collect();
    Ok(ComponentReport { digest, role: plugin.role(), imports: plugin.imports.to_vec(), exports })
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

impl crate::error_code::CodedError for LoadError {
    fn error_code(&self) -> crate::error_code::Code<'_> {
        self.code().into()
    }
}
