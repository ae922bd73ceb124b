//! The host side of the imports: `log` and `config` for every plugin;
//! `history`, `model` and `emit` for routers and agents, which reach them
//! through the turn's [`TurnHost`], their waits left out of the plugin's
//! deadline.

use std::time::Instant;

use tracing::{debug, error, info, trace, warn};
use wasmtime::component::Resource;

use super::sandbox::PluginState;
use super::turn_host::{ModelStreamState, TurnHost};
use crate::error_code::ErrorCode;
use crate::wit::model_api::{ModelEvent, ModelRequest};
use crate::wit::{self, ErrorInfo, Event, LogLevel, Message};

/// Longer log lines from a plugin are cut.
const MAX_LOG_LINE: usize = 4 * 1024;

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
        let message = crate::log_text::escaped(&message);
        match level {
            LogLevel::Trace => trace!(plugin, "{message}"),
            LogLevel::Debug => debug!(plugin, "{message}"),
            LogLevel::Info => info!(plugin, "{message}"),
            LogLevel::Warn => warn!(plugin, "{message}"),
            LogLevel::Error => error!(plugin, "{message}"),
        }
    }
}

impl PluginState {
    fn turn(&mut self) -> &mut dyn TurnHost {
        // Only routers and agents link these imports' callers to a turn; a
        // transform importing them is refused at load (`Registry::link`).
        self.turn.as_deref_mut().expect("history, model and emit are for routers and agents")
    }
}

impl wit::streamhost::plugin::history::Host for PluginState {
    fn messages(&mut self) -> Vec<Message> {
        self.turn().messages()
    }

    fn last_agent(&mut self) -> Option<String> {
        self.turn().last_agent()
    }

    fn append(&mut self, message: Message) {
        self.turn().append(message);
    }
}

impl wit::streamhost::plugin::model::Host for PluginState {
    /// Waiting for the model's first event is the host's time.
    async fn start(&mut self, request: ModelRequest) -> Result<Resource<ModelStreamState>, ErrorInfo> {
        let waiting_since = Instant::now();
        let started = self.turn().start_model(request).await;
        self.exclude_wait(waiting_since);
        let stream = ModelStreamState(started?);
        self.table.push(stream).map_err(internal_error)
    }
}

impl wit::streamhost::plugin::model::HostModelStream for PluginState {
    /// Waiting for the model's next event is the host's time.
    async fn next(&mut self, stream: Resource<ModelStreamState>) -> Result<Option<ModelEvent>, ErrorInfo> {
        let waiting_since = Instant::now();
        let stream = self.table.get_mut(&stream).map_err(internal_error)?;
        let next = stream.0.next().await;
        self.exclude_wait(waiting_since);
        next
    }

    async fn drop(&mut self, stream: Resource<ModelStreamState>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}

impl wit::streamhost::plugin::emit::Host for PluginState {
    /// A slow client's backpressure is the host's time. An event over the
    /// plugin's output limits, or against the contract, traps the call
    /// instead of going on.
    async fn emit(&mut self, mut event: Event) -> wasmtime::Result<()> {
        self.count_emitted(&mut event)?;
        let waiting_since = Instant::now();
        self.turn().emit(event).await;
        self.exclude_wait(waiting_since);
        Ok(())
    }
}

/// A resource the plugin named that the host does not hold (dropped, or
/// never made).
fn internal_error(error: wasmtime::component::ResourceTableError) -> ErrorInfo {
    crate::event::error_info(ErrorCode::InternalError, error.to_string())
}
