//! A Lambda Runtime API emulator on loopback that speaks the streaming
//! response protocol: it hands out Function URL events, and reads each
//! response as it arrives, recording when every chunk came. Its Function URL
//! (`function_url`) turns any HTTP request into such an event and relays the
//! streamed response back as it arrives, so a client runs against the
//! Lambda frontend unchanged.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::{bin, shared_cache};

/// The 8 NUL bytes that end the streaming response's JSON prelude.
const PRELUDE_END: [u8; 8] = [0; 8];

/// One streamed response as the emulator received it.
#[derive(Debug)]
pub struct Invocation {
    /// `Lambda-Runtime-Function-Response-Mode`.
    pub response_mode: String,
    /// The response's content type: Lambda's HTTP-integration stream.
    pub content_type: String,
    /// `{"statusCode":…,"headers":{…}}`.
    pub prelude: Value,
    /// The body after the prelude.
    pub body: String,
    /// Each chunk of the whole response and when it arrived, from the moment
    /// the function took the event.
    pub chunks: Vec<(Duration, Vec<u8>)>,
    /// When the first byte of the body (after the prelude) arrived.
    pub first_body_byte_at: Instant,
}

struct Pending {
    event: Value,
    request_id: String,
    reply: Reply,
}

/// Where a response goes.
enum Reply {
    /// Read whole into an `Invocation`; with `hang_up`, stop reading after
    /// its first body bytes, as a client that goes away does.
    Collect { done: oneshot::Sender<Invocation>, hang_up: bool },
    /// Relayed to a Function URL's caller: the prelude, then each chunk.
    Relay { prelude: oneshot::Sender<Value>, body: mpsc::Sender<Result<Vec<u8>, std::io::Error>> },
    /// An asynchronous invocation (`Invoke` with type `Event`): nobody
    /// waits; the buffered answer is kept in `answered`.
    Async,
}

/// An invocation handed out and not answered yet.
struct Waiting {
    reply: Reply,
    taken_at: Instant,
}

#[derive(Clone)]
struct Emulator {
    queue: Arc<tokio::sync::Mutex<Option<mpsc::Receiver<Pending>>>>,
    waiting: Arc<Mutex<HashMap<String, Waiting>>>,
    invocations: mpsc::Sender<Pending>,
    next_id: Arc<Mutex<u64>>,
    /// Each `Invoke` call of type `Event`: the function name and payload.
    invoked: Arc<Mutex<Vec<(String, Value)>>>,
    /// The answers to asynchronous invocations, in the order they came.
    answered: Arc<Mutex<Vec<Value>>>,
}

