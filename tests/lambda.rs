//! The Lambda frontend through a Runtime API emulator on loopback that
//! streams: the real binary, started as Lambda starts it (no arguments),
//! serving Function URL events with streamed responses.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::lambda::RuntimeApi;
use support::{BIN, EXAMPLES, fixture, example, plugin_dir, shared_cache};

struct Function {
    child: Child,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Function {
    fn start(api: &RuntimeApi, plugins: &str, echo_delay_ms: u64) -> Function {
        let log_dir = tempfile::tempdir().unwrap();
        let log = log_dir.path().join("stderr.log");
        let child = Command::new(BIN)
            .envs(api.env())
            .env("STREAMHOST_PLUGINS", plugins)
            .env("STREAMHOST_CACHE_DIR", shared_cache())
            .env("STREAMHOST_ECHO_DELAY_MS", echo_delay_ms.to_string())
            .env("STREAMHOST_LOG", "info")
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Function { child, log, _log_dir: log_dir }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_function_url_request_streams_ndjson_through_the_runtime_api() {
    const DELAY_MS: u64 = 100;
    let api = RuntimeApi::start().await;
    let _function = Function::start(&api, EXAMPLES, DELAY_MS);
    let invocation = api.invoke("/ndjson", "", r#"{"prompt":"one two three four five six seven eight","sessionId":"s1"}"#).await;

    assert_eq!(invocation.response_mode, "streaming");
    assert_eq!(invocation.content_type, "application/vnd.awslambda.http-integration-response");
    assert_eq!(invocation.prelude["statusCode"], 200);
    assert_eq!(invocation.prelude["headers"]["content-type"], "application/x-ndjson");
    let lines: Vec<&str> = invocation.body.lines().collect();
    assert_eq!(lines.len(), 1 + 11 + 1, "metadata, eleven tokens, complete: {lines:?}");
    assert_eq!(lines[1], r#"{"type":"chunk","data":"one"}"#);
    assert!(lines[12].starts_with(r#"{"type":"complete","data":{"stopReason":"end_turn""#));

    // Streamed: the first text arrived long before the provider finished.
    let first_text = invocation.chunks.iter().find(|(_, chunk)| String::from_utf8_lossy(chunk).contains("\"chunk\"")).unwrap().0;
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
    assert_eq!(missing.body, r#"{"error":{"code":"unknown_plugin","message":"no plugin named `missing`"}}"#);

    let malformed = api.invoke("/ndjson", "", "{").await;
    assert_eq!(malformed.prelude["statusCode"], 400);
    assert!(malformed.body.starts_with(r#"{"error":{"code":"malformed_json""#));

    // The function keeps serving.
    assert_eq!(api.invoke("/text-only", "", r#"{"prompt":"ok"}"#).await.body, "ok\nusage: input=1 output=1 total=2 latency_ms=0\n");
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
    assert_eq!(api.invoke("/text-only", "", r#"{"prompt":"ok"}"#).await.body, "ok\nusage: input=1 output=1 total=2 latency_ms=50\n");
}
