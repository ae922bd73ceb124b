//! `anthropic-messages-format`: writes a stream as the Anthropic Messages
//! API answers `POST /v1/messages`. Its settings, which the request filter
//! `anthropic-messages-request` writes and the host completes with the
//! call's request id: `{"model": "support-desk", "stream": true, "id":
//! "0123…"}`.
//!
//! Streamed (`stream` true), Anthropic's Server-Sent Events, each written as
//! soon as it is known:
//!
//! ```text
//! event: message_start
//! data: {"type":"message_start","message":{"id":"msg_0123…","type":"message","role":"assistant","model":"support-desk","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}}
//!
//! event: content_block_start
//! data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}
//!
//! event: content_block_delta
//! data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}
//!
//! event: content_block_stop
//! data: {"type":"content_block_stop","index":0}
//!
//! event: message_delta
//! data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":9}}
//!
//! event: message_stop
//! data: {"type":"message_stop"}
//! ```
//!
//! `message_start` goes out with the first batch (or tick); the text block
//! opens on the first text and closes on `end`; `message_delta` and
//! `message_stop` wait for `finish`, since a model's usage comes after its
//! `end`. A tool call the model makes (a `metadata` event
//! `{"toolUse":{"toolUseId":"tooluse_1","name":"lookup","input":{"q":"ada"}}}`)
//! closes the text block and is a block of its own, its input whole in one
//! delta:
//!
//! ```text
//! event: content_block_start
//! data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"tooluse_1","name":"lookup","input":{}}}
//!
//! event: content_block_delta
//! data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"q\":\"ada\"}"}}
//!
//! event: content_block_stop
//! data: {"type":"content_block_stop","index":1}
//! ```
//!
//! A tick is `event: ping`. A failed stream ends with `event: error`
//! (`{"type":"error","error":{"type":"overloaded_error"|"api_error","message":…}}`,
//! which the SDKs raise) and nothing after it.
//!
//! Whole (`stream` false): one JSON message, written by `finish`:
//! `{"id","type":"message","role":"assistant","model","content":[{"type":"text","text":…},{"type":"tool_use","id","name","input":{…}}],"stop_reason","stop_sequence":null,"usage":{…}}`,
//! its blocks in the stream's order;
//! an `error` event fails the stream with its code and message, which the
//! host answers in Anthropic's error shape.
//!
//! Other `metadata`, and `status` and `frame` events, are not written; `raw`
//! bytes, already in another format, are dropped.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use streamhost_guest::json::{ToolUseJson, ToolUseMetadataJson};
use streamhost_guest::{ErrorInfo, Event, StreamContext, Transform, Usage, error};

/// The settings: the request filter's, and the host's `id`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The `model` the client sent (the pipeline's name), echoed back.
    #[serde(default = "default_model")]
    model: String,
    /// Server-Sent Events, or one JSON message.
    #[serde(default = "streams")]
    stream: bool,
    /// The call's request id, which the message id is made from.
    id: Option<String>,
}

/// Without settings (the formatter chained by hand), a fixed name, and a
/// stream, which is what a chain's formatter is for.
fn default_model() -> String {
    "streamhost".into()
}

fn streams() -> bool {
    true
}

pub struct AnthropicMessagesFormat {
    /// `msg_<request id>`.
    id: String,
    model: String,
    stream: bool,
    /// With `stream` false, the message's blocks, written by `finish`.
    content: Vec<Content>,
    /// The last `end`'s reason, as the source gave it.
    end_reason: Option<String>,
    usage: Option<Usage>,
    /// Whether `message_start` has been written.
    started: bool,
    /// The index of the text block open in the stream, if one is.
    open_block: Option<u32>,
    /// How many content blocks the stream has opened.
    blocks: u32,
    /// An `error` ended the stream: nothing more is written.
    failed: bool,
}

impl Transform for AnthropicMessagesFormat {
    fn open(_context: StreamContext, settings: &str) -> Result<Self, ErrorInfo> {
        let settings: Settings = serde_json::from_str(settings)
            .map_err(|problem| error("invalid_config", format!("anthropic-messages-format's settings: {problem}")))?;
        Ok(Self {
            id: format!("msg_{}", settings.id.as_deref().unwrap_or("streamhost")),
            model: settings.model,
            stream: settings.stream,
            content: Vec::new(),
            end_reason: None,
            usage: None,
            started: false,
            open_block: None,
            blocks: 0,
            failed: false,
        })
    }