pub struct RuntimeApi {
    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`; Lambda's `Invoke`
    /// API answers here too (`AWS_ENDPOINT_URL_LAMBDA`).
    pub address: String,
    emulator: Emulator,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let (invocations, queue) = mpsc::channel(16);
        let emulator = Emulator {
            queue: Arc::new(tokio::sync::Mutex::new(Some(queue))),
            waiting: Arc::default(),
            invocations,
            next_id: Arc::default(),
            invoked: Arc::default(),
            answered: Arc::default(),
        };
        let app = Router::new()
            .route("/2015-03-31/functions/{function}/invocations", post(invoke_api))
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(emulator.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        RuntimeApi { address, emulator, server }
    }

    /// Every `Invoke` call of type `Event` so far: function name, payload.
    pub fn invoked(&self) -> Vec<(String, Value)> {
        self.emulator.invoked.lock().unwrap().clone()
    }

    /// The answers of the asynchronous invocations that have ended.
    pub fn answered(&self) -> Vec<Value> {
        self.emulator.answered.lock().unwrap().clone()
    }

    /// Waits up to `limit` for `count` asynchronous invocations to end.
    pub async fn wait_answered(&self, count: usize, limit: Duration) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        while self.answered().len() < count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.answered()
    }

    /// The environment Lambda gives a custom runtime.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API", self.address.clone()),
            ("AWS_LAMBDA_FUNCTION_NAME", "streamhost".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "test".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "test".into()),
            ("AWS_ENDPOINT_URL_LAMBDA", format!("http://{}", self.address)),
        ]
    }

    /// Sends a Function URL request to the function and reads the response.
    pub async fn invoke(&self, path: &str, query: &str, body: &str) -> Invocation {
        self.send(path, query, body, false).await
    }

    /// Like `invoke`, but stops reading after the first body bytes and drops
    /// the connection, as a client that goes away does.
    pub async fn invoke_and_hang_up(&self, path: &str, query: &str, body: &str) -> Invocation {
        self.send(path, query, body, true).await
    }

    async fn send(&self, path: &str, query: &str, body: &str, hang_up: bool) -> Invocation {
        let (done, result) = oneshot::channel();
        let event = function_url_event(path, query, body);
        self.emulator
            .invocations
            .send(Pending { event, request_id: self.request_id(), reply: Reply::Collect { done, hang_up } })
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(60), result).await.expect("the function answered in time").unwrap()
    }

    fn request_id(&self) -> String {
        self.emulator.request_id()
    }

    /// A Function URL on loopback in front of the function, as Lambda's is:
    /// each request becomes a Function URL event (payload 2.0, its headers
    /// and body as sent; under `AWS_IAM`, `iam_caller` is the signer's ARN
    /// in the request context), and the response streams back as the
    /// function writes it. Stops with the returned server.
    pub async fn function_url(self: &Arc<Self>, iam_caller: Option<&str>) -> FunctionUrl {
        let state = (self.clone(), iam_caller.map(str::to_string));
        let app = Router::new().fallback(relay).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FunctionUrl { url, server }
    }
}

/// A running Function URL: `url` is its base, like
/// `https://….lambda-url.us-east-1.on.aws`.
pub struct FunctionUrl {
    pub url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FunctionUrl {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// One HTTP request through the function, its response relayed as it comes.
async fn relay(
    State((api, iam_caller)): State<(Arc<RuntimeApi>, Option<String>)>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut event = function_url_event(parts.uri.path(), parts.uri.query().unwrap_or_default(), "");
    event["requestContext"]["http"]["method"] = json!(parts.method.as_str());
    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        let value = value.to_str().unwrap_or_default();
        let joined = match headers.get(name.as_str()).and_then(Value::as_str) {
            Some(earlier) => format!("{earlier},{value}"),
            None => value.to_string(),
        };
        headers.insert(name.as_str().to_string(), json!(joined));
    }
    event["headers"] = Value::Object(headers);
    match std::str::from_utf8(&body) {
        Ok(text) => event["body"] = json!(text),
        Err(_) => {
            use base64::Engine;
            event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(&body));
            event["isBase64Encoded"] = json!(true);
        }
    }
    if let Some(caller) = iam_caller {
        event["requestContext"]["authorizer"] = json!({ "iam": {
            "accessKey": "AKIDEXECUTOR", "accountId": "123456789012", "callerId": "AIDAEXECUTOR", "userArn": caller, "userId": "AIDAEXECUTOR"
        } });
    }
    let (prelude, prelude_received) = oneshot::channel();
    let (chunks, chunks_received) = mpsc::channel(64);
    let reply = Reply::Relay { prelude, body: chunks };
    api.emulator.invocations.send(Pending { event, request_id: api.request_id(), reply }).await.unwrap();
    let prelude = prelude_received.await.expect("the function sent its prelude");
    let mut response = Response::builder().status(prelude["statusCode"].as_u64().unwrap_or(200) as u16);
    for (name, value) in prelude["headers"].as_object().into_iter().flatten() {
        let value = value
            .as_str()
            .unwrap_or_else(|| panic!("Lambda's prelude takes one string per header; `{name}` is {value}"));
        response = response.header(name, value);
    }
    for cookie in prelude["cookies"].as_array().into_iter().flatten() {
        response = response.header("set-cookie", cookie.as_str().unwrap_or_default());
    }
    let body = futures::stream::unfold(chunks_received, |mut chunks| async move {
        chunks.recv().await.map(|chunk| (chunk, chunks))
    });
    response.body(Body::from_stream(body)).unwrap()
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(emulator): State<Emulator>) -> Response {
    let pending = {
        let mut queue = emulator.queue.lock().await;
        queue.as_mut().unwrap().recv().await
    };
    let Some(Pending { event, request_id, reply }) = pending else {
        return StatusCode::GONE.into_response();
    };
    emulator.waiting.lock().unwrap().insert(request_id.clone(), Waiting { reply, taken_at: Instant::now() });
    let deadline =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap() + Duration::from_secs(300);
    let headers = [
        ("lambda-runtime-aws-request-id", request_id),
        ("lambda-runtime-deadline-ms", deadline.as_millis().to_string()),
        ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:streamhost".into()),
        ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000".into()),
        ("content-type", "application/json".into()),
    ];
    let mut response = event.to_string().into_response();
    for (name, value) in headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

async fn response(
    State(emulator): State<Emulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> StatusCode {
    let Some(Waiting { reply, taken_at }) = emulator.waiting.lock().unwrap().remove(&id) else {
        return StatusCode::NOT_FOUND;
    };
    match reply {
        Reply::Collect { done, hang_up } => {
            let _ = done.send(collect(&headers, body, taken_at, hang_up).await);
        }
        Reply::Relay { prelude, body: relayed } => relay_response(body, prelude, relayed).await,
        Reply::Async => {
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            emulator.answered.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or(Value::Null));
        }
    }
    StatusCode::ACCEPTED
}

impl Emulator {
    fn request_id(&self) -> String {
        let mut next_id = self.next_id.lock().unwrap();
        *next_id += 1;
        format!("request-{next_id}")
    }
}

/// Lambda's `Invoke` API (`POST /2015-03-31/functions/{name}/invocations`)
/// for asynchronous invocations: `X-Amz-Invocation-Type: Event` queues the
/// payload for the function and answers `202` with no body at once, as
/// Lambda does. Other invocation types are not emulated.
async fn invoke_api(
    State(emulator): State<Emulator>,
    Path(function): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let invocation_type =
        headers.get("x-amz-invocation-type").and_then(|value| value.to_str().ok()).unwrap_or("RequestResponse");
    if invocation_type != "Event" {
        return (StatusCode::BAD_REQUEST, format!("the emulator takes only Event invocations, not {invocation_type}"))
            .into_response();
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the payload is not JSON").into_response();
    };
    emulator.invoked.lock().unwrap().push((function, event.clone()));
    let pending = Pending { event, request_id: emulator.request_id(), reply: Reply::Async };
    emulator.invocations.send(pending).await.unwrap();
    StatusCode::ACCEPTED.into_response()
}

/// Reads a whole response, recording when each chunk came.
async fn collect(headers: &HeaderMap, body: Body, taken_at: Instant, hang_up: bool) -> Invocation {
    let header = |name: &str| headers.get(name).map(|value| value.to_str().unwrap().to_string()).unwrap_or_default();
    let mut chunks = Vec::new();
    let mut whole = Vec::new();
    let mut first_body_byte_at = None;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap().to_vec();
        whole.extend_from_slice(&chunk);
        chunks.push((taken_at.elapsed(), chunk));
        if first_body_byte_at.is_none() && body_start(&whole).is_some_and(|start| whole.len() > start) {
            first_body_byte_at = Some(Instant::now());
            if hang_up {
                // Returning without reading the rest closes the connection.
                break;
            }
        }
    }
    let start = body_start(&whole).expect("a prelude ends with 8 NUL bytes");
    Invocation {
        response_mode: header("lambda-runtime-function-response-mode"),
        content_type: header("content-type"),
        prelude: serde_json::from_slice(&whole[..start - PRELUDE_END.len()]).expect("the prelude is JSON"),
        body: String::from_utf8_lossy(&whole[start..]).into_owned(),
        chunks,
        first_body_byte_at: first_body_byte_at.unwrap_or_else(Instant::now),
    }
}

/// Passes a response on as it arrives: the prelude once whole, then each
/// body chunk. A caller that went away stops the reading, which closes the
/// function's connection as Lambda does.
async fn relay_response(
    body: Body,
    prelude: oneshot::Sender<Value>,
    relayed: mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
) {
    let mut stream = body.into_data_stream();
    let mut head = Vec::new();
    let mut prelude = Some(prelude);
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        let rest = match prelude.as_ref() {
            Some(_) => {
                head.extend_from_slice(&chunk);
                let Some(start) = body_start(&head) else { continue };
                let sent = serde_json::from_slice(&head[..start - PRELUDE_END.len()]).expect("the prelude is JSON");
                let _ = prelude.take().unwrap().send(sent);
                head[start..].to_vec()
            }
            None => chunk.to_vec(),
        };
        if !rest.is_empty() && relayed.send(Ok(rest)).await.is_err() {
            break;
        }
    }
}

