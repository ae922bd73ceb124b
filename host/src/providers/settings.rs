//! The providers' settings: each a flag and an environment variable.

use std::fmt;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;

use super::EchoSettings;
use super::retry::RetryPolicy;

/// A model source, as `--provider` and a request's `model.provider` name it
/// (`echo`, `bedrock`, `bedrock-raw`, `openai`, `upstream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// Offline: streams the prompt back.
    Echo,
    /// Amazon Bedrock ConverseStream.
    Bedrock,
    /// Amazon Bedrock InvokeModelWithResponseStream: the model's own chunks,
    /// as `frame` events for a decoder plugin.
    BedrockRaw,
    /// An OpenAI-compatible chat completions server.
    Openai,
    /// An agent runtime that streams SSE (`--upstream-url`).
    Upstream,
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_possible_value().expect("no variant is skipped").get_name())
    }
}

/// How the host authenticates to the upstream agent runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpstreamAuth {
    None,
    /// `Authorization: Bearer <--upstream-token>`.
    Bearer,
    /// AWS Signature Version 4 with the host's credentials.
    Sigv4,
}

/// The model sources' settings: the default source and model, where the
/// OpenAI-compatible server and the upstream are, and retries.
#[derive(Debug, Clone, Args)]
pub struct ProviderSettings {
    /// The model source for requests that do not name one. Default: `upstream`
    /// when --upstream-url is set, else `openai` when --openai-base-url is
    /// set, else `echo`.
    #[arg(long, env = "STREAMHOST_PROVIDER", value_name = "PROVIDER")]
    pub provider: Option<ProviderKind>,

    /// The model for requests that do not name one: a Bedrock model id or
    /// inference profile, or an OpenAI-compatible server's model name.
    #[arg(long, env = "STREAMHOST_MODEL", value_name = "ID")]
    pub model: Option<String>,

    /// An OpenAI-compatible API's base URL, e.g. `http://127.0.0.1:11434/v1`
    /// (Ollama) or `http://127.0.0.1:8000/v1` (vLLM).
    #[arg(long, env = "STREAMHOST_OPENAI_BASE_URL", value_name = "URL")]
    pub openai_base_url: Option<String>,

    /// The OpenAI-compatible API's key, sent as a bearer token.
    #[arg(long, env = "STREAMHOST_OPENAI_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub openai_api_key: Option<String>,

    /// The agent runtime that streams SSE; requests are POSTed to it. Callers
    /// never see it.
    #[arg(long, env = "STREAMHOST_UPSTREAM_URL", value_name = "URL")]
    pub upstream_url: Option<String>,

    /// How to authenticate to the upstream. Default: `bearer` when
    /// --upstream-token is set, else `none`.
    #[arg(long, env = "STREAMHOST_UPSTREAM_AUTH", value_name = "AUTH")]
    pub upstream_auth: Option<UpstreamAuth>,

    /// The bearer token for the upstream.
    #[arg(long, env = "STREAMHOST_UPSTREAM_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub upstream_token: Option<String>,

    /// The service name SigV4 signs for.
    #[arg(
        long,
        env = "STREAMHOST_UPSTREAM_SIGV4_SERVICE",
        default_value = "bedrock-agentcore",
        value_name = "SERVICE"
    )]
    pub upstream_sigv4_service: String,

    /// Attempts at a model source before its first event, when it throttles
    /// or is unavailable. Once a stream has begun it is never retried.
    #[arg(long, env = "STREAMHOST_PROVIDER_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10), value_name = "N")]
    pub provider_attempts: u32,

    /// The first pause between attempts; each next one doubles (with jitter).
    #[arg(long, env = "STREAMHOST_PROVIDER_BACKOFF_MS", default_value_t = 200, value_name = "MS")]
    pub provider_backoff_ms: u64,

    /// How long one attempt may take to produce the source's first event.
    #[arg(long, env = "STREAMHOST_PROVIDER_FIRST_EVENT_TIMEOUT_MS", default_value_t = 60_000, value_name = "MS")]
    pub provider_first_event_timeout_ms: u64,

    /// The offline `echo` source's settings.
    #[command(flatten)]
    pub echo: EchoSettings,
}

impl ProviderSettings {
    /// `--provider`, or its default: `upstream` when `--upstream-url` is set,
    /// else `openai` when `--openai-base-url` is set, else `echo`.
    pub fn default_provider(&self) -> ProviderKind {
        self.provider.unwrap_or(if self.upstream_url.is_some() {
            ProviderKind::Upstream
        } else if self.openai_base_url.is_some() {
            ProviderKind::Openai
        } else {
            ProviderKind::Echo
        })
    }

    /// `--upstream-auth`, or its default: `bearer` when `--upstream-token` is
    /// set, else `none`.
    pub fn upstream_auth(&self) -> UpstreamAuth {
        self.upstream_auth.unwrap_or(if self.upstream_token.is_some() {
            UpstreamAuth::Bearer
        } else {
            UpstreamAuth::None
        })
    }

    pub(super) fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.provider_attempts,
            backoff: Duration::from_millis(self.provider_backoff_ms),
            first_event_timeout: Duration::from_millis(self.provider_first_event_timeout_ms),
        }
    }
}
