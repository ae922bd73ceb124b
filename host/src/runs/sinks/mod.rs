//! Sinks: where a pipeline's manifest sends every event of its runs as it
//! happens, besides the run store. Each sink follows the run's log on its
//! own (a slow or failing sink holds back neither the run nor the other
//! sinks), retries a failed delivery with backoff, and records in the run's
//! status what it has delivered. A sink that has spent its retries on one
//! delivery stops (`failed`): it never skips an event and goes on after
//! the gap. Backends: `appsync` (a GraphQL mutation
//! per chunk, seed 003's) and `webhook` (a signed POST per batch).
//!
//! ```json
//! "sinks": {
//!   "chunks": { "type": "appsync", "auth": "iam" },
//!   "audit": { "type": "webhook", "url": "https://example.com/hook", "events": ["text", "usage", "error", "done"] }
//! }
//! ```

mod appsync;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use tracing::{Instrument, warn};

pub use crate::manifest::sinks::{AppSyncAuth, AppSyncSink, SinkConfig, WebhookSink};

use super::{RunRecord, Runs, SinkStatus, StoredEvent};

/// Host-wide sink settings: credentials and addresses that a manifest (in
/// the plugin store) should not have to hold.
#[derive(Debug, Clone, Args)]
pub struct SinkSettings {
    /// The GraphQL URL of the AppSync API that `appsync` sinks without a
    /// `url` call (`https://….appsync-api.<region>.amazonaws.com/graphql`).
    #[arg(long, env = "STREAMHOST_APPSYNC_URL", value_name = "URL")]
    pub appsync_url: Option<String>,

    /// The API key for `appsync` sinks with `"auth": "apiKey"` and no key of
    /// their own.
    #[arg(long, env = "STREAMHOST_APPSYNC_API_KEY", value_name = "KEY", hide_env_values = true)]
    pub appsync_api_key: Option<String>,

    /// The secret that signs webhook deliveries without a `secret` of their
    /// own: base64, after an optional `whsec_` (Standard Webhooks).
    #[arg(long, env = "STREAMHOST_WEBHOOK_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// How often a sink retries one failed delivery before it gives up.
    #[arg(long, env = "STREAMHOST_SINK_RETRIES", default_value_t = 5, value_name = "N")]
    pub sink_retries: u32,

    /// The longest one delivery may take, in milliseconds.
    #[arg(long, env = "STREAMHOST_SINK_TIMEOUT_MS", default_value_t = 10_000, value_name = "MS")]
    pub sink_timeout_ms: u64,
}

/// What every sink shares: the HTTP client, the host's settings and, for
/// AppSync with IAM, the SDK configuration that signs.
pub struct Sinks {
    client: reqwest::Client,
    settings: SinkSettings,
    aws: tokio::sync::OnceCell<aws_config::SdkConfig>,
}

/// Why one delivery failed; `retry` where trying again may help.
pub(super) struct Failure {
    message: String,
    retry: bool,
}

impl Failure {
    fn of_response(status: reqwest::StatusCode, body: &str) -> Self {
        let body: String = body.trim().chars().take(300).collect();
        let message = if body.is_empty() { format!("answered {status}") } else { format!("answered {status}: {body}") };
        Failure { message, retry: status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 }
    }

    fn of_send(error: reqwest::Error) -> Self {
        Failure { message: format!("could not be reached: {error}"), retry: true }
    }
}

impl Sinks {
    /// What the sinks share, from the host's `settings`: one HTTP client, each
    /// request bounded by `--sink-timeout-ms`. Fails only when that client
    /// cannot be built.
    pub async fn from_settings(settings: &SinkSettings) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().timeout(Duration::from_millis(settings.sink_timeout_ms)).build()?;
        Ok(Self { client, settings: settings.clone(), aws: tokio::sync::OnceCell::new() })
    }

    /// The SDK configuration, loaded once, the first time a sink signs.
    async fn aws(&self) -> aws_config::SdkConfig {
        self.aws.get_or_init(crate::aws::load).await.clone()
    }

    /// Starts delivering `record`'s run to each of `configs`; the handles
    /// end when each sink has delivered the whole run or given up.
    pub(super) fn start(
        &self,
        runs: &Arc<Runs>,
        record: &RunRecord,
        configs: std::collections::BTreeMap<String, SinkConfig>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        configs
            .into_iter()
            .map(|(name, config)| {
                let delivery = Delivery {
                    runs: runs.clone(),
                    record: record.clone(),
                    status: SinkStatus::new(config.kind()),
                    name,
                };
                tokio::spawn(delivery.run(config).in_current_span())
            })
            .collect()
    }
}

