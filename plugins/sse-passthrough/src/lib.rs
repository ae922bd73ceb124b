//! `sse-passthrough`: the upstream's server-sent events, byte for byte (the
//! orchestrator's "original" mode). Use it with `--provider upstream`: the
//! host sends each upstream SSE event as a `frame`, and this plugin writes
//! those and drops the events the host decoded from them.
//!
//! If the connection to the upstream breaks mid-stream, the stream ends with
//! one more event of its own:
//!
//! ```text
//! event: error
//! data: {"code":"upstream_disconnected","message":"…"}
//! ```

use streamhost_guest::json::ErrorJson;
use streamhost_guest::{ErrorInfo, Event, StreamContext, Transform};

pub struct SsePassthrough;

impl Transform for SsePassthrough {
    fn open(_context: StreamContext, _settings: &str) -> Result<Self, ErrorInfo> {
        Ok(Self)
    }

    fn content_type(&self) -> Option<String> {
        Some("text/event-stream".into())
    }

    fn push(&mut self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
        Ok(events
            .into_iter()
            .filter_map(|event| match event {
                Event::Frame(bytes) | Event::Raw(bytes) => Some(Event::Raw(bytes)),
                Event::Error(error) => Some(Event::Raw(error_frame(&error).into_bytes())),
                _ => None,
            })
            .collect())
    }
}

/// An SSE error event, in the shape every formatter uses for errors.
fn error_frame(error: &ErrorInfo) -> String {
    let data = serde_json::to_string(&ErrorJson::from(error)).expect("two strings serialise");
    format!("event: error\ndata: {data}\n\n")
}

streamhost_guest::export_transform!(SsePassthrough);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_frames_as_they_came_and_nothing_else() {
        let context = StreamContext { plugin: "sse-passthrough".into(), user_id: None, session_id: None };
        let mut passthrough = SsePassthrough::open(context, "{}").unwrap();
        let frame = b"event: x\r\ndata: {\"a\":1}\r\n\r\n".to_vec();
        let out = passthrough
            .push(vec![
                Event::Metadata("{}".into()),
                Event::Frame(frame.clone()),
                Event::Text("decoded".into()),
                Event::End("end_turn".into()),
            ])
            .unwrap();
        assert_eq!(out, [Event::Raw(frame)]);
        let error = passthrough
            .push(vec![Event::Error(streamhost_guest::error("upstream_disconnected", "it \"broke\"\n"))])
            .unwrap();
        assert_eq!(
            error,
            [Event::Raw(
                b"event: error\ndata: {\"code\":\"upstream_disconnected\",\"message\":\"it \\\"broke\\\"\\n\"}\n\n"
                    .to_vec()
            )]
        );
    }
}
