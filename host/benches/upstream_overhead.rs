//! What the host adds to a model stream: the same loopback upstream read
//! directly, and through `streamhost serve` (route, provider, a transform
//! plugin, encoding), in one run.
//!
//! - time to first byte: request sent -> first body byte, median of RUNS;
//! - per event: (whole stream - first byte) / events, median of RUNS.
//!
//! Sources: an OpenAI-compatible SSE server (reqwest in the host) and
//! Bedrock's event stream (the AWS SDK in the host), each streaming EVENTS
//! text deltas with no pause. The host runs `ndjson`, so every event is
//! decoded, passed through a wasm component and re-encoded.
//!
//! Run: `cargo bench -p streamhost --bench upstream_overhead`.

mod common;

// The loopback servers and host launcher the tests use.
use streamhost_test_support as support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use support::Server;
use support::upstream::{EVENT_STREAM, SSE, Script, Upstream, converse_answer, sse};

use common::median;

const RUNS: usize = 41;
const EVENTS: usize = 200;

struct Timing {
    first_byte: Duration,
    per_event: Duration,
}

/// POSTs `body` to `url` and times the first byte and the whole stream.
async fn timed(client: &reqwest::Client, url: &str, body: &str) -> (Duration, Duration) {
    let start = Instant::now();
    let response =
        client.post(url).header("content-type", "application/json").body(body.to_string()).send().await.unwrap();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    let mut stream = response.bytes_stream();
    let mut first_byte = None;
    while let Some(chunk) = stream.next().await {
        chunk.unwrap();
        first_byte.get_or_insert_with(|| start.elapsed());
    }
    (first_byte.unwrap(), start.elapsed())
}

/// Alternates direct and host calls, so both see the same machine state.
async fn compare(direct_url: &str, direct_body: &str, host_url: &str, host_body: &str) -> (Timing, Timing) {
    let client = reqwest::Client::new();
    let (mut direct, mut host) = (Vec::new(), Vec::new());
    for run in 0..RUNS + 1 {
        let direct_run = timed(&client, direct_url, direct_body).await;
        let host_run = timed(&client, host_url, host_body).await;
        if run > 0 {
            // The first run warms the connection pools and the plugin.
            direct.push(direct_run);
            host.push(host_run);
        }
    }
    (summarise(&direct), summarise(&host))
}

fn summarise(runs: &[(Duration, Duration)]) -> Timing {
    Timing {
        first_byte: median(runs.iter().map(|(first, _)| *first).collect()),
        per_event: median(runs.iter().map(|(first, total)| (*total - *first) / EVENTS as u32).collect()),
    }
}

fn report(source: &str, direct: &Timing, host: &Timing) {
    line(source, "first byte", direct.first_byte, host.first_byte);
    line(source, "per event", direct.per_event, host.per_event);
}

fn line(source: &str, what: &str, direct: Duration, host: Duration) {
    let (direct, host) = (direct.as_secs_f64() * 1e6, host.as_secs_f64() * 1e6);
    println!(
        "{source:<8} {what:<10}: direct {direct:>8.2} µs, host {host:>8.2} µs, host adds {:>8.2} µs ({:.2}x)",
        host - direct,
        host / direct
    );
}

fn deltas() -> Vec<String> {
    (0..EVENTS).map(|n| format!("token{n} ")).collect()
}

async fn openai() {
    let mut chunks: Vec<Vec<u8>> = deltas()
        .iter()
        .map(|text| sse(&json!({ "choices": [{ "index": 0, "delta": { "content": text } }] }).to_string()))
        .collect();
    chunks.push(sse(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#));
    chunks.push(sse("[DONE]"));
    let upstream = Upstream::start(vec![Script::new(200, SSE).chunks(Duration::ZERO, chunks)]).await;
    let host = Server::builder().arg("--openai-base-url", &upstream.base).arg("--model", "m").start();
    let (direct, through_host) = compare(
        &format!("{}/chat/completions", upstream.base),
        r#"{"model":"m","stream":true}"#,
        &host.url("/ndjson"),
        r#"{"prompt":"x"}"#,
    )
    .await;
    report("openai", &direct, &through_host);
}

async fn bedrock() {
    let deltas = deltas();
    let deltas: Vec<&str> = deltas.iter().map(String::as_str).collect();
    let upstream =
        Upstream::start(vec![Script::new(200, EVENT_STREAM).chunks(Duration::ZERO, converse_answer(&deltas))]).await;
    let host = Server::builder().env(upstream.bedrock_env()).arg("--provider", "bedrock").arg("--model", "m").start();
    let (direct, through_host) =
        compare(&format!("{}/model/m/converse-stream", upstream.base), "{}", &host.url("/ndjson"), r#"{"prompt":"x"}"#)
            .await;
    report("bedrock", &direct, &through_host);
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs this once to check that it works.
    if std::env::args().any(|arg| arg == "--bench") {
        openai().await;
        bedrock().await;
    } else {
        // The smallest whole answer: a text, a stop, `[DONE]` (a bare
        // `[DONE]` is no answer, and an error).
        let answer = [
            sse(r#"{"choices":[{"index":0,"delta":{"content":"x"}}]}"#),
            sse(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#),
            sse("[DONE]"),
        ];
        let upstream = Upstream::start(vec![Script::new(200, SSE).chunks(Duration::ZERO, answer)]).await;
        let host = Server::builder().arg("--openai-base-url", &upstream.base).arg("--model", "m").start();
        let (first_byte, _) = timed(&reqwest::Client::new(), &host.url("/ndjson"), r#"{"prompt":"x"}"#).await;
        println!("upstream_overhead: one call through the host, first byte after {first_byte:?}");
    }
}