/// One sink delivering one run.
struct Delivery {
    runs: Arc<Runs>,
    record: RunRecord,
    name: String,
    status: SinkStatus,
}

/// The most events one webhook delivery carries.
const MAX_BATCH: usize = 100;

impl Delivery {
    async fn run(mut self, config: SinkConfig) {
        let sinks = &self.runs.sinks;
        let target = match &config {
            SinkConfig::Appsync(sink) => sink.target(sinks).await.map(Target::AppSync),
            SinkConfig::Webhook(sink) => sink.target(&sinks.settings).map(Target::Webhook),
        };
        let target = match target {
            Ok(target) => target,
            Err(message) => return self.give_up(message).await,
        };
        let mut batches = self.runs.follow(self.record.id.clone(), 0).ready_chunks(MAX_BATCH);
        while let Some(batch) = batches.next().await {
            let events = match batch.into_iter().collect::<Result<Vec<_>, _>>() {
                Ok(events) => events,
                Err(error) => return self.give_up(format!("the run's events could not be read: {error}")).await,
            };
            let groups: Vec<Vec<StoredEvent>> = match &target {
                // One mutation per chunk, the chunks in order.
                Target::AppSync(_) => events.into_iter().map(|event| vec![event]).collect(),
                Target::Webhook(_) => vec![events],
            };
            for group in groups {
                if let Err(message) = self.deliver(&target, &group).await {
                    return self.give_up(message).await;
                }
            }
        }
        self.status.state = "done".into();
        self.save().await;
    }

    /// Delivers `events` (those the sink takes), retrying with exponential
    /// backoff and jitter; `Err` once the retries are spent or a failure is
    /// one that retrying cannot mend.
    async fn deliver(&mut self, target: &Target, events: &[StoredEvent]) -> Result<(), String> {
        let Some(last) = events.last().map(|event| event.seq) else { return Ok(()) };
        let chosen: Vec<&StoredEvent> = events.iter().filter(|event| target.takes(&event.kind)).collect();
        let retries = self.runs.sinks.settings.sink_retries;
        let mut attempt = 0;
        while !chosen.is_empty() {
            let outcome = match target {
                Target::AppSync(appsync) => appsync.send(&self.runs.sinks.client, &self.record, chosen[0]).await,
                Target::Webhook(webhook) => {
                    webhook.send(&self.runs.sinks.client, &self.record, &self.name, &chosen).await
                }
            };
            let Err(failure) = outcome else { break };
            self.status.failures += 1;
            self.status.last_error = Some(failure.message.clone());
            self.save().await;
            if !failure.retry || attempt >= retries {
                return Err(failure.message);
            }
            let backoff = Duration::from_millis((100u64 << attempt.min(6)).min(5_000));
            tokio::time::sleep(backoff + Duration::from_millis(fastrand::u64(..=backoff.as_millis() as u64 / 2))).await;
            attempt += 1;
        }
        self.status.acknowledged = last;
        self.save().await;
        Ok(())
    }

    async fn give_up(mut self, message: String) {
        warn!(run = %self.record.id, sink = %self.name, %message, "a sink gave up; the run goes on");
        self.status.state = "failed".into();
        self.status.last_error = Some(message);
        self.save().await;
    }

    async fn save(&self) {
        if let Err(error) = self.runs.store.save_sink(&self.record.id, &self.name, &self.status).await {
            warn!(run = %self.record.id, sink = %self.name, %error, "a sink's status could not be saved");
        }
    }
}

/// A sink ready to deliver: its address and credentials resolved.
enum Target {
    AppSync(appsync::Ready),
    Webhook(webhook::Ready),
}

impl Target {
    fn takes(&self, kind: &str) -> bool {
        match self {
            Target::AppSync(appsync) => appsync.events.iter().any(|taken| taken == kind),
            Target::Webhook(webhook) => {
                webhook.events.as_ref().is_none_or(|events| events.iter().any(|taken| taken == kind))
            }
        }
    }
}
