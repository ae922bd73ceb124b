//! streamhost: a streaming host for WebAssembly plugins.
//!
//! The modules follow the data flow, in layers (`layers.rs` lists them and
//! a test holds each module to using only the layers below it):
//! `plugin_store` (where plugins come from) -> `registry` (compiled, linked
//! plugins) and `manifest` (named pipelines) -> `pipeline` (the inbound
//! step, then source -> transforms -> encoder; a source is a model, or a
//! router and an agent) -> `runs` (detached runs: store, sinks) ->
//! `frontends` (HTTP, Lambda, CLI: they only carry).
//! Beside them: `engine` configures wasmtime, `providers` are the model
//! sources, `history` and `conversation` the conversations, `request` and
//! `callers` what a caller asks and may set, `event` the data that flows,
//! `wit` the bindings of the contract, `telemetry` the metrics and traces,
//! `error_code` the one table of errors and the one place an error becomes
//! an answer, `request_id` the id every answer and log line carries,
//! `assemble` puts them together from the settings (`config`), `authoring`
//! is the plugin author's tools, `publish` uploads to a plugin store.

#![warn(missing_docs)]

pub mod assemble;
pub mod authoring;
pub mod aws;
pub mod callers;
pub mod config;
pub mod conversation;
pub mod engine;
pub mod error_code;
pub mod event;
pub mod frontends;
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
#[cfg(test)]
mod layers;
pub mod log_text;
pub mod manifest;
pub mod pipeline;
pub mod plugin_store;
pub mod providers;
pub mod publish;
pub mod registry;
pub mod request;
pub mod request_id;
pub mod runs;
pub mod telemetry;
// `bindgen!` carries the WIT's docs onto what it generates (wit/ is where
// the contract is documented); the namespace modules it adds have none.
#[allow(missing_docs)]
pub mod wit;

pub use assemble::{build_pipeline, build_runs};
