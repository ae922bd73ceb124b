//! What every plugin instance runs in: its store, its limits, and how a
//! failed call is told apart. Each call runs under a deadline; a trap, an
//! overrun or an exhausted memory ends this instance only, as a typed
//! [`PluginError`]. The time a call spends waiting in the host (on a model, on
//! a slow client) is not the plugin's and does not count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::ResourceTable;
use wasmtime::{CallHook, Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use tracing::{info, warn};

use super::link::Plugin;
use super::output::PluginOutput;
use super::quota::{OutputLimitExceeded, OutputMeter};
use super::turn_host::TurnHost;
use crate::engine::Limits;
use crate::error_code::{Code, ErrorCode};
use crate::log_text::escaped;
use crate::plugin_store::PluginName;
use crate::telemetry::instruments::{instruments, plugin_attribute};
use crate::wit::ErrorInfo;

/// Why a call into a plugin instance failed, or no instance could be made for it.
#[derive(Debug, Error)]
pub enum PluginError {
    /// The instance trapped (a panic, an `unreachable`, a bad memory access), or its instantiation or call failed
    /// otherwise.
    #[error("plugin `{name}` trapped: {message}")]
    Trapped {
        /// The plugin.
        name: PluginName,
        /// The trap; if the plugin printed to stderr, what it printed (`--expose-plugin-output`) or a pointer to
        /// the host's log, where it is.
        message: String,
    },
    /// A call ran past its wall-clock deadline (the call timeout, counting its own time, not its waits on the
    /// host) and the epoch callback stopped it.
    #[error("plugin `{name}` ran past its {} ms time limit", limit.as_millis())]
    Timeout {
        /// The plugin.
        name: PluginName,
        /// The call timeout it ran past.
        limit: Duration,
    },
    /// A call executed more wasm instructions than its fuel (`--plugin-fuel`).
    #[error("plugin `{name}` used up its {limit} units of fuel (wasm instructions) in one call")]
    OutOfFuel {
        /// The plugin.
        name: PluginName,
        /// The fuel of one call.
        limit: u64,
    },
    /// The call failed after a growth of the instance's memory past its limit was refused.
    #[error("plugin `{name}` needed more than its {} MiB memory limit", limit_bytes >> 20)]
    OutOfMemory {
        /// The plugin.
        name: PluginName,
        /// The memory limit of one instance, in bytes.
        limit_bytes: usize,
    },
    /// The plugin produced more output than a limit allows (`--plugin-*-output-*`).
    #[error("plugin `{name}` produced {exceeded}")]
    OutputLimit {
        /// The plugin.
        name: PluginName,
        /// The limit it went over.
        exceeded: OutputLimitExceeded,
    },
    /// The plugin returned or emitted an event the contract does not allow: a metadata event that is not a JSON
    /// object ([`check_metadata`](crate::event::check_metadata)).
    #[error("plugin `{name}` returned an event that breaks the contract: {error}")]
    InvalidEvent {
        /// The plugin.
        name: PluginName,
        /// What was wrong with it.
        error: crate::event::InvalidMetadata,
    },
    /// The plugin itself returned an error.
    #[error("plugin `{name}`: {}", error.message)]
    Refused {
        /// The plugin.
        name: PluginName,
        /// The plugin's `error-info`: its own code and message.
        error: ErrorInfo,
    },
    /// Every instance slot was in use, so no instance was made: the request is shed.
    #[error("all {limit} plugin instances are in use; try again shortly")]
    Overloaded {
        /// The number of instance slots (`Limits::max_instances`).
        limit: u32,
    },
}

impl PluginError {
    /// The code an error event or error response carries.
    pub fn code(&self) -> Code<'_> {
        match self {
            PluginError::Trapped { .. } => ErrorCode::PluginTrapped.into(),
            PluginError::Timeout { .. } => ErrorCode::PluginTimeout.into(),
            PluginError::OutOfFuel { .. } => ErrorCode::PluginOutOfFuel.into(),
            PluginError::OutOfMemory { .. } => ErrorCode::PluginOutOfMemory.into(),
            PluginError::OutputLimit { .. } => ErrorCode::PluginOutputLimit.into(),
            PluginError::InvalidEvent { .. } => ErrorCode::PluginInvalidEvent.into(),
            PluginError::Refused { error, .. } => Code::Plugin(&error.code),
            PluginError::Overloaded { .. } => ErrorCode::Overloaded.into(),
        }
    }
}

