//! The pump, the orchestrator and the runs driver in process, as Spin's
//! `factors-test` tests its factors: the library's own types
//! (`Pipeline::open_recorded`, `Pipeline::open_replay`, `Runs::create`,
//! `Runs::execute`, `Runs::cancel`) over real compiled components and the
//! offline echo model, with no server between the test and the host.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use streamhost::event::{Event, Usage};
use streamhost::pipeline::{Inference, Pipeline};
use streamhost::request::Request;
use streamhost::runs::{Caller, RunId, RunStatus, RunUsage, Runs, StoredEvent};

use crate::pipeline::{lines, open};
use crate::support::{example, fixture, in_process_host, in_process_pipeline, plugin_dir, write_manifest};

/// A body whole, as text.
async fn text_of(mut body: BoxStream<'static, Bytes>) -> String {
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).unwrap()
}

/// The request for `body` to `target` (a plugin, with `then` after it).
async fn request(pipeline: &Pipeline, target: &str, then: Option<&str>, body: &Value) -> Request {
    let found = pipeline.resolve(target, then).await.unwrap();
    assert!(found.manifest.is_none(), "{target} is a plugin, not a named pipeline");
    found.request(None, body.to_string().as_bytes(), Inference::Refused).unwrap()
}

/// An error line of the `ndjson` formatter: its code, and that its message
/// is the trap's as the caller sees it (what the plugin printed is in the
/// host's log, not here).
fn assert_trap_line(line: &Value) {
    assert_eq!((&line["type"], &line["data"]["code"]), (&json!("error"), &json!("plugin_trapped")), "{line}");
    let message = line["data"]["message"].as_str().unwrap();
    assert!(message.starts_with("plugin `trap` trapped: "), "{message}");
    assert!(message.ends_with("; what it printed is in the host's log"), "{message}");
}

// ---- The pump ----

