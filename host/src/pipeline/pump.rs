//! Moves events from the source through the transform stages and encodes
//! them: batches in, events (for a detached run) or bytes (for a response)
//! out.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::ReadyChunks;
use tracing::info;

use super::ActiveStream;
use super::responses_state::ResponseKeeper;
use crate::event::{Encoding, Event, error_event};
use crate::providers::EventStream;
use crate::registry::{PluginError, TransformInstance};
use crate::telemetry::instruments::instruments;

/// A plugin failed; `stage` is its place in the chain.
struct StageFailure {
    stage: usize,
    error: PluginError,
}

/// Moves events from the source through the stages and encodes them.
pub(super) struct Pump {
    pub(super) source: ReadyChunks<EventStream>,
    pub(super) stages: Vec<TransformInstance>,
    pub(super) encoding: Encoding,
    /// After this long without a source event, every stage is pushed an
    /// empty batch: a tick, for keep-alives and heartbeats (the manifest's
    /// `idleMs`).
    pub(super) idle: Option<std::time::Duration>,
    pub(super) done: bool,
    /// The failure that ended the stream, if one did: a plugin's, or the
    /// source's error event (which a formatter turns into bytes).
    pub(super) failure: Option<crate::event::ErrorInfo>,
    /// Where the source's batches are kept, as the first stage got them,
    /// when the stream is recorded (`invoke --record`).
    pub(super) recording: Option<Recording>,
    /// What keeps the answer as it reaches the last stage (a standard API's
    /// formatter), when the request asks for it to be kept.
    pub(super) keeper: Option<ResponseKeeper>,
    /// Text chunks the source has sent: what a cancelled stream had cost.
    pub(super) source_chunks: u64,
    pub(super) _active: ActiveStream,
}

/// A stream's source events, in the batches the first stage got them: what
/// a golden fixture replays.
#[derive(Clone, Default)]
pub struct Recording(Arc<Mutex<Vec<Vec<Event>>>>);

impl Recording {
    /// The batches so far.
    pub fn batches(&self) -> Vec<Vec<Event>> {
        self.0.lock().expect("not poisoned").clone()
    }

    fn record(&self, batch: &[Event]) {
        self.0.lock().expect("not poisoned").push(batch.to_vec());
    }
}

impl Pump {
    /// The first bytes of the body (`None` for an empty body); a failure up
    /// to here is the caller's error response.
    pub(super) async fn first_bytes(&mut self) -> Result<Option<Bytes>, PluginError> {
        while let Some(events) = self.first_events().await? {
            let bytes = self.encode(&events);
            if !bytes.is_empty() {
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    }

    /// The next bytes of a body already under way; a failure becomes an
    /// error event, the last bytes of the stream.
    pub(super) async fn next_bytes(&mut self) -> Option<Bytes> {
        loop {
            let events = self.next_events().await?;
            let bytes = self.encode(&events);
            if !bytes.is_empty() {
                return Some(bytes);
            }
        }
    }

    /// The next events out of the last stage (`None` at the end); a failure
    /// is returned, and ends the stream.
    pub(super) async fn first_events(&mut self) -> Result<Option<Vec<Event>>, PluginError> {
        self.step().await.map_err(|failure| {
            // Answered as an error: the stream is over, not cancelled.
            self.done = true;
            failure.error
        })
    }

    /// The next events out of the last stage (`None` at the end); a failure
    /// becomes an error event, the stream's last.
    pub(super) async fn next_events(&mut self) -> Option<Vec<Event>> {
        match self.step().await {
            Ok(events) => events,
            Err(failure) => Some(self.error_events(failure).await),
        }
    }

    /// Runs batches until one produces events or the stream ends.
    async fn step(&mut self) -> Result<Option<Vec<Event>>, StageFailure> {
        while !self.done {
            // `next` on a stream is cancel-safe: a tick loses no event.
            let next = match self.idle {
                Some(idle) => tokio::time::timeout(idle, self.source.next()).await.ok(),
                None => Some(self.source.next().await),
            };
            let (events, last, tick) = match next {
                Some(Some(batch)) => {
                    if let Some(recording) = &self.recording {
                        recording.record(&batch);
                    }
                    self.source_chunks += batch.iter().filter(|event| matches!(event, Event::Text(_))).count() as u64;
                    (batch, false, false)
                }
                Some(None) => (Vec::new(), true, false),
                None => (Vec::new(), false, true),
            };
            self.done = last;
            if let Some(Event::Error(error)) = events.iter().rev().find(|event| matches!(event, Event::Error(_))) {
                self.failure = Some(error.clone());
            }
            let events = self.run_stages(0, events, last, tick).await?;
            if !events.is_empty() {
                return Ok(Some(events));
            }
        }
        Ok(None)
    }

    /// Passes `events` through the stages from `first` on; at the end of the
    /// stream (`last`) each stage is also finished, its flush going on down.
    /// On a `tick` every stage is pushed, an empty batch if nothing came.
    async fn run_stages(
        &mut self,
        first: usize,
        mut events: Vec<Event>,
        last: bool,
        tick: bool,
    ) -> Result<Vec<Event>, StageFailure> {
        let last_stage = self.stages.len().saturating_sub(1);
        for (index, stage) in self.stages.iter_mut().enumerate().skip(first) {
            let failed = |error| StageFailure { stage: index, error };
            if index == last_stage
                && let Some(keeper) = &mut self.keeper
            {
                keeper.observe(&events);
            }
            if !events.is_empty() || tick {
                events = stage.push(&events).await.map_err(failed)?;
            }
            if last {
                events.extend(stage.finish().await.map_err(failed)?);
            }
        }
        // Kept once every stage has finished, and before their last events
        // are written: a client that continues the moment it reads the end
        // finds the answer, and one whose formatter failed is not kept.
        if last && let Some(keeper) = self.keeper.take() {
            keeper.keep(self.failure.is_some()).await;
        }
        Ok(events)
    }

    /// Ends the stream after a failure: the error event goes through the
    /// stages after the one that failed (so the formatter formats it), or,
    /// when the formatter is what failed, as it is (the host encodes it).
    async fn error_events(&mut self, failure: StageFailure) -> Vec<Event> {
        self.done = true;
        // The plugin's failure was logged where it happened (the sandbox).
        let StageFailure { stage, error } = failure;
        let event = error_event(error.code(), error.to_string());
        if let Event::Error(info) = &event {
            self.failure = Some(info.clone());
        }
        match self.run_stages(stage + 1, vec![event.clone()], true, false).await {
            Ok(events) => events,
            // A later plugin failed on the error event too (and was logged).
            Err(_) => vec![event],
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
            info!(chunks = self.source_chunks, "stream cancelled before its end; the client went away");
            instruments().stream_cancelled(self.source_chunks);
        }
    }
}
