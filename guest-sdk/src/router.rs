//! The router role: picks the agent of a pipeline that answers a request.
//!
//! ```no_run
//! use streamhost_guest::ErrorInfo;
//! use streamhost_guest::router::{Choice, RouteRequest, Router};
//!
//! /// Always the first agent.
//! struct First;
//!
//! impl Router for First {
//!     fn select(request: RouteRequest) -> Result<Choice, ErrorInfo> {
//!         let agent = request.agents.first().ok_or_else(|| streamhost_guest::error("no_agents", "no agents"))?;
//!         Ok(Choice { agent: agent.name.clone(), confidence: 1.0, reason: "the first agent".into() })
//!     }
//! }
//!
//! streamhost_guest::export_router!(First);
//! ```

use crate::ErrorInfo;
pub use crate::bindings::router::exports::streamhost::plugin::selector::{AgentCard, Choice, RouteRequest};

/// A router. The host calls `select` once per request, before any agent runs;
/// `history` and `model` are there to help it decide.
pub trait Router {
    /// Chooses one of `request.agents` by name. An error ends the request
    /// with an error event.
    fn select(request: RouteRequest) -> Result<Choice, ErrorInfo>;
}

/// Exports a [`Router`] as this component's `selector` interface.
///
/// Expands to nothing outside wasm32, so the crate still builds natively.
#[macro_export]
macro_rules! export_router {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct Exports;
            impl $crate::bindings::router::exports::streamhost::plugin::selector::Guest for Exports {
                fn select(request: $crate::router::RouteRequest) -> Result<$crate::router::Choice, $crate::ErrorInfo> {
                    <$plugin as $crate::router::Router>::select(request)
                }
            }
    $crate::bindings::router::export_router_world!(Exports with_types_in $crate::bindings::router);
        };
    };
}
