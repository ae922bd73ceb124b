//! Write streamhost plugins in Rust, one trait and one export macro per role:
//!
//! - a **transform** ([`Transform`], [`export_transform!`]) filters, rewrites
//!   or formats a stream of events;
//! - a **router** ([`router::Router`], [`export_router!`]) picks the agent of a
//!   pipeline that answers a request;
//! - an **agent** ([`agent::Agent`], [`export_agent!`]) answers a request,
//!   calling models through the host ([`model`]) and sending its output
//!   downstream ([`agent::emit`]).
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the `.wasm` file
//! is the plugin.
//!
//! ```no_run
//! use streamhost_guest::{ErrorInfo, Event, StreamContext, Transform};
//!
//! /// Upper-cases every piece of text.
//! struct Shout;
//!
//! impl Transform for Shout {
//!     fn open(_context: StreamContext, _settings: &str) -> Result<Self, ErrorInfo> {
//!         Ok(Shout)
//!     }
//!
//!     fn push(&mut self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
//!         Ok(events
//!             .into_iter()
//!             .map(|event| match event {
//!                 Event::Text(text) => Event::Text(text.to_uppercase()),
//!                 other => other,
//!             })
//!             .collect())
//!     }
//! }
//!
//! streamhost_guest::export_transform!(Shout);
//! ```
//!
//! The same crate also builds natively (exports are compiled for wasm32 only),
//! so a plugin's logic is unit-tested with plain `cargo test`.

#![warn(missing_docs)]

// Lets the generated bindings name this crate by its public path, the one the
// export macros use from inside plugin crates.
extern crate self as streamhost_guest;

pub mod agent;
#[cfg(feature = "bedrock")]
pub mod bedrock;
pub mod history;
#[cfg(feature = "json")]
pub mod json;
pub mod model;
pub mod request_filter;
pub mod router;
mod transform;

pub use transform::{Transform, TransformResource};

/// The bindings generated from `wit/`, the single source of truth.
///
/// Every interface the host provides is generated once, in `imports`, from a
/// world with no exports; each role's world then generates only its export.
/// A plugin links only the role it exports, so the component the toolchain
/// makes asks for that export alone.
// wit-bindgen copies the WIT's docs onto what it generates; the namespace
// modules and export traits it adds have none of their own.
#[allow(missing_docs)]
pub mod bindings {
    /// Every interface the host provides (`types`, `log`, `config`, `history`,
    /// `model`, `emit`), generated once for all roles.
    pub mod imports {
        wit_bindgen::generate!({
            inline: "
                package streamhost:guest-sdk;
                world imports {
                    import streamhost:plugin/types@0.1.0;
                    import streamhost:plugin/log@0.1.0;
                    import streamhost:plugin/config@0.1.0;
                    import streamhost:plugin/history@0.1.0;
                    import streamhost:plugin/model@0.1.0;
                    import streamhost:plugin/emit@0.1.0;
                }
            ",
            path: "../wit",
            generate_all,
            default_bindings_module: "::streamhost_guest::bindings::imports",
            runtime_path: "::streamhost_guest::__private::wit_bindgen::rt",
            additional_derives: [PartialEq],
        });
    }

    /// The `transform` world's export, `transformer`; its imports are those
    /// of `imports`.
    pub mod transform {
        wit_bindgen::generate!({
            path: "../wit",
            world: "transform",
            pub_export_macro: true,
            export_macro_name: "export_transform_world",
            default_bindings_module: "::streamhost_guest::bindings::transform",
            runtime_path: "::streamhost_guest::__private::wit_bindgen::rt",
            with: {
                "streamhost:plugin/types@0.1.0": crate::bindings::imports::streamhost::plugin::types,
                "streamhost:plugin/log@0.1.0": crate::bindings::imports::streamhost::plugin::log,
                "streamhost:plugin/config@0.1.0": crate::bindings::imports::streamhost::plugin::config,
            },
        });
    }

