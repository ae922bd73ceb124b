//! The Lambda frontend through a Runtime API emulator on loopback that
//! streams: the real binary, started as Lambda starts it (no arguments),
//! serving Function URL events with streamed responses.

use crate::support;

use std::time::{Duration, Instant};

use support::lambda::{Function, RuntimeApi};
use support::upstream::{EVENT_STREAM, SSE, Script, Upstream, converse_answer, raw_chunk, sse};
use support::{EXAMPLES, example, fixture, plugin_dir};

#[tokio::test]
async fn a_function_url_request_streams_ndjson_through_the_runtime_api() {
    const DELAY_MS: u64 = 100;
    let api = RuntimeApi::start().await;
    let _function = Function::start(&api, EXAMPLES, DELAY_MS);
    let invocation =
        api.invoke("/ndjson", "", r#"{"prompt":"one two three four five six seven eight","sessionId":"s1"}"#).await;

    assert_eq!(invocation.response_mode, "streaming");
    assert_eq!(invocation.content_type, "application/vnd.awslambda.http-integration-response");
    assert_eq!(invocation.prelude["statusCode"], 200);
    assert_eq!(invocation.prelude["headers"]["content-type"], "application/x-ndjson");
    let lines: Vec<&str> = invocation.body.lines().collect();
    assert_eq!(lines.len(), 1 + 11 + 1, "metadata, eleven tokens, complete: {lines:?}");
    assert_eq!(lines[1], r#"{"type":"chunk","data":"one"}"#);
    assert!(lines[12].starts_with(r#"{"type":"complete","data":{"stopReason":"end_turn""#));

    // Streamed: the first text arrived long before the provider finished.
    let first_text =
        invocation.chunks.iter().find(|(_, chunk)| String::from_utf8_lossy(chunk).contains("\"chunk\"")).unwrap().0;
    let finished = invocation.chunks.last().unwrap().0;
    assert!(finished - first_text >= Duration::from_millis(DELAY_MS * 7), "not streamed: {:?}", invocation.chunks);
}

#[tokio::test]
async fn a_bad_request_is_answered_before_the_stream_with_its_status() {
    let api = RuntimeApi::start().await;
    let _function = Function::start(&api, EXAMPLES, 0);
    let missing = api.invoke("/missing", "", r#"{"prompt":"x"}"#).await;
    assert_eq!(missing.prelude["statusCode"], 404);
    assert_eq!(missing.prelude["headers"]["content-type"], "application/json");
    // Lambda's own request id names the call, in the error and its header.
    assert_eq!(
        missing.body,
        r#"{"error":{"code":"unknown_plugin","message":"no plugin named `missing`","requestId":"request-1"}}"#
    );
    assert_eq!(missing.prelude["headers"]["x-request-id"], "request-1");

    let malformed = api.invoke("/ndjson", "", "{").await;
    assert_eq!(malformed.prelude["statusCode"], 400);
    assert!(malformed.body.starts_with(r#"{"error":{"code":"malformed_json""#));

    // The function keeps serving.
    assert_eq!(
        api.invoke("/text-only", "", r#"{"prompt":"ok"}"#).await.body,
        "ok\nusage: input=1 output=1 total=2 latency_ms=0\n"
    );
}

#[tokio::test]
async fn a_failure_after_the_first_byte_is_an_error_event_in_the_stream() {
    let dir = plugin_dir(&[("trap", &fixture("trap")), ("ndjson", &example("ndjson"))]);
    let api = RuntimeApi::start().await;
    let _function = Function::start(&api, dir.path().to_str().unwrap(), 20);
    let body = r#"{"prompt":"Hi there","config":{"trap":{"trapAt":3}}}"#;
    let invocation = api.invoke("/trap", "then=ndjson", body).await;
    assert_eq!(invocation.prelude["statusCode"], 200);
    let lines: Vec<&str> = invocation.body.lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let error: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!((error["type"].as_str(), error["data"]["code"].as_str()), (Some("error"), Some("plugin_trapped")));
}

#[tokio::test]
async fn a_response_that_cannot_be_written_stops_the_stream() {
    let api = RuntimeApi::start().await;
    let function = Function::start(&api, EXAMPLES, 50);
    // 400 tokens at 50 ms: 20 s, unless the stream stops when writing fails.
    let body = serde_json::json!({ "prompt": "word ".repeat(400) }).to_string();
    let cut = api.invoke_and_hang_up("/ndjson", "", &body).await;
    assert!(cut.body.starts_with(r#"{"type":"metadata""#), "{}", cut.body);

    let deadline = Instant::now() + Duration::from_secs(10);
    while !function.logs().contains("stream cancelled before its end") {
        assert!(Instant::now() < deadline, "the stream went on after the client left: {}", function.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And the function takes the next invocation.
    assert_eq!(
        api.invoke("/text-only", "", r#"{"prompt":"ok"}"#).await.body,
        "ok\nusage: input=1 output=1 total=2 latency_ms=50\n"
    );
}

#[tokio::test]
async fn bedrock_streams_through_the_function_url() {
    let deltas = ["one ", "two ", "three ", "four ", "five ", "six"];
    let bedrock = Upstream::start(vec![
        Script::new(200, EVENT_STREAM).chunks(Duration::from_millis(100), converse_answer(&deltas)),
    ])
    .await;
    let api = RuntimeApi::start().await;
    let mut env = bedrock.bedrock_env();
    env.extend([
        ("STREAMHOST_PROVIDER", "bedrock".to_string()),
        ("STREAMHOST_MODEL", "anthropic.claude-3-haiku-20240307-v1:0".to_string()),
    ]);
    env.push(("STREAMHOST_NAMED_PIPELINES_ONLY", "false".into()));
    let _function = Function::start_with(&api, EXAMPLES, 0, env);
    let invocation = api.invoke("/text-only", "", r#"{"prompt":"count"}"#).await;
    assert_eq!(invocation.prelude["statusCode"], 200);
    assert_eq!(invocation.body, "one two three four five six\nusage: input=7 output=6 total=13 latency_ms=250\n");
    let first_text =
        invocation.chunks.iter().find(|(_, chunk)| String::from_utf8_lossy(chunk).contains("one")).unwrap().0;
    let finished = invocation.chunks.last().unwrap().0;
    assert!(finished - first_text >= Duration::from_millis(400), "not streamed: {:?}", invocation.chunks);
}

#[tokio::test]
async fn every_model_source_can_be_chosen_per_request_on_lambda() {
    let now = Duration::ZERO;
    let metrics = r#""amazon-bedrock-invocationMetrics":{"inputTokenCount":2,"outputTokenCount":1,"invocationLatency":9,"firstByteLatency":5}"#;
    let raw = Script::new(200, EVENT_STREAM)
        .chunk(now, raw_chunk(&format!(r#"{{"outputText":"raw","completionReason":"FINISH",{metrics}}}"#)));
    let bedrock = Upstream::start(vec![raw]).await;
    let openai_chunk = r#"{"choices":[{"index":0,"delta":{"content":"openai"},"finish_reason":"stop"}]}"#;
    let openai = Upstream::start(vec![Script::new(200, SSE).chunks(now, [sse(openai_chunk), sse("[DONE]")])]).await;
    let agent_frames = [b": hello\n\n".to_vec(), sse(r#"{"event":{"contentBlockDelta":{"delta":{"text":"agent"}}}}"#)];
    let agent = Upstream::start(vec![Script::new(200, SSE).chunks(now, agent_frames.clone())]).await;

    let api = RuntimeApi::start().await;
    let mut env = bedrock.bedrock_env();
    env.extend([
        ("STREAMHOST_OPENAI_BASE_URL", openai.base.clone()),
        ("STREAMHOST_MODEL", "llama3.2".to_string()),
        ("STREAMHOST_UPSTREAM_URL", format!("{}/invocations", agent.base)),
        ("STREAMHOST_NAMED_PIPELINES_ONLY", "false".into()),
    ]);
    let _function = Function::start_with(&api, EXAMPLES, 0, env);

    let from_openai = api.invoke("/text-only", "", r#"{"prompt":"x","model":{"provider":"openai"}}"#).await;
    assert_eq!(from_openai.body, "openai");
    let raw_body = r#"{"prompt":"x","model":{"provider":"bedrock-raw","id":"amazon.titan-text-lite-v1"}}"#;
    let from_bedrock = api.invoke("/decode-titan", "then=text-only", raw_body).await;
    assert_eq!(from_bedrock.body, "raw\nusage: input=2 output=1 total=3 latency_ms=9\n");
    // The host's default when an upstream URL is set is the upstream.
    let from_agent = api.invoke("/sse-passthrough", "", r#"{"prompt":"x"}"#).await;
    assert_eq!(from_agent.prelude["headers"]["content-type"], "text/event-stream");
    assert_eq!(from_agent.body.as_bytes(), agent_frames.concat());
}

#[tokio::test]
async fn a_tools_progress_streams_through_the_function_url() {
    // pipelines/progress.json: slow-process (three steps of 400 ms) as
    // ndjson-status lines.
    let api = RuntimeApi::start().await;
    let _function = Function::start(&api, EXAMPLES, 0);
    let invocation = api.invoke("/progress", "", r#"{"prompt":"weekly report"}"#).await;
    assert_eq!(invocation.prelude["statusCode"], 200);
    let kinds: Vec<String> = invocation
        .body
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["metadata", "status", "status", "status", "result"]);
    let arrival = |text: &str| {
        invocation.chunks.iter().find(|(_, chunk)| String::from_utf8_lossy(chunk).contains(text)).unwrap().0
    };
    let (first_status, result) = (arrival("(1/3)"), arrival("\"result\""));
    assert!(result - first_status >= Duration::from_millis(2 * 400), "not streamed: {:?}", invocation.chunks);
}

#[tokio::test]
async fn on_lambda_only_named_pipelines_are_served_by_default() {
    let api = RuntimeApi::start().await;
    let _function = Function::start_with(&api, EXAMPLES, 0, Vec::new());
    let ad_hoc = api.invoke("/sse-passthrough", "", r#"{"prompt":"hi"}"#).await;
    assert_eq!(ad_hoc.prelude["statusCode"], 404);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&ad_hoc.body).unwrap()["error"]["code"], "unknown_pipeline");
    let named = api.invoke("/support-desk", "", r#"{"prompt":"Where is my order?"}"#).await;
    assert_eq!(named.prelude["statusCode"], 200, "{}", named.body);
}
