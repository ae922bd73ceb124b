//! What the host adds to a stream's latency under load: `STREAMS`
//! concurrent streams through a three-plugin chain (`redact` -> a
//! pass-through -> `ndjson`), the echo model at an LLM's pace (`TOKENS`
//! tokens, one every `PACE_MS`), against a baseline under the same load: the
//! least a Rust server can do to send the same lines at the same pace (a
//! hyper server on one thread, in a process of its own, whose handler
//! writes a line, sleeps on a tokio timer, writes the next). What the
//! baseline shows is the source's own pace as this client sees it on this
//! machine (a tokio timer rounds up to its 1 ms tick, the client shares the
//! two cores); what streamhost shows over it is the host's.
//!
//! Clients start evenly spread over one stream's length and each starts
//! its next stream as its last ends, so about `STREAMS` are open at any time
//! and new ones keep arriving; only streams started after the first round
//! count.
//!
//! - Time to first byte: the first body line is the stream's metadata,
//!   which the host writes before the model's first token.
//! - Gaps: between one body read and the next, from the first token on.
//!
//! Run: `cargo bench -p streamhost --bench latency` (about 1 min). Under
//! `cargo test --benches` it runs 20 streams of 10 tokens.

mod common;

use streamhost_test_support as support;

use std::convert::Infallible;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{ChildServer, StreamSeen, echo_prompt, load_client, percentile, stream_once};
use futures::StreamExt;
use serde_json::json;
use support::{Server, example, fixture, plugin_dir};

/// The load.
#[derive(Clone, Copy)]
struct Load {
    streams: usize,
    tokens: usize,
    pace: Duration,
    /// Rounds of streams per client; the first is not counted.
    rounds: u32,
}

impl Load {
    fn stream_length(self) -> Duration {
        self.pace * self.tokens as u32
    }
}

/// `load` against `url`: the streams started after the first round.
async fn run(load: Load, url: &str, body: &str) -> Vec<StreamSeen> {
    let client = load_client(load.streams);
    // Warm: every plugin compiled and loaded.
    stream_once(&client, url, body.to_string()).await;
    let started = Instant::now();
    let counted_from = started + load.stream_length();
    let until = started + load.stream_length() * load.rounds;
    let clients = (0..load.streams).map(|index| {
        let (client, url, body) = (client.clone(), url.to_string(), body.to_string());
        let start_at = started + load.stream_length().mul_f64(index as f64 / load.streams as f64);
        async move {
            tokio::time::sleep_until(start_at.into()).await;
            let mut counted = Vec::new();
            while Instant::now() < until {
                let began = Instant::now();
                let seen = stream_once(&client, &url, body.clone()).await;
                if began >= counted_from {
                    counted.push(seen);
                }
            }
            counted
        }
    });
    futures::future::join_all(clients).await.into_iter().flatten().collect()
}

/// The percentiles of what `seen` shows, in ms.
struct Figures {
    streams: usize,
    failed: Vec<String>,
    first_byte: [f64; 3],
    gap: [f64; 3],
}

impl Figures {
    fn of(seen: &[StreamSeen]) -> Figures {
        let failed = seen.iter().filter(|stream| !stream.succeeded()).map(|stream| format!("{:?}", stream.outcome));
        let mut first_bytes: Vec<Duration> = seen.iter().filter_map(|stream| stream.first_byte).collect();
        // The first gap is from the metadata to the first token: the
        // source's time to its first token, not a gap between tokens.
        let mut gaps: Vec<Duration> = seen.iter().flat_map(|stream| stream.gaps.iter().skip(1).copied()).collect();
        let at = |samples: &mut Vec<Duration>| {
            [0.50, 0.99, 1.0].map(|fraction| percentile(samples, fraction).as_secs_f64() * 1000.0)
        };
        Figures { streams: seen.len(), failed: failed.collect(), first_byte: at(&mut first_bytes), gap: at(&mut gaps) }
    }

    fn print(&self, name: &str) {
        let [first_p50, first_p99, first_max] = self.first_byte;
        let [gap_p50, gap_p99, gap_max] = self.gap;
        println!(
            "  {name:<10} {} streams, {} failed; first byte p50 {first_p50:.3} p99 {first_p99:.3} max {first_max:.3} ms; \
             gap p50 {gap_p50:.3} p99 {gap_p99:.3} max {gap_max:.3} ms",
            self.streams,
            self.failed.len()
        );
        for failure in self.failed.iter().take(5) {
            println!("    failed: {failure}");
        }
    }
}

/// The baseline server: `tokens` chunk lines between a metadata line and a
/// complete line, one every `pace`, each its own write. Runs until killed.
fn baseline_server(pace: Duration, tokens: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening on http://{}", listener.local_addr().unwrap());
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let service = hyper::service::service_fn(move |_request| async move {
                let lines = futures::stream::iter(0..tokens + 2).then(move |index| async move {
                    let line = match index {
                        0 => r#"{"type":"metadata","data":{}}"#.to_string(),
                        index if index <= tokens => {
                            tokio::time::sleep(pace).await;
                            json!({ "type": "chunk", "data": " ab" }).to_string()
                        }
                        _ => r#"{"type":"complete","data":{}}"#.to_string(),
                    };
                    Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from(line + "\n")))
                });
                Ok::<_, Infallible>(hyper::Response::new(http_body_util::StreamBody::new(lines)))
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::spawn(connection);
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--baseline-server") {
        let pace = Duration::from_millis(args[at + 1].parse().unwrap());
        return baseline_server(pace, args[at + 2].parse().unwrap());
    }
    let full = args.iter().any(|arg| arg == "--bench");
    let load = if full {
        Load { streams: 1000, tokens: 100, pace: Duration::from_millis(50), rounds: 4 }
    } else {
        Load { streams: 20, tokens: 10, pace: Duration::from_millis(5), rounds: 3 }
    };
    println!(
        "latency: {} concurrent streams, {} tokens at {} ms, redact -> pass-through -> ndjson, against a baseline",
        load.streams,
        load.tokens,
        load.pace.as_millis()
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let baseline = {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.args(["--baseline-server", &load.pace.as_millis().to_string(), &load.tokens.to_string()]);
        let server = ChildServer::start(command);
        Figures::of(&runtime.block_on(run(load, &server.base, "{}")))
    };
    baseline.print("baseline");

    let streamhost = {
        let plugins =
            plugin_dir(&[("redact", &example("redact")), ("ndjson", &example("ndjson")), ("pass", &fixture("trap"))]);
        let server = Server::builder().plugins(plugins.path()).echo_delay_ms(load.pace.as_millis() as u64).start();
        let body = json!({ "prompt": echo_prompt(load.tokens), "config": { "pass": { "trapAt": u64::MAX } } });
        Figures::of(&runtime.block_on(run(load, &server.url("/redact?then=pass,ndjson"), &body.to_string())))
    };
    streamhost.print("streamhost");

    let over = |host: [f64; 3], base: [f64; 3]| [host[0] - base[0], host[1] - base[1]];
    let [first_p50, first_p99] = over(streamhost.first_byte, baseline.first_byte);
    let [gap_p50, gap_p99] = over(streamhost.gap, baseline.gap);
    println!(
        "  host-added: first byte p50 {first_p50:.3} ms, p99 {first_p99:.3} ms; gap p50 {gap_p50:.3} ms, p99 {gap_p99:.3} ms"
    );
    assert!(
        baseline.failed.is_empty() && streamhost.failed.is_empty() && streamhost.streams > 0,
        "every counted stream succeeds"
    );
}
