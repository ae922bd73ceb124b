//! Model sources: where the events of a stream come from.
//!
//! `start` picks the provider (the request's `model.provider`, else the
//! host's `--provider`), makes the call and waits for the source's first
//! event, retrying throttling and unavailability with backoff up to then
//! (`retry`). What fails before the first event is an error answered to the
//! caller; what fails after it is an error event in the stream. Dropping the
//! stream drops the connection to the source.
//!
//! What a source says in an error (an in-band error event, an OpenAI error
//! object, a Bedrock exception) reaches the caller only through
//! `error::scrub`, which `start` applies to every error on its way out of
//! this module, whichever source made it: ARNs and account ids never leave
//! it. (The agent runtime also scrubs the bytes of an error's SSE event, which
//! `sse-passthrough` forwards as they are; an HTTP error's body goes to the
//! log only.) The host's log keeps the source's words as they were.
//!
//! Every source implements [`ModelSource`] (`source`): it builds its own
//! request from the [`ModelCall`] once, and sends it, per attempt. They are
//! HTTP upstreams reached with the host's own credentials: Bedrock
//! (`bedrock`: ConverseStream, `bedrock-raw`: the model's own chunks), an
//! OpenAI-compatible server (`openai`), an agent runtime that streams SSE
//! (`upstream`); and the offline `echo`.

mod bedrock;
mod body;
pub mod call;
mod echo;
mod error;
mod openai;
mod retry;
mod settings;
mod source;
pub(crate) mod sse;
mod upstream;

use futures::stream::BoxStream;
use futures::{StreamExt, stream};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;
use tracing::{Instrument, warn};

use crate::log_text::escaped;
use crate::telemetry::instruments::ModelCallMeter;

pub use call::{ModelCall, ReasoningBlocks};
pub use echo::{EchoFrames, EchoProvider, EchoRule, EchoSettings, tokenize};
pub use error::{ProviderError, UpstreamFailure};
pub use settings::{ProviderKind, ProviderSettings};
pub use source::ModelSource;

use crate::event::Event;
use bedrock::Bedrock;
use openai::OpenAi;
use retry::RetryPolicy;
use upstream::Upstream;

/// A stream of the host's events (`event`), as a source or a pipeline sends
/// them.
pub type EventStream = BoxStream<'static, Event>;

/// The request's `model` object: which provider and model, and the
/// inference settings. Each field falls back to the host's default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelOptions {
    /// The model source (`echo`, `bedrock`, `bedrock-raw`, `openai`,
    /// `upstream`); without one, the host's `--provider`.
    pub provider: Option<ProviderKind>,
    /// The model id (Bedrock) or model name (OpenAI-compatible servers).
    pub id: Option<String>,
    /// The sampling temperature, passed to the model as is.
    pub temperature: Option<f64>,
    /// The most tokens the model may generate (Converse's `maxTokens`,
    /// OpenAI's `max_tokens`).
    pub max_tokens: Option<u32>,
    /// Nucleus sampling: the probability mass of the likeliest tokens sampled
    /// from (`topP`, OpenAI's `top_p`).
    pub top_p: Option<f64>,
    /// Texts that stop the generation when the model produces one (OpenAI's
    /// `stop`).
    pub stop_sequences: Option<Vec<String>>,
    /// `bedrock-raw` only: the request body for the model, as is, instead of
    /// the one the host builds for the model's family.
    pub body: Option<Map<String, Value>>,
    /// `echo` only: scripted answers (see `echo`), instead of `--echo-script`.
    pub script: Option<Vec<EchoRule>>,
    /// `echo` only: also send the frames of another source's wire format
    /// (`agentcore-sse`), to play that source offline.
    pub frames: Option<EchoFrames>,
    /// `bedrock` only: the guardrail ConverseStream applies
    /// (`guardrailConfig`).
    pub guardrail: Option<GuardrailOptions>,
    /// `bedrock` only: where prompt-cache points go (`cachePoint` blocks):
    /// after the system prompt, after the tools, after the last message.
    pub cache_points: Option<Vec<CachePointAt>>,
    /// Whether the model must call one of the call's tools, and which
    /// (`"auto"`, `"any"`, `"none"`, `{"tool": "<name>"}`); the model
    /// decides when absent. Without tools it is not sent.
    pub tool_choice: Option<ToolChoice>,
}

/// Whether the model must call a tool: Converse's `toolChoice` (`auto`,
/// `any`, `tool`) and OpenAI's `tool_choice` (`auto`, `required`, a
/// function), plus `none`, which Converse does not have (its tools are then
/// left out, where the conversation holds no tool turns).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `"auto"`, `"any"` or `"none"`.
    Mode(ToolChoiceMode),
    /// `{"tool": "<name>"}`: that tool.
    Tool {
        /// The tool's name.
        tool: String,
    },
}

/// The modes of a [`ToolChoice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoiceMode {
    /// The model decides.
    Auto,
    /// The model must call one of the tools.
    Any,
    /// The model must not call a tool.
    None,
}

