//! `ai-sdk-ui`: formats any pipeline's stream as the Vercel AI SDK's UI
//! message stream (protocol `v1`, AI SDK 5 and 6), what `useChat` through its
//! `DefaultChatTransport` and `readUIMessageStream` read: Server-Sent Events,
//! one `data:` line of JSON a part, then `data: [DONE]`:
//!
//! ```text
//! data: {"type":"start"}
//!
//! data: {"type":"start-step"}
//!
//! data: {"type":"message-metadata","messageMetadata":{"provider":"echo","model":"echo"}}
//!
//! data: {"type":"text-start","id":"text-0"}
//!
//! data: {"type":"text-delta","id":"text-0","delta":"Hel"}
//!
//! data: {"type":"text-end","id":"text-0"}
//!
//! data: {"type":"message-metadata","messageMetadata":{"usage":{"inputTokens":2,"outputTokens":2,"totalTokens":4,"latencyMs":60}}}
//!
//! data: {"type":"finish-step"}
//!
//! data: {"type":"finish","finishReason":"stop"}
//!
//! data: [DONE]
//! ```
//!
//! A `status` event is a transient data part, `{"type":"data-status","data":
//! {"message":…},"transient":true}` (`useChat`'s `onData` gets it; the message
//! keeps no trace of it). A failed stream ends with `{"type":"error",
//! "errorText":"<code>: <message>"}` and `[DONE]`, without closing its parts.
//! Only chunk types and fields of the AI SDK's `uiMessageChunkSchema` are
//! written: its objects are strict, and the client fails on anything else.
//!
//! Settings, all optional: `messageId` (the assistant message's id; without
//! it the client keeps the id it made) and `finishReason` (`false` leaves it
//! out of `finish`, for clients older than `ai` 5.0.92, whose schema has no
//! such field).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use streamhost_guest::json::UsageJson;
use streamhost_guest::{ErrorInfo, Event, Level, StreamContext, Transform, error, log};

/// The settings, all optional.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
struct Settings {
    /// The `start` part's `messageId`. None by default: a session id or a fixed
    /// fallback would give every answer of a chat the same id, and the client
    /// makes a fresh one when the stream names none.
    message_id: Option<String>,
    /// Whether `finish` carries `finishReason`.
    finish_reason: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self { message_id: None, finish_reason: true }
    }
}

/// One part of the stream, as `uiMessageChunkSchema` defines it.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "kebab-case", rename_all_fields = "camelCase")]
enum Chunk<'a> {
    Start {
        #[serde(skip_serializing_if = "Option::is_none")]
        message_id: Option<&'a str>,
    },
    StartStep,
    TextStart {
        id: &'a str,
    },
    TextDelta {
        id: &'a str,
        delta: &'a str,
    },
    TextEnd {
        id: &'a str,
    },
    /// A `data-<name>` part; `transient` keeps it out of the message.
    DataStatus {
        data: Status<'a>,
        transient: bool,
    },
    MessageMetadata {
        message_metadata: Metadata,
    },
    Error {
        error_text: String,
    },
    FinishStep,
    Finish {
        #[serde(skip_serializing_if = "Option::is_none")]
        finish_reason: Option<&'static str>,
    },
}

#[derive(Serialize)]
struct Status<'a> {
    message: &'a str,
}

/// What a `message-metadata` part carries; the client merges each into the
/// message's `metadata`.
#[derive(Serialize)]
#[serde(untagged)]
enum Metadata {
    /// A metadata event's object, as it came.
    Object(Map<String, Value>),
    /// The token counts, under `usage`.
    Usage { usage: UsageJson },
}

/// The stream's last line, which the client skips: the AI SDK's own servers
/// end every stream with it, a failed one too.
const DONE: &str = "data: [DONE]\n\n";

/// A comment line, which SSE clients skip: it keeps idle connections open.
const KEEP_ALIVE: &str = ": keep-alive\n\n";

/// One stream's formatter: what it has written so far.
pub struct AiSdkUi {
    settings: Settings,
    /// Whether `start` and `start-step` are written.
    started: bool,
    /// The id of the text part being written, between its `text-start` and
    /// `text-end`.
    open_text: Option<String>,
    /// How many text parts were started, which numbers the next one.
    text_parts: usize,
    stop_reason: Option<String>,
    /// An error was written: nothing more is.
    failed: bool,
}

impl Transform for AiSdkUi {
    fn open(_context: StreamContext, settings: &str) -> Result<Self, ErrorInfo> {
        let settings = serde_json::from_str(settings)
            .map_err(|problem| error("invalid_config", format!("ai-sdk-ui settings: {problem}")))?;
        Ok(Self { settings, started: false, open_text: None, text_parts: 0, stop_reason: None, failed: false })
    }

