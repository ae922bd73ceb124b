//! What kind of body a source answered with, by its `Content-Type`, and the
//! rule every source follows with it: a body in a content type the source
//! does not stream is decoded whole where it can be, or answered with an
//! explicit `upstream_unexpected_content` error event; never an empty
//! success. The same holds for a body in the right type that ends having
//! said nothing ([`no_answer`]).

use bytes::Bytes;
use futures::StreamExt;

use super::error::StreamErrorCode;
use crate::event::Event;

/// The most bytes of a body the host reads whole (a non-streamed answer).
const WHOLE_BODY_LIMIT: usize = 16 << 20;

/// A response body's kind, from its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyKind {
    /// `text/event-stream`, or no content type at all (servers that omit it
    /// still stream SSE).
    EventStream,
    /// `application/json` and `+json` types: one whole answer.
    Json,
    /// `application/x-ndjson`, `application/jsonl`: one JSON value per line.
    JsonLines,
    /// `text/plain`: the answer's text itself.
    Text,
    /// Anything else, by its media type (an HTML error page, say).
    Other(String),
}

impl BodyKind {
    pub fn of(response: &reqwest::Response) -> Self {
        let Some(content_type) = response.headers().get(reqwest::header::CONTENT_TYPE) else {
            return BodyKind::EventStream;
        };
        let media_type =
            content_type.to_str().unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match media_type.as_str() {
            "text/event-stream" | "" => BodyKind::EventStream,
            "application/json" => BodyKind::Json,
            "application/x-ndjson" | "application/jsonl" | "application/jsonlines" | "application/x-jsonlines" => {
                BodyKind::JsonLines
            }
            "text/plain" => BodyKind::Text,
            other if other.ends_with("+json") => BodyKind::Json,
            other => BodyKind::Other(other.to_string()),
        }
    }

    /// For an error message: `` `text/html` content ``.
    pub fn describe(&self) -> String {
        match self {
            BodyKind::Other(media_type) => format!("`{media_type}` content"),
            other => format!("{other:?} content"),
        }
    }
}

/// A body the source reads whole, up to a limit; a body that breaks or is
/// larger is an error event.
pub async fn whole(response: reqwest::Response, source: &str) -> Result<Bytes, Event> {
    let mut body = response.bytes_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| {
            StreamErrorCode::Disconnected.event(format!("the connection to {source} broke before its answer ended"))
        })?;
        if bytes.len() + chunk.len() > WHOLE_BODY_LIMIT {
            return Err(StreamErrorCode::UnexpectedContent
                .event(format!("{source} answered more than {WHOLE_BODY_LIMIT} bytes in one piece")));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(bytes))
}

/// The error event for a body the source cannot read. What the body held
/// goes to the log, not to the caller.
pub fn unexpected(source: &str, what: &str, body: &[u8]) -> Event {
    tracing::warn!(body = %String::from_utf8_lossy(&body[..body.len().min(2000)]), "{source} answered {what}");
    StreamErrorCode::UnexpectedContent
        .event(format!("{source} answered {what}, which holds no answer the host can read"))
}

/// The error event for an answer that ended with nothing said: no content
/// and no reason for stopping (`missing` says which, in the source's terms).
/// An empty answer is not one the host can tell from a broken source, so it
/// is never passed on as a success. The first event, it is answered as
/// `upstream_failed`.
pub fn no_answer(source: &str, missing: &str) -> Event {
    StreamErrorCode::UnexpectedContent.event(format!("{source} ended its answer with {missing}"))
}

/// A token count as sources send it, leniently: an integer, or a float
/// rounded; a negative or non-number is no count, a huge one is clamped.
pub fn token_count(value: &serde_json::Value) -> Option<u32> {
    let count = value.as_f64().filter(|count| count.is_finite() && *count >= 0.0)?;
    Some(count.round().min(f64::from(u32::MAX)) as u32)
}
