//! Runs against direct streams, in one run:
//!
//! - the latency a run's subscriber sees over a direct stream of the same
//!   pipeline: the same request as `POST /redact` (NDJSON, read as it
//!   comes) and as `POST /runs/redact` followed at once by `GET
//!   /runs/{id}/events`, both from the moment the request is sent, the echo
//!   model at a model's pace (`PACE_MS` per token); the first text event,
//!   and each event's arrival against the direct stream's same event (p50,
//!   p99 over every event of every round);
//! - the events per second the run store takes (`RunStore::append` of
//!   batches of 64, as the driver writes them): memory, and DynamoDB served
//!   by moto on loopback (moto's speed, not DynamoDB's: an upper bound on
//!   what the host's side costs).
//!
//! Run: `cargo bench -p streamhost --bench runs`.

use streamhost_test_support as support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use streamhost::runs::{Caller, RunRecord, RunSettings, RunStatus, RunStore, StoredEvent};
use support::Server;

const ROUNDS: usize = 21;
const PACE_MS: u64 = 20;
const WORDS: usize = 40;
const BATCH: usize = 64;

/// The arrival time of each event of a direct NDJSON stream.
async fn direct(client: &reqwest::Client, host: &Server, body: &str) -> Vec<Duration> {
    let start = Instant::now();
    let response = client.post(host.url("/redact")).body(body.to_string()).send().await.unwrap();
    let mut arrivals = Vec::new();
    let mut buffer = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        buffer.extend_from_slice(&chunk.unwrap());
        while let Some(end) = buffer.iter().position(|byte| *byte == b'\n') {
            buffer.drain(..=end);
            arrivals.push(start.elapsed());
        }
    }
    arrivals
}

/// The arrival time of each event of a run, as its subscriber sees it,
/// without the run's last event (`done`, which a stream does not have).
async fn run(client: &reqwest::Client, host: &Server, body: &str) -> Vec<Duration> {
    let start = Instant::now();
    let started: serde_json::Value =
        client.post(host.url("/runs/redact")).body(body.to_string()).send().await.unwrap().json().await.unwrap();
    let events =
        client.get(host.url(&format!("/runs/{}/events", started["id"].as_str().unwrap()))).send().await.unwrap();
    let offset = start.elapsed();
    let mut arrivals: Vec<Duration> =
        support::runs::read_events(events, None).await.iter().map(|event| offset + event.at).collect();
    arrivals.pop();
    arrivals
}

fn percentile<T: PartialOrd + Copy>(mut samples: Vec<T>, fraction: f64) -> T {
    samples.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    samples[((samples.len() - 1) as f64 * fraction).round() as usize]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

async fn latency(rounds: usize) {
    let host = Server::builder().echo_delay_ms(PACE_MS).start();
    let client = reqwest::Client::new();
    // Words without digits: `redact` holds back what may be a card number.
    let prompt: Vec<&str> = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
        .into_iter()
        .cycle()
        .take(WORDS)
        .collect();
    let body = json!({ "prompt": prompt.join(" ") }).to_string();
    let (mut first_direct, mut first_run, mut added) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds + 1 {
        let direct = direct(&client, &host, &body).await;
        let run = run(&client, &host, &body).await;
        assert_eq!(direct.len(), run.len(), "the same events either way");
        if round == 0 {
            continue; // warms the plugin and the connections
        }
        // Event 0 is the metadata; 1 is the first text.
        first_direct.push(direct[1]);
        first_run.push(run[1]);
        added.extend(direct.iter().zip(&run).map(|(direct, run)| ms(*run) - ms(*direct)));
    }
    let (direct_p50, run_p50) = (percentile(first_direct.clone(), 0.5), percentile(first_run.clone(), 0.5));
    println!(
        "first text event : direct p50 {:.2} ms p99 {:.2} ms; run p50 {:.2} ms p99 {:.2} ms ({:.2}x)",
        ms(direct_p50),
        ms(percentile(first_direct, 0.99)),
        ms(run_p50),
        ms(percentile(first_run, 0.99)),
        ms(run_p50) / ms(direct_p50)
    );
    println!(
        "each event       : a run's subscriber gets it p50 {:+.3} ms, p99 {:+.3} ms after the direct stream ({} events, {PACE_MS} ms per token)",
        percentile(added.clone(), 0.5),
        percentile(added.clone(), 0.99),
        added.len()
    );
}

/// Appends `events` events in batches to a new run of `store`.
async fn store_rate(store: &RunStore, events: usize) -> f64 {
    let record = RunRecord {
        status: RunStatus::Running,
        ..RunRecord::started("bench", None, None, streamhost::runs::now_ms(), u64::MAX / 2)
    };
    store.create(&record, &Caller::Unknown).await.unwrap();
    let started = Instant::now();
    for first in (0..events).step_by(BATCH) {
        let batch: Vec<StoredEvent> = (first..(first + BATCH).min(events))
            .map(|n| StoredEvent {
                seq: n as u64 + 1,
                kind: "text".into(),
                data: json!(format!("token{n} ")).to_string(),
            })
            .collect();
        store.append(&record, &batch).await.unwrap();
    }
    events as f64 / started.elapsed().as_secs_f64()
}

fn settings(table: Option<&str>) -> RunSettings {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        runs: RunSettings,
    }
    let mut args = vec!["bench"];
    if let Some(table) = table {
        args.extend(["--runs-table", table]);
    }
    Cli::parse_from(args).runs
}

async fn stores(events: usize) {
    let memory = RunStore::from_settings(&settings(None)).await;
    println!(
        "run store memory : {:>10.0} events/s appended ({events} events, batches of {BATCH})",
        store_rate(&memory, events).await
    );
    let moto = support::moto::Moto::start().await;
    moto.create_runs_table("runs").await;
    for (name, value) in moto.env() {
        // SAFETY: set before any other thread of this bench reads the environment.
        unsafe { std::env::set_var(name, value) };
    }
    let dynamo = RunStore::from_settings(&settings(Some("runs"))).await;
    let events = events.min(2_000);
    println!(
        "run store moto   : {:>10.0} events/s appended ({events} events; moto's speed, not DynamoDB's)",
        store_rate(&dynamo, events).await
    );
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs this once, small, to check that it works.
    let full = std::env::args().any(|arg| arg == "--bench");
    latency(if full { ROUNDS } else { 1 }).await;
    stores(if full { 100_000 } else { 200 }).await;
}
