//! Drives one run: the pipeline's events into the store, in order, under
//! the run's bounds (bytes, time), until the pipeline ends, the run is
//! cancelled or a bound is reached; then the run's last event, `done`, and
//! its final status.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{RunFailure, RunRecord, RunStatus, RunUsage, Runs, StoredEvent, now_ms};
use crate::error_code::ErrorCode;
use crate::event::{Event, type_and_data};
use crate::pipeline::Batch;

/// The type of a run's last event: `{"status": …}`.
pub(super) const DONE: &str = "done";

/// How long before Lambda's deadline a run is ended, so that its last
/// event and status are written before the invocation is stopped.
const LAMBDA_MARGIN: Duration = Duration::from_secs(10);

/// How often a run checks whether another host asked to cancel it (a
/// shared store only; on this host a cancel is immediate).
const CANCEL_CHECK: Duration = Duration::from_secs(1);

/// The most bytes of one event's data a run keeps: a DynamoDB item holds
/// at most 400 KB.
const MAX_EVENT_BYTES: usize = 256 << 10;

/// How often the record's counts and usage are saved while events flow.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// When a run must end: its own deadline, or Lambda's (less a margin to
/// write its end), whichever comes first.
pub(super) fn deadline(deadline_ms: u64, lambda: Option<SystemTime>) -> Instant {
    let own = Duration::from_millis(deadline_ms.saturating_sub(now_ms()));
    let lambda = lambda
        .map(|deadline| deadline.duration_since(SystemTime::now()).unwrap_or_default().saturating_sub(LAMBDA_MARGIN));
    Instant::now() + lambda.map_or(own, |lambda| lambda.min(own))
}

/// How a run ended.
struct End {
    status: RunStatus,
    /// An error event to log before `done` (a bound reached).
    error: Option<RunFailure>,
}

pub(super) struct Driver {
    pub(super) runs: Arc<Runs>,
    pub(super) record: RunRecord,
    pub(super) cancelled: watch::Receiver<bool>,
    pub(super) deadline: Instant,
}

impl Driver {
    /// Runs the pipeline's `events` (or logs why it could not start) to the
    /// run's end.
    pub(super) async fn run(mut self, events: Result<BoxStream<'static, Batch>, RunFailure>) {
        let end = match events {
            Ok(events) => self.pump(events).await,
            Err(error) => End { status: RunStatus::Failed, error: Some(error) },
        };
        self.finish(end).await;
    }

    async fn pump(&mut self, mut events: BoxStream<'static, Batch>) -> End {
        let shared_store = matches!(self.runs.store, super::RunStore::Dynamo(_));
        let mut cancel_check = tokio::time::interval(CANCEL_CHECK);
        let mut last_saved = Instant::now();
        let mut cancelled = self.cancelled.clone();
        loop {
            tokio::select! {
                batch = events.next() => match batch {
                    Some(Batch { events, failure }) => {
                        if let Err(end) = self.log(events).await {
                            return end;
                        }
                        if let Some(failure) = failure {
                            self.record.error = Some(RunFailure { code: failure.code, message: failure.message });
                        }
                        if last_saved.elapsed() >= SAVE_EVERY {
                            self.save().await;
                            last_saved = Instant::now();
                        }
                    }
                    // A failure named by the pipeline means the run failed.
                    None => return End { status: if self.record.error.is_some() { RunStatus::Failed } else { RunStatus::Completed }, error: None },
                },
                // The `Ref` it answers is not `Send`: dropped at once. A
                // dropped sender is no cancel.
                _ = async {
                    if cancelled.wait_for(|cancelled| *cancelled).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                } => return cancelled_end(),
                _ = tokio::time::sleep_until(self.deadline) => {
                    let message = "the run went on past its time limit (--max-run-secs, or the Lambda invocation's deadline)";
                    return End { status: RunStatus::Failed, error: Some(RunFailure::new(ErrorCode::RunTimeLimit, message)) };
                }
                _ = cancel_check.tick(), if shared_store => {
                    if self.runs.store.get(&self.record.id).await.ok().flatten().is_some_and(|record| record.cancel_requested) {
                        return cancelled_end();
                    }
                }
            }
        }
    }

