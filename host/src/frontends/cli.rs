//! `streamhost invoke`: one request through the pipeline, the body written
//! to stdout as it streams; with `--run`, a detached run through the runs
//! API, driven by this process and followed on stdout.

use std::io::Write;

use futures::StreamExt;
use serde_json::{Value, json};

use std::sync::Arc;

use super::runs::RunReply;
use crate::error_code::ErrorReply;
use crate::pipeline::Pipeline;
use crate::pipeline::inbound::{self, Inbound, RouteSettings};
use crate::runs::{Runs, sse_frames};

/// What `invoke` was asked for on the command line.
pub struct Invocation<'a> {
    /// The pipeline or plugin to run (`invoke`'s argument), optionally with a
    /// path below it (`name/rest`).
    pub plugin: &'a str,
    /// Plugins to run after it, comma-separated (`--then`), sent as `?then=`.
    pub then: Option<&'a str>,
    /// A whole JSON body, or else one built from `prompt` and the ids.
    pub body: Option<&'a str>,
    /// The prompt the body is built from when there is no `body` (`--prompt`).
    pub prompt: Option<&'a str>,
    /// The built body's `userId` (`--user-id`).
    pub user_id: Option<&'a str>,
    /// The built body's `sessionId` (`--session-id`).
    pub session_id: Option<&'a str>,
}

impl Invocation<'_> {
    fn body(&self) -> String {
        if let Some(body) = self.body {
            return body.to_string();
        }
        let mut body = json!({ "prompt": self.prompt.unwrap_or_default() });
        for (key, value) in [("userId", self.user_id), ("sessionId", self.session_id)] {
            if let Some(value) = value {
                body[key] = Value::from(value);
            }
        }
        body.to_string()
    }
}

impl Invocation<'_> {
    /// The call as a frontend's request, at `path` (`/{plugin}` for a
    /// stream, the rest of `/runs/{plugin}` for a run).
    fn inbound(&self, target: Option<String>, path: String) -> Inbound {
        Inbound {
            method: "POST".into(),
            target,
            path,
            query: self.then.map(|then| format!("then={then}")).unwrap_or_default(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: self.body().into(),
            request_context: None,
        }
    }
}

/// Runs the invocation, writing the body to `out` chunk by chunk.
pub async fn invoke(pipeline: &Pipeline, invocation: &Invocation<'_>, out: &mut impl Write) -> Result<(), ErrorReply> {
    let (target, path) = Inbound::split_path(invocation.plugin);
    let response = inbound::open(pipeline, &RouteSettings::OPERATOR, invocation.inbound(target, path)).await?;
    write_all(response.body, out).await;
    Ok(())
}

/// What `invoke --record` saw: what a golden fixture keeps.
pub struct Recorded {
    /// What was invoked: a pipeline's or a plugin's name.
    pub target: String,
    /// The chain the stream went through, comma-separated.
    pub chain: String,
    /// The request as the chain saw it (after an inbound plugin and the
    /// manifest's settings), as a JSON body.
    pub body: String,
    /// Whether the whole stream was written out: `false` when stdout closed
    /// early (`| head`), and the recording would be cut short.
    pub whole: bool,
    /// The source's events, in the batches the first plugin got them.
    pub batches: Vec<Vec<crate::event::Event>>,
    /// The response body, whole.
    pub output: Vec<u8>,
}

/// Runs the invocation like [`invoke`], and keeps what a golden fixture
/// needs (`authoring::write_recording` writes it).
pub async fn record(
    pipeline: &Pipeline,
    invocation: &Invocation<'_>,
    out: &mut impl Write,
) -> Result<Recorded, ErrorReply> {
    let (target, path) = Inbound::split_path(invocation.plugin);
    let prepared = inbound::prepare(pipeline, &RouteSettings::OPERATOR, invocation.inbound(target, path)).await?;
    let chain = prepared.request.chain.iter().map(|name| name.as_str()).collect::<Vec<_>>().join(",");
    let body = prepared.request.to_json().to_string();
    let (response, recording) =
        pipeline.open_recorded(prepared.request, prepared.manifest).await.map_err(|error| ErrorReply::from(&error))?;
    let mut output = Vec::new();
    let mut stream = response.body;
    let mut whole = true;
    while let Some(chunk) = stream.next().await {
        output.extend_from_slice(&chunk);
        if out.write_all(&chunk).and_then(|()| out.flush()).is_err() {
            whole = false;
            break;
        }
    }
    let target = invocation.plugin.split('/').next().unwrap_or_default().to_string();
    Ok(Recorded { target, chain, body, whole, batches: recording.batches(), output })
}

/// Starts the invocation as a detached run: writes its start as a JSON
/// line, then its events as SSE while this process drives it.
pub async fn run(
    pipeline: &Pipeline,
    runs: &Arc<Runs>,
    invocation: &Invocation<'_>,
    out: &mut impl Write,
) -> Result<(), ErrorReply> {
    let inbound = invocation.inbound(None, format!("/{}", invocation.plugin));
    let RunReply::Started { accepted, record, prepared } =
        super::runs::handle(pipeline, runs, &RouteSettings::OPERATOR, inbound, None).await?
    else {
        unreachable!("a POST to the runs API starts a run or is refused");
    };
    if let RunReply::Json { body, .. } = *accepted {
        let _ = writeln!(out, "{body}");
    }
    let events = sse_frames(runs.follow(record.id.clone(), 0));
    let driving = runs.execute(pipeline, *record, prepared.request, prepared.manifest, None);
    futures::join!(driving, write_all(events, out));
    Ok(())
}

/// Writes `body` to `out` as it comes. A closed stdout (`| head`) stops
/// the writing, and with it the stream, like a disconnect.
async fn write_all(mut body: futures::stream::BoxStream<'static, bytes::Bytes>, out: &mut impl Write) {
    while let Some(chunk) = body.next().await {
        if out.write_all(&chunk).and_then(|()| out.flush()).is_err() {
            break;
        }
    }
}
