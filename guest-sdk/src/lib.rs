//! Write streamhost plugins in Rust.
//!
//! A transform plugin is a struct that implements [`Transform`] (two methods:
//! `open` and `push`) and one line, [`export_transform!`], that exports it as a
//! component of the `streamhost:plugin/transform` world. Build it with
//! `cargo build --target wasm32-wasip2 --release`; the `.wasm` file is the plugin.
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
//! The same crate also builds natively (the export is compiled for wasm32
//! only), so a plugin's logic is unit-tested with plain `cargo test`.

// Lets the generated bindings name this crate by its public path, the one the
// export macro uses from inside plugin crates.
extern crate self as streamhost_guest;

/// The bindings generated from `wit/`, the single source of truth.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "transform",
        pub_export_macro: true,
        export_macro_name: "export_transform_world",
        default_bindings_module: "::streamhost_guest::bindings",
        runtime_path: "::streamhost_guest::__private::wit_bindgen::rt",
        additional_derives: [PartialEq],
    });
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}

use std::cell::RefCell;

use bindings::exports::streamhost::plugin::transformer as exports;
pub use bindings::streamhost::plugin::log::Level;
pub use bindings::streamhost::plugin::types::{ErrorInfo, Event, StreamContext, Usage};

/// A stream transform. The host opens one per stream, pushes batches of
/// events in order, then calls `finish` once.
pub trait Transform: Sized + 'static {
    /// Starts a stream. `settings` is the plugin's JSON settings object; an
    /// error here reaches the caller before the response starts.
    fn open(context: StreamContext, settings: &str) -> Result<Self, ErrorInfo>;

    /// Takes the next batch of events and returns what goes downstream.
    fn push(&mut self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo>;

    /// The stream has ended: returns whatever is still held back.
    fn finish(&mut self) -> Result<Vec<Event>, ErrorInfo> {
        Ok(Vec::new())
    }

    /// The media type of the bytes a formatter produces; `None` for filters.
    fn content_type(&self) -> Option<String> {
        None
    }
}

/// The JSON shapes of event payloads, so that every formatter writes usage
/// and errors alike (and as the host's own encoder does):
/// `{"inputTokens":…,"outputTokens":…,"totalTokens":…,"latencyMs":…}` (with
/// `cacheReadInputTokens` and `cacheWriteInputTokens` when not 0) and
/// `{"code":…,"message":…}`. Enabled by the `json` feature.
#[cfg(feature = "json")]
pub mod json {
    use serde::Serialize;

    use super::{ErrorInfo, Usage};

    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct UsageJson {
        pub input_tokens: u32,
        pub output_tokens: u32,
        pub total_tokens: u32,
        pub latency_ms: u32,
        #[serde(skip_serializing_if = "is_zero")]
        pub cache_read_input_tokens: u32,
        #[serde(skip_serializing_if = "is_zero")]
        pub cache_write_input_tokens: u32,
    }

    fn is_zero(count: &u32) -> bool {
        *count == 0
    }

    impl From<&Usage> for UsageJson {
        fn from(usage: &Usage) -> Self {
            Self {
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
                total_tokens: usage.total_tokens,
                latency_ms: usage.latency_ms,
                cache_read_input_tokens: usage.cache_read_input_tokens,
                cache_write_input_tokens: usage.cache_write_input_tokens,
            }
        }
    }

    #[derive(Debug, Serialize)]
    pub struct ErrorJson<'a> {
        pub code: &'a str,
        pub message: &'a str,
    }

    impl<'a> From<&'a ErrorInfo> for ErrorJson<'a> {
        fn from(error: &'a ErrorInfo) -> Self {
            Self { code: &error.code, message: &error.message }
        }
    }
}

/// Builds an [`ErrorInfo`].
pub fn error(code: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo { code: code.to_string(), message: message.into() }
}

/// Writes to the host's log, tagged with this plugin's name. Natively (in unit
/// tests) it writes to stderr.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::streamhost::plugin::log::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Adapts a [`Transform`] to the resource the WIT exports: the component
/// model hands resources out by shared reference, the trait wants `&mut`.
#[doc(hidden)]
pub struct TransformResource<T>(RefCell<T>);