/// The store's data: everything a plugin's imports can reach. No
/// environment, arguments, files, network or credentials; stdin is empty,
/// stdout and stderr go to the host's log.
pub struct PluginState {
    pub(super) plugin: PluginName,
    pub(super) settings: String,
    wasi: WasiCtx,
    pub(super) table: ResourceTable,
    stderr: PluginOutput,
    memory: MemoryCap,
    deadline: Instant,
    /// Set when the deadline stopped a call, which wasmtime's error does not say.
    timed_out: bool,
    /// What the instance has produced, against its output limits.
    output: OutputMeter,
    /// Set when an `emit` went over an output limit and the call was trapped.
    output_exceeded: Option<OutputLimitExceeded>,
    /// Set when an `emit` sent an event the contract does not allow and the call was trapped.
    invalid_event: Option<crate::event::InvalidMetadata>,
    /// When the running call went into the host, if it is there now.
    in_host_since: Option<Instant>,
    /// What a router's or an agent's imports reach; `None` for transforms.
    pub(super) turn: Option<Box<dyn TurnHost>>,
}

impl PluginState {
    fn new(
        plugin: PluginName,
        settings: String,
        limits: &Limits,
        turn: Option<Box<dyn TurnHost>>,
        options: SandboxOptions,
    ) -> Self {
        let stderr = PluginOutput::new(plugin.clone(), "stderr");
        let mut wasi = WasiCtx::builder();
        wasi.stdout(PluginOutput::new(plugin.clone(), "stdout"))
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(since_epoch) = options.frozen_wall_clock {
            wasi.wall_clock(FrozenClock(since_epoch));
        }
        let wasi = wasi.build();
        Self {
            plugin,
            settings,
            wasi,
            table: ResourceTable::new(),
            stderr,
            memory: MemoryCap { limit: limits.memory_bytes, refused: false },
            deadline: Instant::now(),
            timed_out: false,
            output: OutputMeter::new(limits.output),
            output_exceeded: None,
            invalid_event: None,
            in_host_since: None,
            turn,
        }
    }

    /// Moves the deadline on by the time the call just spent in the host
    /// (WASI's `poll`, a `sleep`), as wasmtime's call hooks bracket it.
    fn on_call_hook(&mut self, hook: CallHook) -> wasmtime::Result<()> {
        match hook {
            CallHook::CallingHost => self.in_host_since = Some(Instant::now()),
            CallHook::ReturningFromHost => {
                if let Some(since) = self.in_host_since.take() {
                    self.deadline += since.elapsed();
                }
            }
            CallHook::CallingWasm | CallHook::ReturningFromWasm => {}
        }
        Ok(())
    }

    /// Moves the deadline on by the time since `waiting_since`, which the
    /// call spent waiting on the host (a model's next event, a slow client
    /// taking an emitted one): a plugin's deadline counts its own work.
    ///
    /// The streamhost imports that wait call this themselves: for those
    /// async imports wasmtime's call hooks bracket only the synchronous
    /// start, not the wait (measured: a router waiting 200 ms a token was
    /// stopped at 1 s). Where a hook does bracket the call, it counts on
    /// from here, so no wait is counted twice.
    pub(super) fn exclude_wait(&mut self, waiting_since: Instant) {
        self.deadline += waiting_since.elapsed();
        if self.in_host_since.is_some() {
            self.in_host_since = Some(Instant::now());
        }
    }

