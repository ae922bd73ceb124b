//! Host-side bindings of `wit/`, the contract shared with every plugin: one
//! `bindgen!` per role's world. The interfaces the worlds share are generated
//! once, with the `agent` world (which imports all of them), and reused.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "agent",
    // Plugin calls run as futures so that a busy plugin yields to the
    // executor at every epoch tick instead of holding a worker thread.
    exports: { default: async },
    // Model calls and sending downstream wait on I/O.
    // `emit` can trap: an event over the plugin's output limits ends the call.
    imports: { "streamhost:plugin/model": async, "streamhost:plugin/emit": async | trappable },
    with: { "streamhost:plugin/model.model-stream": crate::registry::ModelStreamState },
    additional_derives: [PartialEq],
});

/// The `transform` world.
pub mod transform {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "transform",
        exports: { default: async },
        with: {
            "streamhost:plugin/types": crate::wit::streamhost::plugin::types,
            "streamhost:plugin/log": crate::wit::streamhost::plugin::log,
            "streamhost:plugin/config": crate::wit::streamhost::plugin::config,
        },
    });
}

/// The `router` world.
pub mod router {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "router",
        exports: { default: async },
        with: {
            "streamhost:plugin/types": crate::wit::streamhost::plugin::types,
            "streamhost:plugin/log": crate::wit::streamhost::plugin::log,
            "streamhost:plugin/config": crate::wit::streamhost::plugin::config,
            "streamhost:plugin/history": crate::wit::streamhost::plugin::history,
            "streamhost:plugin/model": crate::wit::streamhost::plugin::model,
        },
    });
}

/// The `request-filter` world.
pub mod request_filter {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "request-filter",
        exports: { default: async },
        with: {
            "streamhost:plugin/types": crate::wit::streamhost::plugin::types,
            "streamhost:plugin/log": crate::wit::streamhost::plugin::log,
            "streamhost:plugin/config": crate::wit::streamhost::plugin::config,
        },
    });
}

pub use self::exports::streamhost::plugin::handler::AgentRequest;
pub use self::request_filter::RequestFilterPre;
pub use self::request_filter::exports::streamhost::plugin::filter::{IncomingRequest, PipelineRequest, Refusal};
pub use self::router::exports::streamhost::plugin::selector::{AgentCard, Choice, RouteRequest};
pub use self::streamhost::plugin::log::Level as LogLevel;
pub use self::streamhost::plugin::model as model_api;
pub use self::streamhost::plugin::types::{ErrorInfo, Event, Message, Role, StreamContext, Usage};
pub use self::transform::TransformPre;

/// The versioned names of the interfaces each role exports.
pub const TRANSFORMER_INTERFACE: &str = "streamhost:plugin/transformer@0.1.0";
pub const SELECTOR_INTERFACE: &str = "streamhost:plugin/selector@0.1.0";
pub const HANDLER_INTERFACE: &str = "streamhost:plugin/handler@0.1.0";
pub const FILTER_INTERFACE: &str = "streamhost:plugin/filter@0.1.0";