/// Where the body starts: after the JSON prelude and its 8 NUL bytes.
fn body_start(received: &[u8]) -> Option<usize> {
    let prelude_end = received.windows(PRELUDE_END.len()).position(|window| window == PRELUDE_END)?;
    Some(prelude_end + PRELUDE_END.len())
}

async fn error(Path(id): Path<String>, body: String) -> StatusCode {
    panic!("invocation {id} reported an error: {body}");
}

async fn init_error(body: String) -> StatusCode {
    panic!("the function failed to start: {body}");
}

/// A Function URL event (payload format 2.0) for `POST path?query`.
fn function_url_event(path: &str, query: &str, body: &str) -> Value {
    let query_parameters: serde_json::Map<String, Value> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.to_string(), Value::from(value)))
        .collect();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {
            "content-type": "application/json",
            "host": "abcdefgh.lambda-url.us-east-1.on.aws",
            "x-forwarded-proto": "https",
        },
        "queryStringParameters": query_parameters,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdefgh",
            "domainName": "abcdefgh.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefgh",
            "http": { "method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test" },
            "requestId": "id",
            "routeKey": "$default",
            "stage": "$default",
            "time": "22/Nov/2026:04:00:00 +0000",
            "timeEpoch": 1795320000000u64,
        },
        "body": body,
        "isBase64Encoded": false,
    })
}

