//! Cold start on Lambda: from the process's start to the first byte of the
//! first response body, through a Runtime API emulator on loopback and the
//! Function URL in front of it, with the plugin preloaded during the init
//! phase (`STREAMHOST_PRELOAD`):
//! - cache miss: an empty /tmp, so the plugin is compiled;
//! - cache hit: /tmp still holds the compiled plugin (a new execution
//!   environment that kept /tmp does not exist on Lambda, but a process
//!   restart in the same one does, and so does a second process here).
//!
//! Through two emulators, whose TCP behaviour differs (docs/benchmarks.md,
//! "Cold start on Lambda"): the tests' own, and cargo-lambda's (`cargo
//! lambda watch --only-lambda-apis`, when `cargo-lambda` is installed:
//! `pip install cargo-lambda`). Then the gaps between the events of a paced
//! stream through each, against `streamhost serve`.
//!
//! Run: `cargo bench -p streamhost --bench cold_start`. Does not include the
//! S3 GET of the plugin, nor Lambda's own start of the execution environment.

mod common;

use streamhost_test_support as support;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{StreamSeen, echo_prompt, median, percentile, stream_once};
use support::Server;
use support::lambda::RuntimeApi;

const RUNS: usize = 7;
/// The paced stream whose gaps are compared: this many tokens, one every `PACE_MS`.
const PACED_TOKENS: usize = 50;
const PACE_MS: u64 = 20;

/// A Runtime API emulator with a Function URL in front of it.
struct Emulator {
    name: &'static str,
    /// The environment Lambda gives the function.
    env: Vec<(&'static str, String)>,
    /// The Function URL's base.
    url: String,
    _running: Box<dyn std::any::Any>,
}

/// The tests' emulator (`tests/support/src/lambda.rs`).
async fn tests_emulator() -> Emulator {
    let api = Arc::new(RuntimeApi::start().await);
    let function_url = api.function_url(None).await;
    Emulator {
        name: "tests' emulator",
        env: api.env(),
        url: function_url.url.clone(),
        _running: Box::new((api, function_url)),
    }
}

/// cargo-lambda's emulator, if `cargo-lambda` is installed.
fn cargo_lambda() -> Option<Emulator> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let child = Command::new("cargo-lambda")
        .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
        // It reads the workspace's metadata, though it builds nothing.
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let running = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The environment `cargo lambda watch` says a function must be given.
    let env = vec![
        ("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt")),
        ("AWS_LAMBDA_FUNCTION_NAME", "_".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "1".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024".into()),
    ];
    Some(Emulator {
        name: "cargo-lambda",
        env,
        url: format!("http://127.0.0.1:{port}/lambda-url/_"),
        _running: Box::new(running),
    })
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The function's process, as Lambda starts it: no arguments.
fn start_function(emulator: &Emulator, cache: &Path, echo_delay_ms: u64) -> KillOnDrop {
    let child = Command::new(env!("CARGO_BIN_EXE_streamhost"))
        .envs(emulator.env.iter().cloned())
        // As Lambda sets it; else the AWS SDK asks the (absent) IMDS.
        .env("AWS_REGION", "us-east-1")
        .env("STREAMHOST_PLUGINS", streamhost_artifacts::EXAMPLES_DIR)
        .env("STREAMHOST_CACHE_DIR", cache)
        .env("STREAMHOST_PRELOAD", "ndjson")
        // The bench calls a plugin by name, which Lambda serves only when told.
        .env("STREAMHOST_NAMED_PIPELINES_ONLY", "false")
        .env("STREAMHOST_ECHO_DELAY_MS", echo_delay_ms.to_string())
        .env("STREAMHOST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    KillOnDrop(child)
}

/// Process start to first body byte, for one fresh process.
async fn time_to_first_byte(emulator: &Emulator, cache: &Path) -> Duration {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let _function = start_function(emulator, cache, 0);
    let sent = started.elapsed();
    let seen = stream_once(&client, &format!("{}/ndjson", emulator.url), r#"{"prompt":"hello"}"#.into()).await;
    assert!(seen.succeeded(), "{}: {:?}", emulator.name, seen.outcome);
    sent + seen.first_byte.expect("a body")
}

/// The gaps between the body reads of `streams` paced streams from `url`,
/// from the first token on.
async fn gaps(url: &str, streams: usize) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let body = serde_json::json!({ "prompt": echo_prompt(PACED_TOKENS) }).to_string();
    let mut gaps = Vec::new();
    for _ in 0..streams {
        let seen: StreamSeen = stream_once(&client, url, body.clone()).await;
        assert!(seen.succeeded(), "{url}: {:?}", seen.outcome);
        gaps.extend(seen.gaps.into_iter().skip(1));
    }
    gaps
}

fn print_gaps(name: &str, mut gaps: Vec<Duration>) {
    let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
    println!(
        "  {name:<16} p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} gaps)",
        ms(percentile(&mut gaps, 0.5)),
        ms(percentile(&mut gaps, 0.99)),
        ms(percentile(&mut gaps, 1.0)),
        gaps.len()
    );
}

#[tokio::main]
async fn main() {
    // Under `cargo test --benches` this only checks that it runs.
    let full = std::env::args().any(|arg| arg == "--bench");
    let (runs, paced_streams) = if full { (RUNS, 10) } else { (1, 1) };
    let mut emulators = vec![tests_emulator().await];
    match cargo_lambda() {
        Some(emulator) => emulators.push(emulator),
        None => {
            println!("(cargo-lambda is not installed: `pip install cargo-lambda` to time the first byte through it)")
        }
    }
    for emulator in &emulators {
        let mut misses = Vec::new();
        let mut hits = Vec::new();
        for _ in 0..runs {
            let cache = tempfile::tempdir().unwrap();
            misses.push(time_to_first_byte(emulator, cache.path()).await);
            hits.push(time_to_first_byte(emulator, cache.path()).await);
        }
        let (miss, hit) = (median(misses.clone()), median(hits.clone()));
        println!("cold start to first body byte through {}, median of {runs} (ndjson preloaded):", emulator.name);
        println!("  compile-cache miss: {:.1} ms  (all: {misses:?})", miss.as_secs_f64() * 1e3);
        println!("  compile-cache hit:  {:.1} ms  (all: {hits:?})", hit.as_secs_f64() * 1e3);
        println!("  miss / hit: {:.1}x", miss.as_secs_f64() / hit.as_secs_f64());
    }

    println!("gaps between events, {paced_streams} streams of {PACED_TOKENS} tokens at {PACE_MS} ms:");
    let server = Server::builder().echo_delay_ms(PACE_MS).start();
    print_gaps("serve", gaps(&server.url("/ndjson"), paced_streams).await);
    for emulator in &emulators {
        let cache = tempfile::tempdir().unwrap();
        let _function = start_function(emulator, cache.path(), PACE_MS);
        print_gaps(emulator.name, gaps(&format!("{}/ndjson", emulator.url), paced_streams).await);
    }
}
