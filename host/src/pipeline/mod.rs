//! source -> transforms, in order -> encoder -> body. The one implementation
//! behind every frontend; a frontend never knows which plugins run. The
//! source is a model (`providers`), or a multi-agent turn (`orchestrate`):
//! router, then agent. `pump` moves the events.
//!
//! `open` does everything that can fail before the response starts: it loads
//! and instantiates every plugin of the chain, starts the source and waits
//! for the first bytes, so that those failures are answered as errors. After
//! the first byte, a failure ends the stream with an error event in the
//! stream's own format.

pub mod inbound;
mod orchestrate;
mod pump;
mod resolve;
pub mod responses_state;
pub mod standard_api;
mod turn;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, stream};
use thiserror::Error;

pub use orchestrate::{AgentSettings, Orchestrator};
use pump::Pump;
pub use pump::Recording;
pub use resolve::{Inference, ResolveError, Target};

use crate::error_code::{Code, ErrorCode};
use crate::event::{DEFAULT_CONTENT_TYPE, Encoding, Event};
use crate::history::HistoryStore;
use crate::manifest::{Manifest, ManifestError, Manifests};
use crate::plugin_store::PluginName;
use crate::providers::{EventStream, ProviderError, Providers};
use crate::registry::{LoadError, PluginError, Registry, RoleError, TransformInstance};
use crate::request::Request;
use crate::wit::StreamContext;

/// The most source events handed to the first plugin in one call: whatever
/// is ready, up to this, goes as one batch.
const MAX_BATCH: usize = 64;

/// Why a stream could not be opened: a failure before its first bytes.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// A plugin of the chain could not be loaded (not in the store, not a
    /// streamhost component), failed (trapped, timed out, ran out of memory,
    /// refused) or had no instance slot.
    #[error(transparent)]
    Role(#[from] RoleError),
    /// The model source could not start the stream.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The source answered, and the chain wrote nothing of it: an answer
    /// is never an empty success.
    #[error(
        "the model source answered ({chunks} text chunks) but the chain wrote nothing of it: its formatter reads \
         only what this source does not send (`sse-passthrough` forwards an agent runtime's own frames)"
    )]
    AnswerDropped {
        /// The text chunks the source sent.
        chunks: u64,
    },
}

impl PipelineError {
    /// The code of this error in the host's table (error_code.rs), or a
    /// plugin's own when it refused.
    pub fn code(&self) -> Code<'_> {
        match self {
            PipelineError::Role(role) => role.code(),
            PipelineError::Provider(provider) => provider.code().into(),
            PipelineError::AnswerDropped { .. } => ErrorCode::AnswerDropped.into(),
        }
    }
}

/// Events out of a chain's last stage, and the failure that ended the
/// stream, once one has.
pub struct Batch {
    /// The events, not encoded.
    pub events: Vec<Event>,
    /// The error that ended the stream (its code and message): in the batch
    /// it ended and every later one.
    pub failure: Option<crate::event::ErrorInfo>,
}

/// A response about to stream: its media type, and the body.
pub struct Response {
    /// The body's media type: the last formatter's, else `application/x-ndjson`.
    pub content_type: String,
    /// The body's bytes as they are ready; dropping it ends the stream and its source.
    pub body: BoxStream<'static, Bytes>,
}

impl From<LoadError> for PipelineError {
    fn from(error: LoadError) -> Self {
        PipelineError::Role(error.into())
    }
}

impl From<PluginError> for PipelineError {
    fn from(error: PluginError) -> Self {
        PipelineError::Role(error.into())
    }
}

/// What every stream and every turn shares: the plugins, the model sources
/// and the conversations. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// Compiled, linked plugins.
    pub registry: Arc<Registry>,
    /// The model sources.
    pub providers: Arc<Providers>,
    /// The conversations of routed pipelines.
    pub history: Arc<HistoryStore>,
}

