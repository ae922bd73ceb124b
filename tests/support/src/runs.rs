//! A run's subscriber, as an SSE client reads it (the WHATWG HTML spec's
//! event-stream parsing: fields `id`, `event`, `data`; an event ends at a
//! blank line), and the runs API's calls.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

/// One event of a run's stream.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEvent {
    pub id: u64,
    pub kind: String,
    pub data: Value,
    /// When it arrived, from the subscription's start.
    pub at: Duration,
}

/// Starts a run: the status and the JSON answer.
pub async fn start(base: &str, path: &str, body: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    start_from(&reqwest::Client::new(), base, path, body).await
}

/// Starts a run with `client` (one bound to another loopback address is
/// another caller): the status and the JSON answer.
pub async fn start_from(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: &str,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let response = client.post(format!("{base}/runs/{path}")).body(body.to_string()).send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null), headers)
}

/// A client whose calls come from `address` (any of 127.0.0.0/8 reaches a
/// server on 127.0.0.1): to the host, a caller of its own.
pub fn client_from(address: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder().local_address(std::net::IpAddr::from(address)).build().unwrap()
}

/// `GET /runs/{id}` as JSON.
pub async fn status(base: &str, id: &str) -> Value {
    reqwest::get(format!("{base}/runs/{id}")).await.unwrap().json().await.unwrap()
}

/// Subscribes to the run's events after `last_event_id` and reads up to
/// `take` of them (all, to the end of the stream, with `None`); then drops
/// the connection.
pub async fn subscribe(base: &str, id: &str, last_event_id: Option<u64>, take: Option<usize>) -> Vec<RunEvent> {
    let mut request = reqwest::Client::new().get(format!("{base}/runs/{id}/events"));
    if let Some(last) = last_event_id {
        request = request.header("last-event-id", last.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "subscribing to {id}");
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    read_events(response, take).await
}

/// Reads SSE events off `response` until `take` are read or it ends.
pub async fn read_events(response: reqwest::Response, take: Option<usize>) -> Vec<RunEvent> {
    let started = Instant::now();
    let mut events = Vec::new();
    let mut buffer = String::new();
    let mut body = response.bytes_stream();
    while take.is_none_or(|take| events.len() < take) {
        let Some(chunk) = body.next().await else { break };
        buffer.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if let Some(event) = parse(&block, started.elapsed()) {
                events.push(event);
            }
        }
    }
    events.truncate(take.unwrap_or(usize::MAX));
    events
}

fn parse(block: &str, at: Duration) -> Option<RunEvent> {
    let (mut id, mut kind, mut data) = (None, "message".to_string(), Vec::new());
    for line in block.lines() {
        let (field, value) =
            line.split_once(':').map_or((line, ""), |(field, value)| (field, value.strip_prefix(' ').unwrap_or(value)));
        match field {
            "id" => id = value.parse().ok(),
            "event" => kind = value.to_string(),
            "data" => data.push(value.to_string()),
            _ => {}
        }
    }
    let data = serde_json::from_str(&data.join("\n")).ok()?;
    Some(RunEvent { id: id?, kind, data, at })
}

/// The text of `events`' text events, in order.
pub fn text(events: &[RunEvent]) -> String {
    events.iter().filter(|event| event.kind == "text").map(|event| event.data.as_str().unwrap()).collect()
}

/// Polls `GET /runs/{id}` until the run has ended, up to `limit`.
pub async fn ended(base: &str, id: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let record = status(base, id).await;
        if matches!(record["status"].as_str(), Some("completed" | "failed" | "cancelled")) || Instant::now() > deadline
        {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