    /// Counts an event an agent emits; over a limit, the error that traps
    /// the call (`Sandbox::failure` names the limit). Each `emit` counts as
    /// a call of its own: an agent's `handle` is its whole answer, which the
    /// stream's limits bound.
    /// It is also held to the contract ([`check_metadata`](crate::event::check_metadata)): an event that breaks it
    /// traps the call too.
    pub(super) fn count_emitted(&mut self, event: &mut crate::wit::Event) -> wasmtime::Result<()> {
        if let Err(invalid) = crate::event::check_metadata(std::slice::from_mut(event)) {
            let message = invalid.to_string();
            self.invalid_event = Some(invalid);
            return Err(wasmtime::format_err!("{message}"));
        }
        self.output.count(&[], std::slice::from_ref(event)).map_err(|exceeded| {
            self.output_exceeded = Some(exceeded);
            wasmtime::format_err!("{exceeded}")
        })
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

/// How the registry sets up every instance beyond its limits.
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxOptions {
    /// Whether a trap's message to the caller carries what the plugin
    /// printed (`--expose-plugin-output`, for development).
    pub expose_output: bool,
    /// The wall-clock time plugins read, since the Unix epoch, instead of
    /// the real one: golden tests (`streamhost test`) fix it so that
    /// timestamps a plugin writes are the same on every run.
    pub frozen_wall_clock: Option<std::time::Duration>,
}

/// A wall clock that always reads the same time (`wasi:clocks/wall-clock`).
struct FrozenClock(std::time::Duration);

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_millis(1)
    }

    fn now(&self) -> std::time::Duration {
        self.0
    }
}

/// One plugin instance: its store under the host's limits, and the slot it
/// holds until it is dropped.
pub struct Sandbox {
    pub name: PluginName,
    /// The sha256 of the plugin's component, in hex: which version failed.
    digest: Arc<str>,
    pub store: Store<PluginState>,
    limits: Limits,
    /// The call under way (`push`, `handle`, ...) and when it started: what
    /// a failure's log line names.
    call: (&'static str, Instant),
    /// The plugin's name as its calls' metrics attribute.
    metric_name: opentelemetry::KeyValue,
    /// Whether a trap's message to the caller carries what the plugin
    /// printed (`--expose-plugin-output`, for development).
    expose_output: bool,
    _slot: OwnedSemaphorePermit,
}

impl Sandbox {
    /// A store for `name`. Routers and agents (`turn`) wait on the host, so
    /// their deadline leaves that time out; a transform's calls never wait.
    pub fn new(
        engine: &Engine,
        plugin: &Plugin,
        settings: String,
        limits: Limits,
        slot: OwnedSemaphorePermit,
        turn: Option<Box<dyn TurnHost>>,
        options: SandboxOptions,
    ) -> Self {
        let waits_on_host = turn.is_some();
        let expose_output = options.expose_output;
        let name = &plugin.name;
        let state = PluginState::new(name.clone(), settings, &limits, turn, options);
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.memory);
        store.epoch_deadline_callback(|mut store| store.data_mut().on_epoch_tick());
        if waits_on_host {
            store.call_hook(|mut store, hook| store.data_mut().on_call_hook(hook));
        }
        Self {
            name: name.clone(),
            digest: plugin.digest.clone(),
            store,
            limits,
            call: ("instantiate", Instant::now()),
            metric_name: plugin_attribute(name.as_str()),
            expose_output,
            _slot: slot,
        }
    }

    /// Starts the deadline of the next call, `call` (the export's name, or
    /// `instantiate`).
    pub fn arm(&mut self, call: &'static str) {
        let now = Instant::now();
        self.call = (call, now);
        let state = self.store.data_mut();
        state.deadline = now + self.limits.call_timeout;
        // What a failed call leaves behind says nothing of the next one: a
        // guest that lived through a refused `memory.grow` and then traps
        // is not out of memory.
        state.timed_out = false;
        state.memory.refused = false;
        state.output_exceeded = None;
        state.invalid_event = None;
        self.store.set_fuel(self.limits.call_fuel).expect("fuel is on in every engine");
        self.store.set_epoch_deadline(1);
    }

    /// The events a call given `input` returned, counted against the output
    /// limits: over one, the plugin's error instead, so nothing of a flood
    /// goes on. Like [`Sandbox::outcome`], it measures and logs the call once.
    pub fn output(
        &mut self,
        input: &[crate::wit::Event],
        result: wasmtime::Result<Result<Vec<crate::wit::Event>, ErrorInfo>>,
    ) -> Result<Vec<crate::wit::Event>, PluginError> {
        let mut output = self.returned(result)?;
        if let Err(error) = crate::event::check_metadata(&mut output) {
            return Err(self.logged(PluginError::InvalidEvent { name: self.name.clone(), error }, None));
        }
        match self.store.data_mut().output.count(input, &output) {
            Ok(()) => {
                self.measured(None);
                Ok(output)
            }
            Err(exceeded) => Err(self.logged(PluginError::OutputLimit { name: self.name.clone(), exceeded }, None)),
        }
    }