    fn content_type(&self) -> Option<String> {
        Some(if self.stream { "text/event-stream" } else { "application/json" }.into())
    }

    fn push(&mut self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
        if !self.stream {
            return self.gather(events).map(|()| Vec::new());
        }
        if self.failed {
            return Ok(Vec::new());
        }
        let mut out = String::new();
        self.start(&mut out);
        if events.is_empty() {
            // A tick: the source has been silent for the pipeline's `idleMs`.
            out.push_str(PING);
        }
        for event in events {
            self.write(event, &mut out);
            if self.failed {
                break;
            }
        }
        Ok(raw(out))
    }

    fn finish(&mut self) -> Result<Vec<Event>, ErrorInfo> {
        if !self.stream {
            let content = self.content.iter().map(Content::block).collect();
            let usage = self.usage.as_ref().map_or_else(UsageCounts::zero, UsageCounts::from);
            return Ok(raw(to_json(&self.message(content, Some(self.stop_reason()), usage))));
        }
        if self.failed {
            return Ok(Vec::new());
        }
        let mut out = String::new();
        self.start(&mut out);
        self.close_block(&mut out);
        let delta = StopDelta { stop_reason: self.stop_reason(), stop_sequence: None };
        let usage = self.usage.as_ref().map(UsageCounts::from).unwrap_or_default();
        sse(&mut out, &StreamEvent::MessageDelta { delta, usage });
        sse(&mut out, &StreamEvent::MessageStop);
        Ok(raw(out))
    }
}

/// Anthropic's keep-alive, as its API writes it.
const PING: &str = "event: ping\ndata: {\"type\": \"ping\"}\n\n";

impl AnthropicMessagesFormat {
    /// With `stream` false: keeps what the message needs; an error fails
    /// the stream before any byte, so that the caller gets an error answer.
    fn gather(&mut self, events: Vec<Event>) -> Result<(), ErrorInfo> {
        for event in events {
            match event {
                Event::Text(text) => self.gather_text(&text),
                Event::Metadata(metadata) => self.content.extend(tool_use_of(&metadata).map(Content::ToolUse)),
                Event::End(reason) => self.end_reason = Some(reason),
                Event::Usage(usage) => self.usage = Some(usage),
                Event::Error(failure) => return Err(failure),
                Event::Status(_) | Event::Frame(_) | Event::Raw(_) => {}
            }
        }
        Ok(())
    }

    /// Text goes on the last text block; after a tool call (or at first), it
    /// starts one.
    fn gather_text(&mut self, text: &str) {
        match self.content.last_mut() {
            Some(Content::Text(gathered)) => gathered.push_str(text),
            _ if text.is_empty() => {}
            _ => self.content.push(Content::Text(text.to_owned())),
        }
    }

    /// `message_start`, once, before anything else.
    fn start(&mut self, out: &mut String) {
        if !self.started {
            self.started = true;
            let message =
                self.message(Vec::new(), None, UsageCounts { input_tokens: Some(0), ..UsageCounts::default() });
            sse(out, &StreamEvent::MessageStart { message });
        }
    }

    fn write(&mut self, event: Event, out: &mut String) {
        match event {
            // Anthropic never sends an empty delta, and it would open a block
            // for nothing.
            Event::Text(text) if text.is_empty() => {}
            Event::Text(text) => {
                let index = self.open_block(out);
                sse(out, &StreamEvent::ContentBlockDelta { index, delta: Delta::TextDelta { text: &text } });
            }
            // The text is over; the stop reason waits for the usage.
            Event::End(reason) => {
                self.close_block(out);
                self.end_reason = Some(reason);
            }
            Event::Usage(usage) => self.usage = Some(usage),
            Event::Error(failure) => {
                self.failed = true;
                // Anthropic's error has no code of its own: the host's leads
                // the message, as in the host's errors before the stream.
                let message = format!("{}: {}", failure.code, failure.message);
                let error = ApiError { kind: error_type(&failure.code), message: &message };
                sse(out, &StreamEvent::Error { error });
            }
            Event::Metadata(metadata) => {
                if let Some(call) = tool_use_of(&metadata) {
                    self.write_tool_use(&call, out);
                }
            }
            Event::Status(_) | Event::Frame(_) | Event::Raw(_) => {}
        }
    }