/// A Bedrock guardrail, as ConverseStream's `guardrailConfig` takes it
/// (<https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_GuardrailStreamConfiguration.html>).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GuardrailOptions {
    /// The guardrail's id or ARN (`guardrailIdentifier`).
    pub identifier: String,
    /// The guardrail's version (`guardrailVersion`): a number, or `DRAFT`.
    pub version: String,
    /// Whether the guardrail's trace is returned (`enabled`/`disabled`).
    #[serde(default)]
    pub trace: bool,
    /// `sync` (default) or `async`.
    #[serde(default)]
    pub stream_processing_mode: Option<String>,
}

/// Where a prompt-cache point goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CachePointAt {
    /// After the system prompt, when there is one.
    System,
    /// After the tools' specifications, when there are tools.
    Tools,
    /// After the last message of the conversation.
    Messages,
}

/// The settings that only shorten a model's answer, which a caller may
/// always set through a standard API: `maxTokens` and `stopSequences`.
#[derive(Debug, Default)]
pub struct Shortening {
    max_tokens: Option<u32>,
    stop_sequences: Option<Vec<String>>,
}

impl ModelOptions {
    /// Takes the settings that only shorten the answer out of these options.
    pub fn take_shortening(&mut self) -> Shortening {
        Shortening { max_tokens: self.max_tokens.take(), stop_sequences: self.stop_sequences.take() }
    }

    /// Puts `shortening` back: its `maxTokens` no more than `own`'s (the
    /// pipeline's cap); its stop sequences, like any a caller sets, in place
    /// of the pipeline's.
    pub fn shortened_by(&mut self, shortening: Shortening, own: &ModelOptions) {
        let capped = match (shortening.max_tokens, own.max_tokens) {
            (Some(asked), Some(cap)) => Some(asked.min(cap)),
            (asked, _) => asked,
        };
        self.max_tokens = capped;
        self.stop_sequences = shortening.stop_sequences;
    }

    /// These options, with each one not given taken from `defaults`.
    pub fn or(self, defaults: &ModelOptions) -> ModelOptions {
        ModelOptions {
            provider: self.provider.or(defaults.provider),
            id: self.id.or_else(|| defaults.id.clone()),
            temperature: self.temperature.or(defaults.temperature),
            max_tokens: self.max_tokens.or(defaults.max_tokens),
            top_p: self.top_p.or(defaults.top_p),
            stop_sequences: self.stop_sequences.or_else(|| defaults.stop_sequences.clone()),
            body: self.body.or_else(|| defaults.body.clone()),
            script: self.script.or_else(|| defaults.script.clone()),
            frames: self.frames.or(defaults.frames),
            guardrail: self.guardrail.or_else(|| defaults.guardrail.clone()),
            cache_points: self.cache_points.or_else(|| defaults.cache_points.clone()),
            tool_choice: self.tool_choice.or_else(|| defaults.tool_choice.clone()),
        }
    }
}

/// A source that has answered: facts for the stream's first metadata event,
/// and its events.
pub struct Started {
    /// What the source reported, added to the first metadata event (an
    /// upstream's `sessionId`).
    pub metadata: Map<String, Value>,
    /// The source's events, from its first.
    pub events: EventStream,
}

impl Started {
    fn new(events: EventStream) -> Self {
        Self { metadata: Map::new(), events }
    }
}

/// The configured providers. Bedrock's client is built at start-up when it
/// is the default, else on first use, so an offline host never looks for
/// AWS credentials.
pub struct Providers {
    default: ProviderKind,
    default_model: Option<String>,
    echo: EchoProvider,
    bedrock: OnceCell<Bedrock>,
    openai: Option<OpenAi>,
    upstream: Option<Upstream>,
    retry: RetryPolicy,
}

impl Providers {
    /// The providers the settings configure; fails on a setting that is not
    /// valid (a URL, the `--echo-script` file, upstream auth without its token).
    pub async fn new(settings: &ProviderSettings) -> anyhow::Result<Self> {
        let default = settings.default_provider();
        let providers = Self {
            default,
            default_model: settings.model.clone(),
            echo: EchoProvider::new(&settings.echo)?,
            bedrock: OnceCell::new(),
            openai: settings
                .openai_base_url
                .as_ref()
                .map(|base_url| OpenAi::new(base_url, settings.openai_api_key.clone()))
                .transpose()?,
            upstream: Upstream::from_settings(settings).await?,
            retry: settings.retry_policy(),
        };
        if matches!(default, ProviderKind::Bedrock | ProviderKind::BedrockRaw) {
            providers.bedrock().await;
        }
        Ok(providers)
    }

    /// The source of calls that name none (`--provider` or its default).
    pub fn default_kind(&self) -> ProviderKind {
        self.default
    }