    /// A call's result, its failure told apart as a [`PluginError`]; the
    /// call measured, a failure logged.
    pub fn outcome<T>(&mut self, result: wasmtime::Result<Result<T, ErrorInfo>>) -> Result<T, PluginError> {
        let value = self.returned(result)?;
        self.measured(None);
        Ok(value)
    }

    /// What a call returned, or its failure, logged; a success is left for
    /// the caller to measure.
    fn returned<T>(&mut self, result: wasmtime::Result<Result<T, ErrorInfo>>) -> Result<T, PluginError> {
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.logged(PluginError::Refused { name: self.name.clone(), error }, None)),
            Err(error) => Err(self.failure(error)),
        }
    }

    /// Turns a failed call into the reason a person can act on, logged.
    pub fn failure(&mut self, error: wasmtime::Error) -> PluginError {
        let name = self.name.clone();
        let limits = self.limits;
        let state = self.store.data_mut();
        let printed = state.stderr_tail();
        let failure = if let Some(error) = state.invalid_event.take() {
            PluginError::InvalidEvent { name, error }
        } else if let Some(exceeded) = state.output_exceeded {
            PluginError::OutputLimit { name, exceeded }
        } else if state.timed_out {
            PluginError::Timeout { name, limit: limits.call_timeout }
        } else if state.memory.refused {
            PluginError::OutOfMemory { name, limit_bytes: limits.memory_bytes }
        } else if error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::OutOfFuel) {
            PluginError::OutOfFuel { name, limit: limits.call_fuel }
        } else {
            let trap =
                error.downcast_ref::<wasmtime::Trap>().map(ToString::to_string).unwrap_or_else(|| format!("{error:#}"));
            // What the plugin printed (a panic message, with its source
            // paths) is the operator's to read, not the caller's.
            let message = match (&printed, self.expose_output) {
                (Some(printed), true) => format!("{trap}; the plugin wrote: {printed}"),
                (Some(_), false) => format!("{trap}; what it printed is in the host's log"),
                (None, _) => trap,
            };
            PluginError::Trapped { name, message }
        };
        self.logged(failure, printed.as_deref())
    }

    /// Records the call's duration (`streamhost.plugin.call.duration`).
    fn measured(&self, error: Option<&str>) {
        let (call, started) = self.call;
        instruments().plugin_call(&self.metric_name, call, started.elapsed(), error);
    }

    /// Logs `error` once, where every fact about it is at hand: the plugin
    /// and its digest, the call, the code, how long the call ran, and what
    /// the plugin last printed to stderr. (The request's span adds its id.)
    /// A plugin's refusal is its answer, at `info`; the rest are faults.
    fn logged(&self, error: PluginError, printed: Option<&str>) -> PluginError {
        self.measured(Some(error.code().as_str()));
        let (call, started) = self.call;
        let ran_ms = started.elapsed().as_millis() as u64;
        // What the call used; not known for one the epoch stopped, whose
        // count wasmtime had not written back yet.
        let used = self.limits.call_fuel.saturating_sub(self.store.get_fuel().unwrap_or_default());
        let fuel = (!matches!(error, PluginError::Timeout { .. })).then_some(used);
        let (plugin, digest) = (self.name.as_str(), &*self.digest);
        // A refusal's code and message, and what the plugin printed, are the plugin's text.
        let code = escaped(error.code().as_str()).into_owned();
        let message = escaped(&error.to_string()).into_owned();
        let printed = printed.map(escaped);
        let printed = printed.as_deref();
        match &error {
            PluginError::Refused { .. } => {
                info!(plugin, digest, call, %code, ran_ms, fuel, error = %message, "plugin refused")
            }
            _ => warn!(plugin, digest, call, %code, ran_ms, fuel, error = %message, printed, "plugin failed"),
        }
        error
    }
}
