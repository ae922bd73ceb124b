//! Detached runs, seed 003's long-running invocations: `POST
//! /runs/{pipeline}` answers `202` with a run id before the first model
//! event, and the pipeline runs on past any request timeout. Its events
//! (what leaves the chain's last stage) are appended to a run store in
//! order, each with a sequence number from 1; subscribers replay and follow
//! them (`GET /runs/{id}/events`, SSE with `Last-Event-ID`), and the
//! pipeline's sinks deliver each one as it happens (AppSync mutations,
//! webhooks).
//!
//! The data flow: a frontend `prepare`s the request (inbound plugin,
//! callers), [`Runs::create`] records the run, and [`Runs::execute`] (a task
//! on `serve`, an asynchronous invocation on Lambda) drives it: `driver`
//! pumps the pipeline into the `store` and the `sinks` follow the store.
//! The log's last event is `done`, `{"status": …}`: a follower ends there.

mod driver;
pub mod sinks;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;
use tokio::sync::watch;

pub use store::{RunStore, RunStoreError, StoredEvent};

use crate::error_code::ErrorCode;
use crate::manifest::Manifest;
use crate::pipeline::Pipeline;
use crate::request::Request;
use sinks::Sinks;

/// The run store and its bounds.
#[derive(Debug, Clone, Args)]
pub struct RunSettings {
    /// Keep runs in this DynamoDB table (partition key `run`, string; sort
    /// key `seq`, number; TTL attribute `expiresAt`) instead of memory, so
    /// that any host can serve a run's subscribers.
    #[arg(long, env = "STREAMHOST_RUNS_TABLE", value_name = "TABLE")]
    pub runs_table: Option<String>,

    /// How long a run is kept after it ends, in seconds (in DynamoDB, its
    /// `expiresAt`: this long after the latest it can end).
    #[arg(long, env = "STREAMHOST_RUNS_TTL_SECS", default_value_t = 24 * 3600, value_name = "SECS")]
    pub runs_ttl_secs: u64,

    /// The most runs kept in memory at once: when full, an ended run is
    /// dropped to make room (the oldest of the caller who keeps the most);
    /// when every kept run is still going, `POST /runs/…` is answered `429`
    /// with `Retry-After`.
    #[arg(long, env = "STREAMHOST_MAX_RUNS", default_value_t = 100, value_name = "N")]
    pub max_runs: usize,

    /// The most runs one caller may have under way at once in memory, so
    /// that no caller takes the whole of `--max-runs`; past it that
    /// caller's `POST /runs/…` is answered `429` with `Retry-After`. A
    /// caller is the user id the pipeline's inbound plugin gives, else the
    /// address it calls from. Default: a tenth of `--max-runs`, at least 1.
    #[arg(long, env = "STREAMHOST_MAX_RUNS_PER_CALLER", value_name = "N")]
    pub max_runs_per_caller: Option<usize>,

    /// The most bytes one run may hold: its record's text (its conversation
    /// id is the caller's `sessionId`) with what keeping the record costs,
    /// and its events, each counted with what keeping it costs (its text
    /// and 400 bytes); past it the run ends `failed` with a `run_too_large`
    /// error event. In memory, at most `--max-runs` times this is kept.
    #[arg(long, env = "STREAMHOST_MAX_RUN_BYTES", default_value_t = 8 << 20, value_name = "BYTES")]
    pub max_run_bytes: u64,

    /// The longest a run may go on, in seconds; past it the run ends
    /// `failed` with `run_time_limit`. On Lambda the invocation's own
    /// deadline (at most 15 minutes) comes first.
    #[arg(long, env = "STREAMHOST_MAX_RUN_SECS", default_value_t = 900, value_name = "SECS")]
    pub max_run_secs: u64,

    /// How often a subscriber of a run that another host is driving checks
    /// the DynamoDB table for new events, in milliseconds.
    #[arg(long, env = "STREAMHOST_RUN_POLL_MS", default_value_t = 100, value_name = "MS")]
    pub run_poll_ms: u64,

    /// The sinks' host-wide settings: credentials, addresses, retries and
    /// timeout.
    #[command(flatten)]
    pub sinks: sinks::SinkSettings,
}

