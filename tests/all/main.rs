//! The integration tests: one binary, as wasmtime keeps its `tests/all`,
//! so the shared support code compiles once. Each module is one area and
//! starts the real host (`streamhost serve`, the Lambda emulator, the CLI)
//! with real plugins and real wire protocols on 127.0.0.1.
//!
//! Run one area with its module's name as a filter:
//! `cargo test -p streamhost --test all runs::`.

mod support;

mod agents;
mod authoring;
mod cli;
mod contract;
mod corpus;
mod fuzz_corpus;
mod golden;
mod hardening;
mod http;
mod lambda;
mod languages;
mod logs;
mod manifests;
mod pipeline;
mod playground;
mod plugins;
mod providers;
mod runs;
mod s3;
mod seeds;
mod telemetry;
