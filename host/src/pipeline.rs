//! source -> transforms, in order -> encoder -> body. The one implementation
//! behind every frontend; a frontend never knows which plugins run.
//!
//! `open` does everything that can fail before the response starts: it loads
//! and instantiates every plugin of the chain, starts the source and waits
//! for the first bytes, so that those failures are answered as errors. After
//! the first byte, a failure ends the stream with an error event in the
//! stream's own format.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures::stream::{BoxStream, ReadyChunks};
use futures::{StreamExt, stream};
use thiserror::Error;
use tracing::{info, warn};

use crate::event::{DEFAULT_CONTENT_TYPE, Encoding, Event, error_event};
use crate::manifest::{Manifest, ManifestError, Manifests};
use crate::providers::{EventStream, ProviderError, Providers};
use crate::registry::{LoadError, PluginError, Registry, TransformInstance};
use crate::request::Request;
use crate::store::PluginName;
use crate::wit::StreamContext;

/// The most source events handed to the first plugin in one call: whatever
/// is ready, up to this, goes as one batch.
const MAX_BATCH: usize = 64;

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

/// A response about to stream: its media type, and the body.
pub struct Response {
    pub content_type: String,
    pub body: BoxStream<'static, Bytes>,
}

pub struct Pipeline {
    registry: Registry,
    manifests: Manifests,
    providers: Providers,
    active_streams: Arc<AtomicUsize>,
}

impl Pipeline {
    pub fn new(registry: Registry, manifests: Manifests, providers: Providers) -> Self {
        Self { registry, manifests, providers, active_streams: Arc::default() }
    }

    /// The pipeline manifest named `name`, if there is one.
    pub async fn manifest(&self, name: &PluginName) -> Result<Option<Arc<Manifest>>, ManifestError> {
        self.manifests.get(name).await
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Streams whose body has not been dropped yet.
    pub fn active_streams(&self) -> usize {
        self.active_streams.load(Ordering::Relaxed)
    }

    pub async fn open(&self, request: Request) -> Result<Response, PipelineError> {
        // Plugins first: a plugin that cannot run must not cost a model call.
        let stages = self.open_stages(&request).await?;
        let content_type = stages.iter().rev().find_map(TransformInstance::content_type).unwrap_or(DEFAULT_CONTENT_TYPE).to_string();
        let source = self.providers.start(&request).await?;
        let mut pump = Pump {
            source: source.ready_chunks(MAX_BATCH),
            stages,
            encoding: Encoding::for_content_type(&content_type),
            done: false,
            _active: ActiveStream::new(&self.active_streams),
        };
        let first = pump.first_bytes().await?;
        let rest = stream::unfold(pump, |mut pump| async move { pump.next_bytes().await.map(|bytes| (bytes, pump)) });
        Ok(Response { content_type, body: stream::iter(first).chain(rest).boxed() })
    }

    async fn open_stages(&self, request: &Request) -> Result<Vec<TransformInstance>, PipelineError> {
        let mut stages = Vec::with_capacity(request.chain.len());
        for name in &request.chain {
            let plugin = self.registry.get(name).await?;
            let context = StreamContext {
                plugin: name.to_string(),
                user_id: request.user_id.clone(),
                session_id: request.session_id.clone(),
            };
            let stage = self.registry.open(&plugin, &context, request.settings_for(name)).await?;
            stages.push(stage);
        }
        Ok(stages)
    }
}

/// A plugin failed; `stage` is its place in the chain.
struct StageFailure {
    stage: usize,
    error: PluginError,
}

/// Moves events from the source through the stages and encodes them.
struct Pump {
    source: ReadyChunks<EventStream>,
    stages: Vec<TransformInstance>,
    encoding: Encoding,
    done: bool,
    _active: ActiveStream,
}

impl Pump {
    /// The first bytes of the body (`None` for an empty body); a failure up
    /// to here is the caller's error response.
    async fn first_bytes(&mut self) -> Result<Option<Bytes>, PluginError> {
        self.step().await.map_err(|failure| {
            // Answered as an error response: the stream is over, not cancelled.
            self.done = true;
            failure.error
        })
    }

    /// The next bytes of a body already under way; a failure becomes an
    /// error event, the last bytes of the stream.
    async fn next_bytes(&mut self) -> Option<Bytes> {
        match self.step().await {
            Ok(bytes) => bytes,
            Err(failure) => Some(self.error_bytes(failure).await),
        }
    }

    /// Runs batches until one produces bytes or the stream ends.
    async fn step(&mut self) -> Result<Option<Bytes>, StageFailure> {
        while !self.done {
            let (events, last) = match self.source.next().await {
                Some(batch) => (batch, false),
                None => (Vec::new(), true),
            };
            self.done = last;
            let events = self.run_stages(0, events, last).await?;
            if !events.is_empty() {
                let bytes = self.encode(&events);
                if !bytes.is_empty() {
                    return Ok(Some(bytes));
                }
            }
        }
        Ok(None)
    }

    /// Passes `events` through the stages from `first` on; at the end of the
    /// stream (`last`) each stage is also finished, its flush going on down.
    async fn run_stages(&mut self, first: usize, mut events: Vec<Event>, last: bool) -> Result<Vec<Event>, StageFailure> {
        for (index, stage) in self.stages.iter_mut().enumerate().skip(first) {
            let failed = |error| StageFailure { stage: index, error };
            if !events.is_empty() {
                events = stage.push(&events).await.map_err(failed)?;
            }
            if last {
                events.extend(stage.finish().await.map_err(failed)?);
            }
        }
        Ok(events)
    }

    /// Ends the stream after a failure: the error event goes through the
    /// stages after the one that failed (so the formatter formats it), or,
    /// when the formatter is what failed, through the host's own encoding.
    async fn error_bytes(&mut self, failure: StageFailure) -> Bytes {
        self.done = true;
        let StageFailure { stage, error } = failure;
        warn!(plugin = %self.stages[stage].name(), %error, "stream ended by a plugin failure");
        let event = error_event(error.code(), error.to_string());
        match self.run_stages(stage + 1, vec![event.clone()], true).await {
            Ok(events) => self.encode(&events),
            Err(StageFailure { error: second, .. }) => {
                warn!(error = %second, "a later plugin failed on the error event too");
                self.encode(&[event])
            }
        }
    }

    fn encode(&self, events: &[Event]) -> Bytes {
        let mut out = Vec::new();
        for event in events {
            self.encoding.encode(event, &mut out);
        }
        Bytes::from(out)
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        if !self.done {
            // The body was dropped before its end: the client went away (or
            // a write to it failed). Dropping the source cancels the model call.
            info!("stream cancelled before its end; the client went away");
        }
    }
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
