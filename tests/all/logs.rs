//! What an operator reads: every failure is logged once, as one line
//! (`--log-format json`, parsed here as JSON) that names the plugin, its
//! digest, the call, the code and how long the call ran, in the span of the
//! request whose id the caller got in `x-request-id` and in the error body.

use crate::support;

use serde_json::{Value, json};
use support::{Reply, Server, example, fixture, plugin_dir, sha256_hex};

/// The log's JSON lines in the span of request `id`.
fn lines_of_request(logs: &str, id: &str) -> Vec<Value> {
    logs.lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap_or_else(|_| panic!("not a JSON log line: {line}")))
        .filter(|line| line["spans"].as_array().is_some_and(|spans| spans.iter().any(|span| span["id"] == id)))
        .collect()
}

/// The one line of request `reply` at `warn` or above, or at `info` with a
/// code: its failure. Panics unless there is exactly one.
fn failure_line(server: &Server, reply: &Reply) -> Value {
    let logs = server.logs();
    let lines = lines_of_request(&logs, &reply.request_id);
    let failures: Vec<&Value> = lines
        .iter()
        .filter(|line| {
            ["WARN", "ERROR"].contains(&line["level"].as_str().unwrap()) || line["fields"]["code"].is_string()
        })
        .collect();
    assert_eq!(failures.len(), 1, "one line for the failure of request {}: {failures:#?}", reply.request_id);
    failures[0].clone()
}

#[tokio::test]
async fn every_plugin_failure_before_the_first_byte_is_logged_once_with_what_an_operator_needs() {
    let plugins = [
        ("trap", fixture("trap")),
        ("spin", fixture("spin")),
        ("hog", fixture("hog")),
        ("flood", fixture("flood")),
        ("ndjson", example("ndjson")),
    ];
    let dir = plugin_dir(&plugins.iter().map(|(name, path)| (*name, path.as_path())).collect::<Vec<_>>());
    let digest = |name: &str| {
        let (_, path) = plugins.iter().find(|(plugin, _)| *plugin == name).unwrap();
        sha256_hex(&std::fs::read(path).unwrap())
    };
    let server =
        Server::builder().plugins(dir.path()).arg("--plugin-memory-mb", "16").arg("--log-format", "json").start();
    let hello = r#"{"prompt":"Hi there"}"#;
    let bad_setting = r#"{"prompt":"Hi there","config":{"ndjson":{"metadata":"bogus"}}}"#;
    let cases = [
        ("/trap?then=ndjson", hello, 500, "plugin_trapped", "trap", "push", "WARN"),
        ("/spin", hello, 500, "plugin_out_of_fuel", "spin", "push", "WARN"),
        ("/hog", hello, 500, "plugin_out_of_memory", "hog", "push", "WARN"),
        ("/flood?then=ndjson", hello, 500, "plugin_output_limit", "flood", "push", "WARN"),
        ("/ndjson", bad_setting, 422, "invalid_config", "ndjson", "open", "INFO"),
    ];
    for (path, body, status, code, plugin, call, level) in cases {
        let reply = server.post(path, body).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        let error = support::error_without_request_id(&reply.body, &reply.request_id);
        assert_eq!(error["error"]["code"], code);

        let line = failure_line(&server, &reply);
        let fields = &line["fields"];
        assert_eq!(
            (&line["level"], &fields["plugin"], &fields["digest"], &fields["call"], &fields["code"]),
            (&json!(level), &json!(plugin), &json!(digest(plugin)), &json!(call), &json!(code)),
            "{line}"
        );
        assert!(fields["ran_ms"].is_u64(), "{line}");
        assert_eq!(fields["error"], error["error"]["message"], "the log has the caller's message");
    }
    // The call that ran out of fuel used all of it; the log says so.
    let spin = server.post("/spin", hello).await;
    assert_eq!(failure_line(&server, &spin)["fields"]["fuel"], 1_000_000_000u64);
}

#[tokio::test]
async fn what_a_trapping_plugin_printed_is_in_its_failure_line_not_the_callers_answer() {
    let dir = plugin_dir(&[("trap", &fixture("trap")), ("ndjson", &example("ndjson"))]);
    let server = Server::builder().plugins(dir.path()).arg("--log-format", "json").start();
    let reply = server.post("/trap?then=ndjson", r#"{"prompt":"Hi there"}"#).await;
    assert!(!reply.body.contains(".rs"), "no source path reaches the caller: {}", reply.body);
    let line = failure_line(&server, &reply);
    assert!(line["fields"]["printed"].as_str().is_some_and(|printed| printed.contains("panicked")), "{line}");
}

#[tokio::test]
async fn a_failure_mid_stream_is_logged_once_in_the_span_of_its_request() {
    let dir = plugin_dir(&[("trap", &fixture("trap")), ("ndjson", &example("ndjson"))]);
    let server = Server::builder().plugins(dir.path()).echo_delay_ms(20).arg("--log-format", "json").start();
    let reply = server.post("/trap?then=ndjson", r#"{"prompt":"Hi there","config":{"trap":{"trapAt":3}}}"#).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains(r#""code":"plugin_trapped""#), "{}", reply.body);
    let line = failure_line(&server, &reply);
    assert_eq!((&line["fields"]["plugin"], &line["fields"]["call"]), (&json!("trap"), &json!("push")), "{line}");
}

#[tokio::test]
async fn requests_refused_by_the_host_are_logged_once_too() {
    let server = Server::builder().arg("--log-format", "json").start();
    let reply = server.post("/ndjson", "{not json").await;
    assert_eq!(reply.status, 400);
    let line = failure_line(&server, &reply);
    assert_eq!(
        (&line["level"], &line["fields"]["code"], &line["fields"]["status"], &line["fields"]["message"]),
        (&json!("INFO"), &json!("malformed_json"), &json!(400), &json!("request refused"))
    );
    let error = support::error_without_request_id(&reply.body, &reply.request_id);
    assert_eq!(line["fields"]["error"], error["error"]["message"]);
}

/// A routed turn runs in a task of its own; its lines are still the request's.
#[tokio::test]
async fn an_agents_failure_is_logged_once_in_the_span_of_its_request() {
    let dir = plugin_dir(&[("trap-agent", &fixture("trap-agent")), ("ndjson", &example("ndjson"))]);
    support::write_manifest(
        dir.path(),
        "flaky",
        &json!({ "agents": [{ "name": "flaky", "description": "Breaks", "plugin": "trap-agent" }], "transforms": ["ndjson"] }),
    );
    let server = Server::builder().plugins(dir.path()).arg("--log-format", "json").start();
    let reply = server.post("/flaky", r#"{"prompt":"go"}"#).await;
    assert_eq!(reply.status, 200);
    let line = failure_line(&server, &reply);
    assert_eq!(
        (&line["fields"]["plugin"], &line["fields"]["call"], &line["fields"]["code"]),
        (&json!("trap-agent"), &json!("handle"), &json!("plugin_trapped")),
        "{line}"
    );
}
