//! Runs in memory: each for `--runs-ttl-secs` after it ended, at most
//! `--max-runs` at once; when full, the oldest ended run is dropped to make
//! room. A run that has not ended is never dropped: when every kept run is
//! still going, a new run is refused.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{RunStoreError, StoredEvent};
use crate::runs::{RunId, RunRecord, SinkStatus, now_ms};

struct Kept {
    record: RunRecord,
    events: Vec<StoredEvent>,
    claimed: bool,
}

pub struct MemoryRuns {
    runs: Mutex<HashMap<RunId, Kept>>,
    ttl: Duration,
}

impl MemoryRuns {
    pub fn new(ttl: Duration) -> Self {
        Self { runs: Mutex::default(), ttl }
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, Kept>> {
        self.runs.lock().expect("not poisoned")
    }

    /// Adds a run. When `max_runs` are kept, the oldest ended run makes
    /// room; only when every kept run is still going is the new one
    /// refused.
    pub fn create(&self, record: &RunRecord, max_runs: usize) -> Result<(), RunStoreError> {
        let mut runs = self.runs();
        let ttl = self.ttl.as_millis() as u64;
        let now = now_ms();
        runs.retain(|_, kept| !expired(&kept.record, ttl, now));
        if runs.len() >= max_runs {
            let ended = runs.values().filter(|kept| kept.record.status.is_end());
            let oldest_ended = ended
                .min_by_key(|kept| kept.record.ended_ms.unwrap_or(kept.record.created_ms))
                .map(|kept| kept.record.id.clone());
            match oldest_ended {
                Some(id) => {
                    runs.remove(&id);
                }
                // A guess at when one of them ends.
                None => return Err(RunStoreError::Full { retry_after_secs: 5 }),
            }
        }
        runs.insert(record.id.clone(), Kept { record: record.clone(), events: Vec::new(), claimed: false });
        Ok(())
    }

    pub fn save(&self, record: &RunRecord) -> Result<(), RunStoreError> {
        let mut runs = self.runs();
        let kept = runs.get_mut(&record.id).ok_or_else(|| gone(&record.id))?;
        let (sinks, cancel_requested) = (std::mem::take(&mut kept.record.sinks), kept.record.cancel_requested);
        kept.record = RunRecord { sinks, cancel_requested, ..record.clone() };
        Ok(())
    }

    pub fn save_sink(&self, id: &RunId, name: &str, status: &SinkStatus) -> Result<(), RunStoreError> {
        let mut runs = self.runs();
        let kept = runs.get_mut(id).ok_or_else(|| gone(id))?;
        kept.record.sinks.insert(name.to_string(), status.clone());
        Ok(())
    }

    pub fn claim(&self, id: &RunId) -> Result<bool, RunStoreError> {
        let mut runs = self.runs();
        let kept = runs.get_mut(id).ok_or_else(|| gone(id))?;
        Ok(!std::mem::replace(&mut kept.claimed, true))
    }

    pub fn request_cancel(&self, id: &RunId) -> Result<(), RunStoreError> {
        self.runs().get_mut(id).ok_or_else(|| gone(id))?.record.cancel_requested = true;
        Ok(())
    }

    pub fn get(&self, id: &RunId) -> Option<RunRecord> {
        let ttl = self.ttl.as_millis() as u64;
        self.runs().get(id).map(|kept| kept.record.clone()).filter(|record| !expired(record, ttl, now_ms()))
    }

    pub fn append(&self, id: &RunId, events: &[StoredEvent]) -> Result<(), RunStoreError> {
        self.runs().get_mut(id).ok_or_else(|| gone(id))?.events.extend_from_slice(events);
        Ok(())
    }

    pub fn read(&self, id: &RunId, after: u64, limit: usize) -> Vec<StoredEvent> {
        let runs = self.runs();
        let Some(kept) = runs.get(id) else { return Vec::new() };
        // Sequence numbers start at 1 with no gaps: event `n` is at `n - 1`.
        let start = (after as usize).min(kept.events.len());
        kept.events[start..].iter().take(limit).cloned().collect()
    }
}

/// A run is kept for the TTL after it ended; one going on is kept.
fn expired(record: &RunRecord, ttl: u64, now: u64) -> bool {
    record.status.is_end() && record.ended_ms.unwrap_or(record.created_ms) + ttl <= now
}

fn gone(id: &RunId) -> RunStoreError {
    RunStoreError::Unavailable(format!("run {id} is no longer kept"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::{RunStatus, now_ms};

    fn record(status: RunStatus, created_ms: u64) -> RunRecord {
        RunRecord { status, ..RunRecord::started("p", None, None, created_ms, created_ms + 1000) }
    }

    #[test]
    fn a_run_is_claimed_once() {
        let store = MemoryRuns::new(Duration::from_secs(60));
        let run = record(RunStatus::Started, now_ms());
        store.create(&run, 10).unwrap();
        assert_eq!((store.claim(&run.id).unwrap(), store.claim(&run.id).unwrap()), (true, false));
    }

    #[test]
    fn full_the_oldest_ended_run_makes_room_and_a_running_one_never() {
        let store = MemoryRuns::new(Duration::from_secs(60));
        let (older, newer) =
            (record(RunStatus::Completed, now_ms() - 2_000), record(RunStatus::Failed, now_ms() - 1_000));
        store.create(&older, 2).unwrap();
        store.create(&newer, 2).unwrap();
        store.create(&record(RunStatus::Running, now_ms()), 2).expect("the oldest ended run made room");
        assert_eq!((store.get(&older.id), store.get(&newer.id).map(|kept| kept.id)), (None, Some(newer.id.clone())));
        store.create(&record(RunStatus::Running, now_ms()), 2).expect("the other ended run made room");
        let Err(RunStoreError::Full { retry_after_secs: 5 }) = store.create(&record(RunStatus::Started, now_ms()), 2)
        else {
            panic!("full of running runs")
        };
        let expired = MemoryRuns::new(Duration::from_secs(60));
        let old = record(RunStatus::Completed, now_ms() - 61_000);
        expired.create(&old, 5).unwrap();
        expired.create(&record(RunStatus::Started, now_ms()), 5).unwrap();
        assert_eq!(expired.get(&old.id), None, "past its time");
    }
}