    /// A tool call, as Anthropic streams one: after the text before it, a
    /// `tool_use` block opened with an empty input, the input whole in one
    /// `input_json_delta` (it arrives whole), and the block closed.
    fn write_tool_use(&mut self, call: &ToolUse, out: &mut String) {
        self.close_block(out);
        let index = self.next_index();
        let content_block = Block::ToolUse { id: &call.tool_use_id, name: &call.name, input: empty_object() };
        sse(out, &StreamEvent::ContentBlockStart { index, content_block });
        let delta = Delta::InputJsonDelta { partial_json: call.input.get() };
        sse(out, &StreamEvent::ContentBlockDelta { index, delta });
        sse(out, &StreamEvent::ContentBlockStop { index });
    }

    /// The index of the open text block, opening one (`content_block_start`)
    /// when none is: text after an `end` goes in a block of its own.
    fn open_block(&mut self, out: &mut String) -> u32 {
        if let Some(index) = self.open_block {
            return index;
        }
        let index = self.next_index();
        self.open_block = Some(index);
        sse(out, &StreamEvent::ContentBlockStart { index, content_block: Block::Text { text: "" } });
        index
    }

    /// The index of the next content block, counted.
    fn next_index(&mut self) -> u32 {
        let index = self.blocks;
        self.blocks += 1;
        index
    }

    fn close_block(&mut self, out: &mut String) {
        if let Some(index) = self.open_block.take() {
            sse(out, &StreamEvent::ContentBlockStop { index });
        }
    }

    /// The message: empty and unfinished for `message_start`, whole for a
    /// whole answer.
    fn message<'a>(
        &'a self,
        content: Vec<Block<'a>>,
        stop_reason: Option<&'static str>,
        usage: UsageCounts,
    ) -> MessageJson<'a> {
        MessageJson {
            id: &self.id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content,
            stop_reason,
            stop_sequence: None,
            usage,
        }
    }

    /// The stop reason in Anthropic's terms; a stream that ended without
    /// one ended its turn.
    fn stop_reason(&self) -> &'static str {
        self.end_reason.as_deref().map_or("end_turn", anthropic_stop_reason)
    }
}

/// The stop reasons the Anthropic SDKs know pass through; a guardrail's
/// intervention (Bedrock's) is Anthropic's `refusal`; anything else ended
/// the turn.
fn anthropic_stop_reason(reason: &str) -> &'static str {
    match reason {
        "max_tokens" => "max_tokens",
        "stop_sequence" => "stop_sequence",
        "tool_use" => "tool_use",
        "pause_turn" => "pause_turn",
        "model_context_window_exceeded" => "model_context_window_exceeded",
        "refusal" | "guardrail_intervened" | "content_filtered" => "refusal",
        _ => "end_turn",
    }
}

/// The `error.type` of an in-stream error: Anthropic's for a busy model,
/// its generic one for anything else.
fn error_type(code: &str) -> &'static str {
    match code {
        "throttled" | "overloaded" => "overloaded_error",
        _ => "api_error",
    }
}

/// One event of Anthropic's stream, its `type` first.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent<'a> {
    MessageStart { message: MessageJson<'a> },
    ContentBlockStart { index: u32, content_block: Block<'a> },
    ContentBlockDelta { index: u32, delta: Delta<'a> },
    ContentBlockStop { index: u32 },
    MessageDelta { delta: StopDelta, usage: UsageCounts },
    MessageStop,
    Error { error: ApiError<'a> },
}

impl StreamEvent<'_> {
    /// The SSE event name, which Anthropic makes the payload's `type`.
    fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Error { .. } => "error",
        }
    }
}

/// A message, as `message_start` opens it and a whole answer is.
#[derive(Serialize)]
struct MessageJson<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Block<'a>>,
    stop_reason: Option<&'static str>,
    /// Which stop sequence matched: the host's sources do not say.
    stop_sequence: Option<&'static str>,
    usage: UsageCounts,
}

/// A content block: `{"type":"text","text":…}` or
/// `{"type":"tool_use","id","name","input":{…}}`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text { text: &'a str },
    ToolUse { id: &'a str, name: &'a str, input: &'a RawValue },
}

/// A `content_block_delta`'s `delta`: `{"type":"text_delta","text":…}` or
/// `{"type":"input_json_delta","partial_json":…}`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Delta<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

/// A block of a whole message, gathered.
enum Content {
    Text(String),
    ToolUse(ToolUse),
}

