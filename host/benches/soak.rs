//! A soak: `STREAMS` concurrent streams for `DURATION` through a
//! three-plugin chain (`redact` -> a pass-through -> `ndjson`), the echo
//! model at an LLM's pace (`PACE_MS` a token, `TOKENS` tokens), each client
//! starting its next stream as its last one ends, with faulty plugins mixed
//! in: one stream in 20 traps mid-stream, one in 50 loops (out of fuel), one
//! in 50 floods (its output limit), one in 100 allocates without bound (its
//! memory cap). Every stream's outcome is checked against what its kind must
//! produce; anything else is an unexpected error. It prints the streams by
//! kind, the unexpected errors, and the server's RSS before, at its peak and
//! after (20 s after the last stream, and after a second, smaller round).
//!
//! Run: `cargo bench -p streamhost --bench soak` (about 2 min). Under `cargo
//! test --benches` it runs 20 streams for 3 s, to prove it works.

mod common;

use streamhost_test_support as support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{PeakMemory, echo_prompt, rss_mib};
use futures::StreamExt;
use serde_json::json;
use support::{Server, example, fixture, plugin_dir};

const PACE_MS: u64 = 50;
/// How long the host is left idle before "after" is read: the allocator
/// returns freed memory after some seconds (jemalloc's decay, 10 s).
const AFTER: Duration = Duration::from_secs(20);
const TOKENS: usize = 100;

/// What a stream runs, and so what it must end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Healthy,
    TrapMidStream,
    Loop,
    Flood,
    Hog,
}

impl Kind {
    /// The kind of the `index`-th stream.
    fn of(index: u64) -> Kind {
        match index {
            index if index % 100 == 7 => Kind::Hog,
            index if index % 50 == 3 => Kind::Loop,
            index if index % 50 == 5 => Kind::Flood,
            index if index % 20 == 1 => Kind::TrapMidStream,
            _ => Kind::Healthy,
        }
    }

    /// The path and body of its request.
    fn request(self, prompt: &str) -> (&'static str, String) {
        let config = match self {
            Kind::Healthy => json!({ "pass": { "trapAt": u64::MAX } }),
            Kind::TrapMidStream => json!({ "trap": { "trapAt": 4 } }),
            _ => json!({}),
        };
        let path = match self {
            Kind::Healthy => "/redact?then=pass,ndjson",
            Kind::TrapMidStream => "/redact?then=trap,ndjson",
            Kind::Loop => "/redact?then=spin,ndjson",
            Kind::Flood => "/redact?then=flood,ndjson",
            Kind::Hog => "/redact?then=hog,ndjson",
        };
        (path, json!({ "prompt": prompt, "config": config }).to_string())
    }

