//! The `sinks` of a manifest: where its detached runs' events go (the
//! schema only; `runs::sinks` delivers them).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

/// A sink as a manifest names it.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    /// `"type": "appsync"`: an AppSync GraphQL mutation per event it sends.
    Appsync(AppSyncSink),
    /// `"type": "webhook"`: a signed POST per batch of events (Standard
    /// Webhooks).
    Webhook(WebhookSink),
}

/// The event types a run logs, which a sink may choose among.
const EVENT_TYPES: [&str; 9] = ["metadata", "text", "status", "usage", "end", "error", "frame", "raw", "done"];

impl SinkConfig {
    /// What is wrong with it that the manifest can say at once: an event
    /// type that no run logs, a webhook secret that is not base64.
    pub fn check(&self) -> Result<(), String> {
        let events: Vec<&String> = match self {
            SinkConfig::Appsync(sink) => sink.mutations.iter().flat_map(|mutations| mutations.keys()).collect(),
            SinkConfig::Webhook(sink) => {
                if let Some(secret) = &sink.secret {
                    signing_key(secret)?;
                }
                sink.events.iter().flatten().collect()
            }
        };
        match events.into_iter().find(|kind| !EVENT_TYPES.contains(&kind.as_str())) {
            Some(kind) => Err(format!("`{kind}` is not an event type of a run (one of {})", EVENT_TYPES.join(", "))),
            None => Ok(()),
        }
    }

    /// The sink's `type`: `appsync` or `webhook`.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Appsync(_) => "appsync",
            SinkConfig::Webhook(_) => "webhook",
        }
    }
}

/// How an AppSync sink authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AppSyncAuth {
    /// `x-api-key`: the sink's `apiKey`, else `--appsync-api-key`.
    ApiKey,
    /// SigV4 with the host's AWS credentials (on Lambda, its role, which
    /// needs `appsync:GraphQL` on the mutation's field).
    Iam,
}

/// An `appsync` sink in a manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppSyncSink {
    /// The API's GraphQL URL; default `--appsync-url`.
    #[serde(default)]
    pub url: Option<String>,
    /// Default: `apiKey` where a key is given (here or `--appsync-api-key`),
    /// else `iam`.
    #[serde(default)]
    pub auth: Option<AppSyncAuth>,
    /// The API key sent as `x-api-key` with `"auth": "apiKey"`; default
    /// `--appsync-api-key`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// The region to sign for; default: the one in an AppSync URL
    /// (`….appsync-api.<region>.amazonaws.com`), else the SDK's.
    #[serde(default)]
    pub region: Option<String>,
    /// The mutation per event type; default: `text` and `raw` events as
    /// seed 003's `sendChunk` mutation. Other events are not sent.
    #[serde(default)]
    pub mutations: Option<BTreeMap<String, String>>,
}

/// A `webhook` sink in a manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookSink {
    /// The URL each batch of events is POSTed to.
    pub url: String,
    /// The signing secret, base64 (`whsec_…` as Standard Webhooks
    /// libraries make them); default `--webhook-secret`.
    #[serde(default)]
    pub secret: Option<String>,
    /// The event types it takes; default: all, `done` last.
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

/// A webhook secret's key: base64 after an optional `whsec_` prefix, as
/// Standard Webhooks libraries read it.
pub(crate) fn signing_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .map_err(|error| format!("the webhook secret is not base64 (after an optional `whsec_`): {error}"))
}