impl Content {
    fn block(&self) -> Block<'_> {
        match self {
            Content::Text(text) => Block::Text { text },
            Content::ToolUse(call) => Block::ToolUse { id: &call.tool_use_id, name: &call.name, input: &call.input },
        }
    }
}

/// A tool call as a model source sends it downstream (the guest SDK's
/// shape), its input kept as Box<RawValue>.
type ToolUse = ToolUseJson<Box<RawValue>>;
type ToolUseMetadata = ToolUseMetadataJson<Box<RawValue>>;

/// The tool call in a metadata event, if it is one: other metadata (the
/// model's name, its reasoning, a tool call's pieces without an id) is not.
fn tool_use_of(metadata: &str) -> Option<ToolUse> {
    serde_json::from_str::<ToolUseMetadata>(metadata).ok().map(|metadata| metadata.tool_use)
}

/// `{}`: the input a streamed `tool_use` block opens with.
fn empty_object() -> &'static RawValue {
    serde_json::from_str("{}").expect("{} is JSON")
}

/// `message_delta`'s `delta`.
#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<&'static str>,
}

/// Anthropic's `usage`, in its order; the counts not known are left out
/// (the API requires only `output_tokens` in `message_delta`).
#[derive(Serialize, Default)]
struct UsageCounts {
    #[serde(skip_serializing_if = "Option::is_none")]
    input_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_creation_input_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_read_input_tokens: Option<u32>,
    output_tokens: u32,
}

impl UsageCounts {
    /// Every count at 0: a whole message's usage, when the source sent none.
    fn zero() -> Self {
        Self {
            input_tokens: Some(0),
            cache_creation_input_tokens: Some(0),
            cache_read_input_tokens: Some(0),
            output_tokens: 0,
        }
    }
}

/// The source's counts as they are: its input tokens, its prompt-cache
/// writes and reads, its output tokens.
impl From<&Usage> for UsageCounts {
    fn from(usage: &Usage) -> Self {
        Self {
            input_tokens: Some(usage.input_tokens),
            cache_creation_input_tokens: Some(usage.cache_write_input_tokens),
            cache_read_input_tokens: Some(usage.cache_read_input_tokens),
            output_tokens: usage.output_tokens,
        }
    }
}

/// The `error` object of an `error` event.
#[derive(Serialize)]
struct ApiError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

/// Appends one SSE event: its name, its JSON on one `data:` line (JSON
/// escapes line breaks), a blank line.
fn sse(out: &mut String, event: &StreamEvent<'_>) {
    out.push_str("event: ");
    out.push_str(event.name());
    out.push_str("\ndata: ");
    out.push_str(&to_json(event));
    out.push_str("\n\n");
}

