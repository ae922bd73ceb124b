//! Time to first text through each standard API against `POST /{pipeline}`
//! on the same pipeline: what the API's request filter and formatter add.
//!
//! One `streamhost serve`, one pipeline (the echo model, no transform: its
//! answer is the host's default NDJSON at `POST /bench`), one stream at a
//! time, the routes taken in turn within each round so that every route
//! sees the same machine. A stream's time to first text is from sending the
//! request to the first body read that holds the answer's first token; the
//! echo model waits `PACE_MS` before each token, so every route shares that
//! floor, and the differences are the routes' own.
//!
//! Run: `cargo bench -p streamhost --bench standard_apis` (about 6 min).
//! Under `cargo test --benches` it runs 3 rounds.

mod common;

use streamhost_test_support as support;

use std::time::{Duration, Instant};

use common::percentile;
use futures::StreamExt;
use serde_json::{Value, json};
use support::{EXAMPLES, Server, write_manifest};

/// The echo model's pause before each token.
const PACE_MS: u64 = 20;
/// The prompt the echo model streams back; its first token is `FIRST`
/// (four characters or fewer make one echo token), which no API's framing
/// holds.
const PROMPT: &str = "Qzx1 streaming through the standard APIs of the field";
const FIRST: &str = "Qzx1";

/// A route and the body that asks it for `PROMPT`, streamed.
struct Route {
    name: &'static str,
    path: &'static str,
    body: Value,
}

fn routes() -> Vec<Route> {
    let messages = json!([{ "role": "user", "content": PROMPT }]);
    vec![
        Route { name: "POST /bench (NDJSON)", path: "/bench", body: json!({ "prompt": PROMPT }) },
        Route {
            name: "/v1/chat/completions",
            path: "/v1/chat/completions",
            body: json!({ "model": "bench", "stream": true, "messages": messages }),
        },
        Route {
            name: "/v1/responses",
            path: "/v1/responses",
            body: json!({ "model": "bench", "stream": true, "input": PROMPT }),
        },
        Route {
            name: "/v1/messages",
            path: "/v1/messages",
            body: json!({ "model": "bench", "stream": true, "max_tokens": 256, "messages": messages }),
        },
    ]
}

/// The time from the request to the first body read holding `FIRST`; the
/// rest of the stream is read to its end.
async fn first_text(client: &reqwest::Client, url: &str, body: &Value) -> Duration {
    let started = Instant::now();
    let response = client.post(url).json(body).send().await.expect("the host answers");
    assert_eq!(response.status(), 200, "{url}");
    let mut chunks = response.bytes_stream();
    let mut seen = Vec::new();
    let mut first = None;
    while let Some(chunk) = chunks.next().await {
        seen.extend_from_slice(&chunk.expect("the stream reads"));
        if first.is_none() && String::from_utf8_lossy(&seen).contains(FIRST) {
            first = Some(started.elapsed());
        }
    }
    first.unwrap_or_else(|| panic!("{url} never sent `{FIRST}`: {}", String::from_utf8_lossy(&seen)))
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let rounds = if full { 300 } else { 3 };
    let plugins = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(EXAMPLES).unwrap().map(Result::unwrap) {
        std::os::unix::fs::symlink(entry.path(), plugins.path().join(entry.file_name())).unwrap();
    }
    write_manifest(plugins.path(), "bench", &json!({ "model": { "provider": "echo" } }));
    let server = Server::builder().plugins(plugins.path()).echo_delay_ms(PACE_MS).start();
    let routes = routes();
    println!("standard_apis: time to first text, {rounds} rounds, one stream at a time, echo at {PACE_MS} ms a token");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); routes.len()];
    runtime.block_on(async {
        // Warm: every plugin compiled and loaded.
        for route in &routes {
            first_text(&client, &server.url(route.path), &route.body).await;
        }
        for _ in 0..rounds {
            for (route, samples) in routes.iter().zip(&mut samples) {
                samples.push(first_text(&client, &server.url(route.path), &route.body).await);
            }
        }
    });

    let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
    let baseline_p50 = ms(percentile(&mut samples[0].clone(), 0.5));
    for (route, samples) in routes.iter().zip(&mut samples) {
        let (p50, p99) = (ms(percentile(samples, 0.5)), ms(percentile(samples, 0.99)));
        let max = ms(*samples.iter().max().unwrap());
        println!(
            "  {:<24} p50 {p50:7.2} ms  p99 {p99:7.2} ms  max {max:7.2} ms  added at p50 {:+.2} ms",
            route.name,
            p50 - baseline_p50
        );
    }
}
