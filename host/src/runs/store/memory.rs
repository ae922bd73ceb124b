//! Runs in memory: each for `--runs-ttl-secs` after it ended, at most
//! `--max-runs` at once, at most `--max-runs-per-caller` of them under way
//! for one caller. When full, an ended run is dropped to make room: the
//! oldest of the caller who keeps the most runs, the one starting a run
//! counting it: a caller who floods the store makes room from its own ended
//! runs, not from another caller's results. A run that has not ended is
//! never dropped: when every kept run is still going, a new run is refused.
//!
//! In bytes, each run holds at most `--max-run-bytes` (its record and its
//! events; the driver stops a run there), so the store holds at most
//! `--max-runs` times that.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{RunStoreError, StoredEvent};
use crate::runs::{Caller, RunId, RunRecord, SinkStatus, now_ms};

/// A guess at when a run under way ends, in seconds: a full store's
/// `Retry-After`.
const RETRY_AFTER_SECS: u64 = 5;

struct Kept {
    record: RunRecord,
    events: Vec<StoredEvent>,
    claimed: bool,
    /// Whose share it counts against.
    caller: Caller,
}

pub struct MemoryRuns {
    runs: Mutex<HashMap<RunId, Kept>>,
    ttl: Duration,
    /// The most runs kept (`--max-runs`).
    max_runs: usize,
    /// The most runs under way one caller may have (`--max-runs-per-caller`).
    max_per_caller: usize,
}

