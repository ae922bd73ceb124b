//! Host-side bindings of `wit/`, the contract shared with every plugin.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "transform",
    // Plugin calls run as futures so that a busy plugin yields to the
    // executor at every epoch tick instead of holding a worker thread.
    exports: { default: async },
    additional_derives: [PartialEq],
});

pub use exports::streamhost::plugin::transformer::Guest as Transformer;
pub use self::streamhost::plugin::log::Level as LogLevel;
pub use self::streamhost::plugin::types::{ErrorInfo, Event, StreamContext, Usage};

/// The versioned name of the interface every transform plugin exports.
pub const TRANSFORMER_INTERFACE: &str = "streamhost:plugin/transformer@0.1.0";
