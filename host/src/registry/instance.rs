//! One plugin instance serving one stream: its store, its limits, and the
//! calls into it. Each call runs under a deadline; a trap, an overrun or an
//! exhausted memory ends this instance only, as a typed [`PluginError`].

use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, error, info, trace, warn};
use wasmtime::component::{ResourceAny, ResourceTable};
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::Plugin;
use super::output::PluginOutput;
use crate::engine::Limits;
use crate::store::PluginName;
use crate::wit::{self, ErrorInfo, Event, LogLevel, StreamContext};

/// Longer log lines from a plugin are cut.
const MAX_LOG_LINE: usize = 4 * 1024;

#[derive(Debug, Error)]
pub enum PluginError {
    #[error("plugin `{name}` trapped: {message}")]
    Trapped { name: PluginName, message: String },
    #[error("plugin `{name}` ran past its {} ms time limit", limit.as_millis())]
    Timeout { name: PluginName, limit: Duration },
    #[error("plugin `{name}` needed more than its {} MiB memory limit", limit_bytes >> 20)]
    OutOfMemory { name: PluginName, limit_bytes: usize },
    /// The plugin itself returned an error.
    #[error("plugin `{name}`: {}", error.message)]
    Refused { name: PluginName, error: ErrorInfo },
    #[error("all {limit} plugin instances are in use; try again shortly")]
    Overloaded { limit: u32 },
}

impl PluginError {
    /// The code an error event or error response carries.
    pub fn code(&self) -> &str {
        match self {
            PluginError::Trapped { .. } => "plugin_trapped",
            PluginError::Timeout { .. } => "plugin_timeout",
            PluginError::OutOfMemory { .. } => "plugin_out_of_memory",
            PluginError::Refused { error, .. } => &error.code,
            PluginError::Overloaded { .. } => "overloaded",
        }
    }
}

/// The store's data: everything a plugin's imports can reach. No
/// environment, arguments, files, network or credentials; stdin is empty,
/// stdout and stderr go to the host's log.
pub struct PluginState {
    plugin: PluginName,
    settings: String,
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: PluginOutput,
    memory: MemoryCap,
    deadline: Instant,
    /// Set when the deadline stopped a call, which wasmtime's error does not say.
    timed_out: bool,
}