/// The source's events reach the first transform in the batches they were
/// ready in (at a model's pace: the opening metadata, then one token each,
/// the stop and the usage with the last token), and what a transform
/// returns goes on to the next: `redact` holds text back while it may still
/// become an address, `ndjson` writes what reaches it.
#[tokio::test(flavor = "multi_thread")]
async fn the_pump_moves_the_sources_batches_through_two_transforms() {
    let plugins = plugin_dir(&[("redact", &example("redact")), ("ndjson", &example("ndjson"))]);
    let pipeline = in_process_pipeline(plugins.path(), &["--echo-delay-ms", "40"]).await;
    let request = request(&pipeline, "redact", Some("ndjson"), &json!({ "prompt": "mail bob@x.io now" })).await;
    let (response, recording) = pipeline.open_recorded(request, None).await.unwrap();
    assert_eq!(response.content_type, "application/x-ndjson");
    let body = text_of(response.body).await;

    let usage = Usage {
        input_tokens: 4,
        output_tokens: 4,
        total_tokens: 8,
        latency_ms: 160,
        cache_read_input_tokens: 0,
        cache_write_input_tokens: 0,
    };
    assert_eq!(
        recording.batches(),
        [
            vec![Event::Metadata(r#"{"provider":"echo","model":"echo"}"#.into())],
            vec![Event::Text("mail".into())],
            vec![Event::Text(" bob@".into())],
            vec![Event::Text("x.io".into())],
            vec![Event::Text(" now".into()), Event::End("end_turn".into()), Event::Usage(usage)],
        ],
        "the batches as the first stage got them"
    );
    assert_eq!(
        body,
        concat!(
            "{\"type\":\"metadata\",\"data\":{\"provider\":\"echo\",\"model\":\"echo\"}}\n",
            "{\"type\":\"chunk\",\"data\":\"mail \"}\n",
            "{\"type\":\"chunk\",\"data\":\"[email] \"}\n",
            "{\"type\":\"chunk\",\"data\":\"now\"}\n",
            "{\"type\":\"complete\",\"data\":{\"stopReason\":\"end_turn\",\"usage\":",
            "{\"inputTokens\":4,\"outputTokens\":4,\"totalTokens\":8,\"latencyMs\":160}}}\n",
        )
    );
    assert_eq!(pipeline.active_streams(), 0, "a finished stream is no longer counted");
}

/// A replayed batch is one `push` of the first transform, however many
/// events it holds: `trap`, set to fail on its second push, lets the whole
/// first batch through and fails on the second.
#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_batch_is_one_push_of_the_first_transform() {
    let plugins = plugin_dir(&[("trap", &fixture("trap")), ("ndjson", &example("ndjson"))]);
    let pipeline = in_process_pipeline(plugins.path(), &[]).await;
    let body = json!({ "prompt": "unused", "config": { "trap": { "trapAt": 2 } } });
    let request = request(&pipeline, "trap", Some("ndjson"), &body).await;
    let batches = vec![
        vec![
            Event::Metadata(r#"{"model":"recorded"}"#.into()),
            Event::Text("a".into()),
            Event::Text("b".into()),
            Event::Text("c".into()),
        ],
        vec![Event::Text("d".into())],
        vec![Event::End("end_turn".into())],
    ];
    let response = pipeline.open_replay(request, batches).await.unwrap();
    let lines = lines(response.body).await;
    assert_eq!(
        lines[..4],
        [
            json!({ "type": "metadata", "data": { "model": "recorded" } }),
            json!({ "type": "chunk", "data": "a" }),
            json!({ "type": "chunk", "data": "b" }),
            json!({ "type": "chunk", "data": "c" }),
        ]
    );
    assert_eq!(lines.len(), 5, "the error is the last line: {lines:?}");
    assert_trap_line(&lines[4]);
}

/// A plugin that traps once the body has started ends the stream with an
/// error event, which the formatter after it writes in its own format: a
/// JSON line for `ndjson`, an `error:` line for `text-only`.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_that_traps_mid_stream_ends_it_with_an_error_in_the_formatters_format() {
    let plugins =
        plugin_dir(&[("trap", &fixture("trap")), ("ndjson", &example("ndjson")), ("text-only", &example("text-only"))]);
    // At a model's pace each token is a push of its own: the third push,
    // the trap's, comes after the first bytes.
    let pipeline = in_process_pipeline(plugins.path(), &["--echo-delay-ms", "20"]).await;
    let body = json!({ "prompt": "Hi there", "config": { "trap": { "trapAt": 3 } } });

    let (content_type, stream) = open(&pipeline, "trap", Some("ndjson"), &body).await.unwrap();
    assert_eq!(content_type, "application/x-ndjson");
    let lines = lines(stream).await;
    assert_eq!(
        lines[..2],
        [
            json!({ "type": "metadata", "data": { "provider": "echo", "model": "echo" } }),
            json!({ "type": "chunk", "data": "Hi" }),
        ]
    );
    assert_eq!(lines.len(), 3, "nothing follows the error: {lines:?}");
    assert_trap_line(&lines[2]);

    let (content_type, stream) = open(&pipeline, "trap", Some("text-only"), &body).await.unwrap();
    assert_eq!(content_type, "text/plain; charset=utf-8");
    let text = text_of(stream).await;
    assert!(text.starts_with("Hi\nerror: plugin_trapped: plugin `trap` trapped: "), "{text:?}");
    assert!(text.ends_with("; what it printed is in the host's log\n"), "{text:?}");
    assert_eq!(pipeline.active_streams(), 0);
}

/// The lines of an `ndjson-status` body without their timestamps, each of
/// which must be a number (seconds since the epoch, in the tool-executor
/// layout).
fn without_timestamps(lines: Vec<Value>) -> Vec<Value> {
    lines
        .into_iter()
        .map(|mut line| {
            let timestamp = line.as_object_mut().and_then(|fields| fields.remove("timestamp"));
            assert!(timestamp.as_ref().is_some_and(Value::is_number), "{line}: {timestamp:?}");
            line
        })
        .collect()
}

/// With the manifest's `idleMs`, a source silent that long has every stage
/// pushed an empty batch (a tick), and `ndjson-status` answers a tick with
/// a heartbeat line while the model is between tokens. The same stream
/// without `idleMs` has no heartbeat.
#[tokio::test(flavor = "multi_thread")]
async fn a_tick_after_idle_ms_without_source_events_reaches_the_formatter() {
    let plugins = plugin_dir(&[("ndjson-status", &example("ndjson-status"))]);
    let config = json!({ "ndjson-status": { "layout": "tool-executor", "heartbeatMs": 1 } });
    write_manifest(
        plugins.path(),
        "ticking",
        &json!({ "transforms": ["ndjson-status"], "idleMs": 100, "config": config }),
    );
    write_manifest(plugins.path(), "quiet", &json!({ "transforms": ["ndjson-status"], "config": config }));
    // Two tokens, each after 500 ms of silence.
    let pipeline = in_process_pipeline(plugins.path(), &["--echo-delay-ms", "500"]).await;
    let prompt = json!({ "prompt": "one two" });
    let result = json!({ "type": "result", "payload": { "tool_result": {
        "_schema": "ToolResult",
        "_schema_version": "1.0",
        "status": "success",
        "message": "one two",
        "data": null,
        "data_objects": []
    } } });

    let (content_type, body) = open(&pipeline, "ticking", None, &prompt).await.unwrap();
    assert_eq!(content_type, "application/x-ndjson");
    let ticking = without_timestamps(lines(body).await);
    let (last, before) = ticking.split_last().unwrap();
    assert_eq!(last, &result, "{ticking:?}");
    assert!(before.len() >= 2, "a heartbeat in each silence before a token: {ticking:?}");
    assert!(before.iter().all(|line| *line == json!({ "type": "heartbeat", "payload": {} })), "{ticking:?}");

    let (_, body) = open(&pipeline, "quiet", None, &prompt).await.unwrap();
    assert_eq!(without_timestamps(lines(body).await), [result], "no tick without idleMs");
}

// ---- The orchestrator ----

/// A pipeline `desk` of two agents, billing and tech (the built-in model
/// agent each), routed by `keyword-router` with `router` as its settings,
/// formatted by `ndjson`.
fn desk(plugins: &Path, router: Value) {
    write_manifest(
        plugins,
        "desk",
        &json!({
            "router": "keyword-router",
            "agents": [
                { "name": "billing", "description": "Invoices and refunds" },
                { "name": "tech", "description": "Crashes and errors" }
            ],
            "transforms": ["ndjson"],
            "config": { "keyword-router": router }
        }),
    );
}

/// The router picks the agent the prompt's words name (here the second),
/// the stream's first metadata names it and why, and that agent answers
/// (the echo model, with the prompt).
#[tokio::test(flavor = "multi_thread")]
async fn the_router_picks_an_agent_and_the_metadata_names_it() {
    let plugins = plugin_dir(&[("keyword-router", &example("keyword-router")), ("ndjson", &example("ndjson"))]);
    desk(plugins.path(), json!({}));
    let pipeline = in_process_pipeline(plugins.path(), &["--echo-delay-ms", "0"]).await;
    let prompt = "The app crashes with errors";
    let (content_type, body) = open(&pipeline, "desk", None, &json!({ "prompt": prompt })).await.unwrap();
    assert_eq!(content_type, "application/x-ndjson");

    let tokens = streamhost::providers::tokenize(prompt);
    assert_eq!(tokens.len(), 7);
    let mut expected = vec![
        json!({ "type": "metadata", "data": {
            "agent": "tech", "confidence": 1.0, "reason": "mentions crashes, errors", "userInput": prompt
        } }),
        json!({ "type": "metadata", "data": { "provider": "echo", "model": "echo" } }),
    ];
    expected.extend(tokens.iter().map(|token| json!({ "type": "chunk", "data": token })));
    expected.push(json!({ "type": "complete", "data": {
        "stopReason": "end_turn",
        "usage": { "inputTokens": 7, "outputTokens": 7, "totalTokens": 14, "latencyMs": 0 }
    } }));
    assert_eq!(lines(body).await, expected);
}

/// A router that names an agent the pipeline does not have ends the turn
/// with an `unknown_agent` error event, in the formatter's format, before
/// any metadata: no agent ran.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_the_pipeline_does_not_name_is_unknown_agent() {
    let plugins = plugin_dir(&[("keyword-router", &example("keyword-router")), ("ndjson", &example("ndjson"))]);
    // No keyword of either agent's and no earlier turn: the fallback answers.
    desk(plugins.path(), json!({ "fallback": "astrology" }));
    let pipeline = in_process_pipeline(plugins.path(), &["--echo-delay-ms", "0"]).await;
    let (content_type, body) = open(&pipeline, "desk", None, &json!({ "prompt": "Hello there" })).await.unwrap();
    assert_eq!(content_type, "application/x-ndjson");
    assert_eq!(
        lines(body).await,
        [json!({ "type": "error", "data": {
            "code": "unknown_agent",
            "message": "router `keyword-router` chose `astrology`, which is not one of this pipeline's agents (billing, tech)"
        } })]
    );
}