    fn content_type(&self) -> Option<String> {
        Some("text/event-stream".into())
    }

    fn push(&mut self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
        if events.is_empty() {
            return Ok(if self.failed { Vec::new() } else { vec![Event::Raw(KEEP_ALIVE.into())] });
        }
        Ok(events.into_iter().filter_map(|event| self.format(event)).collect())
    }

    fn finish(&mut self) -> Result<Vec<Event>, ErrorInfo> {
        if self.failed {
            return Ok(Vec::new());
        }
        let mut out = String::new();
        self.start(&mut out);
        self.close_text(&mut out);
        write(&mut out, &Chunk::FinishStep);
        let finish_reason = self.settings.finish_reason.then(|| finish_reason(self.stop_reason.as_deref()));
        write(&mut out, &Chunk::Finish { finish_reason });
        out.push_str(DONE);
        Ok(vec![Event::Raw(out.into_bytes())])
    }
}

impl AiSdkUi {
    /// The parts one event makes, as one `raw` event, or none.
    fn format(&mut self, event: Event) -> Option<Event> {
        if self.failed {
            return None;
        }
        let mut out = String::new();
        match event {
            Event::Text(text) => self.write_text(&mut out, &text),
            Event::Status(message) => {
                self.start(&mut out);
                write(&mut out, &Chunk::DataStatus { data: Status { message: &message }, transient: true });
            }
            Event::Metadata(json) => self.write_metadata(&mut out, &json),
            Event::Usage(usage) => {
                self.start(&mut out);
                let message_metadata = Metadata::Usage { usage: UsageJson::from(&usage) };
                write(&mut out, &Chunk::MessageMetadata { message_metadata });
            }
            Event::End(reason) => {
                self.close_text(&mut out);
                self.stop_reason = Some(reason);
            }
            Event::Error(failure) => {
                self.start(&mut out);
                write(&mut out, &Chunk::Error { error_text: format!("{}: {}", failure.code, failure.message) });
                out.push_str(DONE);
                self.failed = true;
            }
            raw @ Event::Raw(_) => return Some(raw),
            Event::Frame(_) => {}
        }
        (!out.is_empty()).then(|| Event::Raw(out.into_bytes()))
    }

    /// `start` and `start-step`, before the stream's first part.
    fn start(&mut self, out: &mut String) {
        if !self.started {
            self.started = true;
            write(out, &Chunk::Start { message_id: self.settings.message_id.as_deref() });
            write(out, &Chunk::StartStep);
        }
    }

    /// A text delta, in the open text part or a new one. An empty delta is
    /// not written: it adds nothing and would open a part for nothing.
    fn write_text(&mut self, out: &mut String, text: &str) {
        if text.is_empty() {
            return;
        }
        self.start(out);
        let id = match &self.open_text {
            Some(id) => id.clone(),
            None => {
                let id = format!("text-{}", self.text_parts);
                self.text_parts += 1;
                write(out, &Chunk::TextStart { id: &id });
                self.open_text = Some(id.clone());
                id
            }
        };
        write(out, &Chunk::TextDelta { id: &id, delta: text });
    }

    fn close_text(&mut self, out: &mut String) {
        if let Some(id) = self.open_text.take() {
            write(out, &Chunk::TextEnd { id: &id });
        }
    }

    /// A metadata object as `message-metadata`. Anything else is dropped: the
    /// client merges metadata into an object, and a string or a list would
    /// replace it.
    fn write_metadata(&mut self, out: &mut String, json: &str) {
        match serde_json::from_str::<Map<String, Value>>(json) {
            Ok(object) => {
                self.start(out);
                write(out, &Chunk::MessageMetadata { message_metadata: Metadata::Object(object) });
            }
            Err(problem) => log(Level::Warn, &format!("metadata that is not a JSON object dropped: {problem}")),
        }
    }
}

/// The host's stop reasons (Bedrock's names) as the AI SDK's finish reasons.
fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        // A stream that ends without a reason ended normally.
        None | Some("end_turn" | "stop_sequence") => "stop",
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool-calls",
        Some("content_filtered" | "guardrail_intervened") => "content-filter",
        Some(_) => "other",
    }
}

/// One SSE event, `data: <json>`. Compact JSON has no line break, so one
/// `data:` line holds it.
fn write(out: &mut String, chunk: &Chunk<'_>) {
    out.push_str("data: ");
    out.push_str(&serde_json::to_string(chunk).expect("plain data serialises"));
    out.push_str("\n\n");
}