    /// Logs a batch of the pipeline's events, unless it would take the run
    /// (its record and events) past its byte bound or one event is larger
    /// than a store keeps.
    async fn log(&mut self, batch: Vec<Event>) -> Result<(), End> {
        let stored: Vec<StoredEvent> = batch
            .iter()
            .enumerate()
            .map(|(index, event)| {
                let (kind, data) = type_and_data(event);
                StoredEvent { seq: self.record.events + index as u64 + 1, kind, data: data.to_string() }
            })
            .collect();
        let too_large = |message: String| {
            Err(End { status: RunStatus::Failed, error: Some(RunFailure::new(ErrorCode::RunTooLarge, message)) })
        };
        if let Some(event) = stored.iter().find(|event| event.data.len() > MAX_EVENT_BYTES) {
            return too_large(format!(
                "event {} is {} bytes, more than the {MAX_EVENT_BYTES} a run keeps of one event",
                event.seq,
                event.data.len()
            ));
        }
        let bytes: u64 = stored.iter().map(StoredEvent::size).sum();
        let limit = self.runs.settings.max_run_bytes;
        if self.record.bytes + bytes > limit {
            return too_large(format!(
                "the run passed its {limit}-byte limit (--max-run-bytes: its record and events); the events from {} on were not kept",
                self.record.events + 1
            ));
        }
        for event in &batch {
            if let Event::Usage(usage) = event {
                let total = self.record.usage.get_or_insert_with(RunUsage::default);
                total.input_tokens += u64::from(usage.input_tokens);
                total.output_tokens += u64::from(usage.output_tokens);
                total.total_tokens += u64::from(usage.total_tokens);
            }
        }
        if self.record.status == RunStatus::Started {
            self.record.status = RunStatus::Running;
            self.save().await;
        }
        self.append(stored, bytes).await.map_err(|error| {
            warn!(run = %self.record.id, %error, "a run's events could not be stored; the run ends");
            End {
                status: RunStatus::Failed,
                error: Some(RunFailure::new(ErrorCode::RunStoreUnavailable, error.to_string())),
            }
        })
    }

    async fn append(&mut self, stored: Vec<StoredEvent>, bytes: u64) -> Result<(), super::RunStoreError> {
        self.runs.store.append(&self.record, &stored).await?;
        self.record.events += stored.len() as u64;
        self.record.bytes += bytes;
        self.runs.notify(&self.record.id, self.record.events, false);
        Ok(())
    }

    /// Logs the end: the error that ended the run (if a bound did), then
    /// `done`; saves the final status and wakes every follower.
    async fn finish(&mut self, end: End) {
        let mut last = Vec::new();
        if let Some(error) = &end.error {
            last.push(StoredEvent {
                seq: self.record.events + 1,
                kind: "error".into(),
                data: json!({ "code": error.code, "message": error.message }).to_string(),
            });
            self.record.error = Some(error.clone());
        }
        last.push(StoredEvent {
            seq: self.record.events + last.len() as u64 + 1,
            kind: DONE.into(),
            data: json!({ "status": end.status.as_str() }).to_string(),
        });
        let bytes = last.iter().map(StoredEvent::size).sum();
        if let Err(error) = self.append(last, bytes).await {
            warn!(run = %self.record.id, %error, "a run's last events could not be stored");
        }
        self.record.status = end.status;
        self.record.ended_ms = Some(now_ms());
        self.save().await;
        self.runs.notify(&self.record.id, self.record.events, true);
        info!(run = %self.record.id, status = end.status.as_str(), events = self.record.events, "run ended");
    }

    async fn save(&mut self) {
        self.record.updated_ms = now_ms();
        if let Err(error) = self.runs.store.save(&self.record).await {
            warn!(run = %self.record.id, %error, "a run's status could not be saved");
        }
    }
}

fn cancelled_end() -> End {
    End { status: RunStatus::Cancelled, error: None }
}
