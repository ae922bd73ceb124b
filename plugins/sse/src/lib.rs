//! `sse`: formats a stream as Server-Sent Events, one named event per stream
//! event, ending with `done`:
//!
//! ```text
//! event: metadata
//! data: {"model":"echo"}
//!
//! event: text
//! data: {"text":"Hel"}
//!
//! event: done
//! data: {"stopReason":"end_turn"}
//! ```
//!
//! Every `data:` payload is JSON, so a browser's `EventSource` can
//! `JSON.parse` it. A failed stream ends with `event: error` instead of `done`.

use serde::Serialize;
use serde_json::value::RawValue;
use streamhost_guest::json::{ErrorJson, UsageJson};
use streamhost_guest::{ErrorInfo, Event, StreamContext, Transform};

#[derive(Serialize)]
struct Text {
    text: String,
}

#[derive(Serialize)]
struct Status {
    message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Done {
    stop_reason: String,
}

#[derive(Default)]
pub struct Sse {
    stop_reason: Option<String>,
    failed: bool,
}

impl Transform for Sse {
    fn open(_context: StreamContext, _settings: &str) -> Result<Self, ErrorInfo> {
        Ok(Self::default())
    }

    fn content_type(&self) -> Option<String> {
        Some("text/event-stream".into())
    }

    fn push(&mut self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
        Ok(events.into_iter().filter_map(|event| self.format(event)).collect())
    }

    fn finish(&mut self) -> Result<Vec<Event>, ErrorInfo> {
        if self.failed {
            return Ok(Vec::new());
        }
        let stop_reason = self.stop_reason.take().unwrap_or_else(|| "end_turn".into());
        Ok(vec![frame("done", &to_json(&Done { stop_reason }))])
    }
}

impl Sse {
    fn format(&mut self, event: Event) -> Option<Event> {
        match event {
            Event::Metadata(json) => Some(frame("metadata", &metadata_json(json))),
            Event::Text(text) => Some(frame("text", &to_json(&Text { text }))),
            Event::Status(message) => Some(frame("status", &to_json(&Status { message }))),
            Event::Usage(usage) => Some(frame("usage", &to_json(&UsageJson::from(&usage)))),
            Event::End(reason) => {
                self.stop_reason = Some(reason);
                None
            }
            Event::Error(error) => {
                self.failed = true;
                Some(frame("error", &to_json(&ErrorJson::from(&error))))
            }
            raw @ Event::Raw(_) => Some(raw),
            Event::Frame(_) => None,
        }
    }
}

/// Metadata is JSON by contract; anything else is sent as a JSON string.
fn metadata_json(json: String) -> String {
    match RawValue::from_string(json) {
        Ok(raw) => raw.get().to_string(),
        Err(_) => to_json(&"invalid metadata"),
    }
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

/// One SSE event. A payload with line breaks becomes several `data:` lines,
/// which the client joins back with `\n`.
fn frame(name: &str, payload: &str) -> Event {
    let mut out = format!("event: {name}\n");
    for line in payload.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Event::Raw(out.into_bytes())
}

streamhost_guest::export_transform!(Sse);

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Sse {
        Sse::open(StreamContext { plugin: "sse".into(), user_id: None, session_id: None }, "{}").unwrap()
    }

    fn text_of(events: Vec<Event>) -> String {
        events
            .into_iter()
            .map(|event| match event {
                Event::Raw(bytes) => String::from_utf8(bytes).unwrap(),
                other => panic!("a formatter returns raw bytes, not {other:?}"),
            })
            .collect()
    }

    #[test]
    fn names_each_event_and_ends_with_done() {
        let mut sse = open();
        let mut out = sse
            .push(vec![
                Event::Metadata("{\"a\":\n1}".into()),
                Event::Text("line\nbreak".into()),
                Event::End("stop_sequence".into()),
            ])
            .unwrap();
        out.extend(sse.finish().unwrap());
        assert_eq!(
            text_of(out),
            "event: metadata\ndata: {\"a\":\ndata: 1}\n\n\
             event: text\ndata: {\"text\":\"line\\nbreak\"}\n\n\
             event: done\ndata: {\"stopReason\":\"stop_sequence\"}\n\n"
        );
    }

    #[test]
    fn an_error_ends_the_stream_without_done() {
        let mut sse = open();
        let out = sse.push(vec![Event::Error(streamhost_guest::error("boom", "it broke"))]).unwrap();
        assert_eq!(text_of(out), "event: error\ndata: {\"code\":\"boom\",\"message\":\"it broke\"}\n\n");
        assert!(sse.finish().unwrap().is_empty());
    }
}