/// The real binary started as Lambda starts it (no arguments), against an
/// emulator; several may serve one emulator, as execution environments.
pub struct Function {
    child: Child,
    log: PathBuf,
    stdout: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Function {
    /// A function that serves plugins by name too (on Lambda only named
    /// pipelines are served unless this is turned off): these tests run
    /// the frontend's mechanics on single plugins.
    pub fn start(api: &RuntimeApi, plugins: &str, echo_delay_ms: u64) -> Function {
        Self::start_with(api, plugins, echo_delay_ms, vec![("STREAMHOST_NAMED_PIPELINES_ONLY", "false".into())])
    }

    /// With more environment: a model source's settings.
    pub fn start_with(
        api: &RuntimeApi,
        plugins: &str,
        echo_delay_ms: u64,
        env: Vec<(&'static str, String)>,
    ) -> Function {
        let log_dir = tempfile::tempdir().unwrap();
        let log = log_dir.path().join("stderr.log");
        let stdout = log_dir.path().join("stdout.log");
        let child = Command::new(bin())
            .envs(api.env())
            .env("STREAMHOST_PLUGINS", plugins)
            .env("STREAMHOST_CACHE_DIR", shared_cache())
            .env("STREAMHOST_ECHO_DELAY_MS", echo_delay_ms.to_string())
            .env("STREAMHOST_LOG", "info")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Function { child, log, stdout, _log_dir: log_dir }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What the function wrote to stdout: its EMF metrics.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