impl<T: Transform> exports::GuestTransform for TransformResource<T> {
    fn open(context: StreamContext) -> Result<exports::Transform, ErrorInfo> {
        let settings = bindings::streamhost::plugin::config::settings();
        let transform = T::open(context, &settings)?;
        Ok(exports::Transform::new(TransformResource(RefCell::new(transform))))
    }

    fn content_type(&self) -> Option<String> {
        self.0.borrow().content_type()
    }

    fn push(&self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
        self.0.borrow_mut().push(events)
    }

    fn finish(&self) -> Result<Vec<Event>, ErrorInfo> {
        self.0.borrow_mut().finish()
    }
}

/// Exports a [`Transform`] as this component's `transformer` interface.
///
/// Expands to nothing outside wasm32, so the crate still builds natively.
#[macro_export]
macro_rules! export_transform {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct Exports;
            impl $crate::bindings::exports::streamhost::plugin::transformer::Guest for Exports {
                type Transform = $crate::TransformResource<$plugin>;
            }
            $crate::bindings::export_transform_world!(Exports with_types_in $crate::bindings);
        };
    };
}

/// Decoders of raw Bedrock streams (the host's `bedrock-raw` provider, whose
/// chunks arrive as `frame` events in the model family's own JSON). A decoder
/// implements [`Decoder`](bedrock::Decoder) for one family and exports
/// `Decoding<ItsDecoder>`; the usage every family's last chunk carries is
/// read here. Enabled by the `bedrock` feature.
#[cfg(feature = "bedrock")]
pub mod bedrock {
    use serde::Deserialize;

    use super::{ErrorInfo, Event, StreamContext, Transform, Usage};

    /// Turns one chunk of a model family's stream into events.
    pub trait Decoder: Default + 'static {
        fn decode(&mut self, chunk: &[u8]) -> Result<Vec<Event>, ErrorInfo>;
    }

    /// A transform that decodes `frame` events with `D`, appends the usage
    /// of the chunk that carries Bedrock's invocation metrics, and passes
    /// every other event through.
    #[derive(Default)]
    pub struct Decoding<D>(D);

    impl<D: Decoder> Transform for Decoding<D> {
        fn open(_context: StreamContext, _settings: &str) -> Result<Self, ErrorInfo> {
            Ok(Self::default())
        }

        fn push(&mut self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
            let mut out = Vec::with_capacity(events.len());
            for event in events {
                match event {
                    Event::Frame(chunk) => {
                        out.extend(self.0.decode(&chunk)?);
                        out.extend(usage(&chunk).map(Event::Usage));
                    }
                    other => out.push(other),
                }
            }
            Ok(out)
        }
    }

    /// Parses a chunk as `T`, or says which chunk could not be read.
    pub fn parse<'a, T: Deserialize<'a>>(chunk: &'a [u8]) -> Result<T, ErrorInfo> {
        serde_json::from_slice(chunk).map_err(|error| {
            let shown = String::from_utf8_lossy(&chunk[..chunk.len().min(200)]);
            super::error("undecodable_chunk", format!("a chunk is not the model family's JSON ({error}): {shown}"))
        })
    }

    #[derive(Deserialize)]
    struct WithMetrics {
        #[serde(rename = "amazon-bedrock-invocationMetrics")]
        metrics: Option<InvocationMetrics>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct InvocationMetrics {
        input_token_count: u32,
        output_token_count: u32,
        invocation_latency: u32,
    }

    /// The usage in `amazon-bedrock-invocationMetrics`, which Bedrock adds to
    /// the last chunk of every model's stream.
    pub fn usage(chunk: &[u8]) -> Option<Usage> {
        let metrics = serde_json::from_slice::<WithMetrics>(chunk).ok()?.metrics?;
        Some(Usage {
            input_tokens: metrics.input_token_count,
            output_tokens: metrics.output_token_count,
            total_tokens: metrics.input_token_count + metrics.output_token_count,
            latency_ms: metrics.invocation_latency,
            cache_read_input_tokens: 0,
            cache_write_input_tokens: 0,
        })
    }
}
