//! Pipeline manifests (`<name>.json` beside the plugins) through the real
//! host: the manifest picks the model source, the model and the chain, and
//! gives settings that a request may override; a changed manifest is served
//! by the next request; a bad one is refused with its reason.

use crate::support;

use std::time::Duration;

use serde_json::json;
use support::upstream::{EVENT_STREAM, Script, Upstream, raw_chunk};
use support::{Server, example, plugin_dir, write_manifest};

#[tokio::test]
async fn a_manifest_chooses_the_source_model_chain_and_settings() {
    let metrics = r#""amazon-bedrock-invocationMetrics":{"inputTokenCount":3,"outputTokenCount":2,"invocationLatency":40,"firstByteLatency":20}"#;
    let chunks = [
        raw_chunk(
            r#"{"generation":"mail a@b.io","prompt_token_count":3,"generation_token_count":1,"stop_reason":null}"#,
        ),
        raw_chunk(&format!(r#"{{"generation":" now","generation_token_count":2,"stop_reason":"stop",{metrics}}}"#)),
    ];
    let bedrock = Upstream::start(vec![Script::new(200, EVENT_STREAM).chunks(Duration::ZERO, chunks)]).await;
    let plugins = plugin_dir(&[
        ("decode-llama", &example("decode-llama")),
        ("redact", &example("redact")),
        ("text-only", &example("text-only")),
    ]);
    write_manifest(
        plugins.path(),
        "llama",
        &json!({
            "description": "Llama on Bedrock, redacted, as text",
            "model": { "provider": "bedrock-raw", "id": "meta.llama3-8b-instruct-v1:0", "maxTokens": 64, "temperature": 0.1 },
            "transforms": ["decode-llama", "redact", "text-only"],
            "config": { "redact": { "emailMask": "[email]" } },
            "callers": { "may": ["model.maxTokens", "config.redact.emailMask"] }
        }),
    );
    // The host's own default is echo: the manifest is what picks Bedrock.
    let host = Server::builder().plugins(plugins.path()).env(bedrock.bedrock_env()).start();

    let reply = host.post("/llama", r#"{"prompt":"Hi"}"#).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "mail [email] now\nusage: input=3 output=2 total=5 latency_ms=40\n")
    );
    let overridden =
        host.post("/llama", r#"{"prompt":"Hi","model":{"maxTokens":5},"config":{"redact":{"emailMask":"<e>"}}}"#).await;
    assert_eq!(overridden.body, "mail <e> now\nusage: input=3 output=2 total=5 latency_ms=40\n");

    let received = bedrock.received();
    assert_eq!(received[0].path, "/model/meta.llama3-8b-instruct-v1%3A0/invoke-with-response-stream");
    assert_eq!((&received[0].body["max_gen_len"], &received[0].body["temperature"]), (&json!(64), &json!(0.1)));
    assert_eq!((&received[1].body["max_gen_len"], &received[1].body["temperature"]), (&json!(5), &json!(0.1)));
}

#[tokio::test]
async fn a_changed_manifest_is_served_by_the_next_request() {
    let plugins = plugin_dir(&[("ndjson", &example("ndjson")), ("sse", &example("sse"))]);
    write_manifest(plugins.path(), "feed", &json!({ "transforms": ["ndjson"] }));
    let host = Server::builder().plugins(plugins.path()).start();
    assert_eq!(host.post("/feed", r#"{"prompt":"hi"}"#).await.content_type, "application/x-ndjson");
    write_manifest(plugins.path(), "feed", &json!({ "transforms": ["sse"] }));
    assert_eq!(host.post("/feed", r#"{"prompt":"hi"}"#).await.content_type, "text/event-stream");
    std::fs::remove_file(plugins.path().join("feed.json")).unwrap();
    host.post("/feed", r#"{"prompt":"hi"}"#).await.assert_error(404, "unknown_plugin", "no plugin named `feed`");
}

#[tokio::test]
async fn an_invalid_manifest_is_refused_with_its_reason() {
    let plugins = plugin_dir(&[("ndjson", &example("ndjson"))]);
    write_manifest(plugins.path(), "broken", &json!({ "transforms": ["ndjson"], "config": { "sse": {} } }));
    write_manifest(plugins.path(), "typo", &json!({ "transform": ["ndjson"] }));
    let host = Server::builder().plugins(plugins.path()).start();
    host.post("/broken", r#"{"prompt":"hi"}"#).await.assert_error(
        500,
        "invalid_manifest",
        "the pipeline manifest `broken.json` is invalid: `config` has settings for `sse`, which is not one of its `transforms`, `chains`, `router` or `inbound`",
    );
    let typo = host.post("/typo", r#"{"prompt":"hi"}"#).await;
    assert_eq!(typo.status, 500);
    assert!(typo.body.contains("unknown field `transform`, expected one of"), "{}", typo.body);
    // The plugins themselves are still served.
    assert_eq!(host.post("/ndjson", r#"{"prompt":"hi"}"#).await.status, 200);
}
