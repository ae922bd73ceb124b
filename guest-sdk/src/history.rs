//! The conversation of the stream's user and session, as the host keeps it.
//! Natively (in unit tests) there is none.

use crate::Message;
#[cfg(target_arch = "wasm32")]
use crate::bindings::imports::streamhost::plugin::history as host;

/// The earlier turns' messages, oldest first.
pub fn messages() -> Vec<Message> {
    #[cfg(target_arch = "wasm32")]
    return host::messages();
    #[cfg(not(target_arch = "wasm32"))]
    Vec::new()
}

/// The agent that answered the latest earlier turn.
pub fn last_agent() -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    return host::last_agent();
    #[cfg(not(target_arch = "wasm32"))]
    None
}

/// Adds a message to this turn's record, kept if the turn completes.
pub fn append(message: &Message) {
    #[cfg(target_arch = "wasm32")]
    host::append(message);
    #[cfg(not(target_arch = "wasm32"))]
    let _ = message;
}
