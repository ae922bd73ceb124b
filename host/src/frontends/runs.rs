//! The runs API, the same on every frontend (`runs` holds the runs):
//!
//! - `POST /runs/{pipeline}[/…]`: the same request as `POST /{pipeline}`
//!   (inbound plugin, manifest, chains and `callers` apply); `202` with
//!   `{"id", "status", "conversationId"}` and `Location: /runs/{id}`, before
//!   the first model event. The frontend then has the run executed.
//! - `GET /runs/{id}`: the run's status, times, usage and sinks.
//! - `GET /runs/{id}/events`: SSE, `id:` per event; from the start, or
//!   after `Last-Event-ID` (header, or `?lastEventId=`), then live until the
//!   run's `done` event. A run that has ended with nothing after the given
//!   id answers `204`, which tells an `EventSource` not to reconnect.
//! - `DELETE /runs/{id}`: cancels the run and its model call; the record
//!   once it has ended (`200`), or while still ending (`202`).
//!
//! A run started through an inbound plugin that identified its caller is
//! that caller's, and only theirs: a read runs the pipeline's inbound
//! plugin as it is now on the read (`GET` or `DELETE`, path `/runs/{id}…`,
//! no body), and only a caller it identifies as the owner passes. Anyone
//! else gets `404`, as for a run that does not exist, and so does a caller
//! it cannot identify now: the manifest gone, or edited to name no inbound
//! plugin or one that gives no user id. A run started with no owner (no
//! inbound plugin, or one that gave no user id) has the run id (128 random
//! bits) as its only key.
//!
//! Each caller may have `--max-runs-per-caller` runs under way (in
//! memory): the caller is the owner, else the address the frontend saw the
//! call come from ([`Caller`]).
//!
//! `runs` is therefore not a name a pipeline can be served under.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use serde_json::json;

use crate::error_code::ErrorCode;
use crate::error_code::ErrorReply;
use crate::pipeline::Pipeline;
use crate::pipeline::inbound::{Inbound, Prepared, RouteSettings, identify, prepare};
use crate::plugin_store::PluginName;
use crate::runs::{Caller, RunId, RunRecord, Runs, RunsError, sse_frames};

/// The first path segment of the runs API.
pub const PREFIX: &str = "runs";

