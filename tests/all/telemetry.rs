//! Metrics and traces, read by real consumers: Prometheus' own Python client
//! parses `GET /metrics`; an OTLP/HTTP receiver on loopback decodes what the
//! host exports with the OpenTelemetry protocol's own messages
//! (tests/telemetry/).

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use support::lambda::{Function, RuntimeApi};
use support::{EXAMPLES, Server, example, fixture, plugin_dir};

const CONSUMERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/telemetry");
const HELLO: &str = r#"{"prompt":"Hi there"}"#;

/// Runs the consumer `script` (tests/telemetry/) on `input`: what it printed,
/// as JSON. A consumer that refuses its input fails the test with its error.
fn consume(script: &str, input: &str) -> Value {
    let mut consumer = Command::new("python3")
        .arg(format!("{CONSUMERS}/{script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    consumer.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = consumer.wait_with_output().unwrap();
    assert!(output.status.success(), "{script} refused it: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `text` as Prometheus' parser reads it: one JSON object per family.
fn prometheus_families(text: &str) -> Vec<Value> {
    serde_json::from_value(consume("prometheus_families.py", text)).unwrap()
}

/// The sum of the values of `sample` over the samples whose labels include
/// `labels`, and of how many samples there were.
fn sample_sum(families: &[Value], sample: &str, labels: &[(&str, &str)]) -> (f64, usize) {
    let matching: Vec<f64> = families
        .iter()
        .flat_map(|family| family["samples"].as_array().unwrap())
        .filter(|candidate| candidate["name"] == sample)
        .filter(|candidate| labels.iter().all(|(name, value)| candidate["labels"][name] == *value))
        .map(|candidate| candidate["value"].as_f64().unwrap())
        .collect();
    (matching.iter().sum(), matching.len())
}

#[tokio::test]
async fn metrics_are_served_as_prometheus_text_that_prometheus_parses() {
    let dir = plugin_dir(&[("ndjson", &example("ndjson")), ("trap", &fixture("trap")), ("flood", &fixture("flood"))]);
    let server = Server::builder().plugins(dir.path()).echo_delay_ms(20).start();
    for _ in 0..2 {
        assert_eq!(server.post("/ndjson", HELLO).await.status, 200);
    }
    assert_eq!(server.post("/trap?then=ndjson", HELLO).await.status, 500);
    assert_eq!(server.post("/flood?then=ndjson", HELLO).await.status, 500);
    // A client that leaves after the first bytes of a long answer.
    let long = json!({ "prompt": "one two three four five six seven eight nine ten ".repeat(5) }).to_string();
    let response = reqwest::Client::new().post(server.url("/ndjson")).body(long).send().await.unwrap();
    let mut body = response.bytes_stream();
    while !String::from_utf8_lossy(&body.next().await.unwrap().unwrap()).contains(r#""type":"chunk""#) {}
    drop(body);

    let families =
        poll_metrics(&server, |families| sample_sum(families, "streamhost_stream_cancelled_total", &[]).0 >= 1.0).await;
    let echo = [("gen_ai_operation_name", "chat"), ("gen_ai_provider_name", "echo"), ("gen_ai_request_model", "echo")];
    let calls = |extra: &[(&str, &str)]| {
        let labels: Vec<(&str, &str)> = echo.iter().chain(extra).copied().collect();
        sample_sum(&families, "gen_ai_client_operation_duration_seconds_count", &labels).0
    };
    // Two answers ended; the trapped and the flooded streams' model calls
    // and the one the client left were dropped.
    assert_eq!(calls(&[]), 5.0);
    assert_eq!(calls(&[("error_type", "cancelled")]), 3.0);
    // The trapped and the flooded streams' calls had sent no text yet.
    assert_eq!(sample_sum(&families, "gen_ai_client_operation_time_to_first_chunk_seconds_count", &echo).0, 3.0);
    for token_type in ["input", "output"] {
        let labels: Vec<(&str, &str)> = echo.iter().chain(&[("gen_ai_token_type", token_type)]).copied().collect();
        assert_eq!(sample_sum(&families, "gen_ai_client_token_usage_count", &labels).0, 2.0, "{token_type}");
    }
    let plugin_calls =
        |labels: &[(&str, &str)]| sample_sum(&families, "streamhost_plugin_call_duration_seconds_count", labels).0;
    assert!(plugin_calls(&[("streamhost_plugin_name", "ndjson"), ("streamhost_plugin_call", "push")]) >= 3.0);
    assert_eq!(
        plugin_calls(&[
            ("streamhost_plugin_name", "trap"),
            ("streamhost_plugin_call", "push"),
            ("error_type", "plugin_trapped")
        ]),
        1.0
    );
    // A call over its output limit is one call, a failed one.
    let flood_push = [("streamhost_plugin_name", "flood"), ("streamhost_plugin_call", "push")];
    assert_eq!(plugin_calls(&flood_push), 1.0);
    assert_eq!(plugin_calls(&[flood_push[0], flood_push[1], ("error_type", "plugin_output_limit")]), 1.0);
    assert_eq!(sample_sum(&families, "streamhost_stream_cancelled_total", &[]).0, 1.0);
    let (chunks, _) = sample_sum(&families, "streamhost_stream_cancelled_chunks_sum", &[]);
    assert!((1.0..50.0).contains(&chunks), "the chunks sent before the client left: {chunks}");
    assert_eq!(sample_sum(&families, "streamhost_plugin_instances", &[]).1, 1, "the instance gauge is there");
}

/// Reads `GET /metrics` until `ready` holds (a cancel is counted when the
/// server notices the client left), or 10 s pass.
async fn poll_metrics(server: &Server, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = reqwest::get(server.url("/metrics")).await.unwrap();
        assert_eq!(response.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
        let families = prometheus_families(&response.text().await.unwrap());
        if ready(&families) || Instant::now() > deadline {
            return families;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// tests/telemetry/otlp_receiver.py, on a loopback port; killed on drop.
struct OtlpReceiver {
    child: Child,
    url: String,
    received: tempfile::NamedTempFile,
}

impl OtlpReceiver {
    fn start() -> Self {
        let received = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new("python3")
            .arg(format!("{CONSUMERS}/otlp_receiver.py"))
            .arg(received.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut port = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut port).unwrap();
        let url = format!("http://127.0.0.1:{}", port.trim());
        Self { child, url, received }
    }

    /// The exports received so far: `(signal, request)`.
    fn received(&self) -> Vec<(String, Value)> {
        std::fs::read_to_string(self.received.path())
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .map(|export| (export["signal"].as_str().unwrap().to_string(), export["request"].clone()))
            .collect()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// OTLP's `KeyValue` list as `name -> value`, the value as its JSON.
fn attributes(list: &Value) -> serde_json::Map<String, Value> {
    let pairs = list.as_array().map(Vec::as_slice).unwrap_or_default();
    pairs.iter().map(|pair| (pair["key"].as_str().unwrap().to_string(), pair["value"].clone())).collect()
}

#[tokio::test]
async fn metrics_and_traces_reach_an_otlp_collector() {
    let receiver = OtlpReceiver::start();
    let server = Server::builder()
        .env([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.clone()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200".to_string()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
        ])
        .start();
    let reply = server.post("/ndjson", HELLO).await;
    assert_eq!(reply.status, 200);

    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut operation, mut request_span) = (None, None);
    while (operation.is_none() || request_span.is_none()) && Instant::now() < deadline {
        for (signal, export) in receiver.received() {
            for resource in
                export["resourceMetrics"].as_array().into_iter().chain(export["resourceSpans"].as_array()).flatten()
            {
                assert_eq!(
                    attributes(&resource["resource"]["attributes"])["service.name"],
                    json!({ "stringValue": "streamhost" })
                );
            }
            if signal == "metrics" {
                let metrics = export["resourceMetrics"][0]["scopeMetrics"].as_array().into_iter().flatten();
                let found = metrics
                    .flat_map(|scope| scope["metrics"].as_array().unwrap())
                    .find(|metric| metric["name"] == "gen_ai.client.operation.duration");
                operation = operation.or(found.cloned());
            } else {
                let spans = export["resourceSpans"][0]["scopeSpans"].as_array().into_iter().flatten();
                let found =
                    spans.flat_map(|scope| scope["spans"].as_array().unwrap()).find(|span| span["name"] == "request");
                request_span = request_span.or(found.cloned());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let operation = operation.unwrap_or_else(|| panic!("no operation duration received: {:?}", receiver.received()));
    assert_eq!(operation["unit"], "s");
    let point = &operation["histogram"]["dataPoints"][0];
    assert_eq!(point["count"], "1", "{operation}");
    let labels = attributes(&point["attributes"]);
    assert_eq!(
        (&labels["gen_ai.provider.name"], &labels["gen_ai.request.model"]),
        (&json!({ "stringValue": "echo" }), &json!({ "stringValue": "echo" }))
    );
    let request_span = request_span.unwrap_or_else(|| panic!("no request span received: {:?}", receiver.received()));
    assert_eq!(attributes(&request_span["attributes"])["id"], json!({ "stringValue": reply.request_id }));
}

/// EMF documents in `lines` (stdout), checked against the format's
/// specification by tests/telemetry/emf_check.py.
fn emf_documents(lines: &str) -> Vec<Value> {
    serde_json::from_value(consume("emf_check.py", lines)).unwrap()
}

#[tokio::test]
async fn on_lambda_metrics_are_embedded_metric_format_lines_written_after_each_invocation() {
    let api = RuntimeApi::start().await;
    let function = Function::start(&api, EXAMPLES, 0);
    let invocation = api.invoke("/ndjson", "", HELLO).await;
    assert_eq!(invocation.prelude["statusCode"], 200);

    let deadline = Instant::now() + Duration::from_secs(10);
    while !function.stdout().contains("gen_ai.client.operation.duration") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let documents = emf_documents(&function.stdout());
    let named = |name: &str| documents.iter().find(|document| document.get(name).is_some()).cloned();
    let operation = named("gen_ai.client.operation.duration").unwrap_or_else(|| panic!("{}", function.stdout()));
    let directive = &operation["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "streamhost");
    assert_eq!(
        (
            &operation["gen_ai.provider.name"],
            &operation["gen_ai.request.model"],
            &operation["gen_ai.client.operation.duration.count"]
        ),
        (&json!("echo"), &json!("echo"), &json!(1)),
        "{operation}"
    );
    let dimensions = directive["Dimensions"][0].as_array().unwrap();
    assert!(dimensions.contains(&json!("gen_ai.provider.name")), "{directive}");
    let units: Vec<&Value> = directive["Metrics"].as_array().unwrap().iter().map(|metric| &metric["Unit"]).collect();
    assert_eq!(units, [&json!("Seconds"), &json!("Seconds"), &json!("Count")]);
    let plugin = documents
        .iter()
        .find(|document| document["streamhost.plugin.name"] == "ndjson" && document["streamhost.plugin.call"] == "push")
        .unwrap_or_else(|| panic!("no plugin call: {documents:?}"));
    assert!(plugin["streamhost.plugin.call.duration.count"].as_u64().unwrap() >= 1, "{plugin}");
}
