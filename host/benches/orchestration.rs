//! What a multi-agent turn costs over a plain stream, through the real
//! server on loopback with the offline echo model (no pauses): to the first
//! byte and to the last, medians of many requests. The plain stream is one
//! transform (`/ndjson`); the routed turns add loading the conversation,
//! the router, the agent and recording the turn:
//! - `support-desk`: keyword-router (a wasm call) and the built-in agent;
//! - `support-desk-llm`: llm-router, which makes a model call first;
//! - `support-desk` to `orders`: keyword-router and tool-agent, whose tool
//!   loop makes two model calls.
//!
//! Run: `cargo bench -p streamhost --bench orchestration`.

mod common;

use streamhost_test_support as support;

use std::time::{Duration, Instant};

use futures::StreamExt;

use common::median;

const RUNS: usize = 101;

struct Timing {
    first_byte: Duration,
    whole: Duration,
}

async fn timed(client: &reqwest::Client, url: &str, body: &str) -> Timing {
    let started = Instant::now();
    let response = client.post(url).body(body.to_string()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut first_byte = None;
    while let Some(chunk) = stream.next().await {
        chunk.unwrap();
        first_byte.get_or_insert_with(|| started.elapsed());
    }
    Timing { first_byte: first_byte.expect("a body"), whole: started.elapsed() }
}

#[tokio::main]
async fn main() {
    // Under `cargo test --benches` this only checks that it runs.
    let runs = if std::env::args().any(|arg| arg == "--bench") { RUNS } else { 1 };
    let host = support::Server::builder().start();
    let client = reqwest::Client::new();
    let cases = [
        ("plain: /ndjson", "/ndjson", r#"{"prompt":"I want a refund"}"#),
        (
            "keyword-router + built-in agent",
            "/support-desk",
            r#"{"prompt":"I want a refund","userId":"bench","sessionId":"a"}"#,
        ),
        (
            "llm-router + built-in agent",
            "/support-desk-llm",
            r#"{"prompt":"I want a refund","userId":"bench","sessionId":"b"}"#,
        ),
        (
            "keyword-router + tool-agent (2 model calls)",
            "/support-desk",
            r#"{"prompt":"Where is my order?","userId":"bench","sessionId":"c"}"#,
        ),
    ];
    let mut medians = Vec::new();
    for (label, path, body) in cases {
        let url = host.url(path);
        for _ in 0..3.min(runs) {
            timed(&client, &url, body).await;
        }
        let mut first = Vec::new();
        let mut whole = Vec::new();
        for _ in 0..runs {
            let timing = timed(&client, &url, body).await;
            first.push(timing.first_byte);
            whole.push(timing.whole);
        }
        medians.push((label, median(first), median(whole)));
    }
    let (_, plain_first, plain_whole) = medians[0];
    println!("{:<45} {:>12} {:>8} {:>12} {:>8}", "median of requests", "first byte", "ratio", "whole", "ratio");
    for (label, first, whole) in medians {
        let ratio = |time: Duration, base: Duration| time.as_secs_f64() / base.as_secs_f64();
        println!(
            "{label:<45} {:>9.0} µs {:>7.2}x {:>9.0} µs {:>7.2}x",
            first.as_secs_f64() * 1e6,
            ratio(first, plain_first),
            whole.as_secs_f64() * 1e6,
            ratio(whole, plain_whole)
        );
    }
}
