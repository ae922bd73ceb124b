//! Cold start on Lambda: from the process's start to the first byte of the
//! first response body, through a Runtime API emulator on loopback, with the
//! plugin preloaded during the init phase (`STREAMHOST_PRELOAD`):
//! - cache miss: an empty /tmp, so the plugin is compiled;
//! - cache hit: /tmp still holds the compiled plugin (a new execution
//!   environment that kept /tmp does not exist on Lambda, but a process
//!   restart in the same one does, and so does a second process here).
//!
//! Run: `cargo bench -p streamhost --bench cold_start`. Does not include the
//! S3 GET of the plugin, nor Lambda's own start of the execution environment.

mod common;

// The emulator the tests use; this bench reads only part of what it records.
#[allow(dead_code, unused_imports)] // Each bench uses a part of the tests' support.
#[path = "../../tests/all/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::lambda::RuntimeApi;

use common::median;

const RUNS: usize = 7;

/// Process start to first body byte, for one fresh process.
async fn time_to_first_byte(api: &RuntimeApi, cache: &Path) -> Duration {
    let started = Instant::now();
    let mut function = Command::new(env!("CARGO_BIN_EXE_streamhost"))
        .envs(api.env())
        .env("STREAMHOST_PLUGINS", streamhost_artifacts::EXAMPLES_DIR)
        .env("STREAMHOST_CACHE_DIR", cache)
        .env("STREAMHOST_PRELOAD", "ndjson")
        // The bench calls a plugin by name, which Lambda serves only when told.
        .env("STREAMHOST_NAMED_PIPELINES_ONLY", "false")
        .env("STREAMHOST_ECHO_DELAY_MS", "0")
        .env("STREAMHOST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let invocation = api.invoke("/ndjson", "", r#"{"prompt":"hello"}"#).await;
    let _ = function.kill();
    let _ = function.wait();
    assert_eq!(invocation.prelude["statusCode"], 200);
    invocation.first_body_byte_at - started
}

#[tokio::main]
async fn main() {
    // Under `cargo test --benches` this only checks that it runs.
    let runs = if std::env::args().any(|arg| arg == "--bench") { RUNS } else { 1 };
    let api = RuntimeApi::start().await;
    let mut misses = Vec::new();
    let mut hits = Vec::new();
    for _ in 0..runs {
        let cache = tempfile::tempdir().unwrap();
        misses.push(time_to_first_byte(&api, cache.path()).await);
        hits.push(time_to_first_byte(&api, cache.path()).await);
    }
    let (miss, hit) = (median(misses.clone()), median(hits.clone()));
    println!("cold start to first body byte, median of {runs} (ndjson preloaded):");
    println!("  compile-cache miss: {:.1} ms  (all: {misses:?})", miss.as_secs_f64() * 1e3);
    println!("  compile-cache hit:  {:.1} ms  (all: {hits:?})", hit.as_secs_f64() * 1e3);
    println!("  miss / hit: {:.1}x", miss.as_secs_f64() / hit.as_secs_f64());
}