/// What a push or finish returns: its bytes as one `raw` event, or nothing.
fn raw(out: String) -> Vec<Event> {
    if out.is_empty() { Vec::new() } else { vec![Event::Raw(out.into_bytes())] }
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

streamhost_guest::export_transform!(AnthropicMessagesFormat);

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn open(settings: &str) -> AnthropicMessagesFormat {
        let context = StreamContext { plugin: "anthropic-messages-format".into(), user_id: None, session_id: None };
        AnthropicMessagesFormat::open(context, settings).unwrap_or_else(|failure| panic!("{}", failure.message))
    }

    fn streamed() -> AnthropicMessagesFormat {
        open(&format!(r#"{{"model":"support-desk","stream":true,"id":"{ID}"}}"#))
    }

    fn whole() -> AnthropicMessagesFormat {
        open(&format!(r#"{{"model":"support-desk","stream":false,"id":"{ID}"}}"#))
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

    fn usage(input: u32, output: u32) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            total_tokens: input + output,
            latency_ms: 60,
            cache_read_input_tokens: 3,
            cache_write_input_tokens: 0,
        }
    }

    const MESSAGE_START: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_0123456789abcdef0123456789abcdef\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"support-desk\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}}\n\n";
    const BLOCK_START: &str = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
    const BLOCK_STOP: &str = "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n";
    const MESSAGE_STOP: &str = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    fn delta(index: u32, text: &str) -> String {
        format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"text_delta\",\"text\":{}}}}}\n\n",
            serde_json::to_string(text).unwrap()
        )
    }

    fn message_delta(stop_reason: &str, usage: &str) -> String {
        format!(
            "event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"{stop_reason}\",\"stop_sequence\":null}},\"usage\":{usage}}}\n\n"
        )
    }

    #[test]
    fn streams_anthropics_events_as_soon_as_they_are_known() {
        let mut format = streamed();
        assert_eq!(format.content_type().as_deref(), Some("text/event-stream"));
        let first = format.push(vec![Event::Metadata(r#"{"model":"echo"}"#.into()), Event::Text("Hel".into())]);
        assert_eq!(text_of(first.unwrap()), format!("{MESSAGE_START}{BLOCK_START}{}", delta(0, "Hel")));
        assert_eq!(text_of(format.push(vec![Event::Text("lo\n\"you\"".into())]).unwrap()), delta(0, "lo\n\"you\""));
        let end = format.push(vec![Event::End("end_turn".into()), Event::Usage(usage(5, 9))]).unwrap();
        assert_eq!(text_of(end), BLOCK_STOP);
        let usage =
            r#"{"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":3,"output_tokens":9}"#;
        assert_eq!(text_of(format.finish().unwrap()), format!("{}{MESSAGE_STOP}", message_delta("end_turn", usage)));
    }

    #[test]
    fn one_raw_event_per_batch() {
        let mut format = streamed();
        let out = format.push(vec![Event::Text("a".into()), Event::Text("b".into())]).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(text_of(out), format!("{MESSAGE_START}{BLOCK_START}{}{}", delta(0, "a"), delta(0, "b")));
    }

    #[test]
    fn a_tick_is_a_ping_after_the_message_start() {
        let mut format = streamed();
        let ping = "event: ping\ndata: {\"type\": \"ping\"}\n\n";
        assert_eq!(text_of(format.push(Vec::new()).unwrap()), format!("{MESSAGE_START}{ping}"));
        assert_eq!(text_of(format.push(Vec::new()).unwrap()), ping);
    }

    #[test]
    fn a_stream_without_end_or_usage_ends_its_turn() {
        let mut format = streamed();
        format.push(vec![Event::Text("cut".into())]).unwrap();
        let out = text_of(format.finish().unwrap());
        assert_eq!(out, format!("{BLOCK_STOP}{}{MESSAGE_STOP}", message_delta("end_turn", r#"{"output_tokens":0}"#)));
    }

    #[test]
    fn an_empty_stream_is_an_empty_message() {
        let mut format = streamed();
        let out = text_of(format.finish().unwrap());
        assert_eq!(
            out,
            format!("{MESSAGE_START}{}{MESSAGE_STOP}", message_delta("end_turn", r#"{"output_tokens":0}"#))
        );
    }

    #[test]
    fn maps_stop_reasons() {
        for (reason, anthropic) in [
            ("end_turn", "end_turn"),
            ("max_tokens", "max_tokens"),
            ("stop_sequence", "stop_sequence"),
            ("tool_use", "tool_use"),
            ("refusal", "refusal"),
            ("guardrail_intervened", "refusal"),
            ("content_filtered", "refusal"),
            ("pause_turn", "pause_turn"),
            ("model_context_window_exceeded", "model_context_window_exceeded"),
            ("stop", "end_turn"),
            ("complete", "end_turn"),
        ] {
            let mut format = streamed();
            format.push(vec![Event::End(reason.into())]).unwrap();
            let out = text_of(format.finish().unwrap());
            assert!(out.contains(&format!("\"stop_reason\":\"{anthropic}\"")), "{reason}: {out}");
        }
    }

    #[test]
    fn text_after_the_end_goes_in_a_block_of_its_own() {
        let mut format = streamed();
        format.push(vec![Event::Text("one".into()), Event::End("end_turn".into())]).unwrap();
        let out = text_of(format.push(vec![Event::Text("two".into())]).unwrap());
        assert_eq!(
            out,
            format!(
                "event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n{}",
                delta(1, "two")
            )
        );
        assert!(
            text_of(format.finish().unwrap())
                .starts_with("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n")
        );
    }

    #[test]
    fn an_error_ends_the_stream_with_anthropics_error_event() {
        let mut format = streamed();
        format.push(vec![Event::Text("Half".into())]).unwrap();
        let out = format
            .push(vec![Event::Error(error("model_stream_error", "the model stopped")), Event::Text("never".into())])
            .unwrap();
        assert_eq!(
            text_of(out),
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"model_stream_error: the model stopped\"}}\n\n"
        );
        assert!(format.push(vec![Event::Text("after".into())]).unwrap().is_empty());
        assert!(format.push(Vec::new()).unwrap().is_empty());
        assert!(format.finish().unwrap().is_empty());
    }

    #[test]
    fn a_busy_model_is_an_overloaded_error() {
        for code in ["throttled", "overloaded"] {
            let mut format = streamed();
            let out = text_of(format.push(vec![Event::Error(error(code, "slow down"))]).unwrap());
            assert_eq!(
                out,
                format!(
                    "{MESSAGE_START}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"{code}: slow down\"}}}}\n\n"
                )
            );
        }
    }

    #[test]
    fn drops_what_is_not_the_answer() {
        let mut format = streamed();
        format.push(Vec::new()).unwrap();
        let out = format
            .push(vec![
                Event::Metadata("{}".into()),
                Event::Status("thinking".into()),
                Event::Frame(b"{}".to_vec()),
                Event::Raw(b"data: other\n\n".to_vec()),
                Event::Text(String::new()),
            ])
            .unwrap();
        assert!(out.is_empty());
    }

    fn tool_use(id: &str, name: &str, input: &str) -> Event {
        Event::Metadata(format!(r#"{{"toolUse":{{"toolUseId":"{id}","name":"{name}","input":{input}}}}}"#))
    }

    /// A streamed tool call: its block opened with an empty input, its input
    /// in one delta, its block closed.
    fn tool_block(index: u32, id: &str, name: &str, input: &str) -> String {
        format!(
            "event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":{index},\"content_block\":{{\"type\":\"tool_use\",\"id\":\"{id}\",\"name\":\"{name}\",\"input\":{{}}}}}}\n\n\
             event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":{}}}}}\n\n\
             event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":{index}}}\n\n",
            serde_json::to_string(input).unwrap()
        )
    }

    #[test]
    fn streams_a_tool_call_after_the_text_before_it() {
        let mut format = streamed();
        let text = format.push(vec![Event::Text("Let me look.".into())]).unwrap();
        assert_eq!(text_of(text), format!("{MESSAGE_START}{BLOCK_START}{}", delta(0, "Let me look.")));
        let call = format.push(vec![tool_use("tooluse_1", "lookup", r#"{"q":"ada","limit":2}"#)]).unwrap();
        assert_eq!(
            text_of(call),
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
             event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"tooluse_1\",\"name\":\"lookup\",\"input\":{}}}\n\n\
             event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"q\\\":\\\"ada\\\",\\\"limit\\\":2}\"}}\n\n\
             event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
        );
        assert!(format.push(vec![Event::End("tool_use".into()), Event::Usage(usage(5, 9))]).unwrap().is_empty());
        let usage =
            r#"{"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":3,"output_tokens":9}"#;
        assert_eq!(text_of(format.finish().unwrap()), format!("{}{MESSAGE_STOP}", message_delta("tool_use", usage)));
    }

    #[test]
    fn streams_several_tool_calls_each_a_block_and_text_after_them_in_a_new_one() {
        let mut format = streamed();
        let out = format
            .push(vec![
                tool_use("t1", "lookup", r#"{"q":"ada"}"#),
                tool_use("t2", "clock", "{}"),
                Event::Text("Then".into()),
            ])
            .unwrap();
        let text_block = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
        assert_eq!(
            text_of(out),
            format!(
                "{MESSAGE_START}{}{}{text_block}{}",
                tool_block(0, "t1", "lookup", r#"{"q":"ada"}"#),
                tool_block(1, "t2", "clock", "{}"),
                delta(2, "Then")
            )
        );
    }

    #[test]
    fn a_tool_calls_input_is_written_as_the_source_wrote_it() {
        let mut format = streamed();
        let input = r#"{"z":1.50,"a":[true,null],"note":"é \"q\"\n"}"#;
        let out = text_of(format.push(vec![tool_use("t", "note", input)]).unwrap());
        assert_eq!(out, format!("{MESSAGE_START}{}", tool_block(0, "t", "note", input)));
    }

    #[test]
    fn metadata_that_is_not_a_whole_tool_call_is_not_written() {
        let mut format = streamed();
        format.push(Vec::new()).unwrap();
        for metadata in [
            r#"{"model":"echo"}"#,
            r#"{"toolUse":{"index":0,"input":"{\"a\""}}"#,
            r#"{"toolUse":{"toolUseId":"t","name":"lookup"}}"#,
            r#"{"reasoning":{"index":0,"text":"Let me "}}"#,
            "not json",
        ] {
            assert!(format.push(vec![Event::Metadata(metadata.into())]).unwrap().is_empty(), "{metadata}");
        }
        let mut format = whole();
        format.push(vec![Event::Metadata(r#"{"toolUse":{"toolUseId":"t"}}"#.into())]).unwrap();
        assert!(text_of(format.finish().unwrap()).contains(r#""content":[],"#));
    }

    #[test]
    fn a_whole_message_has_its_tool_calls_in_order_with_its_text() {
        let mut format = whole();
        let events = vec![
            Event::Text("Let me ".into()),
            Event::Text("look.".into()),
            tool_use("t1", "lookup", r#"{"q":"ada","limit":2}"#),
            tool_use("t2", "clock", "{}"),
        ];
        assert!(format.push(events).unwrap().is_empty());
        assert!(format.push(vec![Event::End("tool_use".into()), Event::Usage(usage(5, 9))]).unwrap().is_empty());
        assert_eq!(
            text_of(format.finish().unwrap()),
            r#"{"id":"msg_0123456789abcdef0123456789abcdef","type":"message","role":"assistant","model":"support-desk","content":[{"type":"text","text":"Let me look."},{"type":"tool_use","id":"t1","name":"lookup","input":{"q":"ada","limit":2}},{"type":"tool_use","id":"t2","name":"clock","input":{}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":3,"output_tokens":9}}"#
        );
    }

    #[test]
    fn a_whole_messages_text_after_a_tool_call_is_a_block_of_its_own() {
        let mut format = whole();
        let events = vec![
            tool_use("t1", "clock", "{}"),
            Event::Text(String::new()),
            Event::Text("It is ".into()),
            Event::Text("noon.".into()),
        ];
        format.push(events).unwrap();
        let out = text_of(format.finish().unwrap());
        assert!(
            out.contains(r#""content":[{"type":"tool_use","id":"t1","name":"clock","input":{}},{"type":"text","text":"It is noon."}],"#),
            "{out}"
        );
    }

    #[test]
    fn writes_a_whole_message_when_not_streaming() {
        let mut format = whole();
        assert_eq!(format.content_type().as_deref(), Some("application/json"));
        assert!(format.push(vec![Event::Text("Hel".into())]).unwrap().is_empty());
        assert!(format.push(Vec::new()).unwrap().is_empty());
        assert!(format.push(vec![Event::Text("lo".into()), Event::End("max_tokens".into())]).unwrap().is_empty());
        assert!(format.push(vec![Event::Usage(usage(5, 2))]).unwrap().is_empty());
        assert_eq!(
            text_of(format.finish().unwrap()),
            r#"{"id":"msg_0123456789abcdef0123456789abcdef","type":"message","role":"assistant","model":"support-desk","content":[{"type":"text","text":"Hello"}],"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":3,"output_tokens":2}}"#
        );
    }

    #[test]
    fn a_whole_message_without_text_or_usage_has_no_content_and_zero_counts() {
        let mut format = whole();
        assert_eq!(
            text_of(format.finish().unwrap()),
            r#"{"id":"msg_0123456789abcdef0123456789abcdef","type":"message","role":"assistant","model":"support-desk","content":[],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}"#
        );
    }

    #[test]
    fn a_whole_message_fails_with_the_streams_error() {
        let mut format = whole();
        format.push(vec![Event::Text("Half".into())]).unwrap();
        let failure = format.push(vec![Event::Error(error("throttled", "slow down"))]).unwrap_err();
        assert_eq!((failure.code.as_str(), failure.message.as_str()), ("throttled", "slow down"));
    }

    #[test]
    fn settings_have_defaults_and_unknown_ones_are_refused() {
        let mut format = open("{}");
        assert_eq!(format.content_type().as_deref(), Some("text/event-stream"));
        let start = text_of(format.push(Vec::new()).unwrap());
        assert!(start.contains(r#""id":"msg_streamhost","type":"message","role":"assistant","model":"streamhost""#));
        let context = StreamContext { plugin: "anthropic-messages-format".into(), user_id: None, session_id: None };
        for settings in [r#"{"includeUsage":true}"#, r#"{"stream":"yes"}"#, "[]"] {
            let failure = AnthropicMessagesFormat::open(context.clone(), settings).err().expect(settings);
            assert_eq!(failure.code, "invalid_config", "{settings}");
        }
    }
}
