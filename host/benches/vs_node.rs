//! streamhost against what a user would run instead: a Node 20 handler
//! written the way seed 000 writes its Lambda handler
//! (`tests/clients/node-ndjson-handler.mjs`: a `streamifyResponse`-style
//! async generator, one NDJSON line per `write`), and `streamhost serve`
//! with the `ndjson` plugin, both answering with the echo model's tokens,
//! the same lines, on loopback under the same load:
//! - LLM pace: `STREAMS` concurrent streams of `TOKENS` tokens, a token
//!   every `PACE_MS` (the ideal time to last byte is `TOKENS * PACE_MS`),
//!   after a round of `STREAMS / 10`, for the memory a stream costs (the
//!   RSS slope between the two peaks);
//! - saturation: the same streams with no pause between tokens.
//!
//! For each it prints lines per second of server CPU (user + system, from
//! `/proc`), the server's memory before, at its peak and after (RSS, and PSS,
//! which counts a page that many mappings share once: each plugin instance
//! maps its component's memory image), time to last byte p50/p99 and errors,
//! then streamhost's ratios to Node.
//!
//! Run: `cargo bench -p streamhost --bench vs_node` (about 2 min; needs
//! `node` on the PATH). Under `cargo test --benches` it runs 20 streams of
//! 10 tokens, to prove it works.

mod common;

use streamhost_test_support as support;

use std::process::Command;
use std::time::Duration;

use common::{ChildServer, CpuTime, Memory, PeakMemory, burst, cpu_seconds, echo_prompt, load_client, percentile};
use support::Server;

const NODE_HANDLER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/clients/node-ndjson-handler.mjs");

/// The load, full size or as a quick check.
#[derive(Clone, Copy)]
struct Load {
    streams: usize,
    tokens: usize,
    pace_ms: u64,
    /// How long the server is left idle before "after" is read: jemalloc
    /// returns freed pages after its 10 s decay.
    settle: Duration,
}

/// Which server answers.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Streamhost,
    Node,
}

/// A running server of either kind.
enum Running {
    Streamhost(Server),
    Node(ChildServer),
}

impl Running {
    fn start(kind: Kind, pace_ms: u64) -> Running {
        match kind {
            Kind::Streamhost => Running::Streamhost(Server::builder().echo_delay_ms(pace_ms).start()),
            Kind::Node => {
                let mut node = Command::new("node");
                node.args([NODE_HANDLER, "0", &pace_ms.to_string(), "echo"]);
                Running::Node(ChildServer::start(node))
            }
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Running::Streamhost(server) => server.pid(),
            Running::Node(server) => server.pid(),
        }
    }

    fn url(&self) -> String {
        match self {
            Running::Streamhost(server) => server.url("/ndjson"),
            Running::Node(server) => format!("{}/ndjson", server.base),
        }
    }
}

/// What one server did under one load.
struct Outcome {
    lines: usize,
    cpu: CpuTime,
    before: Memory,
    peak_small: Memory,
    peak: Memory,
    after: Memory,
    last_byte_p50: Duration,
    last_byte_p99: Duration,
    errors: Vec<String>,
}

impl Outcome {
    fn lines_per_cpu_second(&self) -> f64 {
        self.lines as f64 / self.cpu.total().max(1e-9)
    }

    /// Memory per concurrent stream, in KiB: the peaks' slope from a tenth
    /// of the streams to all of them, resident and proportional.
    fn kib_per_stream(&self, load: Load) -> Memory {
        let added = (load.streams - load.streams / 10) as f64;
        Memory {
            rss: (self.peak.rss - self.peak_small.rss) * 1024.0 / added,
            pss: (self.peak.pss - self.peak_small.pss) * 1024.0 / added,
        }
    }
}