/// How long `DELETE` waits for the run to end before answering `202`.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// What a runs call answers.
pub enum RunReply {
    /// A JSON answer: status, body, extra headers.
    Json {
        /// The HTTP status.
        status: u16,
        /// The JSON body.
        body: String,
        /// Headers to add, names in lower case (`location`).
        headers: Vec<(String, String)>,
    },
    /// A new run, recorded: answer `accepted`, then have it executed.
    Started {
        /// The answer to the caller: `202`, the run's id and `Location`.
        accepted: Box<RunReply>,
        /// The run as recorded, `started`.
        record: Box<RunRecord>,
        /// The request to run, as `prepare` mapped and checked it.
        prepared: Box<Prepared>,
    },
    /// `text/event-stream`.
    Events(BoxStream<'static, Bytes>),
    /// `204`: nothing more will come.
    NoContent,
}

/// Answers a call whose path starts with `/runs`: `inbound.path` is the
/// rest, from `/`. `client` is the address the call came from, as the
/// frontend saw it (`serve`: the TCP peer; Lambda: the Function URL's
/// source IP; none from the command line): whose share a new run counts
/// against when no inbound plugin identifies its caller.
pub async fn handle(
    pipeline: &Pipeline,
    runs: &std::sync::Arc<Runs>,
    routes: &RouteSettings,
    inbound: Inbound,
    client: Option<IpAddr>,
) -> Result<RunReply, ErrorReply> {
    let rest = inbound.path.trim_matches('/').to_string();
    let (first, below) = rest.split_once('/').map_or((rest.as_str(), ""), |(first, below)| (first, below));
    match (inbound.method.as_str(), below) {
        ("GET" | "DELETE", _) if first.is_empty() => {
            Err(ErrorReply::new(ErrorCode::NotFound, "a run answers at /runs/{id} and /runs/{id}/events"))
        }
        ("POST", _) => start(pipeline, runs, routes, first, below, inbound, client).await,
        ("GET", "") => Ok(json_reply(200, read(pipeline, runs, first, inbound).await?.view().to_string())),
        ("GET", "events") => {
            let after = last_event_id(&inbound)?;
            let record = read(pipeline, runs, first, inbound).await?;
            if !runs.has_event(&record.id, after).await.map_err(|error| store_error(&error))? {
                let message = format!("run `{first}` has no event {after}: resume from an id it sent");
                return Err(ErrorReply::new(ErrorCode::InvalidLastEventId, message));
            }
            if record.status.is_end() && after >= record.events {
                return Ok(RunReply::NoContent);
            }
            Ok(RunReply::Events(sse_frames(runs.follow(record.id, after))))
        }
        ("DELETE", "") => {
            let record = read(pipeline, runs, first, inbound).await?;
            let record = runs
                .cancel(&record.id, CANCEL_WAIT)
                .await
                .map_err(|error| store_error(&error))?
                .ok_or_else(|| unknown_run(first))?;
            Ok(json_reply(if record.status.is_end() { 200 } else { 202 }, record.view().to_string()))
        }
        ("GET" | "DELETE", _) => {
            Err(ErrorReply::new(ErrorCode::NotFound, "a run answers at /runs/{id} and /runs/{id}/events"))
        }
        _ => Err(ErrorReply::new(
            ErrorCode::MethodNotAllowed,
            "runs are started with POST, read with GET and cancelled with DELETE",
        )),
    }
}

/// `POST /runs/{pipeline}[/below]`: the request mapped and checked as a
/// stream's would be, and the run recorded against its caller's share.
async fn start(
    pipeline: &Pipeline,
    runs: &Runs,
    routes: &RouteSettings,
    target: &str,
    below: &str,
    inbound: Inbound,
    client: Option<IpAddr>,
) -> Result<RunReply, ErrorReply> {
    let target =
        (!target.is_empty()).then(|| percent_encoding::percent_decode_str(target).decode_utf8_lossy().into_owned());
    let inbound = Inbound { target, path: format!("/{below}"), ..inbound };
    let credentials = inbound.headers.clone();
    let name = inbound
        .target
        .clone()
        .or_else(|| routes.default_pipeline.as_ref().map(ToString::to_string))
        .unwrap_or_default();
    let prepared = prepare(pipeline, routes, inbound).await?;
    // Loaded now (compiled on a first call), so that a plugin that is not
    // there or not valid is refused as `POST /{pipeline}` refuses it.
    for plugin in prepared
        .request
        .chain
        .iter()
        .chain(prepared.manifest.iter().flat_map(|manifest| manifest.orchestration_plugins()))
    {
        pipeline.registry().load(plugin).await.map_err(|error| ErrorReply::from(&error))?;
    }
    let owner = owner(pipeline, &name, prepared.caller.clone(), credentials).await;
    let caller = Caller::of(owner.clone(), client);
    let record = runs
        .create(&name, &prepared.request, prepared.manifest.as_deref(), owner, &caller)
        .await
        .map_err(|error| runs_error(&error))?;
    let body = json!({ "id": record.id, "status": record.status, "conversationId": record.conversation, "events": format!("/runs/{}/events", record.id) });
    let accepted = RunReply::Json {
        status: 202,
        body: body.to_string(),
        headers: vec![("location".into(), format!("/runs/{}", record.id))],
    };
    Ok(RunReply::Started { accepted: Box::new(accepted), record: Box::new(record), prepared: Box::new(prepared) })
}

/// Who owns a run its pipeline's inbound plugin mapped for `user`: the
/// caller as the plugin identifies them on a run read with the same
/// `credentials` (headers), the way every later read is judged. A user id
/// the plugin passes on from the body (seed 000's `userId`, a claim) is
/// then no owner, and no share of its own; a plugin that refuses the read
/// keeps `user` as the owner.
async fn owner(
    pipeline: &Pipeline,
    name: &str,
    user: Option<String>,
    credentials: Vec<(String, String)>,
) -> Option<String> {
    let (Some(user), Ok(pipeline_name)) = (user, name.parse::<PluginName>()) else { return None };
    let reader = Inbound {
        method: "GET".into(),
        target: Some(name.to_string()),
        path: format!("/{PREFIX}/"),
        headers: credentials,
        ..Inbound::default()
    };
    match identify(pipeline, &pipeline_name, reader).await {
        Ok(identified) => identified,
        Err(_) => Some(user),
    }
}

/// The run `id`, if the caller may read it: a run with an owner only if
/// the pipeline's inbound plugin, as it is now, identifies the caller as
/// that owner. A caller it does not identify is refused as another caller
/// is, with `404`: nothing tells them the run exists.
async fn read(pipeline: &Pipeline, runs: &Runs, id: &str, inbound: Inbound) -> Result<RunRecord, ErrorReply> {
    let id: RunId = id.parse().map_err(|_| unknown_run(id))?;
    let record = runs.get(&id).await.map_err(|error| store_error(&error))?.ok_or_else(|| unknown_run(id.as_str()))?;
    let Some(owner) = &record.owner else { return Ok(record) };
    let name: PluginName = record.pipeline.parse().map_err(|_| unknown_run(id.as_str()))?;
    let reader = Inbound {
        target: Some(record.pipeline.clone()),
        path: format!("/{PREFIX}{}", inbound.path),
        body: Bytes::new(),
        ..inbound
    };
    match identify(pipeline, &name, reader).await? {
        Some(caller) if &caller == owner => Ok(record),
        // Another caller, or none the pipeline can name now (its manifest
        // gone, or edited to name no inbound plugin or one that gives no
        // user id): never a pass on an owned run.
        _ => Err(unknown_run(id.as_str())),
    }
}

/// The sequence number a subscriber has: `Last-Event-ID`, or the
/// `lastEventId` query parameter (a browser cannot set the header on its
/// first connection); 0 for none.
fn last_event_id(inbound: &Inbound) -> Result<u64, ErrorReply> {
    let header = inbound.headers.iter().find(|(name, _)| name == "last-event-id").map(|(_, value)| value.clone());
    let Some(value) = header.or_else(|| inbound.query_param("lastEventId")) else { return Ok(0) };
    let value = value.trim();
    if value.is_empty() {
        return Ok(0);
    }
    value.parse().map_err(|_| {
        ErrorReply::new(
            ErrorCode::InvalidLastEventId,
            format!("`{value}` is not an event id of a run (a sequence number)"),
        )
    })
}

fn unknown_run(id: &str) -> ErrorReply {
    let id = percent_encoding::percent_decode_str(id).decode_utf8_lossy();
    ErrorReply::new(ErrorCode::UnknownRun, format!("there is no run `{id}` that you may read"))
}

/// A run that could not be started: a refusal for now (the host's runs,
/// or this caller's share, are all under way) with its `Retry-After`.
fn runs_error(error: &RunsError) -> ErrorReply {
    let mut reply = match error {
        RunsError::Full { .. } | RunsError::CallerFull { .. } => ErrorReply::new(error.code(), error.to_string()),
        RunsError::Store(error) => store_error(error),
    };
    if let Some(secs) = error.retry_after_secs() {
        reply.headers.push(("retry-after".into(), secs.to_string()));
    }
    reply
}

fn store_error(error: &crate::runs::RunStoreError) -> ErrorReply {
    ErrorReply::new(error.code(), error.to_string())
}

fn json_reply(status: u16, body: String) -> RunReply {
    RunReply::Json { status, body, headers: Vec::new() }
}