/// Source -> transforms -> encoder, for every frontend: opens a request's
/// chain and its source, and moves events through it.
pub struct Pipeline {
    manifests: Manifests,
    services: Services,
    /// Multi-agent turns, shared with the turns' tasks.
    orchestrator: Arc<Orchestrator>,
    active_streams: Arc<AtomicUsize>,
}

impl Pipeline {
    /// A pipeline over the named pipelines in `manifests`.
    pub fn new(manifests: Manifests, services: Services, orchestrator: Orchestrator) -> Self {
        Self { manifests, services, orchestrator: Arc::new(orchestrator), active_streams: Arc::default() }
    }

    /// The pipeline manifest named `name`, if there is one.
    pub async fn manifest(&self, name: &PluginName) -> Result<Option<Arc<Manifest>>, ManifestError> {
        self.manifests.get(name).await
    }

    /// The plugins: compiled, linked, and their instances' statistics.
    pub fn registry(&self) -> &Registry {
        &self.services.registry
    }

    /// The conversation store.
    pub fn history(&self) -> &crate::history::HistoryStore {
        &self.services.history
    }

    /// Streams whose body has not been dropped yet.
    pub fn active_streams(&self) -> usize {
        self.active_streams.load(Ordering::Relaxed)
    }

    /// Opens `request`, run as `manifest` says when it names a pipeline, up
    /// to its first bytes.
    pub async fn open(&self, request: Request, manifest: Option<Arc<Manifest>>) -> Result<Response, PipelineError> {
        let (content_type, pump) = self.start(request, manifest).await?;
        respond(content_type, pump).await
    }

