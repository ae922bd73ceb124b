//! The agent role: answers one request, streaming its answer downstream with
//! [`emit`] as it is made.
//!
//! ```no_run
//! use streamhost_guest::agent::{Agent, AgentRequest, emit_text};
//! use streamhost_guest::model::{self, ModelRequest};
//! use streamhost_guest::{ErrorInfo, history};
//!
//! /// Asks the model, with the conversation so far.
//! struct Plain;
//!
//! impl Agent for Plain {
//!     fn handle(request: AgentRequest) -> Result<String, ErrorInfo> {
//!         let messages = model::conversation(&history::messages(), &request.messages);
//!         let reply = model::call(&ModelRequest::new(messages), emit_text)?;
//!         Ok(reply.stop_reason)
//!     }
//! }
//!
//! streamhost_guest::export_agent!(Plain);
//! ```

pub use crate::bindings::agent::exports::streamhost::plugin::handler::AgentRequest;
use crate::{ErrorInfo, Event};

/// An agent. The host calls `handle` once per request routed to it.
pub trait Agent {
    /// Answers `request`, sending the answer with [`emit`]; returns the stop
    /// reason. An error ends the stream with an error event.
    fn handle(request: AgentRequest) -> Result<String, ErrorInfo>;
}

/// Sends an event downstream (`text`, `status`, `metadata`, `usage`), waiting
/// while the pipeline is behind. Natively (in unit tests) it is dropped.
pub fn emit(event: Event) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::imports::streamhost::plugin::emit::emit(&event);
    #[cfg(not(target_arch = "wasm32"))]
    drop(event);
}

/// Sends a piece of the answer.
pub fn emit_text(text: &str) {
    emit(Event::Text(text.to_string()));
}

/// Sends a progress message.
pub fn emit_status(message: impl Into<String>) {
    emit(Event::Status(message.into()));
}

/// Exports an [`Agent`] as this component's `handler` interface.
///
/// Expands to nothing outside wasm32, so the crate still builds natively.
#[macro_export]
macro_rules! export_agent {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct Exports;
            impl $crate::bindings::agent::exports::streamhost::plugin::handler::Guest for Exports {
                fn handle(request: $crate::agent::AgentRequest) -> Result<String, $crate::ErrorInfo> {
                    <$plugin as $crate::agent::Agent>::handle(request)
                }
            }
    $crate::bindings::agent::export_agent_world!(Exports with_types_in $crate::bindings::agent);
        };
    };
}