impl PluginState {
    fn new(plugin: PluginName, settings: String, memory_bytes: usize) -> Self {
        let stderr = PluginOutput::new(plugin.clone(), "stderr");
        let wasi = WasiCtx::builder()
            .stdout(PluginOutput::new(plugin.clone(), "stdout"))
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            plugin,
            settings,
            wasi,
            table: ResourceTable::new(),
            stderr,
            memory: MemoryCap { limit: memory_bytes, refused: false },
            deadline: Instant::now(),
            timed_out: false,
        }
    }

    /// Called at every epoch tick while the plugin runs.
    fn on_epoch_tick(&mut self) -> wasmtime::Result<UpdateDeadline> {
        if Instant::now() >= self.deadline {
            self.timed_out = true;
            return Err(wasmtime::format_err!("the call's deadline passed"));
        }
        Ok(UpdateDeadline::Yield(1))
    }

    /// The last lines the plugin wrote to stderr: a Rust panic message.
    fn stderr_tail(&self) -> Option<String> {
        self.stderr.tail()
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wit::streamhost::plugin::types::Host for PluginState {}

impl wit::streamhost::plugin::config::Host for PluginState {
    fn settings(&mut self) -> String {
        self.settings.clone()
    }
}

impl wit::streamhost::plugin::log::Host for PluginState {
    fn log(&mut self, level: LogLevel, mut message: String) {
        if message.len() > MAX_LOG_LINE {
            let cut = (0..=MAX_LOG_LINE).rev().find(|&i| message.is_char_boundary(i)).unwrap_or(0);
            message.truncate(cut);
        }
        let plugin = self.plugin.as_str();
        match level {
            LogLevel::Trace => trace!(plugin, "{message}"),
            LogLevel::Debug => debug!(plugin, "{message}"),
            LogLevel::Info => info!(plugin, "{message}"),
            LogLevel::Warn => warn!(plugin, "{message}"),
            LogLevel::Error => error!(plugin, "{message}"),
        }
    }
}

/// Refuses to grow any memory of the instance past the limit. The guest sees
/// a failed `memory.grow`; a Rust guest then aborts, which is a trap.
struct MemoryCap {
    limit: usize,
    /// Whether a growth was refused: a trap after it is the limit's doing.
    refused: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = desired <= self.limit;
        self.refused |= !allowed;
        Ok(allowed)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// A transform plugin instance for one stream.
pub struct TransformInstance {
    name: PluginName,
    store: Store<PluginState>,
    bindings: wit::Transform,
    handle: ResourceAny,
    content_type: Option<String>,
    limits: Limits,
    /// Holds this instance's slot until the instance is dropped.
    _slot: OwnedSemaphorePermit,
}

impl TransformInstance {
    /// Instantiates `plugin` and opens a stream in it (see `Registry::open`).
    pub(super) async fn open(
        plugin: &Plugin,
        context: &StreamContext,
        settings: String,
        limits: Limits,
        slot: OwnedSemaphorePermit,
    ) -> Result<Self, PluginError> {
        let state = PluginState::new(plugin.name.clone(), settings, limits.memory_bytes);
        let mut store = Store::new(plugin.pre.engine(), state);
        store.limiter(|state| &mut state.memory);
        store.epoch_deadline_callback(|mut store| store.data_mut().on_epoch_tick());

        let name = plugin.name.clone();
        arm(&mut store, limits.call_timeout);
        let bindings = match plugin.pre.instantiate_async(&mut store).await {
            Ok(bindings) => bindings,
            Err(error) => return Err(classify(&name, &mut store, limits, error)),
        };
        let transform = bindings.streamhost_plugin_transformer().transform();
        arm(&mut store, limits.call_timeout);
        let handle = match transform.call_open(&mut store, context).await {
            Ok(Ok(handle)) => handle,
            Ok(Err(error)) => return Err(PluginError::Refused { name, error }),
            Err(error) => return Err(classify(&name, &mut store, limits, error)),
        };
        arm(&mut store, limits.call_timeout);
        let content_type = match transform.call_content_type(&mut store, handle).await {
            Ok(content_type) => content_type,
            Err(error) => return Err(classify(&name, &mut store, limits, error)),
        };
        Ok(Self { name, store, bindings, handle, content_type, limits, _slot: slot })
    }

    pub fn name(&self) -> &PluginName {
        &self.name
    }

    /// The media type the plugin produces, if it is a formatter.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    pub async fn push(&mut self, events: &[Event]) -> Result<Vec<Event>, PluginError> {
        arm(&mut self.store, self.limits.call_timeout);
        let transform = self.bindings.streamhost_plugin_transformer().transform();
        let result = transform.call_push(&mut self.store, self.handle, events).await;
        self.outcome(result)
    }

    pub async fn finish(&mut self) -> Result<Vec<Event>, PluginError> {
        arm(&mut self.store, self.limits.call_timeout);
        let transform = self.bindings.streamhost_plugin_transformer().transform();
        let result = transform.call_finish(&mut self.store, self.handle).await;
        self.outcome(result)
    }

    fn outcome(&mut self, result: wasmtime::Result<Result<Vec<Event>, ErrorInfo>>) -> Result<Vec<Event>, PluginError> {
        match result {
            Ok(Ok(events)) => Ok(events),
            Ok(Err(error)) => Err(PluginError::Refused { name: self.name.clone(), error }),
            Err(error) => Err(classify(&self.name, &mut self.store, self.limits, error)),
        }
    }
}

/// Starts the deadline of the next call.
fn arm(store: &mut Store<PluginState>, timeout: Duration) {
    store.data_mut().deadline = Instant::now() + timeout;
    store.set_epoch_deadline(1);
}

/// Turns a failed call into the reason a person can act on.
fn classify(name: &PluginName, store: &mut Store<PluginState>, limits: Limits, error: wasmtime::Error) -> PluginError {
    let state = store.data_mut();
    if state.timed_out {
        return PluginError::Timeout { name: name.clone(), limit: limits.call_timeout };
    }
    if state.memory.refused {
        return PluginError::OutOfMemory { name: name.clone(), limit_bytes: limits.memory_bytes };
    }
    let trap = error.downcast_ref::<wasmtime::Trap>().map(ToString::to_string).unwrap_or_else(|| format!("{error:#}"));
    let message = match state.stderr_tail() {
        Some(stderr) => format!("{trap}; the plugin wrote: {stderr}"),
        None => trap,
    };
    PluginError::Trapped { name: name.clone(), message }
}
