//! The conformance corpus (`tests/corpus/`, see its README): every recorded
//! upstream answer is served from a loopback server to one real `streamhost
//! serve`, through the source that speaks its format, as recorded and cut
//! into single bytes; the host's events must be the case's, line by line.

use crate::support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use futures::stream;
use serde_json::{Value, json};
use support::upstream::{EVENT_STREAM, SSE, frame};
use support::{Server, ndjson_lines, write_manifest};
use tokio::sync::oneshot;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/corpus");
/// The pipeline that runs no plugin: the host's own encoding of each event.
const BARE: &str = "corpus-bare";

/// How a case's writes are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// As recorded, pauses included.
    Recorded,
    /// Every byte on its own, without pauses.
    EveryByte,
}

impl Cut {
    fn name(self) -> &'static str {
        match self {
            Cut::Recorded => "recorded",
            Cut::EveryByte => "every-byte",
        }
    }
}

/// Every case, by its id (`openai/explicit-nulls`).
fn cases() -> Vec<(String, Value)> {
    let mut cases = Vec::new();
    for folder in std::fs::read_dir(CORPUS).unwrap().map(|entry| entry.unwrap().path()).filter(|path| path.is_dir()) {
        for file in std::fs::read_dir(&folder).unwrap().map(|entry| entry.unwrap().path()) {
            if file.extension().is_some_and(|extension| extension == "json") {
                let case: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap())
                    .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
                cases.push((id_of(&file), case));
            }
        }
    }
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    cases
}

fn id_of(file: &Path) -> String {
    let folder = file.parent().unwrap().file_name().unwrap().to_str().unwrap();
    format!("{folder}/{}", file.file_stem().unwrap().to_str().unwrap())
}

/// The bytes of one write of a case's body, by the source's wire format.
fn write_bytes(write: &Value) -> Option<Vec<u8>> {
    if let Some(text) = write.as_str() {
        return Some(text.as_bytes().to_vec());
    }
    if let Some(encoded) = write.get("bytes_base64").and_then(Value::as_str) {
        return Some(base64::engine::general_purpose::STANDARD.decode(encoded).unwrap());
    }
    let json_payload = |payload: &Value| payload.to_string().into_bytes();
    if let Some(event) = write.get("event").and_then(Value::as_str) {
        let headers = [(":message-type", "event"), (":event-type", event), (":content-type", "application/json")];
        return Some(frame(headers, json_payload(&write["payload"])));
    }
    if let Some(exception) = write.get("exception").and_then(Value::as_str) {
        let headers =
            [(":message-type", "exception"), (":exception-type", exception), (":content-type", "application/json")];
        return Some(frame(headers, json_payload(&write["payload"])));
    }
    if let Some(chunk) = write.get("chunk") {
        let bytes = base64::engine::general_purpose::STANDARD.encode(chunk.to_string());
        let headers = [(":message-type", "event"), (":event-type", "chunk"), (":content-type", "application/json")];
        return Some(frame(headers, json_payload(&json!({ "bytes": bytes }))));
    }
    None
}

/// A case's body as writes, each after its pause, cut as `cut` says.
fn writes(case: &Value, cut: Cut) -> Vec<(Duration, Vec<u8>)> {
    let mut writes = Vec::new();
    let mut pause = Duration::ZERO;
    for write in case["response"]["body"].as_array().into_iter().flatten() {
        if let Some(ms) = write.get("pause_ms").and_then(Value::as_u64) {
            pause += Duration::from_millis(ms);
            continue;
        }
        let bytes = write_bytes(write).unwrap_or_else(|| panic!("a write the corpus does not know: {write}"));
        match cut {
            Cut::Recorded => writes.push((std::mem::take(&mut pause), bytes)),
            Cut::EveryByte => writes.extend(bytes.into_iter().map(|byte| (Duration::ZERO, vec![byte]))),
        }
    }
    writes
}

fn default_content_type(source: &str) -> &'static str {
    match source {
        "bedrock" | "bedrock-raw" => EVENT_STREAM,
        _ => SSE,
    }
}

