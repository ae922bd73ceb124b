//! A Lambda Runtime API emulator on loopback that speaks the streaming
//! response protocol: it hands out Function URL events, and reads each
//! response as it arrives, recording when every chunk came.

use std::collections::HashMap;
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
    hang_up: bool,
    done: oneshot::Sender<Invocation>,
}

/// An invocation handed out and not answered yet.
struct Waiting {
    done: oneshot::Sender<Invocation>,
    taken_at: Instant,
    /// Stop reading the response after its first body bytes, as a client
    /// that goes away does.
    hang_up: bool,
}

#[derive(Clone, Default)]
struct Emulator {
    queue: Arc<tokio::sync::Mutex<Option<mpsc::Receiver<Pending>>>>,
    waiting: Arc<Mutex<HashMap<String, Waiting>>>,
}

pub struct RuntimeApi {
    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    invocations: mpsc::Sender<Pending>,
    next_id: Mutex<u64>,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let (invocations, queue) = mpsc::channel(16);
        let emulator = Emulator { queue: Arc::new(tokio::sync::Mutex::new(Some(queue))), ..Default::default() };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(emulator);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        RuntimeApi { address, invocations, next_id: Mutex::new(0), server }
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
        let request_id = {
            let mut next_id = self.next_id.lock().unwrap();
            *next_id += 1;
            format!("request-{next_id}")
        };
        let (done, result) = oneshot::channel();
        let event = function_url_event(path, query, body);
        self.invocations.send(Pending { event, request_id, hang_up, done }).await.unwrap();
        tokio::time::timeout(Duration::from_secs(60), result).await.expect("the function answered in time").unwrap()
    }
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
    let Some(Pending { event, request_id, hang_up, done }) = pending else {
        return StatusCode::GONE.into_response();
    };
    emulator.waiting.lock().unwrap().insert(request_id.clone(), Waiting { done, taken_at: Instant::now(), hang_up });
    let deadline = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap() + Duration::from_secs(300);
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

async fn response(State(emulator): State<Emulator>, Path(id): Path<String>, headers: HeaderMap, body: Body) -> StatusCode {
    let Some(Waiting { done, taken_at, hang_up }) = emulator.waiting.lock().unwrap().remove(&id) else {
        return StatusCode::NOT_FOUND;
    };
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
    let invocation = Invocation {
        response_mode: header("lambda-runtime-function-response-mode"),
        content_type: header("content-type"),
        prelude: serde_json::from_slice(&whole[..start - PRELUDE_END.len()]).expect("the prelude is JSON"),
        body: String::from_utf8_lossy(&whole[start..]).into_owned(),
        chunks,
        first_body_byte_at: first_body_byte_at.unwrap_or_else(Instant::now),
    };
    let _ = done.send(invocation);
    StatusCode::ACCEPTED
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