impl RunSettings {
    fn ttl(&self) -> Duration {
        Duration::from_secs(self.runs_ttl_secs)
    }

    /// The most runs one caller may have under way: `--max-runs-per-caller`,
    /// else a tenth of `--max-runs`; at least 1.
    pub fn per_caller_limit(&self) -> usize {
        self.max_runs_per_caller.unwrap_or(self.max_runs / 10).max(1)
    }
}

/// Whose share of the host's runs a new run counts against
/// (`--max-runs-per-caller`): the caller as the pipeline's inbound plugin
/// identified them, else the address the frontend saw the call come from.
/// One person under two of these is two callers; callers behind one proxy
/// (one address) and with no inbound plugin to tell them apart are one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    /// The user id the pipeline's inbound plugin gave.
    User(String),
    /// The address the call came from (`serve`: the TCP peer; Lambda: the
    /// Function URL's `requestContext.http.sourceIp`); an IPv6 address by
    /// its /64, which one machine is commonly given whole.
    Address(IpAddr),
    /// Neither is known (the command line): all such runs share one share.
    Unknown,
}

impl Caller {
    /// The caller of a run: `user`, the inbound plugin's user id, if it gave
    /// one; else the `address` the call came from; else unknown. A user id
    /// the caller set itself (no inbound plugin) is not one: anyone may
    /// claim any.
    pub fn of(user: Option<String>, address: Option<IpAddr>) -> Self {
        match (user, address) {
            (Some(user), _) => Caller::User(user),
            (None, Some(address)) => Caller::Address(network_of(address)),
            (None, None) => Caller::Unknown,
        }
    }
}

/// The part of an address one caller holds: an IPv4 address whole (an
/// IPv4-mapped IPv6 address as the IPv4 address it is), an IPv6 address's
/// first 64 bits.
fn network_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

/// A run's id: 128 random bits from the operating system, as 32 lowercase
/// hex digits. Knowing it is what lets a caller read a run that has no
/// owner, so it must not be guessable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    /// A new id from the operating system's randomness.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        getrandom::getrandom(&mut bytes).expect("the operating system has randomness");
        RunId(hex::encode(bytes))
    }

    /// The id: 32 lowercase hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RunId {
    type Err = String;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        if id.len() == 32 && id.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(RunId(id.to_string()))
        } else {
            Err(format!("`{id}` is not a run id (32 lowercase hex digits)"))
        }
    }
}

impl TryFrom<String> for RunId {
    type Error = String;

    fn try_from(id: String) -> Result<Self, Self::Error> {
        id.parse()
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> Self {
        id.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a run is: `started` (recorded, no event yet), `running`, then one
/// of the three ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Recorded, with no event logged yet.
    Started,
    /// Under way: its first events are logged.
    Running,
    /// Ended: the pipeline's events ended with no failure.
    Completed,
    /// Ended by an error (the record's `error`): the pipeline's, a bound
    /// reached, the store's, or its host lost.
    Failed,
    /// Ended by a cancel (`DELETE /runs/{id}`).
    Cancelled,
}

impl RunStatus {
    /// Whether the run has ended: completed, failed or cancelled.
    pub fn is_end(self) -> bool {
        matches!(self, RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled)
    }

    /// The status as the runs API and the `done` event spell it: lowercase.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Started => "started",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// Token counts over a run: the sums of its usage events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunUsage {
    /// Tokens of the models' input.
    pub input_tokens: u64,
    /// Tokens the models generated.
    pub output_tokens: u64,
    /// Input and output tokens together, as the sources count them.
    pub total_tokens: u64,
}

/// Why a run failed or was cancelled: the code and message of its last
/// error event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFailure {
    /// The error's code: the host's (error_code.rs) or a plugin's.
    pub code: String,
    /// What went wrong, in words.
    pub message: String,
}

impl RunFailure {
    /// An error of the host's own.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code: code.to_string(), message: message.into() }
    }
}

/// What one sink has delivered of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkStatus {
    /// `appsync` or `webhook`.
    pub kind: String,
    /// The sequence number up to which the sink is done: every event it
    /// sends up to there, its endpoint took (events of types it does not
    /// send count as done); 0 before the first.
    pub acknowledged: u64,
    /// `delivering`, `done` (it took the whole run) or `failed` (it gave up
    /// after its retries; events after `acknowledged` did not reach it).
    pub state: String,
    /// Attempts that failed, over the run.
    pub failures: u32,
    /// The error of its last failed attempt, or why it gave up; none before a
    /// failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A run as the store keeps it. Times are milliseconds since the Unix
/// epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// The run's id.
    pub id: RunId,
    /// The pipeline (or plugin) it runs.
    pub pipeline: String,
    /// The user id the pipeline's inbound plugin gave the caller who
    /// started it: only they may read or cancel it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The id its sinks deliver under (AppSync's `conversationId`): the
    /// request's session id, else the run id.
    pub conversation: String,
    /// Where the run is.
    pub status: RunStatus,
    /// When the run was recorded.
    pub created_ms: u64,
    /// When the record was last saved.
    pub updated_ms: u64,
    /// When the run ended (a lost run: its deadline); none before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
    /// When the run must have ended: a run not ended by then (its host
    /// stopped) reads as failed, `run_lost`.
    pub deadline_ms: u64,
    /// The sequence number of its last event.
    pub events: u64,
    /// What it counts against `--max-run-bytes`: its record (see
    /// [`RunRecord::size`]) and its events.
    pub bytes: u64,
    /// Token counts over its usage events; none before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<RunUsage>,
    /// Why it failed: its last error; none without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunFailure>,
    /// Each sink's delivery, by the sink's name in the manifest.
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkStatus>,
    /// A cancel was asked for (by a host that is not driving the run).
    #[serde(default)]
    pub cancel_requested: bool,
}

/// How long past its deadline a run that has not ended is taken for lost.
const LOST_AFTER: Duration = Duration::from_secs(30);

/// What keeping a run's record costs in memory besides its text: the
/// record, its store entry and the host's handle on a run under way (two
/// watch channels). An estimate, rounded up, as the events' overhead is.
const RECORD_OVERHEAD: u64 = 1024;

impl RunRecord {
    /// A new run of `pipeline`, `started` at `created_ms`, with a new id and
    /// no event yet; it must end by `deadline_ms`.
    pub fn started(
        pipeline: &str,
        conversation: Option<String>,
        owner: Option<String>,
        created_ms: u64,
        deadline_ms: u64,
    ) -> Self {
        let id = RunId::random();
        let mut record = RunRecord {
            conversation: conversation.unwrap_or_else(|| id.to_string()),
            id,
            pipeline: pipeline.to_string(),
            owner,
            status: RunStatus::Started,
            created_ms,
            updated_ms: created_ms,
            ended_ms: None,
            deadline_ms,
            events: 0,
            bytes: 0,
            usage: None,
            error: None,
            sinks: BTreeMap::new(),
            cancel_requested: false,
        };
        record.bytes = record.size();
        record
    }

    /// What the record counts against `--max-run-bytes`, in bytes: the text
    /// callers gave it (the conversation id is their `sessionId`, as long as
    /// a body allows) and what keeping it costs. Counted once, when the run
    /// is recorded.
    pub fn size(&self) -> u64 {
        let text = self.pipeline.len() + self.conversation.len() + self.owner.as_ref().map_or(0, String::len);
        text as u64 + RECORD_OVERHEAD
    }

    /// The record as `GET /runs/{id}` answers it: without the owner.
    pub fn view(&self) -> Value {
        let mut view = serde_json::to_value(self).expect("a record serialises");
        let object = view.as_object_mut().expect("a record is an object");
        object.remove("owner");
        object.remove("cancelRequested");
        view
    }