    /// Opens `request` for a detached run: the events out of the chain's
    /// last stage, in batches, unencoded. A failure once the source has
    /// started is an error event, the stream's last, and is named in its
    /// batch (after a formatter the event is bytes).
    pub async fn open_events(
        &self,
        request: Request,
        manifest: Option<Arc<Manifest>>,
    ) -> Result<BoxStream<'static, Batch>, PipelineError> {
        let (_, pump) = self.start(request, manifest).await?;
        let batches = stream::unfold(pump, |mut pump| async move {
            let events = pump.next_events().await?;
            Some((Batch { events, failure: pump.failure.clone() }, pump))
        });
        Ok(batches.boxed())
    }

    /// Opens `request`'s chain like [`Pipeline::open`], and keeps the
    /// source's batches as the first stage gets them (`invoke --record`).
    pub async fn open_recorded(
        &self,
        request: Request,
        manifest: Option<Arc<Manifest>>,
    ) -> Result<(Response, Recording), PipelineError> {
        let recording = Recording::default();
        let (content_type, mut pump) = self.start(request, manifest).await?;
        pump.recording = Some(recording.clone());
        Ok((respond(content_type, pump).await?, recording))
    }

    /// Opens `request`'s chain (its transforms) over `batches` instead of a
    /// model: each batch reaches the first stage as one `push`, as recorded
    /// (`streamhost test`).
    pub async fn open_replay(&self, request: Request, batches: Vec<Vec<Event>>) -> Result<Response, PipelineError> {
        let stages = self.open_stages(&request).await?;
        let source = stream::iter(batches)
            .then(|batch| async move {
                // Not ready at once: the next batch is a push of its own.
                tokio::task::yield_now().await;
                stream::iter(batch)
            })
            .flatten()
            .boxed();
        let (content_type, pump) = self.pump(stages, source, None, false);
        respond(content_type, pump).await
    }

    /// Opens the chain's plugins, then starts the source: the content type
    /// of the body, and the pump that moves its events.
    async fn start(&self, request: Request, manifest: Option<Arc<Manifest>>) -> Result<(String, Pump), PipelineError> {
        // Plugins first: a plugin that cannot run must not cost a model call.
        let stages = self.open_stages(&request).await?;
        let idle = manifest.as_ref().and_then(|manifest| manifest.idle_ms).map(std::time::Duration::from_millis);
        let standard_api = request.formatter.is_some();
        let keeper = request.keep_response.clone().map(|key| {
            responses_state::ResponseKeeper::new(self.services.history.clone(), key, request.messages.clone())
        });
        let source = match manifest {
            Some(manifest) if !manifest.agents.is_empty() => self.orchestrator.start(request, manifest),
            manifest => {
                let mut call = request.model_call();
                if let Some(manifest) = manifest {
                    call.options = call.options.or(&manifest.model);
                }
                self.services.providers.start(&call).await?
            }
        };
        let (content_type, mut pump) = self.pump(stages, source, idle, standard_api);
        pump.keeper = keeper;
        Ok((content_type, pump))
    }

    /// The pump from `source` through `stages`, and the content type of
    /// what it writes (the last formatter's). `standard_api`: the last stage
    /// is a standard API's formatter, whose stream the host's own errors
    /// must not break.
    fn pump(
        &self,
        stages: Vec<TransformInstance>,
        source: EventStream,
        idle: Option<std::time::Duration>,
        standard_api: bool,
    ) -> (String, Pump) {
        let content_type =
            stages.iter().rev().find_map(TransformInstance::content_type).unwrap_or(DEFAULT_CONTENT_TYPE).to_string();
        let encoding = match Encoding::for_content_type(&content_type) {
            Encoding::Sse if standard_api => Encoding::StandardApiSse,
            encoding => encoding,
        };
        let pump = Pump {
            source: source.ready_chunks(MAX_BATCH),
            stages,
            encoding,
            idle,
            done: false,
            failure: None,
            recording: None,
            keeper: None,
            source_chunks: 0,
            _active: ActiveStream::new(&self.active_streams),
        };
        (content_type, pump)
    }

    /// Opens the chain's transforms in order; with a `formatter` in the
    /// request (a standard API's), the chain's own formatters are left out
    /// and it comes last.
    async fn open_stages(&self, request: &Request) -> Result<Vec<TransformInstance>, PipelineError> {
        let mut stages = Vec::with_capacity(request.chain.len() + 1);
        for name in &request.chain {
            let stage = self.open_stage(request, name).await?;
            if request.formatter.is_none() || stage.content_type().is_none() {
                stages.push(stage);
            }
        }
        if let Some(formatter) = &request.formatter {
            stages.push(self.open_stage(request, formatter).await?);
        }
        Ok(stages)
    }

    async fn open_stage(&self, request: &Request, name: &PluginName) -> Result<TransformInstance, PipelineError> {
        let context = StreamContext {
            plugin: name.to_string(),
            user_id: request.user_id.clone(),
            session_id: request.session_id.clone(),
        };
        Ok(self.services.registry.open_transform(name, &context, request.settings_for(name)).await?)
    }
}

/// Runs `pump` up to its first bytes, then streams the rest.
async fn respond(content_type: String, mut pump: Pump) -> Result<Response, PipelineError> {
    let first = pump.first_bytes().await?;
    // Over with no byte written, and so still answerable: an answer the
    // chain dropped whole is refused, not sent as an empty `200`.
    if first.is_none() && pump.source_chunks > 0 {
        return Err(PipelineError::AnswerDropped { chunks: pump.source_chunks });
    }
    let rest = stream::unfold(pump, |mut pump| async move { pump.next_bytes().await.map(|bytes| (bytes, pump)) });
    Ok(Response { content_type, body: stream::iter(first).chain(rest).boxed() })
}

/// Counts a stream as active from its start until its body is dropped,
/// whether it finished or the client went away.
struct ActiveStream(Arc<AtomicUsize>);

impl ActiveStream {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter.clone())
    }
}

impl Drop for ActiveStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl crate::error_code::CodedError for PipelineError {
    fn error_code(&self) -> crate::error_code::Code<'_> {
        self.code()
    }

    fn logged(&self) -> bool {
        match self {
            PipelineError::Role(role) => crate::error_code::CodedError::logged(role),
            PipelineError::Provider(_) | PipelineError::AnswerDropped { .. } => false,
        }
    }
}
