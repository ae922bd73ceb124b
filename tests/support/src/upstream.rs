//! Loopback model sources that speak the real wire formats: Bedrock's
//! event stream (`application/vnd.amazon.eventstream`, frames encoded by
//! `aws-smithy-eventstream`, so the real SDK client decodes them), and
//! server-sent events (an OpenAI-compatible server, an agent runtime).
//!
//! A `Script` says what each request is answered with: a status, headers,
//! and body chunks each after a pause, then either the end or a broken
//! connection. The server records every request, and whether a response
//! body was dropped (the client went away) before its last chunk.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::serve::ListenerExt;
use base64::Engine;
use futures::stream;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// One response.
#[derive(Clone)]
pub struct Script {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Each chunk with the pause before it.
    pub chunks: Vec<(Duration, Vec<u8>)>,
    /// Break the connection after the last chunk instead of ending the body.
    pub break_after: bool,
}

impl Script {
    pub fn new(status: u16, content_type: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            chunks: Vec::new(),
            break_after: false,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn chunk(mut self, pause: Duration, bytes: impl Into<Vec<u8>>) -> Self {
        self.chunks.push((pause, bytes.into()));
        self
    }

    /// Each of `chunks` after `pause`.
    pub fn chunks(self, pause: Duration, chunks: impl IntoIterator<Item = Vec<u8>>) -> Self {
        chunks.into_iter().fold(self, |script, chunk| script.chunk(pause, chunk))
    }

    pub fn then_break(mut self) -> Self {
        self.break_after = true;
        self
    }
}

/// A request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
struct Shared {
    scripts: Mutex<Vec<Script>>,
    received: Mutex<Vec<Received>>,
    /// Response bodies dropped before their last chunk.
    cut_short: AtomicUsize,
}

pub struct Upstream {
    pub base: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
}

impl Upstream {
    /// Answers the n-th request with the n-th script; the last one repeats.
    pub async fn start(scripts: Vec<Script>) -> Upstream {
        let shared = Arc::new(Shared { scripts: Mutex::new(scripts), ..Shared::default() });
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        // As model services do: each event leaves when written, not held by
        // Nagle's algorithm for the reader's delayed ACK.
        let listener = listener.tap_io(|connection| connection.set_nodelay(true).unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    stopped.await.ok();
                })
                .await
                .unwrap();
        });
        Upstream { base, shared, stop: Some(stop) }
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// How many response bodies were dropped before their last chunk.
    pub fn cut_short(&self) -> usize {
        self.shared.cut_short.load(Ordering::SeqCst)
    }

    /// Waits up to `limit` for a response body to be cut short.
    pub async fn wait_cut_short(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if self.cut_short() > 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// The environment that points a host's Bedrock client here.
    pub fn bedrock_env(&self) -> Vec<(&'static str, String)> {
        let mut env = super::loopback_aws_env();
        env.push(("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", self.base.clone()));
        env
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn answer(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let headers = request.headers().clone();
    let bytes = axum::body::to_bytes(request.into_body(), usize::MAX).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let script = {
        let mut received = shared.received.lock().unwrap();
        received.push(Received { path, headers, body });
        let scripts = shared.scripts.lock().unwrap();
        scripts[(received.len() - 1).min(scripts.len() - 1)].clone()
    };
    let mut response = Response::builder().status(StatusCode::from_u16(script.status).unwrap());
    for (name, value) in &script.headers {
        response = response.header(name, value);
    }
    response.body(body_of(script, shared)).unwrap()
}

/// Counts a body as cut short when dropped, unless it reached its end
/// (which takes the counter out first).
struct EndGuard(Option<Arc<Shared>>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.cut_short.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn body_of(script: Script, shared: Arc<Shared>) -> Body {
    let guard = EndGuard(Some(shared));
    let chunks = script.chunks.into_iter();
    let stream =
        stream::unfold((chunks, guard, script.break_after), |(mut chunks, mut guard, break_after)| async move {
            match chunks.next() {
                Some((pause, bytes)) => {
                    // A zero sleep still waits for the timer's next tick (~1 ms).
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                    Some((Ok::<_, std::io::Error>(Bytes::from(bytes)), (chunks, guard, break_after)))
                }
                None if break_after => {
                    // Lets the last chunk leave before the connection breaks.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    guard.0.take();
                    Some((Err(std::io::Error::other("the upstream breaks the connection")), (chunks, guard, false)))
                }
                None => {
                    guard.0.take();
                    None
                }
            }
        });
    Body::from_stream(stream)
}

// ---- Bedrock's event stream ----

pub const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// One event-stream message with these headers and payload.
pub fn frame(headers: [(&str, &str); 3], payload: Vec<u8>) -> Vec<u8> {
    let message = headers.into_iter().fold(Message::new(payload), |message, (name, value)| {
        message.add_header(Header::new(name.to_string(), HeaderValue::String(value.to_string().into())))
    });
    let mut bytes = Vec::new();
    write_message_to(&message, &mut bytes).unwrap();
    bytes
}

/// A ConverseStream event, such as `contentBlockDelta`.
pub fn converse_event(event_type: &'static str, payload: Value) -> Vec<u8> {
    frame(
        [(":message-type", "event"), (":event-type", event_type), (":content-type", "application/json")],
        payload.to_string().into_bytes(),
    )
}

/// An exception inside the stream, such as `throttlingException`.
pub fn exception(exception_type: &'static str, message: &str) -> Vec<u8> {
    let payload = json!({ "message": message }).to_string().into_bytes();
    frame(
        [(":message-type", "exception"), (":exception-type", exception_type), (":content-type", "application/json")],
        payload,
    )
}

/// An InvokeModelWithResponseStream chunk carrying `model_json`.
pub fn raw_chunk(model_json: &str) -> Vec<u8> {
    let payload = json!({ "bytes": base64::engine::general_purpose::STANDARD.encode(model_json) });
    frame(
        [(":message-type", "event"), (":event-type", "chunk"), (":content-type", "application/json")],
        payload.to_string().into_bytes(),
    )
}

/// The events of a ConverseStream answer that streams `deltas` as text.
pub fn converse_answer(deltas: &[&str]) -> Vec<Vec<u8>> {
    let mut events = vec![converse_event("messageStart", json!({ "role": "assistant" }))];
    events.extend(
        deltas.iter().map(|text| {
            converse_event("contentBlockDelta", json!({ "contentBlockIndex": 0, "delta": { "text": text } }))
        }),
    );
    events.push(converse_event("contentBlockStop", json!({ "contentBlockIndex": 0 })));
    events.push(converse_event("messageStop", json!({ "stopReason": "end_turn" })));
    events.push(converse_event(
        "metadata",
        json!({ "usage": { "inputTokens": 7, "outputTokens": deltas.len(), "totalTokens": 7 + deltas.len(), "cacheReadInputTokens": 3 }, "metrics": { "latencyMs": 250 } }),
    ));
    events
}

/// An error answered before any stream, as Bedrock's REST-JSON protocol
/// sends it.
pub fn aws_error(status: u16, error_type: &str, message: &str) -> Script {
    Script::new(status, "application/json")
        .header("x-amzn-errortype", error_type)
        .chunk(Duration::ZERO, json!({ "message": message }).to_string())
}

// ---- Server-sent events ----

pub const SSE: &str = "text/event-stream";

/// One SSE event whose data is `data`.
pub fn sse(data: &str) -> Vec<u8> {
    format!("data: {data}\n\n").into_bytes()
}
