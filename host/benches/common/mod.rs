//! What the bench binaries share: medians and percentiles, a server
//! process's CPU time and resident set, and a load of concurrent streams as
//! their client sees them.
// Each bench uses a part of this module.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;

/// The middle of the samples: robust to the odd slow run of a busy machine.
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The `fraction` percentile (0.99 for p99) of `samples`, nearest rank; zero
/// for no samples.
pub fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((samples.len() as f64 * fraction).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

/// The resident set of process `pid`, in MiB (`VmRSS` in `/proc/PID/status`).
/// It counts a page shared by several mappings once per mapping: every plugin
/// instance maps its component's memory image, so with many instances it
/// overstates what the process holds (see [`pss_mib`]).
pub fn rss_mib(pid: u32) -> f64 {
    proc_kib(&format!("/proc/{pid}/status"), "VmRSS:") / 1024.0
}

/// The proportional set size of process `pid`, in MiB (`Pss` in
/// `/proc/PID/smaps_rollup`): its private pages, and each shared page
/// divided among the mappings and processes that map it.
pub fn pss_mib(pid: u32) -> f64 {
    proc_kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:") / 1024.0
}

/// The address space of process `pid`, in GiB (`VmSize` in `/proc/PID/status`).
pub fn address_space_gib(pid: u32) -> f64 {
    proc_kib(&format!("/proc/{pid}/status"), "VmSize:") / (1024.0 * 1024.0)
}

/// A `Field:  N kB` line of a `/proc` file, in KiB.
fn proc_kib(path: &str, field: &str) -> f64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0)
}

/// The CPU time process `pid` has used so far, user and system, in seconds:
/// fields 14 and 15 of `/proc/PID/stat` (proc(5)), in clock ticks of
/// `USER_HZ`, which is 100 on Linux's mainstream architectures.
pub fn cpu_seconds(pid: u32) -> CpuTime {
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) is in parentheses and may hold spaces.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |index: usize| fields.get(index).and_then(|value| value.parse::<f64>().ok()).unwrap_or(0.0);
    // After the name, field 3 is at index 0: utime (14) is 11, stime (15) 12.
    CpuTime { user: ticks(11) / USER_HZ, system: ticks(12) / USER_HZ }
}

/// A process's CPU time, in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTime {
    pub user: f64,
    pub system: f64,
}

impl CpuTime {
    pub fn total(self) -> f64 {
        self.user + self.system
    }

    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime { user: self.user - earlier.user, system: self.system - earlier.system }
    }
}

/// A process's memory, in MiB: resident ([`rss_mib`]) and proportional ([`pss_mib`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss: f64,
    pub pss: f64,
}

impl Memory {
    pub fn of(pid: u32) -> Memory {
        Memory { rss: rss_mib(pid), pss: pss_mib(pid) }
    }
}

/// The highest memory of a process while this is alive, each figure's own
/// peak, sampled on a thread of its own: RSS every 20 ms, PSS every 250 ms
/// (reading it walks the process's page tables under its memory map lock,
/// which would slow the server's own page faults if done often).
pub struct PeakMemory {
    stop: Arc<AtomicBool>,
    sampler: std::thread::JoinHandle<Memory>,
}

impl PeakMemory {
    pub fn start(pid: u32) -> PeakMemory {
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut peak = Memory::of(pid);
                for sample in 1.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    peak.rss = peak.rss.max(rss_mib(pid));
                    if sample % 12 == 0 {
                        peak.pss = peak.pss.max(pss_mib(pid));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                peak
            })
        };
        PeakMemory { stop, sampler }
    }

    pub fn stop(self) -> Memory {
        self.stop.store(true, Ordering::Relaxed);
        self.sampler.join().expect("the sampler does not panic")
    }
}

/// One stream as its client saw it, times from the request's send.
#[derive(Debug)]
pub struct StreamSeen {
    /// The response's status, or what went wrong before or during the body.
    pub outcome: Result<u16, String>,
    /// The first body byte.
    pub first_byte: Option<Duration>,
    /// Between one body read and the next (a read holds what had arrived:
    /// one line each at a model's pace).
    pub gaps: Vec<Duration>,
    /// The body's end.
    pub last_byte: Duration,
    /// Newline-terminated lines in the body.
    pub lines: usize,
}

impl StreamSeen {
    /// A 200 whose body is whole NDJSON lines.
    pub fn succeeded(&self) -> bool {
        matches!(self.outcome, Ok(200)) && self.lines > 0
    }
}

/// POSTs `body` to `url` and reads the response to its end, timing it.
pub async fn stream_once(client: &reqwest::Client, url: &str, body: String) -> StreamSeen {
    let sent = Instant::now();
    let mut seen = StreamSeen {
        outcome: Err("no response".into()),
        first_byte: None,
        gaps: Vec::new(),
        last_byte: Duration::ZERO,
        lines: 0,
    };
    let response = match client.post(url).body(body).send().await {
        Ok(response) => response,
        Err(error) => {
            seen.outcome = Err(error.to_string());
            return seen;
        }
    };
    let status = response.status().as_u16();
    let mut chunks = response.bytes_stream();
    let mut last_read = None;
    while let Some(chunk) = chunks.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => {
                seen.outcome = Err(format!("body: {error}"));
                return seen;
            }
        };
        let now = sent.elapsed();
        seen.first_byte.get_or_insert(now);
        if let Some(last_read) = last_read {
            seen.gaps.push(now - last_read);
        }
        last_read = Some(now);
        seen.lines += chunk.iter().filter(|byte| **byte == b'\n').count();
    }
    seen.last_byte = sent.elapsed();
    seen.outcome = Ok(status);
    seen
}

/// A client for `streams` concurrent streams to one server, each on its own
/// connection.
pub fn load_client(streams: usize) -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(streams).build().expect("a client")
}

/// `streams` concurrent streams, all started at once.
pub async fn burst(client: &reqwest::Client, url: &str, body: &str, streams: usize) -> Vec<StreamSeen> {
    futures::future::join_all((0..streams).map(|_| stream_once(client, url, body.to_string()))).await
}

/// A prompt the echo model answers with `tokens` tokens: two-letter words
/// without digits (`redact` holds back digit runs that might be a card number).
pub fn echo_prompt(tokens: usize) -> String {
    let word = |index: usize| {
        format!("{}{}", char::from(b'a' + (index / 26 % 26) as u8), char::from(b'a' + (index % 26) as u8))
    };
    (0..tokens).map(word).collect::<Vec<_>>().join(" ")
}

/// A server process that is not streamhost, stopped when dropped.
pub struct ChildServer {
    pub child: std::process::Child,
    pub base: String,
}

impl ChildServer {
    /// Starts `command`, which prints `listening on http://HOST:PORT` once
    /// it accepts.
    pub fn start(mut command: std::process::Command) -> ChildServer {
        use std::io::BufRead;
        let mut child = command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the server starts");
        let stdout = child.stdout.take().expect("piped");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let base = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix("listening on ").map(str::to_string))
            .expect("the server says where it listens");
        // Keep draining its output, so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        ChildServer { child, base }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
