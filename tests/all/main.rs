//! The integration tests: one binary, as wasmtime keeps its `tests/all`.
//! Each module is one area and starts the real host (`streamhost serve`,
//! the Lambda emulator, the CLI) with real plugins and real wire protocols
//! on 127.0.0.1, or builds it in process (`pipeline`, `in_process`). What
//! they share is the workspace crate `streamhost-test-support`
//! (`tests/support/`), which the benches use too; it is `crate::support`
//! here.
//!
//! Run one area with its module's name as a filter:
//! `cargo test -p streamhost --test all runs::`.

use streamhost_test_support as support;

mod agents;
mod authoring;
mod cli;
mod contract;
mod corpus;
mod fuzz_corpus;
mod golden;
mod hardening;
mod http;
mod in_process;
mod lambda;
mod languages;
mod logs;
mod manifests;
mod pipeline;
mod playground;
mod plugins;
mod providers;
mod readme;
mod runs;
mod s3;
mod seeds;
mod standard_apis;
mod telemetry;
