//! Where runs are kept: their records and their logs of events, in order.
//! In memory for `serve` (bounded by count, per caller and by time; in
//! bytes, by count times `--max-run-bytes`); a DynamoDB table
//! on Lambda, so that any execution environment can serve a run's
//! subscribers and a run outlives the host that started it.

mod dynamo;
mod memory;

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error_code::ErrorCode;

use super::{Caller, RunId, RunRecord, RunSettings, SinkStatus};
pub use dynamo::DynamoRuns;
pub use memory::MemoryRuns;

/// One event of a run's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// From 1, with no gaps.
    pub seq: u64,
    /// The event's type: `text`, `usage`, `error`, …, and `done` last.
    pub kind: String,
    /// The event's data as JSON text.
    pub data: String,
}

/// What keeping one event costs in memory besides its text: the record
/// and two heap allocations (measured: ~500 bytes an event in all for
/// short text events).
const EVENT_OVERHEAD: u64 = 400;

impl StoredEvent {
    /// The bytes it counts for against `--max-run-bytes`: its text and what
    /// keeping it costs.
    pub fn size(&self) -> u64 {
        (self.kind.len() + self.data.len()) as u64 + EVENT_OVERHEAD
    }
}

/// Why the run store could not do what was asked.
#[derive(Debug, Error)]
pub enum RunStoreError {
    /// The memory store holds its most runs, none of them ended; one may
    /// end within about `retry_after_secs`.
    #[error("the run store is full; try again in {retry_after_secs} s")]
    Full {
        /// About when one of them may end, in seconds (a guess).
        retry_after_secs: u64,
    },
    /// The memory store holds the most runs under way one caller may
    /// have, all of them this caller's; one may end within about
    /// `retry_after_secs`.
    #[error("the caller's share of the run store is full; try again in {retry_after_secs} s")]
    CallerFull {
        /// About when one of them may end, in seconds (a guess).
        retry_after_secs: u64,
    },
    /// The store failed, or no longer keeps the run; the text says which.
    #[error("the run store is unavailable: {0}")]
    Unavailable(String),
}

impl RunStoreError {
    /// The code of this error in the host's table (error_code.rs).
    pub fn code(&self) -> ErrorCode {
        match self {
            RunStoreError::Full { .. } | RunStoreError::CallerFull { .. } => ErrorCode::TooManyRuns,
            RunStoreError::Unavailable(_) => ErrorCode::RunStoreUnavailable,
        }
    }
}

/// Where runs are kept: memory, or a DynamoDB table (`--runs-table`).
pub enum RunStore {
    /// In this process's memory, bounded by `--max-runs`,
    /// `--max-runs-per-caller` and `--runs-ttl-secs`.
    Memory(MemoryRuns),
    /// A DynamoDB table, shared by every host that names it.
    Dynamo(DynamoRuns),
}

impl RunStore {
    /// The store `settings` name: the DynamoDB table `--runs-table` (its items
    /// expire `--runs-ttl-secs` after the latest a run can end), else memory.
    pub async fn from_settings(settings: &RunSettings) -> Self {
        match &settings.runs_table {
            Some(table) => {
                let client = aws_sdk_dynamodb::Client::new(&crate::aws::load().await);
                // Items expire the TTL after the latest a run can end.
                let keep = settings.ttl() + std::time::Duration::from_secs(settings.max_run_secs);
                RunStore::Dynamo(DynamoRuns::new(client, table.clone(), keep))
            }
            None => RunStore::Memory(MemoryRuns::new(settings.ttl(), settings.max_runs, settings.per_caller_limit())),
        }
    }

    /// Adds a new run of `caller`'s; in memory within `--max-runs` and
    /// `caller`'s share (a table has no count to keep, and no share).
    pub async fn create(&self, record: &RunRecord, caller: &Caller) -> Result<(), RunStoreError> {
        match self {
            RunStore::Memory(memory) => memory.create(record, caller),
            RunStore::Dynamo(dynamo) => dynamo.create(record).await,
        }
    }

    /// Replaces the run's own fields (status, times, counts, usage, error),
    /// not its sinks' nor a cancel request, which others write.
    pub async fn save(&self, record: &RunRecord) -> Result<(), RunStoreError> {
        match self {
            RunStore::Memory(memory) => memory.save(record),
            RunStore::Dynamo(dynamo) => dynamo.save(record).await,
        }
    }

    /// Saves the status of the run's sink `name` (as the manifest names it),
    /// and nothing else of the run.
    pub async fn save_sink(&self, id: &RunId, name: &str, status: &SinkStatus) -> Result<(), RunStoreError> {
        match self {
            RunStore::Memory(memory) => memory.save_sink(id, name, status),
            RunStore::Dynamo(dynamo) => dynamo.save_sink(id, name, status).await,
        }
    }

    /// Claims the run for the host that is about to drive it: `false` when
    /// another has (Lambda delivers an asynchronous event at least once, so
    /// one run may be handed out twice).
    pub async fn claim(&self, id: &RunId) -> Result<bool, RunStoreError> {
        match self {
            RunStore::Memory(memory) => memory.claim(id),
            RunStore::Dynamo(dynamo) => dynamo.claim(id).await,
        }
    }

    /// Asks the host that drives the run to cancel it: sets its
    /// `cancel_requested`.
    pub async fn request_cancel(&self, id: &RunId) -> Result<(), RunStoreError> {
        match self {
            RunStore::Memory(memory) => memory.request_cancel(id),
            RunStore::Dynamo(dynamo) => dynamo.request_cancel(id).await,
        }
    }

    /// The run `id`'s record, if the store still keeps it.
    pub async fn get(&self, id: &RunId) -> Result<Option<RunRecord>, RunStoreError> {
        match self {
            RunStore::Memory(memory) => Ok(memory.get(id)),
            RunStore::Dynamo(dynamo) => dynamo.get(id).await,
        }
    }

    /// Appends `events` to `record`'s log; their sequence numbers follow
    /// the log's last.
    pub async fn append(&self, record: &RunRecord, events: &[StoredEvent]) -> Result<(), RunStoreError> {
        match self {
            RunStore::Memory(memory) => memory.append(&record.id, events),
            RunStore::Dynamo(dynamo) => dynamo.append(record, events).await,
        }
    }

    /// Up to `limit` events after sequence number `after`, in order.
    pub async fn read(&self, id: &RunId, after: u64, limit: usize) -> Result<Vec<StoredEvent>, RunStoreError> {
        match self {
            RunStore::Memory(memory) => Ok(memory.read(id, after, limit)),
            RunStore::Dynamo(dynamo) => dynamo.read(id, after, limit).await,
        }
    }
}

impl fmt::Display for RunStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunStore::Memory(_) => write!(f, "memory"),
            RunStore::Dynamo(dynamo) => write!(f, "{dynamo}"),
        }
    }
}