    /// Marks a run that outlived its deadline without ending as failed:
    /// the host driving it stopped (a Lambda timeout, a crash).
    fn settle_lost(mut self, now: u64) -> Self {
        if !self.status.is_end() && now > self.deadline_ms + LOST_AFTER.as_millis() as u64 {
            self.status = RunStatus::Failed;
            self.error = Some(RunFailure::new(ErrorCode::RunLost, "the host driving this run stopped before it ended"));
            self.ended_ms = Some(self.deadline_ms);
        }
        self
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// Why a run could not be started, read or cancelled.
#[derive(Debug, Error)]
pub enum RunsError {
    /// Every run this host may keep (`--max-runs`) is still going: answered
    /// `429` with `Retry-After`.
    #[error("this host already has {max} runs under way (--max-runs); try again in {retry_after_secs} s")]
    Full {
        /// The most runs kept (`--max-runs`).
        max: usize,
        /// About when one of them may end, in seconds.
        retry_after_secs: u64,
    },
    /// The caller already has the most runs under way one caller may
    /// (`--max-runs-per-caller`): answered `429` with `Retry-After`.
    #[error(
        "you already have {max} runs under way, the most one caller may have on this host (--max-runs-per-caller); try again in {retry_after_secs} s"
    )]
    CallerFull {
        /// The most runs one caller may have under way.
        max: usize,
        /// About when one of them may end, in seconds.
        retry_after_secs: u64,
    },
    /// The run store failed.
    #[error(transparent)]
    Store(#[from] RunStoreError),
}

impl RunsError {
    /// The code of this error in the host's table (error_code.rs).
    pub fn code(&self) -> ErrorCode {
        match self {
            RunsError::Full { .. } | RunsError::CallerFull { .. } => ErrorCode::TooManyRuns,
            RunsError::Store(store) => store.code(),
        }
    }

    /// When to try again, in seconds, for a refusal that is only for now
    /// (its `Retry-After`).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            RunsError::Full { retry_after_secs, .. } | RunsError::CallerFull { retry_after_secs, .. } => {
                Some(*retry_after_secs)
            }
            RunsError::Store(_) => None,
        }
    }
}

/// A run under way in this process: how to wake its followers and stop it.
struct Live {
    /// The sequence number of the last event appended, and whether the run
    /// has ended.
    progress: watch::Sender<(u64, bool)>,
    cancel: watch::Sender<bool>,
}

/// The runs of this host: the store, and the runs it is driving.
pub struct Runs {
    store: RunStore,
    settings: RunSettings,
    sinks: Sinks,
    live: Mutex<HashMap<RunId, Live>>,
}

impl Runs {
    /// The runs of a host with `settings`: its run store (`--runs-table`, else
    /// memory) and its sinks.
    pub async fn from_settings(settings: &RunSettings) -> anyhow::Result<Self> {
        let store = RunStore::from_settings(settings).await;
        let sinks = Sinks::from_settings(&settings.sinks).await?;
        Ok(Self { store, settings: settings.clone(), sinks, live: Mutex::default() })
    }

    /// Where runs are kept, for the start-up log.
    pub fn store(&self) -> &RunStore {
        &self.store
    }