// ---- The runs driver ----

/// Records a run of the plugin `target` for `body`, as `POST /runs/{target}`
/// does: its record (`started`), and the request to execute.
async fn create_run(
    pipeline: &Pipeline,
    runs: &Runs,
    target: &str,
    body: &Value,
) -> (streamhost::runs::RunRecord, Request) {
    let request = request(pipeline, target, None, body).await;
    let record = runs.create(target, &request, None, None, &Caller::Unknown).await.unwrap();
    assert_eq!(record.status, RunStatus::Started);
    (record, request)
}

/// The run's stored events, from the first to `done`.
async fn stored_events(runs: &Arc<Runs>, id: &RunId) -> Vec<StoredEvent> {
    runs.follow(id.clone(), 0).map(|event| event.unwrap()).collect().await
}

/// An event's type and data, the data parsed.
fn kind_and_data(event: &StoredEvent) -> (&str, Value) {
    (event.kind.as_str(), serde_json::from_str(&event.data).unwrap())
}

/// The text of the stored text events, in order.
fn stored_text(events: &[StoredEvent]) -> String {
    events
        .iter()
        .filter(|event| event.kind == "text")
        .map(|event| kind_and_data(event).1.as_str().unwrap().to_string())
        .collect()
}

/// A run driven in process to its end: every event out of the chain is
/// stored in order from 1, the text as `redact` let it out, then `done`;
/// the record is `completed` with the usage summed.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_in_process_reaches_done_and_its_events_hold_the_text() {
    let plugins = plugin_dir(&[("redact", &example("redact"))]);
    let (pipeline, runs) = in_process_host(plugins.path(), &["--echo-delay-ms", "0"]).await;
    let (record, request) = create_run(&pipeline, &runs, "redact", &json!({ "prompt": "mail bob@x.io now" })).await;
    let id = record.id.clone();
    runs.execute(&pipeline, record, request, None, None).await;

    let events = stored_events(&runs, &id).await;
    let seqs: Vec<u64> = events.iter().map(|event| event.seq).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>(), "numbered from 1 with no gap");
    assert_eq!(kind_and_data(&events[0]), ("metadata", json!({ "provider": "echo", "model": "echo" })));
    assert_eq!(stored_text(&events), "mail [email] now");
    let (tail, middle) = (&events[events.len() - 3..], &events[1..events.len() - 3]);
    assert!(middle.iter().all(|event| event.kind == "text"), "{events:?}");
    assert_eq!(
        tail.iter().map(kind_and_data).collect::<Vec<_>>(),
        [
            ("end", json!("end_turn")),
            ("usage", json!({ "inputTokens": 4, "outputTokens": 4, "totalTokens": 8, "latencyMs": 0 })),
            ("done", json!({ "status": "completed" })),
        ]
    );

    let record = runs.get(&id).await.unwrap().expect("the run is kept");
    assert_eq!(
        (record.status, record.events, record.error, record.usage),
        (
            RunStatus::Completed,
            events.len() as u64,
            None,
            Some(RunUsage { input_tokens: 4, output_tokens: 4, total_tokens: 8 })
        )
    );
    assert!(record.ended_ms.is_some());
}