    /// The `router` world's export, `selector`; its imports are those of
    /// `imports`.
    pub mod router {
        wit_bindgen::generate!({
            path: "../wit",
            world: "router",
            pub_export_macro: true,
            export_macro_name: "export_router_world",
            default_bindings_module: "::streamhost_guest::bindings::router",
            runtime_path: "::streamhost_guest::__private::wit_bindgen::rt",
            with: {
                "streamhost:plugin/types@0.1.0": crate::bindings::imports::streamhost::plugin::types,
                "streamhost:plugin/log@0.1.0": crate::bindings::imports::streamhost::plugin::log,
                "streamhost:plugin/config@0.1.0": crate::bindings::imports::streamhost::plugin::config,
                "streamhost:plugin/history@0.1.0": crate::bindings::imports::streamhost::plugin::history,
                "streamhost:plugin/model@0.1.0": crate::bindings::imports::streamhost::plugin::model,
            },
        });
    }

    /// The `request-filter` world's export, `filter`; its imports are those
    /// of `imports`.
    pub mod request_filter {
        wit_bindgen::generate!({
            path: "../wit",
            world: "request-filter",
            pub_export_macro: true,
            export_macro_name: "export_request_filter_world",
            default_bindings_module: "::streamhost_guest::bindings::request_filter",
            runtime_path: "::streamhost_guest::__private::wit_bindgen::rt",
            with: {
                "streamhost:plugin/types@0.1.0": crate::bindings::imports::streamhost::plugin::types,
                "streamhost:plugin/log@0.1.0": crate::bindings::imports::streamhost::plugin::log,
                "streamhost:plugin/config@0.1.0": crate::bindings::imports::streamhost::plugin::config,
            },
        });
    }

    /// The `agent` world's export, `handler`; its imports are those of
    /// `imports`.
    pub mod agent {
        wit_bindgen::generate!({
            path: "../wit",
            world: "agent",
            pub_export_macro: true,
            export_macro_name: "export_agent_world",
            default_bindings_module: "::streamhost_guest::bindings::agent",
            runtime_path: "::streamhost_guest::__private::wit_bindgen::rt",
            with: {
                "streamhost:plugin/types@0.1.0": crate::bindings::imports::streamhost::plugin::types,
                "streamhost:plugin/log@0.1.0": crate::bindings::imports::streamhost::plugin::log,
                "streamhost:plugin/config@0.1.0": crate::bindings::imports::streamhost::plugin::config,
                "streamhost:plugin/history@0.1.0": crate::bindings::imports::streamhost::plugin::history,
                "streamhost:plugin/model@0.1.0": crate::bindings::imports::streamhost::plugin::model,
                "streamhost:plugin/emit@0.1.0": crate::bindings::imports::streamhost::plugin::emit,
            },
        });
    }
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}

pub use bindings::imports::streamhost::plugin::log::Level;
pub use bindings::imports::streamhost::plugin::types::{ErrorInfo, Event, Message, Role, StreamContext, Usage};

/// Builds an [`ErrorInfo`].
pub fn error(code: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo { code: code.to_string(), message: message.into() }
}

/// Writes to the host's log, tagged with this plugin's name. Natively (in unit
/// tests) it writes to stderr.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::imports::streamhost::plugin::log::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// The plugin's settings, a JSON object: the request's and the pipeline
/// manifest's `config.<plugin>`. Natively (in unit tests), `{}`.
pub fn settings() -> String {
    #[cfg(target_arch = "wasm32")]
    return bindings::imports::streamhost::plugin::config::settings();
    #[cfg(not(target_arch = "wasm32"))]
    "{}".to_string()
}

impl Message {
    /// A message from the user, with `content` as its text.
    pub fn user(content: impl Into<String>) -> Self {
        Self { role: Role::User, content: content.into() }
    }

    /// A message from the assistant (the model's side), with `content` as
    /// its text.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self { role: Role::Assistant, content: content.into() }
    }
}