streamhost_guest::export_transform!(AiSdkUi);

#[cfg(test)]
mod tests {
    use streamhost_guest::Usage;

    use super::*;

    fn open(settings: &str) -> AiSdkUi {
        let context = StreamContext { plugin: "ai-sdk-ui".into(), user_id: None, session_id: Some("s1".into()) };
        AiSdkUi::open(context, settings).unwrap()
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

    /// Pushes each batch, then finishes: the whole body.
    fn run(ui: &mut AiSdkUi, batches: Vec<Vec<Event>>) -> String {
        let mut body = String::new();
        for batch in batches {
            body.push_str(&text_of(ui.push(batch).unwrap()));
        }
        body + &text_of(ui.finish().unwrap())
    }

    fn usage() -> Usage {
        Usage {
            input_tokens: 5,
            output_tokens: 9,
            total_tokens: 14,
            latency_ms: 0,
            cache_read_input_tokens: 0,
            cache_write_input_tokens: 0,
        }
    }

    #[test]
    fn an_answer_is_one_text_part_in_one_step() {
        let mut ui = open("{}");
        let body = run(
            &mut ui,
            vec![
                vec![Event::Metadata(r#"{"provider":"echo","model":"echo"}"#.into()), Event::Text("Hel".into())],
                vec![Event::Text("lo\n".into())],
                vec![Event::End("end_turn".into()), Event::Usage(usage())],
            ],
        );
        assert_eq!(
            body,
            "data: {\"type\":\"start\"}\n\n\
             data: {\"type\":\"start-step\"}\n\n\
             data: {\"type\":\"message-metadata\",\"messageMetadata\":{\"provider\":\"echo\",\"model\":\"echo\"}}\n\n\
             data: {\"type\":\"text-start\",\"id\":\"text-0\"}\n\n\
             data: {\"type\":\"text-delta\",\"id\":\"text-0\",\"delta\":\"Hel\"}\n\n\
             data: {\"type\":\"text-delta\",\"id\":\"text-0\",\"delta\":\"lo\\n\"}\n\n\
             data: {\"type\":\"text-end\",\"id\":\"text-0\"}\n\n\
             data: {\"type\":\"message-metadata\",\"messageMetadata\":{\"usage\":\
             {\"inputTokens\":5,\"outputTokens\":9,\"totalTokens\":14,\"latencyMs\":0}}}\n\n\
             data: {\"type\":\"finish-step\"}\n\n\
             data: {\"type\":\"finish\",\"finishReason\":\"stop\"}\n\n\
             data: [DONE]\n\n"
        );
    }

    #[test]
    fn each_event_is_written_as_it_arrives() {
        let mut ui = open("{}");
        let out = ui.push(vec![Event::Text("a".into()), Event::Text("b".into())]).unwrap();
        assert_eq!(out.len(), 2, "one raw event per event");
        assert_eq!(
            text_of(out),
            "data: {\"type\":\"start\"}\n\ndata: {\"type\":\"start-step\"}\n\n\
             data: {\"type\":\"text-start\",\"id\":\"text-0\"}\n\n\
             data: {\"type\":\"text-delta\",\"id\":\"text-0\",\"delta\":\"a\"}\n\n\
             data: {\"type\":\"text-delta\",\"id\":\"text-0\",\"delta\":\"b\"}\n\n"
        );
    }

    #[test]
    fn the_message_id_setting_names_the_message() {
        let mut ui = open(r#"{"messageId":"msg_42"}"#);
        assert_eq!(
            text_of(ui.push(vec![Event::Status("working".into())]).unwrap()),
            "data: {\"type\":\"start\",\"messageId\":\"msg_42\"}\n\n\
             data: {\"type\":\"start-step\"}\n\n\
             data: {\"type\":\"data-status\",\"data\":{\"message\":\"working\"},\"transient\":true}\n\n"
        );
    }

    #[test]
    fn stop_reasons_map_to_finish_reasons() {
        for (stop_reason, expected) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool-calls"),
            ("guardrail_intervened", "content-filter"),
            ("content_filtered", "content-filter"),
            ("something_new", "other"),
        ] {
            let mut ui = open("{}");
            ui.push(vec![Event::End(stop_reason.into())]).unwrap();
            let end = text_of(ui.finish().unwrap());
            assert!(end.contains(&format!("\"finishReason\":\"{expected}\"")), "{stop_reason}: {end}");
        }
    }

    #[test]
    fn finish_reason_false_leaves_it_out() {
        let mut ui = open(r#"{"finishReason":false}"#);
        assert_eq!(
            run(&mut ui, vec![vec![Event::End("max_tokens".into())]]),
            "data: {\"type\":\"start\"}\n\ndata: {\"type\":\"start-step\"}\n\n\
             data: {\"type\":\"finish-step\"}\n\ndata: {\"type\":\"finish\"}\n\ndata: [DONE]\n\n"
        );
    }

    #[test]
    fn an_error_ends_the_stream_without_closing_its_parts() {
        let mut ui = open("{}");
        ui.push(vec![Event::Text("Half".into())]).unwrap();
        let out = ui
            .push(vec![
                Event::Error(error("model_stream_error", "the model stopped")),
                Event::Text("more".into()),
                Event::Raw(b"late".to_vec()),
            ])
            .unwrap();
        assert_eq!(
            text_of(out),
            "data: {\"type\":\"error\",\"errorText\":\"model_stream_error: the model stopped\"}\n\ndata: [DONE]\n\n"
        );
        assert!(ui.push(Vec::new()).unwrap().is_empty(), "no keep-alive after the end");
        assert!(ui.finish().unwrap().is_empty());
    }

    #[test]
    fn an_error_first_still_starts_the_message() {
        let mut ui = open("{}");
        assert_eq!(
            text_of(ui.push(vec![Event::Error(error("throttled", "slow down"))]).unwrap()),
            "data: {\"type\":\"start\"}\n\ndata: {\"type\":\"start-step\"}\n\n\
             data: {\"type\":\"error\",\"errorText\":\"throttled: slow down\"}\n\ndata: [DONE]\n\n"
        );
    }

    #[test]
    fn empty_text_opens_no_part() {
        let mut ui = open("{}");
        assert!(ui.push(vec![Event::Text(String::new())]).unwrap().is_empty());
        assert_eq!(
            run(&mut ui, vec![]),
            "data: {\"type\":\"start\"}\n\ndata: {\"type\":\"start-step\"}\n\n\
             data: {\"type\":\"finish-step\"}\n\ndata: {\"type\":\"finish\",\"finishReason\":\"stop\"}\n\ndata: [DONE]\n\n"
        );
    }

    #[test]
    fn text_after_its_part_ended_opens_the_next() {
        let mut ui = open("{}");
        let out = ui.push(vec![Event::Text("a".into()), Event::End("end_turn".into()), Event::Text("b".into())]);
        let body = text_of(out.unwrap());
        assert!(body.contains("{\"type\":\"text-end\",\"id\":\"text-0\"}"), "{body}");
        assert!(body.ends_with(
            "data: {\"type\":\"text-start\",\"id\":\"text-1\"}\n\n\
             data: {\"type\":\"text-delta\",\"id\":\"text-1\",\"delta\":\"b\"}\n\n"
        ));
        assert!(text_of(ui.finish().unwrap()).starts_with("data: {\"type\":\"text-end\",\"id\":\"text-1\"}\n\n"));
    }

    #[test]
    fn metadata_keeps_its_order_and_loses_its_line_breaks() {
        let mut ui = open("{}");
        ui.started = true;
        let out = ui.push(vec![Event::Metadata("{\"z\":1,\n \"a\":[1, 2]}".into())]).unwrap();
        assert_eq!(text_of(out), "data: {\"type\":\"message-metadata\",\"messageMetadata\":{\"z\":1,\"a\":[1,2]}}\n\n");
    }

    #[test]
    fn metadata_that_is_not_an_object_is_dropped() {
        let mut ui = open("{}");
        assert!(ui.push(vec![Event::Metadata("[1]".into()), Event::Metadata("not json".into())]).unwrap().is_empty());
    }

    #[test]
    fn a_tick_is_a_comment_and_frames_are_dropped() {
        let mut ui = open("{}");
        assert_eq!(text_of(ui.push(Vec::new()).unwrap()), ": keep-alive\n\n");
        assert!(ui.push(vec![Event::Frame(b"{}".to_vec())]).unwrap().is_empty());
        assert_eq!(text_of(ui.push(vec![Event::Raw(b"as is".to_vec())]).unwrap()), "as is");
    }

    #[test]
    fn unknown_or_mistyped_settings_are_refused() {
        let context = || StreamContext { plugin: "ai-sdk-ui".into(), user_id: None, session_id: None };
        for settings in [r#"{"id":"x"}"#, r#"{"finishReason":"yes"}"#, r#"{"messageId":7}"#] {
            let Err(refusal) = AiSdkUi::open(context(), settings) else { panic!("{settings} accepted") };
            assert_eq!(refusal.code, "invalid_config", "{settings}");
        }
    }
}