/// A cancel while the model is still answering ends the run `cancelled`:
/// the driver returns, the log ends with `done` after the text so far (the
/// model's end never came), and the record has no error.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_mid_run_ends_it_cancelled() {
    let plugins = plugin_dir(&[("redact", &example("redact"))]);
    // 40 tokens, 100 ms apart: 4 s, of which the test waits for the first.
    let (pipeline, runs) = in_process_host(plugins.path(), &["--echo-delay-ms", "100"]).await;
    let pipeline = Arc::new(pipeline);
    let prompt = ["word"; 40].join(" ");
    let (record, request) = create_run(&pipeline, &runs, "redact", &json!({ "prompt": prompt })).await;
    let id = record.id.clone();
    let driving = tokio::spawn({
        let (pipeline, runs) = (pipeline.clone(), runs.clone());
        async move { runs.execute(&pipeline, record, request, None, None).await }
    });

    let mut follow = runs.follow(id.clone(), 0);
    while follow.next().await.expect("the run goes on").unwrap().kind != "text" {}
    drop(follow);
    let record = runs.cancel(&id, Duration::from_secs(10)).await.unwrap().expect("the run is kept");
    assert_eq!((record.status, &record.error), (RunStatus::Cancelled, &None));
    tokio::time::timeout(Duration::from_secs(10), driving).await.expect("the driver returns after a cancel").unwrap();

    let events = stored_events(&runs, &id).await;
    let (done, before) = events.split_last().unwrap();
    assert_eq!(kind_and_data(done), ("done", json!({ "status": "cancelled" })));
    assert_eq!(done.seq, record.events);
    assert!(before.iter().all(|event| event.kind == "metadata" || event.kind == "text"), "{events:?}");
    let text = stored_text(&events);
    assert!(!text.is_empty() && text.len() < prompt.len(), "stopped part way: {text:?}");
    assert!(prompt.starts_with(&text), "{text:?}");
}