/// Answers each request with the case its body names (`case=<id>@<cut>!`).
async fn answer(State(cases): State<Arc<HashMap<String, Value>>>, request: Request) -> Response {
    let body = axum::body::to_bytes(request.into_body(), usize::MAX).await.unwrap();
    let body = String::from_utf8_lossy(&body);
    let marker =
        body.split("case=").nth(1).and_then(|rest| rest.split('!').next()).expect("the request names its case");
    let (id, cut) = marker.split_once('@').unwrap();
    let case = &cases[id];
    let cut = if cut == Cut::EveryByte.name() { Cut::EveryByte } else { Cut::Recorded };
    let response = &case["response"];
    let status = response["status"].as_u64().unwrap_or(200) as u16;
    let mut reply = Response::builder().status(StatusCode::from_u16(status).unwrap());
    let headers = response["headers"].as_object().cloned().unwrap_or_default();
    if !headers.keys().any(|name| name.eq_ignore_ascii_case("content-type")) {
        reply = reply.header("content-type", default_content_type(case["source"].as_str().unwrap()));
    }
    for (name, value) in &headers {
        reply = reply.header(name, value.as_str().unwrap());
    }
    let breaks = response["end"].as_str() == Some("break");
    reply.body(body_of(writes(case, cut), breaks)).unwrap()
}

fn body_of(writes: Vec<(Duration, Vec<u8>)>, breaks: bool) -> Body {
    let writes = writes.into_iter().map(Some).chain(breaks.then_some(None));
    Body::from_stream(stream::unfold(writes, |mut writes| async move {
        match writes.next()? {
            Some((pause, bytes)) => {
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                Some((Ok(Bytes::from(bytes)), writes))
            }
            None => {
                // Lets the last write leave before the connection breaks.
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((Err(std::io::Error::other("the recorded upstream breaks the connection")), writes))
            }
        }
    }))
}

struct CorpusServer {
    base: String,
    stop: Option<oneshot::Sender<()>>,
}

impl CorpusServer {
    async fn start(cases: &[(String, Value)]) -> Self {
        let cases: HashMap<String, Value> = cases.iter().cloned().collect();
        let app = Router::new().fallback(answer).with_state(Arc::new(cases));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    stopped.await.ok();
                })
                .await
                .unwrap();
        });
        Self { base, stop: Some(stop) }
    }
}

impl Drop for CorpusServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `expected` with `"<any>"` matching any value.
fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::String(any), _) if any == "<any>" => true,
        (Value::Object(expected), Value::Object(actual)) => {
            expected.len() == actual.len()
                && expected.iter().all(|(key, value)| actual.get(key).is_some_and(|actual| matches(value, actual)))
        }
        (Value::Array(expected), Value::Array(actual)) => {
            expected.len() == actual.len() && expected.iter().zip(actual).all(|(e, a)| matches(e, a))
        }
        (expected, actual) => expected == actual,
    }
}

/// Runs one case through the host; `Err` says how the answer differed.
async fn run(host: &Server, id: &str, case: &Value, cut: Cut) -> Result<(), String> {
    let source = case["source"].as_str().unwrap();
    let mut model = json!({ "provider": source, "id": case["model"].as_str().unwrap_or("corpus-model") });
    if source == "upstream" {
        model.as_object_mut().unwrap().remove("id");
    }
    let request = json!({ "prompt": format!("case={id}@{}!", cut.name()), "model": model }).to_string();
    let transforms: Vec<&str> =
        case["transforms"].as_array().into_iter().flatten().map(|name| name.as_str().unwrap()).collect();
    let path = match transforms.split_first() {
        None => format!("/{BARE}"),
        Some((first, [])) => format!("/{first}"),
        Some((first, rest)) => format!("/{first}?then={}", rest.join(",")),
    };
    let reply = host.post(&path, &request).await;
    let expect = &case["expect"];
    let status = expect["status"].as_u64().unwrap_or(200) as u16;
    if reply.status != status {
        return Err(format!("status {} (expected {status}): {}", reply.status, reply.body));
    }
    if status != 200 {
        let error: Value = serde_json::from_str(&reply.body).map_err(|error| format!("{error}: {}", reply.body))?;
        return match matches(&expect["error"]["code"], &error["error"]["code"]) {
            true => Ok(()),
            false => Err(format!("error {} (expected the code {})", reply.body, expect["error"]["code"])),
        };
    }
    let mut actual = ndjson_lines(&reply.body);
    let mut expected = expect["events"].as_array().cloned().unwrap_or_default();
    if case["merge_text"].as_bool() == Some(true) {
        actual = merge_text(actual);
        expected = merge_text(expected);
    }
    let (actual, expected) = (Value::Array(actual), Value::Array(expected));
    match matches(&expected, &actual) {
        true => Ok(()),
        false => Err(format!("events:\n{}\nexpected:\n{}", lines(&actual), lines(&expected))),
    }
}

