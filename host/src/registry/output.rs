//! A plugin's stdout and stderr. Each line goes to the host's log, tagged
//! with the plugin and the stream; the last few lines of stderr are kept to
//! explain a trap (a Rust panic message, a Python traceback). Nothing is
//! ever refused: a plugin that prints a lot costs log lines, never a trap.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tracing::info;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::plugin_store::PluginName;

/// Longer lines are cut to this many bytes.
const MAX_LINE: usize = 4 * 1024;
/// How many of the last lines are kept.
const TAIL_LINES: usize = 3;

#[derive(Clone)]
pub struct PluginOutput(Arc<Mutex<Lines>>);

struct Lines {
    plugin: PluginName,
    stream: &'static str,
    /// The line being written, up to its newline.
    partial: Vec<u8>,
    tail: VecDeque<String>,
}

impl PluginOutput {
    /// `stream` is `stdout` or `stderr`.
    pub fn new(plugin: PluginName, stream: &'static str) -> Self {
        Self(Arc::new(Mutex::new(Lines { plugin, stream, partial: Vec::new(), tail: VecDeque::new() })))
    }

    /// The last non-empty lines, joined with ` / ` (and what is still
    /// unfinished), or `None` when nothing was written.
    pub fn tail(&self) -> Option<String> {
        let lines = self.0.lock().unwrap();
        let unfinished = String::from_utf8_lossy(&lines.partial);
        let all: Vec<&str> =
            lines.tail.iter().map(String::as_str).chain([unfinished.trim()]).filter(|line| !line.is_empty()).collect();
        let tail = all[all.len().saturating_sub(TAIL_LINES)..].join(" / ");
        (!tail.is_empty()).then_some(tail)
    }

    fn write(&self, bytes: &[u8]) {
        let mut lines = self.0.lock().unwrap();
        for &byte in bytes {
            if byte == b'\n' {
                lines.end_line();
            } else if lines.partial.len() < MAX_LINE {
                lines.partial.push(byte);
            }
        }
    }
}

impl Lines {
    fn end_line(&mut self) {
        let line = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).trim_end().to_string();
        if line.is_empty() {
            return;
        }
        info!(plugin = %self.plugin, stream = self.stream, "{}", crate::log_text::escaped(&line));
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }
}

impl IsTerminal for PluginOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for PluginOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for PluginOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        PluginOutput::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for PluginOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for PluginOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        PluginOutput::write(&self, bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_and_cuts_long_ones() {
        let output = PluginOutput::new("p".parse().unwrap(), "stderr");
        assert_eq!(output.tail(), None);
        output.write(b"one\n\ntwo\nthree\nfour");
        assert_eq!(output.tail().as_deref(), Some("two / three / four"));
        output.write(&[b'x'; 2 * MAX_LINE]);
        output.write(b"\n");
        assert_eq!(output.tail().unwrap(), format!("two / three / four{}", "x".repeat(MAX_LINE - 4)));
    }
}