    /// Starts a model stream; see the module documentation. The one place
    /// a source is picked by its kind, and the one way out of this module,
    /// where every error's source text is scrubbed.
    pub async fn start(&self, call: &ModelCall) -> Result<EventStream, ProviderError> {
        let kind = call.options.provider.unwrap_or(self.default);
        let model_id = call.options.id.as_deref().or(self.default_model.as_deref());
        let model = reported_model(kind, model_id.map(str::to_string));
        let mut meter = ModelCallMeter::start(&kind.to_string(), model.as_deref());
        // A GenAI client span (OpenTelemetry's conventions) up to the first event.
        let span = tracing::info_span!(
            "chat",
            otel.name = %format!("chat {}", meter.model().unwrap_or_default()).trim_end(),
            otel.kind = "client",
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = %kind,
            gen_ai.request.model = meter.model(),
        );
        match self.open(kind, call, model_id).instrument(span).await {
            Ok(started) => Ok(with_metadata(kind, model, started, meter).map(error::scrubbed_event).boxed()),
            Err(error) => {
                meter.fail(error.code().as_str());
                Err(error.scrubbed())
            }
        }
    }

    /// Starts `kind`'s call, up to its first event.
    async fn open(&self, kind: ProviderKind, call: &ModelCall, model: Option<&str>) -> Result<Started, ProviderError> {
        match kind {
            ProviderKind::Echo => self.call(&self.echo, call, model).await,
            ProviderKind::Bedrock => self.call(self.bedrock().await, call, model).await,
            ProviderKind::BedrockRaw => self.call(&bedrock::Raw(self.bedrock().await), call, model).await,
            ProviderKind::Openai => {
                let openai = self.openai.as_ref().ok_or(ProviderError::NotConfigured(kind, "set --openai-base-url"))?;
                self.call(openai, call, model).await
            }
            ProviderKind::Upstream => {
                let upstream =
                    self.upstream.as_ref().ok_or(ProviderError::NotConfigured(kind, "set --upstream-url"))?;
                self.call(upstream, call, model).await
            }
        }
    }

    /// Builds `source`'s request once, then sends it, under the retry policy
    /// unless the source opts out.
    async fn call<S: ModelSource>(
        &self,
        source: &S,
        call: &ModelCall,
        model: Option<&str>,
    ) -> Result<Started, ProviderError> {
        let request = source.request(call, model)?;
        if !S::RETRIED {
            return source.send(&request).await.map_err(|failure| ProviderError::Upstream { failure, attempts: 1 });
        }
        self.retry.start(|| source.send(&request)).await
    }

    async fn bedrock(&self) -> &Bedrock {
        self.bedrock.get_or_init(|| async { Bedrock::new(&crate::aws::load().await) }).await
    }
}

/// The model a stream's metadata and metrics name: an upstream has no model
/// of ours to name, the offline model is `echo`.
fn reported_model(kind: ProviderKind, model_id: Option<String>) -> Option<String> {
    match kind {
        ProviderKind::Echo => Some("echo".to_string()),
        ProviderKind::Upstream => None,
        _ => model_id,
    }
}

/// The stream's first event names its source: `{"provider":…,"model":…}`
/// and what the source reported (an upstream's `sessionId`). An upstream's
/// address is never part of it. `meter` records the call's metrics as its
/// events go by; a failure is logged here, once, whoever reads the stream.
fn with_metadata(
    kind: ProviderKind,
    model: Option<String>,
    started: Started,
    mut meter: ModelCallMeter,
) -> EventStream {
    let mut metadata = Map::new();
    metadata.insert("provider".into(), json!(kind.to_string()));
    if let Some(model) = model {
        metadata.insert("model".into(), json!(model));
    }
    metadata.extend(started.metadata);
    let events = started.events.inspect(move |event| {
        meter.observe(event);
        if let Event::Error(error) = event {
            let ran_ms = meter.elapsed().as_millis() as u64;
            let (code, message) = (escaped(&error.code), escaped(&error.message));
            warn!(provider = %kind, %code, ran_ms, %message, "the model source failed");
        }
    });
    stream::iter([Event::Metadata(Value::Object(metadata).to_string())]).chain(events).boxed()
}

/// The HTTP client of the HTTP-speaking sources: a connect timeout so an
/// unreachable source fails fast (and is retried), TCP_NODELAY so small
/// requests are not held back.
fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(3)).tcp_nodelay(true).build()?)
}

/// A request that got no answer, as a failure: retried only when the
/// connection was never made, since a request that was sent may have done
/// its work (see [`UpstreamFailure`]).
fn send_failure(error: reqwest::Error) -> UpstreamFailure {
    let connect = error.is_connect();
    let message = error.without_url().to_string();
    if connect { UpstreamFailure::Unavailable(message) } else { UpstreamFailure::Failed(message) }
}

/// A response that is not a success, as a failure. Its body goes to the
/// host's log, not to the caller: it can name the source's internals beyond
/// what `error::scrub` knows to remove (hosts, paths, stack traces).
async fn response_failure(response: reqwest::Response, source: &str) -> Result<reqwest::Response, UpstreamFailure> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    tracing::warn!(%status, body = %body.chars().take(2000).collect::<String>(), "{source} answered with an error");
    Err(UpstreamFailure::from_status(status.as_u16(), format!("from {source}")))
}