    /// Records a new run of `pipeline` for `request`, `started`, with no
    /// event yet, against `caller`'s share; the caller then has it executed.
    pub async fn create(
        &self,
        pipeline: &str,
        request: &Request,
        manifest: Option<&Manifest>,
        owner: Option<String>,
        caller: &Caller,
    ) -> Result<RunRecord, RunsError> {
        let now = now_ms();
        let mut record = RunRecord::started(
            pipeline,
            request.session_id.clone(),
            owner,
            now,
            now + self.settings.max_run_secs * 1000,
        );
        let sinks = manifest.map(|manifest| &manifest.sinks).into_iter().flatten();
        record.sinks = sinks.map(|(name, sink)| (name.clone(), SinkStatus::new(sink.kind()))).collect();
        match self.store.create(&record, caller).await {
            Ok(()) => {
                // Registered now, so that a cancel before the run is driven
                // is not lost; a run driven elsewhere is `release`d.
                let (progress, _) = watch::channel((0, false));
                let (cancel, _) = watch::channel(false);
                self.live.lock().expect("not poisoned").insert(record.id.clone(), Live { progress, cancel });
                Ok(record)
            }
            Err(RunStoreError::Full { retry_after_secs }) => {
                Err(RunsError::Full { max: self.settings.max_runs, retry_after_secs })
            }
            Err(RunStoreError::CallerFull { retry_after_secs }) => {
                Err(RunsError::CallerFull { max: self.settings.per_caller_limit(), retry_after_secs })
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Drives `record`'s run to its end: the pipeline's events into the
    /// store, the sinks after them. Returns when the run and its sinks are
    /// done, or when `deadline` (Lambda's, for an invocation) comes.
    pub async fn execute(
        self: &Arc<Self>,
        pipeline: &Pipeline,
        record: RunRecord,
        request: Request,
        manifest: Option<Arc<Manifest>>,
        deadline: Option<SystemTime>,
    ) {
        match self.store.claim(&record.id).await {
            Ok(true) => {}
            Ok(false) => return tracing::warn!(run = %record.id, "a run handed out twice: another host drives it"),
            Err(error) => {
                return tracing::warn!(run = %record.id, %error, "a run could not be claimed; it is not driven");
            }
        }
        let cancelled = {
            let mut live = self.live.lock().expect("not poisoned");
            let entry = live
                .entry(record.id.clone())
                .or_insert_with(|| Live { progress: watch::channel((0, false)).0, cancel: watch::channel(false).0 });
            entry.cancel.subscribe()
        };
        // A cancel asked of another host before this one took the run.
        if self.store.get(&record.id).await.ok().flatten().is_some_and(|stored| stored.cancel_requested)
            && let Some(live) = self.live.lock().expect("not poisoned").get(&record.id)
        {
            live.cancel.send_replace(true);
        }
        let sink_configs = manifest.as_ref().map(|manifest| manifest.sinks.clone()).unwrap_or_default();
        let id = record.id.clone();
        let delivering = self.sinks.start(self, &record, sink_configs);
        let events = pipeline
            .open_events(request, manifest)
            .await
            .map_err(|error| RunFailure { code: error.code().as_str().to_string(), message: error.to_string() });
        let deadline = driver::deadline(record.deadline_ms, deadline);
        driver::Driver { runs: self.clone(), record, cancelled, deadline }.run(events).await;
        // On Lambda the invocation ends at its deadline: sinks still behind
        // then stay `delivering` in the status.
        if tokio::time::timeout_at(deadline, futures::future::join_all(delivering)).await.is_err() {
            tracing::warn!(run = %id, "the run's sinks did not finish before its deadline");
        }
        self.release(&id);
    }

    /// Forgets a run this host recorded but does not drive (on Lambda,
    /// another invocation drives it).
    pub fn release(&self, id: &RunId) {
        self.live.lock().expect("not poisoned").remove(id);
    }

    /// Ends a recorded run that could not be executed: `error`, then
    /// `done`, status failed.
    pub async fn abandon(self: &Arc<Self>, record: RunRecord, error: RunFailure) {
        let (_, cancelled) = watch::channel(false);
        let (id, deadline) = (record.id.clone(), driver::deadline(record.deadline_ms, None));
        driver::Driver { runs: self.clone(), record, cancelled, deadline }.run(Err(error)).await;
        self.release(&id);
    }

    /// Whether the run's log holds event `seq` (0, before the first, it
    /// always does).
    pub async fn has_event(&self, id: &RunId, seq: u64) -> Result<bool, RunStoreError> {
        if seq == 0 {
            return Ok(true);
        }
        Ok(self.store.read(id, seq - 1, 1).await?.first().is_some_and(|event| event.seq == seq))
    }

    /// The run `id`, if the store has it.
    pub async fn get(&self, id: &RunId) -> Result<Option<RunRecord>, RunStoreError> {
        Ok(self.store.get(id).await?.map(|record| record.settle_lost(now_ms())))
    }

    /// Cancels the run `id`: at once where this host drives it, else by a
    /// flag its host reads. Returns the record once it has ended, or after
    /// `wait` (still cancelling).
    pub async fn cancel(&self, id: &RunId, wait: Duration) -> Result<Option<RunRecord>, RunStoreError> {
        let local = self
            .live
            .lock()
            .expect("not poisoned")
            .get(id)
            .map(|live| (live.cancel.clone(), live.progress.subscribe()));
        match local {
            Some((cancel, mut progress)) => {
                // `send` drops the value while no driver has subscribed yet; a cancel
                // right after the start must still be seen when it does.
                cancel.send_replace(true);
                let _ = tokio::time::timeout(wait, progress.wait_for(|(_, ended)| *ended)).await;
            }
            None => {
                let Some(record) = self.get(id).await? else { return Ok(None) };
                if record.status.is_end() {
                    return Ok(Some(record));
                }
                self.store.request_cancel(id).await?;
                let poll = Duration::from_millis(self.settings.run_poll_ms);
                let _ = tokio::time::timeout(wait, async {
                    while !self.get(id).await.ok().flatten().is_some_and(|record| record.status.is_end()) {
                        tokio::time::sleep(poll).await;
                    }
                })
                .await;
            }
        }
        self.get(id).await
    }

    /// The run's events after sequence number `after`, then each new one as
    /// it is logged, until the `done` event. Runs this host drives wake
    /// their followers; others are polled every `--run-poll-ms`.
    pub fn follow(self: &Arc<Self>, id: RunId, after: u64) -> BoxStream<'static, Result<StoredEvent, RunStoreError>> {
        let runs = self.clone();
        let state = (runs, id, after, Vec::<StoredEvent>::new().into_iter(), false);
        futures::stream::unfold(state, |(runs, id, mut after, mut pending, mut ended)| async move {
            loop {
                if let Some(event) = pending.next() {
                    after = event.seq;
                    let done = event.kind == driver::DONE;
                    return Some((
                        Ok(event),
                        (runs, id, after, if done { Vec::new().into_iter() } else { pending }, done),
                    ));
                }
                if ended {
                    return None;
                }
                match runs.next_events(&id, after).await {
                    Ok(Some(events)) => pending = events.into_iter(),
                    Ok(None) => ended = true,
                    Err(error) => return Some((Err(error), (runs, id, after, pending, true))),
                }
            }
        })
        .boxed()
    }

    /// Waits for events after `after`; `None` once the run has ended with
    /// no more to read (or is no longer kept).
    async fn next_events(&self, id: &RunId, after: u64) -> Result<Option<Vec<StoredEvent>>, RunStoreError> {
        let poll = Duration::from_millis(self.settings.run_poll_ms);
        // Set once told of events after `after`: a read then must find them.
        let mut told = false;
        loop {
            let progress = self.live.lock().expect("not poisoned").get(id).map(|live| live.progress.subscribe());
            let events = self.store.read(id, after, 100).await?;
            if !events.is_empty() {
                return Ok(Some(events));
            }
            if told {
                // The store does not give what the driver stored: the run
                // was dropped (a full store makes room) while followed.
                return Err(RunStoreError::Unavailable(format!(
                    "run {id} is no longer kept: its events after {after} are gone"
                )));
            }
            match progress {
                Some(mut progress) => {
                    let (last, ended) = *progress.borrow_and_update();
                    if last > after {
                        told = true;
                    } else if ended {
                        return Ok(None);
                    } else {
                        // An error is a dropped sender: the driver is done.
                        let _ = progress.changed().await;
                    }
                }
                None => {
                    let record = self.get(id).await?;
                    if record.is_none_or(|record| record.status.is_end() && record.events <= after) {
                        return Ok(None);
                    }
                    tokio::time::sleep(poll).await;
                }
            }
        }
    }

    /// Tells this host's followers of `id` that events up to `last` are in
    /// the store (and, with `ended`, that there will be no more).
    fn notify(&self, id: &RunId, last: u64, ended: bool) {
        if let Some(live) = self.live.lock().expect("not poisoned").get(id) {
            live.progress.send_replace((last, ended));
        }
    }
}

impl SinkStatus {
    fn new(kind: &str) -> Self {
        SinkStatus {
            kind: kind.to_string(),
            acknowledged: 0,
            state: "delivering".into(),
            failures: 0,
            last_error: None,
        }
    }
}

/// A run's events as SSE (the WHATWG HTML spec's `text/event-stream`): each
/// event's sequence number as its `id:`, its type as `event:`, its data as
/// one JSON `data:` line.
pub fn sse_frames(
    events: impl Stream<Item = Result<StoredEvent, RunStoreError>> + Send + 'static,
) -> BoxStream<'static, bytes::Bytes> {
    events
        .map(|event| {
            let text = match event {
                Ok(event) => format!("id: {}\nevent: {}\ndata: {}\n\n", event.seq, event.kind, event.data),
                // Not logged as a run event: the subscriber may retry with its Last-Event-ID.
                Err(error) => {
                    format!("event: error\ndata: {}\n\n", json!({ "code": error.code(), "message": error.to_string() }))
                }
            };
            bytes::Bytes::from(text)
        })
        .boxed()
}
