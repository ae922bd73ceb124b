//! AWS AppSync on loopback: Amplify's AppSync simulator from npm serving
//! seed 003's schema (`appsync/schema.graphql`), with its real-time
//! WebSocket for subscriptions, and seed 003's client against it
//! (`tests/clients/appsync/`). The packages are installed from the lock
//! file the first time (`npm ci`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Seed 003's client and the simulator: `tests/clients/appsync/` (this crate
/// is `tests/support/`).
const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../clients/appsync");

fn install() -> PathBuf {
    crate::npm_ci(Path::new(CLIENTS), "@aws-amplify/amplify-appsync-simulator")
}

pub struct Simulator {
    child: Child,
    /// `http://127.0.0.1:P/graphql`.
    pub graphql_url: String,
    pub api_key: String,
}

impl Simulator {
    /// Starts the simulator; its `startConversation` resolver invokes
    /// `function` through Lambda's `Invoke` API at `lambda_endpoint`, in
    /// `Event` mode, as AppSync does.
    pub fn start(lambda_endpoint: &str, function: &str) -> Simulator {
        let dir = install();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let api_key = "da2-loopbackkey".to_string();
        let mut child = Command::new("node")
            .args([
                "simulator.mjs",
                "--port",
                &port.to_string(),
                "--api-key",
                &api_key,
                "--lambda-endpoint",
                lambda_endpoint,
                "--function",
                function,
            ])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let ready = stdout.lines().map_while(Result::ok).any(|line| line.starts_with("appsync simulator listening on"));
        assert!(ready, "the AppSync simulator did not start");
        Simulator { child, graphql_url: format!("http://127.0.0.1:{port}/graphql"), api_key }
    }

    /// Runs seed 003's client: subscribe to `conversation_id`, start the
    /// conversation with `prompt`, print chunks until `quiet` passes with
    /// none. Each line of its output, with when it came.
    pub async fn seed003_client(
        &self,
        conversation_id: &str,
        prompt: &str,
        quiet: Duration,
    ) -> Vec<(Duration, serde_json::Value)> {
        let dir = install();
        let mut child = tokio::process::Command::new("node")
            .args([
                "seed003-client.mjs",
                "--url",
                &self.graphql_url,
                "--api-key",
                &self.api_key,
                "--conversation-id",
                conversation_id,
                "--prompt",
                prompt,
            ])
            .args(["--quiet-ms", &quiet.as_millis().to_string()])
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let started = Instant::now();
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().unwrap()));
        let mut received = Vec::new();
        while let Some(line) = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the client finished in time")
            .unwrap()
        {
            received.push((
                started.elapsed(),
                serde_json::from_str(&line).unwrap_or_else(|error| panic!("{error}: {line}")),
            ));
        }
        let status = child.wait().await.unwrap();
        assert!(status.success(), "seed 003's client failed: {received:?}");
        received
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