impl MemoryRuns {
    /// A store keeping each run for `ttl` after it ends, at most `max_runs`
    /// runs, at most `max_per_caller` under way for one caller.
    pub fn new(ttl: Duration, max_runs: usize, max_per_caller: usize) -> Self {
        Self { runs: Mutex::default(), ttl, max_runs, max_per_caller }
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, Kept>> {
        self.runs.lock().expect("not poisoned")
    }

    /// Adds `caller`'s run. Refused while every kept run is going, or while
    /// `caller` has its most runs under way; when full, an ended run makes
    /// room ([`room_for`]).
    pub fn create(&self, record: &RunRecord, caller: &Caller) -> Result<(), RunStoreError> {
        let mut runs = self.runs();
        let ttl = self.ttl.as_millis() as u64;
        let now = now_ms();
        runs.retain(|_, kept| !expired(&kept.record, ttl, now));
        let full = runs.len() >= self.max_runs;
        if full && !runs.values().any(|kept| kept.record.status.is_end()) {
            return Err(RunStoreError::Full { retry_after_secs: RETRY_AFTER_SECS });
        }
        let under_way = runs.values().filter(|kept| kept.caller == *caller && !kept.record.status.is_end()).count();
        if under_way >= self.max_per_caller {
            return Err(RunStoreError::CallerFull { retry_after_secs: RETRY_AFTER_SECS });
        }
        if full && let Some(id) = room_for(&runs, caller) {
            runs.remove(&id);
        }
        let kept = Kept { record: record.clone(), events: Vec::new(), claimed: false, caller: caller.clone() };
        runs.insert(record.id.clone(), kept);
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

/// The ended run to drop for a new run of `starting`'s: the oldest ended
/// run of the caller who keeps the most runs (ended or not), `starting`
/// counting its new one and going first on a tie. A caller who floods the
/// store is that caller, so it makes room from its own runs; another
/// caller's run goes only when that caller keeps more. None when no run
/// has ended.
fn room_for(runs: &HashMap<RunId, Kept>, starting: &Caller) -> Option<RunId> {
    let mut kept_by: HashMap<&Caller, usize> = HashMap::new();
    for kept in runs.values() {
        *kept_by.entry(&kept.caller).or_default() += 1;
    }
    *kept_by.entry(starting).or_default() += 1;
    runs.values()
        .filter(|kept| kept.record.status.is_end())
        .max_by_key(|kept| (kept_by[&kept.caller], kept.caller == *starting, Reverse(ended_at(&kept.record))))
        .map(|kept| kept.record.id.clone())
}

fn ended_at(record: &RunRecord) -> u64 {
    record.ended_ms.unwrap_or(record.created_ms)
}

/// A run is kept for the TTL after it ended; one going on is kept.
fn expired(record: &RunRecord, ttl: u64, now: u64) -> bool {
    record.status.is_end() && ended_at(record) + ttl <= now
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

    fn user(name: &str) -> Caller {
        Caller::User(name.into())
    }

    /// Starts a run of `caller`'s in `store`, under way; each run a
    /// millisecond after the one before, so that which is older is known.
    fn start(store: &MemoryRuns, caller: &Caller) -> Result<RunRecord, RunStoreError> {
        static LATER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let run = record(RunStatus::Running, now_ms() + LATER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        store.create(&run, caller).map(|()| run)
    }

    /// Ends `run` in `store`, as the driver saves its end: in the order
    /// the runs started.
    fn end(store: &MemoryRuns, run: &RunRecord) {
        let ended = RunRecord { status: RunStatus::Completed, ended_ms: Some(run.created_ms), ..run.clone() };
        store.save(&ended).unwrap();
    }

    #[test]
    fn a_run_is_claimed_once() {
        let store = MemoryRuns::new(Duration::from_secs(60), 10, 10);
        let run = record(RunStatus::Started, now_ms());
        store.create(&run, &Caller::Unknown).unwrap();
        assert_eq!((store.claim(&run.id).unwrap(), store.claim(&run.id).unwrap()), (true, false));
    }

    #[test]
    fn full_the_oldest_ended_run_makes_room_and_a_running_one_never() {
        let store = MemoryRuns::new(Duration::from_secs(60), 2, 2);
        let anyone = Caller::Unknown;
        let (older, newer) =
            (record(RunStatus::Completed, now_ms() - 2_000), record(RunStatus::Failed, now_ms() - 1_000));
        store.create(&older, &anyone).unwrap();
        store.create(&newer, &anyone).unwrap();
        store.create(&record(RunStatus::Running, now_ms()), &anyone).expect("the oldest ended run made room");
        assert_eq!((store.get(&older.id), store.get(&newer.id).map(|kept| kept.id)), (None, Some(newer.id.clone())));
        store.create(&record(RunStatus::Running, now_ms()), &anyone).expect("the other ended run made room");
        let Err(RunStoreError::Full { retry_after_secs: 5 }) =
            store.create(&record(RunStatus::Started, now_ms()), &anyone)
        else {
            panic!("full of running runs")
        };
        let expired = MemoryRuns::new(Duration::from_secs(60), 5, 5);
        let old = record(RunStatus::Completed, now_ms() - 61_000);
        expired.create(&old, &anyone).unwrap();
        expired.create(&record(RunStatus::Started, now_ms()), &anyone).unwrap();
        assert_eq!(expired.get(&old.id), None, "past its time");
    }

    /// The flood: one caller starts runs as fast as it may; it gets
    /// its share of the store, and another caller still gets a run.
    #[test]
    fn one_caller_has_at_most_its_share_under_way_and_the_others_theirs() {
        let store = MemoryRuns::new(Duration::from_secs(60), 100, 10);
        let flood = Caller::Address("203.0.113.7".parse().unwrap());
        let mine: Vec<RunRecord> = (0..10).map(|_| start(&store, &flood).unwrap()).collect();
        let Err(RunStoreError::CallerFull { retry_after_secs: 5 }) = start(&store, &flood) else {
            panic!("the 11th run of one caller is refused")
        };
        start(&store, &user("ana")).expect("another caller is not refused");
        start(&store, &Caller::Address("203.0.113.8".parse().unwrap())).expect("nor another address");
        end(&store, &mine[0]);
        start(&store, &flood).expect("one of its runs ended: room in its share");
        // Ended runs do not count against the share; only runs under way do.
        let Err(RunStoreError::CallerFull { .. }) = start(&store, &flood) else { panic!("ten under way again") };
    }

    /// The second half: a caller who fills the store with its
    /// ended runs makes room from its own, not from another caller's result
    /// that is not read yet.
    #[test]
    fn a_flooding_caller_makes_room_from_its_own_ended_runs() {
        let store = MemoryRuns::new(Duration::from_secs(60), 4, 2);
        let (flood, other) = (user("flood"), user("ana"));
        let result = start(&store, &other).unwrap();
        end(&store, &result);
        let mut flooded = Vec::new();
        for _ in 0..20 {
            let run = start(&store, &flood).expect("its own ended runs make room");
            end(&store, &run);
            flooded.push(run);
        }
        assert!(store.get(&result.id).is_some(), "the other caller's result is kept");
        let kept = flooded.iter().filter(|run| store.get(&run.id).is_some()).count();
        assert_eq!(kept, 3, "the flood keeps the rest of the store");
        assert!(store.get(&flooded[19].id).is_some() && store.get(&flooded[16].id).is_none(), "its newest are kept");

        // The other caller starts a run: room comes from the flood's
        // oldest, not from its own result.
        start(&store, &other).unwrap();
        assert!(store.get(&result.id).is_some());
        assert_eq!(flooded.iter().filter(|run| store.get(&run.id).is_some()).count(), 2);
        assert!(store.get(&flooded[17].id).is_none(), "the flood's oldest made room");
    }

    /// With no flood, the caller who keeps the most gives room, and on a
    /// tie the caller starting the run gives its own.
    #[test]
    fn the_caller_who_keeps_the_most_gives_room_and_on_a_tie_the_one_starting() {
        let store = MemoryRuns::new(Duration::from_secs(60), 4, 4);
        let (ana, bo, cy) = (user("ana"), user("bo"), user("cy"));
        let ended = |caller: &Caller| {
            let run = start(&store, caller).unwrap();
            end(&store, &run);
            run
        };
        let bo_first = ended(&bo);
        let ana_first = ended(&ana);
        let ana_second = ended(&ana);
        let ana_third = ended(&ana);
        // A third caller: ana keeps three, bo one.
        ended(&cy);
        assert_eq!(
            [&ana_first, &ana_second, &ana_third, &bo_first].map(|run| store.get(&run.id).is_some()),
            [false, true, true, true],
            "ana's oldest made room, though bo's run is older"
        );
        // bo starts one: ana 2, bo 1 + 1, cy 1; a tie, and bo gives its own.
        ended(&bo);
        assert!(store.get(&bo_first.id).is_none() && store.get(&ana_second.id).is_some());
    }

    #[test]
    fn a_caller_is_its_user_id_else_its_address_an_ipv6_one_by_its_64() {
        let at = |address: &str| Some(address.parse().unwrap());
        assert_eq!(Caller::of(Some("ana".into()), at("192.0.2.1")), user("ana"), "the user id, wherever from");
        assert_eq!(Caller::of(None, at("192.0.2.1")), Caller::Address("192.0.2.1".parse().unwrap()));
        assert_ne!(Caller::of(None, at("192.0.2.1")), Caller::of(None, at("192.0.2.2")));
        assert_eq!(Caller::of(None, at("2001:db8:1:2:aaaa::1")), Caller::of(None, at("2001:db8:1:2:bbbb::9")));
        assert_ne!(Caller::of(None, at("2001:db8:1:2::1")), Caller::of(None, at("2001:db8:1:3::1")));
        assert_eq!(Caller::of(None, at("::ffff:192.0.2.1")), Caller::of(None, at("192.0.2.1")));
        assert_eq!(Caller::of(None, None), Caller::Unknown);
    }
}