/// Starts a server of `kind`, warms it, and runs `load` against it.
fn measure(runtime: &tokio::runtime::Runtime, kind: Kind, load: Load) -> Outcome {
    let server = Running::start(kind, load.pace_ms);
    let (pid, url) = (server.pid(), server.url());
    let body = serde_json::json!({ "prompt": echo_prompt(load.tokens) }).to_string();
    let client = load_client(load.streams);
    // Warm: the plugin compiled and loaded, the first connections made.
    runtime.block_on(burst(&client, &url, &body, 10));
    let before = Memory::of(pid);

    let small = PeakMemory::start(pid);
    let small_round = runtime.block_on(burst(&client, &url, &body, load.streams / 10));
    let peak_small = small.stop();

    let cpu_before = cpu_seconds(pid);
    let sampling = PeakMemory::start(pid);
    let mut seen = runtime.block_on(burst(&client, &url, &body, load.streams));
    let peak = sampling.stop();
    let cpu = cpu_seconds(pid).since(cpu_before);
    drop(client);
    std::thread::sleep(load.settle);
    let after = Memory::of(pid);

    let errors = seen
        .iter()
        .chain(&small_round)
        .filter(|stream| !stream.succeeded())
        .map(|stream| format!("{:?}", stream.outcome))
        .collect();
    let mut last_bytes: Vec<Duration> = seen.iter_mut().map(|stream| stream.last_byte).collect();
    Outcome {
        lines: seen.iter().map(|stream| stream.lines).sum(),
        cpu,
        before,
        peak_small,
        peak,
        after,
        last_byte_p50: percentile(&mut last_bytes, 0.50),
        last_byte_p99: percentile(&mut last_bytes, 0.99),
        errors,
    }
}

fn report(name: &str, outcome: &Outcome, load: Load) {
    let per_stream = outcome.kib_per_stream(load);
    println!(
        "  {name:<10} {} lines, cpu {:.2} s (user {:.2}, sys {:.2}): {:.0} lines/cpu-s; \
         ttlb p50 {:.3} s, p99 {:.3} s; errors {}",
        outcome.lines,
        outcome.cpu.total(),
        outcome.cpu.user,
        outcome.cpu.system,
        outcome.lines_per_cpu_second(),
        outcome.last_byte_p50.as_secs_f64(),
        outcome.last_byte_p99.as_secs_f64(),
        outcome.errors.len(),
    );
    for (measure, before, peak, after, slope) in [
        ("rss", outcome.before.rss, outcome.peak.rss, outcome.after.rss, per_stream.rss),
        ("pss", outcome.before.pss, outcome.peak.pss, outcome.after.pss, per_stream.pss),
    ] {
        println!(
            "             {measure} before {before:.1} / peak {peak:.1} / after {after:.1} MiB, {slope:.1} KiB per stream"
        );
    }
    for error in outcome.errors.iter().take(5) {
        println!("    error: {error}");
    }
}

fn compare(title: &str, runtime: &tokio::runtime::Runtime, load: Load) -> bool {
    println!(
        "{title}: {} streams x {} tokens at {} ms (ideal time to last byte {:.3} s)",
        load.streams,
        load.tokens,
        load.pace_ms,
        (load.tokens as u64 * load.pace_ms) as f64 / 1000.0
    );
    let streamhost = measure(runtime, Kind::Streamhost, load);
    report("streamhost", &streamhost, load);
    let node = measure(runtime, Kind::Node, load);
    report("node", &node, load);
    println!(
        "  streamhost / node: {:.2}x lines per cpu-s, {:.2}x peak rss ({:.2}x pss), \
         {:.2}x rss per stream ({:.2}x pss), {:.3}x ttlb p50",
        streamhost.lines_per_cpu_second() / node.lines_per_cpu_second(),
        streamhost.peak.rss / node.peak.rss,
        streamhost.peak.pss / node.peak.pss,
        streamhost.kib_per_stream(load).rss / node.kib_per_stream(load).rss,
        streamhost.kib_per_stream(load).pss / node.kib_per_stream(load).pss,
        streamhost.last_byte_p50.as_secs_f64() / node.last_byte_p50.as_secs_f64(),
    );
    streamhost.errors.is_empty() && node.errors.is_empty() && streamhost.lines == node.lines
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let paced = if full {
        Load { streams: 1000, tokens: 100, pace_ms: 50, settle: Duration::from_secs(12) }
    } else {
        Load { streams: 20, tokens: 10, pace_ms: 5, settle: Duration::from_millis(100) }
    };
    let saturated = Load { pace_ms: 0, ..paced };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let paced_ok = compare("LLM pace", &runtime, paced);
    let saturated_ok = compare("saturation", &runtime, saturated);
    assert!(paced_ok && saturated_ok, "errors, or the servers sent different numbers of lines");
}