/// Adjacent text events as one: for a source whose text events are cut
/// where the reads were.
fn merge_text(events: Vec<Value>) -> Vec<Value> {
    let mut merged: Vec<Value> = Vec::new();
    for event in events {
        match (merged.last_mut(), event["type"].as_str(), event["data"].as_str()) {
            (Some(last), Some("text"), Some(text)) if last["type"] == "text" => {
                let joined = format!("{}{text}", last["data"].as_str().unwrap_or_default());
                last["data"] = Value::String(joined);
            }
            _ => merged.push(event),
        }
    }
    merged
}

fn lines(events: &Value) -> String {
    events.as_array().into_iter().flatten().map(|event| format!("  {event}\n")).collect()
}

/// A folder with the example plugins and the bare pipeline, whose callers
/// may choose every source and the cases' models.
fn plugins(cases: &[(String, Value)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(support::EXAMPLES).unwrap().map(|entry| entry.unwrap().path()) {
        std::fs::copy(&entry, dir.path().join(entry.file_name().unwrap())).unwrap();
    }
    let mut models: Vec<&str> = cases.iter().filter_map(|(_, case)| case["model"].as_str()).collect();
    models.push("corpus-model");
    let callers = json!({ "providers": ["openai", "upstream", "bedrock", "bedrock-raw"], "models": models });
    write_manifest(
        dir.path(),
        BARE,
        &json!({ "description": "no plugins: the host's own events", "transforms": [], "callers": callers }),
    );
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn every_recorded_upstream_gives_its_events() {
    let cases = cases();
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());
    let server = CorpusServer::start(&cases).await;
    let plugins = plugins(&cases);
    let mut env = support::loopback_aws_env();
    env.push(("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.base.clone()));
    let host = Server::builder()
        .plugins(plugins.path())
        .env(env)
        .arg("--provider-attempts", "1")
        .arg("--openai-base-url", &format!("{}/v1", server.base))
        .arg("--upstream-url", &format!("{}/invocations", server.base))
        .start();
    let mut failures = Vec::new();
    let mut runs = 0;
    for (id, case) in &cases {
        for cut in [Cut::Recorded, Cut::EveryByte] {
            runs += 1;
            if let Err(difference) = run(&host, id, case, cut).await {
                failures.push(format!("{id} ({}): {difference}", cut.name()));
            }
        }
    }
    let by_folder = cases.iter().fold(HashMap::<&str, usize>::new(), |mut counts, (id, _)| {
        *counts.entry(id.split('/').next().unwrap()).or_default() += 1;
        counts
    });
    println!("corpus: {} cases ({by_folder:?}), {runs} runs, {} differ", cases.len(), failures.len());
    assert!(failures.is_empty(), "{} of {runs} runs differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_case_file_is_complete() {
    for (id, case) in cases() {
        let source = case["source"].as_str().unwrap_or_else(|| panic!("{id}: no source"));
        assert!(["openai", "upstream", "bedrock", "bedrock-raw"].contains(&source), "{id}: source {source}");
        assert!(case["about"].is_string() && case["seen_in"].is_string(), "{id}: say what it is and where it was seen");
        assert!(
            case["expect"]["events"].is_array() || case["expect"]["error"]["code"].is_string(),
            "{id}: expect events or an error"
        );
        writes(&case, Cut::Recorded);
    }
}