    /// Whether `status` and `body` are what this kind must produce.
    fn expected(self, status: u16, body: &str) -> bool {
        let last = body.lines().last().unwrap_or_default();
        match self {
            Kind::Healthy => status == 200 && last.contains(r#""type":"complete""#),
            Kind::TrapMidStream => status == 200 && last.contains(r#""code":"plugin_trapped""#),
            Kind::Loop => status == 500 && body.contains(r#""code":"plugin_out_of_fuel""#),
            Kind::Flood => status == 500 && body.contains(r#""code":"plugin_output_limit""#),
            Kind::Hog => status == 500 && body.contains(r#""code":"plugin_out_of_memory""#),
        }
    }
}

#[derive(Default)]
struct Tally {
    by_kind: BTreeMap<Kind, u64>,
    unexpected: Vec<String>,
    lines: u64,
}

/// `streams` clients, each running streams back to back until `duration` has passed.
async fn soak(server: &Server, streams: usize, duration: Duration) -> Tally {
    let client = reqwest::Client::builder().pool_max_idle_per_host(streams).build().unwrap();
    let prompt = echo_prompt(TOKENS);
    let next_index = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + duration;
    let workers = (0..streams).map(|_| {
        let (client, prompt, next_index) = (client.clone(), prompt.clone(), next_index.clone());
        let url = server.url("");
        async move {
            let mut tally = Tally::default();
            while Instant::now() < until {
                let kind = Kind::of(next_index.fetch_add(1, Ordering::Relaxed));
                let (path, body) = kind.request(&prompt);
                let outcome = async {
                    let response = client.post(format!("{url}{path}")).body(body).send().await?;
                    let status = response.status().as_u16();
                    let mut text = Vec::new();
                    let mut chunks = response.bytes_stream();
                    while let Some(chunk) = chunks.next().await {
                        text.extend_from_slice(&chunk?);
                    }
                    Ok::<_, reqwest::Error>((status, String::from_utf8_lossy(&text).into_owned()))
                };
                match outcome.await {
                    Ok((status, text)) if kind.expected(status, &text) => {
                        *tally.by_kind.entry(kind).or_default() += 1;
                        tally.lines += text.lines().count() as u64;
                    }
                    Ok((status, text)) => tally.unexpected.push(format!("{kind:?}: {status} {}", tail(&text))),
                    Err(error) => tally.unexpected.push(format!("{kind:?}: {error}")),
                }
                if !tally.unexpected.is_empty() {
                    // One is enough to fail the soak; do not spin on them.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            tally
        }
    });
    let mut total = Tally::default();
    for tally in futures::future::join_all(workers).await {
        for (kind, count) in tally.by_kind {
            *total.by_kind.entry(kind).or_default() += count;
        }
        total.unexpected.extend(tally.unexpected);
        total.lines += tally.lines;
    }
    total
}

fn tail(text: &str) -> &str {
    &text[text.len().saturating_sub(200)..]
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let (streams, duration) = if full { (1000, Duration::from_secs(60)) } else { (20, Duration::from_secs(3)) };
    let plugins = plugin_dir(&[
        ("redact", &example("redact")),
        ("ndjson", &example("ndjson")),
        ("pass", &fixture("trap")),
        ("trap", &fixture("trap")),
        ("spin", &fixture("spin")),
        ("flood", &fixture("flood")),
        ("hog", &fixture("hog")),
    ]);
    let server =
        Server::builder().plugins(plugins.path()).echo_delay_ms(PACE_MS).arg("--plugin-memory-mb", "16").start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pid = server.pid();
    // One stream of each kind first: every plugin compiled and cached, so
    // "before" is a host ready to serve.
    let warm = runtime.block_on(soak(&server, 1, Duration::from_millis(1)));
    let before = rss_mib(pid);
    let sampling = PeakMemory::start(pid);
    let started = Instant::now();
    let tally = runtime.block_on(soak(&server, streams, duration));
    let elapsed = started.elapsed();
    let peak = sampling.stop().rss;
    std::thread::sleep(AFTER);
    let after = rss_mib(pid);
    let second = runtime.block_on(soak(&server, streams / 10, duration / 6));
    std::thread::sleep(AFTER);
    let after_second = rss_mib(pid);

    println!(
        "soak: {streams} concurrent streams for {:.1} s, {TOKENS} tokens at {PACE_MS} ms, redact -> pass-through -> ndjson",
        elapsed.as_secs_f64()
    );
    println!("streams by kind (outcome as expected): {:?}", tally.by_kind);
    println!("lines received: {}", tally.lines);
    println!(
        "unexpected errors: {} (warm-up {}, second round {})",
        tally.unexpected.len(),
        warm.unexpected.len(),
        second.unexpected.len()
    );
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for error in tally.unexpected.iter().chain(&second.unexpected) {
        // The kind and the status or the error, without the request id.
        let key = error.split(r#","requestId""#).next().unwrap_or(error);
        *kinds.entry(key.chars().take(160).collect()).or_default() += 1;
    }
    for (error, count) in kinds {
        println!("  {count} x {error}");
    }
    println!(
        "server RSS: before {before:.1} MiB, peak {peak:.1} MiB, {} s after {after:.1} MiB, after a second round of {} streams {after_second:.1} MiB",
        AFTER.as_secs(),
        streams / 10
    );
    assert!(
        tally.unexpected.is_empty() && warm.unexpected.is_empty() && second.unexpected.is_empty(),
        "unexpected errors"
    );
}
