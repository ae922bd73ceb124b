//! The pipeline, the orchestrator and the error mapping in process: the
//! library's own types (`build_pipeline`, `Pipeline::resolve`,
//! `Pipeline::open`, `ErrorReply`) over real compiled components, with no
//! server between the test and the host.

use std::path::Path;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};
use streamhost::error_code::ErrorCode;
use streamhost::error_code::ErrorReply;
use streamhost::pipeline::{Inference, Pipeline};

use crate::support::{example, plugin_dir, write_manifest};

/// The host as `streamhost serve` builds it, over `plugins`, with `args`.
async fn pipeline(plugins: &Path, args: &[&str]) -> Pipeline {
    crate::support::in_process_pipeline(plugins, args).await
}

/// Opens `target` (with `then`) for `body`, as every frontend does.
pub(crate) async fn open(
    pipeline: &Pipeline,
    target: &str,
    then: Option<&str>,
    body: &Value,
) -> Result<(String, BoxStream<'static, Bytes>), ErrorReply> {
    let found = pipeline.resolve(target, then).await.map_err(|error| ErrorReply::from(&error))?;
    let manifest = found.manifest.clone();
    let request = found
        .request(None, body.to_string().as_bytes(), Inference::Refused)
        .map_err(|error| ErrorReply::from(&error))?;
    let response = pipeline.open(request, manifest).await.map_err(|error| ErrorReply::from(&error))?;
    Ok((response.content_type, response.body))
}

/// A body's NDJSON lines, each parsed.
pub(crate) async fn lines(body: BoxStream<'static, Bytes>) -> Vec<Value> {
    let bytes: Vec<u8> = body.flat_map(|chunk| futures::stream::iter(chunk.to_vec())).collect().await;
    String::from_utf8(bytes).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// The source at a model's pace: the first bytes are out while the rest of
/// the answer has not been made yet.
#[tokio::test(flavor = "multi_thread")]
async fn a_chain_streams_its_first_bytes_before_the_source_has_finished() {
    let plugins = plugin_dir(&[("ndjson", &example("ndjson"))]);
    let pipeline = pipeline(plugins.path(), &["--echo-delay-ms", "80"]).await;
    let (content_type, mut body) =
        open(&pipeline, "ndjson", None, &json!({ "prompt": "one two three four" })).await.unwrap();
    assert_eq!(content_type, "application/x-ndjson");
    let first = body.next().await.unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"metadata\""), "{first:?}");
    assert!(futures::poll!(body.next()).is_pending(), "the next token is still to come");
    let rest = lines(body).await;
    let texts: Vec<&str> =
        rest.iter().filter(|line| line["type"] == "chunk").map(|line| line["data"].as_str().unwrap()).collect();
    assert_eq!(texts.concat(), "one two three four");
    assert_eq!(pipeline.active_streams(), 0, "a finished stream is no longer counted");
}

/// A routed turn in process: the router's choice, the agent's answer, and
/// the turn remembered for the next request of the session.
#[tokio::test(flavor = "multi_thread")]
async fn the_orchestrator_routes_answers_and_remembers_the_turn() {
    let plugins = plugin_dir(&[("keyword-router", &example("keyword-router")), ("ndjson", &example("ndjson"))]);
    write_manifest(
        plugins.path(),
        "desk",
        &json!({
            "router": "keyword-router",
            "agents": [
                { "name": "billing", "description": "Invoices and refunds" },
                { "name": "tech", "description": "Crashes and errors" }
            ],
            "transforms": ["ndjson"]
        }),
    );
    let pipeline = pipeline(plugins.path(), &["--echo-delay-ms", "0"]).await;
    let first = json!({ "prompt": "I was charged twice on my invoice", "userId": "u1", "sessionId": "s1" });
    let (_, body) = open(&pipeline, "desk", None, &first).await.unwrap();
    let turn = lines(body).await;
    assert_eq!(turn[0]["type"], "metadata");
    assert_eq!(turn[0]["data"]["agent"], "billing", "{turn:?}");
    let answer: String =
        turn.iter().filter(|line| line["type"] == "chunk").map(|line| line["data"].as_str().unwrap()).collect();
    assert_eq!(answer, "I was charged twice on my invoice", "the echo model answers with the prompt");

    // No keyword: the router goes on with the agent the history names.
    let second = json!({ "prompt": "and again", "userId": "u1", "sessionId": "s1" });
    let (_, body) = open(&pipeline, "desk", None, &second).await.unwrap();
    let turn = lines(body).await;
    assert_eq!(turn[0]["data"]["agent"], "billing", "{turn:?}");
    assert_eq!(turn[0]["data"]["reason"], "no keyword; the conversation continues with billing");
    assert_eq!(turn.last().unwrap()["type"], "complete", "{turn:?}");
}

/// Every failure answered before the first byte takes its status from the
/// one table, whichever layer it came from.
#[tokio::test(flavor = "multi_thread")]
async fn failures_before_the_first_byte_take_the_tables_status() {
    let plugins = plugin_dir(&[("ndjson", &example("ndjson"))]);
    std::fs::write(plugins.path().join("notes.wasm"), b"not a component").unwrap();
    let pipeline = pipeline(plugins.path(), &[]).await;
    let prompt = json!({ "prompt": "hi" });
    let cases: [(&str, Option<&str>, Value, ErrorCode); 5] = [
        ("..x", None, prompt.clone(), ErrorCode::InvalidPluginName),
        ("absent", None, prompt.clone(), ErrorCode::UnknownPlugin),
        ("notes", None, prompt.clone(), ErrorCode::InvalidPlugin),
        ("ndjson", None, json!({ "promt": "hi" }), ErrorCode::InvalidRequest),
        (
            "ndjson",
            None,
            json!({ "prompt": "hi", "model": { "provider": "openai" } }),
            ErrorCode::ProviderNotConfigured,
        ),
    ];
    for (target, then, body, code) in cases {
        let Err(reply) = open(&pipeline, target, then, &body).await else { panic!("{target} {body} opened") };
        assert_eq!((reply.code.as_str(), reply.status), (code.as_str(), code.status()), "{target} {body}: {reply:?}");
    }
}
