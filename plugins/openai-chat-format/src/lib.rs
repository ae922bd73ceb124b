//! `openai-chat-format`: writes a stream as OpenAI's Chat Completions
//! answer, the formatter of `POST /v1/chat/completions`
//! (docs/standard-apis.md). Its settings come from `openai-chat-request`:
//! `{"model": "<model as sent>", "stream": true, "includeUsage": true}`,
//! with the host's `"id"`.
//!
//! With `stream` true, server-sent `data:` lines as OpenAI sends them, the
//! role first, each piece of text as it comes, the finish reason at `end`,
//! the usage (with `includeUsage`) and `[DONE]` when the stream finishes:
//!
//! ```text
//! data: {"id":"chatcmpl-<id>","object":"chat.completion.chunk","created":1767225600,"model":"support","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}
//!
//! data: {"id":"chatcmpl-<id>",…,"choices":[{"index":0,"delta":{"content":"Hel"},"logprobs":null,"finish_reason":null}],"usage":null}
//!
//! data: {"id":"chatcmpl-<id>",…,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}
//!
//! data: {"id":"chatcmpl-<id>",…,"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":0}}}
//!
//! data: [DONE]
//! ```
//!
//! A tool call the model makes (a `{"toolUse": {"toolUseId", "name",
//! "input"}}` metadata event, docs/standard-apis.md) is a chunk of its own,
//! in order with the text, its arguments whole, numbered from 0 in the answer:
//!
//! ```text
//! data: {"id":"chatcmpl-<id>",…,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"tooluse_1","type":"function","function":{"name":"lookup","arguments":"{\"city\":\"Paris\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}
//! ```
//!
//! A failed stream ends with `data: {"error":{"message":…,"type":…,"param":null,"code":…}}`
//! (which OpenAI's SDKs raise as an `APIError`) and nothing after it. A tick
//! is an SSE comment, `: keep-alive`.
//!
//! With `stream` false, one `chat.completion` object, written when the
//! stream finishes: the whole text, the tool calls (`message.tool_calls`,
//! with `content` null when there was no text), the finish reason and the
//! usage (zeros when the source sent none). A failed stream fails the
//! formatter with the error's code and message, which the host answers in
//! OpenAI's error shape.
//!
//! Stop reasons: `max_tokens` is `length`, `tool_use` `tool_calls`,
//! `content_filtered` and `guardrail_intervened` `content_filter`, any other
//! (`end_turn`, `stop_sequence`, none at all) `stop`. Usage events are added
//! up: OpenAI's usage is the whole request's, and a routed pipeline may call
//! more than one model. Other metadata, status, frames and raw bytes are
//! not written.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use streamhost_guest::json::{ToolUseJson, ToolUseMetadataJson};
use streamhost_guest::{ErrorInfo, Event, StreamContext, Transform, Usage, error};

/// The settings, from the request filter.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Settings {
    /// The host's request id, from which the completion's id is made.
    #[serde(default)]
    id: Option<String>,
    /// The model the caller asked for, named back in every object.
    model: String,
    #[serde(default)]
    stream: bool,
    /// `stream_options.include_usage`: a usage chunk before `[DONE]`.
    #[serde(default)]
    include_usage: bool,
}

/// A completion's id without a request id: fixed, so golden outputs compare.
const FALLBACK_ID: &str = "chatcmpl-streamhost";

pub struct OpenAiChatFormat {
    /// What every object starts with.
    head: Head,
    mode: Mode,
    /// The finish reason, from the first `end`.
    finish_reason: Option<&'static str>,
    /// Every usage event so far, added up.
    usage: Option<Usage>,
    /// The stream failed: its error is written, and nothing comes after it.
    failed: bool,
}

enum Mode {
    Stream {
        include_usage: bool,
        /// The opening chunk (the assistant's role) is written.
        opened: bool,
        /// How many tool calls are written: the next one's index.
        tool_calls: u32,
    },
    /// The whole answer, written as one object when the stream finishes.
    Whole { content: String, tool_calls: Vec<ToolCall> },
}

impl Transform for OpenAiChatFormat {
    fn open(_context: StreamContext, settings: &str) -> Result<Self, ErrorInfo> {
        let settings: Settings = serde_json::from_str(settings)
            .map_err(|problem| error("invalid_config", format!("openai-chat-format settings: {problem}")))?;
        let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
        Ok(Self::new(settings, created))
    }

    fn content_type(&self) -> Option<String> {
        Some(match self.mode {
            Mode::Stream { .. } => "text/event-stream".into(),
            Mode::Whole { .. } => "application/json".into(),
        })
    }

    fn push(&mut self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
        let mut out = String::new();
        if events.is_empty() && matches!(self.mode, Mode::Stream { .. }) && !self.failed {
            out.push_str(": keep-alive\n\n");
        }
        for event in events {
            if self.failed {
                break;
            }
            match event {
                Event::Text(text) => self.text(&text, &mut out),
                Event::End(stop_reason) => self.end(&stop_reason, &mut out),
                Event::Usage(usage) => self.add_usage(&usage),
                Event::Error(failure) => self.fail(failure, &mut out)?,
                Event::Metadata(metadata) => self.tool_call(&metadata, &mut out),
                Event::Status(_) | Event::Frame(_) | Event::Raw(_) => {}
            }
        }
        Ok(raw(out))
    }

    fn finish(&mut self) -> Result<Vec<Event>, ErrorInfo> {
        if self.failed {
            return Ok(Vec::new());
        }
        let mut out = String::new();
        match &self.mode {
            Mode::Stream { include_usage, .. } => {
                let include_usage = *include_usage;
                // A stream that ended without `end` (nor an error) is closed
                // all the same.
                self.end("end_turn", &mut out);
                if include_usage {
                    let usage = CompletionUsage::from(self.usage.as_ref());
                    out.push_str(&data(&self.head.chunk(Vec::new(), Some(Some(usage)))));
                }
                out.push_str("data: [DONE]\n\n");
            }
            Mode::Whole { content, tool_calls } => out.push_str(&to_json(&self.completion(content, tool_calls))),
        }
        Ok(raw(out))
    }
}

impl OpenAiChatFormat {
    fn new(settings: Settings, created: u64) -> Self {
        let id = settings.id.map_or_else(|| FALLBACK_ID.to_string(), |id| format!("chatcmpl-{id}"));
        let mode = match settings.stream {
            true => Mode::Stream { include_usage: settings.include_usage, opened: false, tool_calls: 0 },
            false => Mode::Whole { content: String::new(), tool_calls: Vec::new() },
        };
        Self {
            head: Head { id, created, model: settings.model },
            mode,
            finish_reason: None,
            usage: None,
            failed: false,
        }
    }

    fn text(&mut self, text: &str, out: &mut String) {
        if text.is_empty() {
            return;
        }
        match &mut self.mode {
            Mode::Stream { .. } => self.write_choice(Delta::Content { content: text }, None, out),
            Mode::Whole { content, .. } => content.push_str(text),
        }
    }

    /// A tool call the model made, from its `toolUse` metadata event; any
    /// other metadata is not written. In a stream, a chunk of its own, its
    /// arguments whole (the input arrives whole).
    fn tool_call(&mut self, metadata: &str, out: &mut String) {
        let Ok(ToolUseMetadata { tool_use }) = serde_json::from_str(metadata) else { return };
        let call = ToolCall::from(tool_use);
        match &mut self.mode {
            Mode::Stream { tool_calls, .. } => {
                let index = *tool_calls;
                *tool_calls += 1;
                let delta = Delta::ToolCalls { tool_calls: [ToolCallDelta { index, call: &call }] };
                self.write_choice(delta, None, out);
            }
            Mode::Whole { tool_calls, .. } => tool_calls.push(call),
        }
    }

    /// The finish reason, from the first `end`; in a stream, the closing
    /// chunk of the choice.
    fn end(&mut self, stop_reason: &str, out: &mut String) {
        if self.finish_reason.is_some() {
            return;
        }
        let reason = finish_reason(stop_reason);
        self.finish_reason = Some(reason);
        if let Mode::Stream { .. } = self.mode {
            self.write_choice(Delta::Closing {}, Some(reason), out);
        }
    }

    fn add_usage(&mut self, usage: &Usage) {
        let total = self.usage.get_or_insert(Usage {
            input_tokens: 0,
            output_tokens: 0,
            total_tokens: 0,
            latency_ms: 0,
            cache_read_input_tokens: 0,
            cache_write_input_tokens: 0,
        });
        total.input_tokens = total.input_tokens.saturating_add(usage.input_tokens);
        total.output_tokens = total.output_tokens.saturating_add(usage.output_tokens);
        total.total_tokens = total.total_tokens.saturating_add(usage.total_tokens);
        total.cache_read_input_tokens = total.cache_read_input_tokens.saturating_add(usage.cache_read_input_tokens);
        total.cache_write_input_tokens = total.cache_write_input_tokens.saturating_add(usage.cache_write_input_tokens);
    }

    /// In a stream, the error as OpenAI writes one in its stream; otherwise
    /// the formatter fails with it, and the host answers it.
    fn fail(&mut self, failure: ErrorInfo, out: &mut String) -> Result<(), ErrorInfo> {
        self.failed = true;
        match self.mode {
            Mode::Stream { .. } => {
                let error = ApiError {
                    message: &failure.message,
                    kind: error_type(&failure.code),
                    param: None,
                    code: &failure.code,
                };
                out.push_str(&data(&ErrorChunk { error }));
                Ok(())
            }
            Mode::Whole { .. } => Err(failure),
        }
    }

    /// One chunk of the choice, after the opening one if it is not written yet.
    fn write_choice(&mut self, delta: Delta<'_>, finish_reason: Option<&'static str>, out: &mut String) {
        let Mode::Stream { include_usage, opened, .. } = &mut self.mode else { return };
        // With `include_usage`, every chunk but the last has `"usage":null`.
        let null_usage = || include_usage.then_some(None);
        if !*opened {
            *opened = true;
            let opening = Delta::Opening { role: "assistant", content: "", refusal: None };
            out.push_str(&data(&self.head.chunk(vec![ChunkChoice::new(opening, None)], null_usage())));
        }
        out.push_str(&data(&self.head.chunk(vec![ChunkChoice::new(delta, finish_reason)], null_usage())));
    }

    fn completion<'a>(&'a self, content: &'a str, tool_calls: &'a [ToolCall]) -> Completion<'a> {
        // OpenAI's content is null beside tool calls when the model said nothing.
        let content = (!content.is_empty() || tool_calls.is_empty()).then_some(content);
        Completion {
            id: &self.head.id,
            object: "chat.completion",
            created: self.head.created,
            model: &self.head.model,
            choices: [Choice {
                index: 0,
                message: AssistantMessage { role: "assistant", content, tool_calls, refusal: None, annotations: &[] },
                logprobs: (),
                finish_reason: self.finish_reason.unwrap_or("stop"),
            }],
            usage: CompletionUsage::from(self.usage.as_ref()),
        }
    }
}

/// OpenAI's finish reason for a stop reason.
fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "content_filtered" | "guardrail_intervened" => "content_filter",
        _ => "stop",
    }
}

/// OpenAI's error `type` for a streamhost error code: the request was
/// refused by the source, or the server failed.
fn error_type(code: &str) -> &'static str {
    match code {
        "validation_error" | "upstream_rejected" => "invalid_request_error",
        _ => "server_error",
    }
}

/// What every object of a completion shares.
struct Head {
    id: String,
    created: u64,
    model: String,
}

impl Head {
    /// A chunk; `usage` none leaves the field out, `Some(None)` writes null.
    fn chunk<'a>(&'a self, choices: Vec<ChunkChoice<'a>>, usage: Option<Option<CompletionUsage>>) -> Chunk<'a> {
        Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        }
    }
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<ChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<CompletionUsage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    /// Always null: log probabilities are refused by the request filter.
    logprobs: (),
    finish_reason: Option<&'static str>,
}

impl<'a> ChunkChoice<'a> {
    fn new(delta: Delta<'a>, finish_reason: Option<&'static str>) -> Self {
        Self { index: 0, delta, logprobs: (), finish_reason }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum Delta<'a> {
    /// The first chunk: who speaks, no text yet.
    Opening {
        role: &'static str,
        content: &'static str,
        refusal: Option<&'static str>,
    },
    Content {
        content: &'a str,
    },
    /// One tool call, whole: the input arrives whole, so its arguments
    /// are not split over several deltas.
    ToolCalls {
        tool_calls: [ToolCallDelta<'a>; 1],
    },
    /// The last chunk of the choice, which carries only its finish reason.
    Closing {},
}

/// The whole answer (`stream` false).
#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: CompletionUsage,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: (),
    finish_reason: &'static str,
}

/// A tool call in a chunk: numbered, from 0 in the answer.
#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: u32,
    #[serde(flatten)]
    call: &'a ToolCall,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    /// The text; null when there was none but tool calls.
    content: Option<&'a str>,
    /// Left out when the model called no tool, as OpenAI does.
    #[serde(skip_serializing_if = "<[ToolCall]>::is_empty")]
    tool_calls: &'a [ToolCall],
    /// Null: a refusal from the model is its text.
    refusal: Option<&'static str>,
    /// None: streamhost cites no sources.
    annotations: &'static [&'static str],
}

#[derive(Serialize)]
struct CompletionUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
    prompt_tokens_details: PromptTokensDetails,
}

#[derive(Serialize)]
struct PromptTokensDetails {
    cached_tokens: u32,
    #[serde(skip_serializing_if = "is_zero")]
    cache_write_tokens: u32,
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}

impl From<Option<&Usage>> for CompletionUsage {
    /// The counts, zeros when the source sent none.
    fn from(usage: Option<&Usage>) -> Self {
        let count = |field: fn(&Usage) -> u32| usage.map_or(0, field);
        Self {
            prompt_tokens: count(|usage| usage.input_tokens),
            completion_tokens: count(|usage| usage.output_tokens),
            total_tokens: count(|usage| usage.total_tokens),
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: count(|usage| usage.cache_read_input_tokens),
                cache_write_tokens: count(|usage| usage.cache_write_input_tokens),
            },
        }
    }
}

/// A tool call as a model source sends it downstream (the guest SDK's
/// shape), its input kept as Value.
type ToolUse = ToolUseJson<serde_json::Value>;
type ToolUseMetadata = ToolUseMetadataJson<serde_json::Value>;

/// A tool call as OpenAI writes one: `{"id","type":"function","function":{"name","arguments"}}`.
#[derive(Serialize)]
struct ToolCall {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall,
}

#[derive(Serialize)]
struct FunctionCall {
    name: String,
    /// The input as JSON text, as OpenAI's models write it.
    arguments: String,
}

impl From<ToolUse> for ToolCall {
    fn from(tool_use: ToolUse) -> Self {
        Self {
            id: tool_use.tool_use_id,
            kind: "function",
            function: FunctionCall { name: tool_use.name, arguments: tool_use.input.to_string() },
        }
    }
}

/// An error in a stream: `{"error":{"message","type","param","code"}}`.
#[derive(Serialize)]
struct ErrorChunk<'a> {
    error: ApiError<'a>,
}

#[derive(Serialize)]
struct ApiError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<&'static str>,
    code: &'a str,
}

/// One SSE event with a JSON payload (serde_json escapes line breaks, so one
/// `data:` line holds it).
fn data(payload: &impl Serialize) -> String {
    format!("data: {}\n\n", to_json(payload))
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

/// The bytes written for a batch, as one raw event; nothing when empty.
fn raw(out: String) -> Vec<Event> {
    if out.is_empty() { Vec::new() } else { vec![Event::Raw(out.into_bytes())] }
}

streamhost_guest::export_transform!(OpenAiChatFormat);

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T00:00:00Z, the golden tests' clock.
    const CREATED: u64 = 1_767_225_600;

    fn format(settings: &str) -> OpenAiChatFormat {
        OpenAiChatFormat::new(serde_json::from_str(settings).unwrap(), CREATED)
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

    fn usage(input: u32, output: u32, cache_read: u32, cache_write: u32) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            total_tokens: input + output,
            latency_ms: 60,
            cache_read_input_tokens: cache_read,
            cache_write_input_tokens: cache_write,
        }
    }

    const HEAD: &str =
        r#"data: {"id":"chatcmpl-0123","object":"chat.completion.chunk","created":1767225600,"model":"support","#;

    #[test]
    fn streams_chunks_as_openai_does() {
        let mut chat = format(r#"{"id":"0123","model":"support","stream":true,"includeUsage":true}"#);
        let mut out = chat.push(vec![Event::Metadata(r#"{"model":"echo"}"#.into())]).unwrap();
        assert!(out.is_empty(), "nothing is written before there is something to say");
        out.extend(chat.push(vec![Event::Text("Hel".into()), Event::Status("thinking".into())]).unwrap());
        out.extend(chat.push(vec![Event::Text("lo \"you\"\n".into()), Event::Text(String::new())]).unwrap());
        out.extend(chat.push(vec![Event::End("end_turn".into()), Event::Usage(usage(5, 9, 2, 0))]).unwrap());
        out.extend(chat.finish().unwrap());
        let expected = [
            r#""choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#""choices":[{"index":0,"delta":{"content":"Hel"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#""choices":[{"index":0,"delta":{"content":"lo \"you\"\n"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#""choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
            r#""choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":2}}}"#,
        ]
        .map(|rest| format!("{HEAD}{rest}\n\n"))
        .concat();
        assert_eq!(text_of(out), expected + "data: [DONE]\n\n");
        assert_eq!(chat.content_type().as_deref(), Some("text/event-stream"));
    }

    #[test]
    fn without_include_usage_chunks_have_no_usage_and_ticks_are_comments() {
        let mut chat = format(r#"{"model":"m","stream":true}"#);
        assert_eq!(text_of(chat.push(Vec::new()).unwrap()), ": keep-alive\n\n");
        let mut out = chat.push(vec![Event::Text("Hi".into()), Event::End("max_tokens".into())]).unwrap();
        out.extend(chat.push(vec![Event::Usage(usage(1, 1, 0, 0))]).unwrap());
        out.extend(chat.finish().unwrap());
        let head =
            r#"data: {"id":"chatcmpl-streamhost","object":"chat.completion.chunk","created":1767225600,"model":"m","#;
        let expected = [
            r#""choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}"#,
            r#""choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}]}"#,
            r#""choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}]}"#,
        ]
        .map(|rest| format!("{head}{rest}\n\n"))
        .concat();
        assert_eq!(text_of(out), expected + "data: [DONE]\n\n");
    }

    #[test]
    fn a_stream_without_end_is_closed_with_stop() {
        let mut chat = format(r#"{"id":"0123","model":"support","stream":true,"includeUsage":true}"#);
        let expected = [
            r#""choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#""choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
            r#""choices":[],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,"prompt_tokens_details":{"cached_tokens":0}}}"#,
        ]
        .map(|rest| format!("{HEAD}{rest}\n\n"))
        .concat();
        assert_eq!(text_of(chat.finish().unwrap()), expected + "data: [DONE]\n\n");
    }

    #[test]
    fn an_error_in_a_stream_is_the_last_thing_written() {
        let mut chat = format(r#"{"id":"0123","model":"support","stream":true}"#);
        let mut out = chat.push(vec![Event::Text("Half".into())]).unwrap();
        out.extend(
            chat.push(vec![
                Event::Error(error("model_stream_error", "the model stopped")),
                Event::Text("more".into()),
                Event::End("end_turn".into()),
            ])
            .unwrap(),
        );
        let head =
            r#"data: {"id":"chatcmpl-0123","object":"chat.completion.chunk","created":1767225600,"model":"support","#;
        let expected = [
            r#""choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}"#,
            r#""choices":[{"index":0,"delta":{"content":"Half"},"logprobs":null,"finish_reason":null}]}"#,
        ]
        .map(|rest| format!("{head}{rest}\n\n"))
        .concat();
        assert_eq!(
            text_of(out),
            expected
                + r#"data: {"error":{"message":"the model stopped","type":"server_error","param":null,"code":"model_stream_error"}}"#
                + "\n\n"
        );
        assert!(chat.push(Vec::new()).unwrap().is_empty(), "no keep-alive after the error");
        assert!(chat.finish().unwrap().is_empty());

        // Before any text, the error alone.
        let mut chat = format(r#"{"model":"m","stream":true}"#);
        assert_eq!(
            text_of(chat.push(vec![Event::Error(error("validation_error", "too long"))]).unwrap()),
            "data: {\"error\":{\"message\":\"too long\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"validation_error\"}}\n\n"
        );
    }

    #[test]
    fn a_whole_answer_is_one_object_at_the_end() {
        let mut chat = format(r#"{"id":"0123","model":"support","stream":false}"#);
        assert!(chat.push(Vec::new()).unwrap().is_empty(), "a tick writes nothing");
        assert!(chat.push(vec![Event::Text("Hello, ".into()), Event::Text("world.".into())]).unwrap().is_empty());
        let out = chat
            .push(vec![
                Event::Usage(usage(3, 4, 0, 0)),
                Event::End("stop_sequence".into()),
                Event::Usage(usage(10, 20, 5, 6)),
            ])
            .unwrap();
        assert!(out.is_empty());
        assert_eq!(
            text_of(chat.finish().unwrap()),
            concat!(
                r#"{"id":"chatcmpl-0123","object":"chat.completion","created":1767225600,"model":"support","#,
                r#""choices":[{"index":0,"message":{"role":"assistant","content":"Hello, world.","refusal":null,"annotations":[]},"#,
                r#""logprobs":null,"finish_reason":"stop"}],"#,
                r#""usage":{"prompt_tokens":13,"completion_tokens":24,"total_tokens":37,"#,
                r#""prompt_tokens_details":{"cached_tokens":5,"cache_write_tokens":6}}}"#,
            )
        );
        assert_eq!(chat.content_type().as_deref(), Some("application/json"));
    }

    #[test]
    fn a_whole_answer_without_end_or_usage_has_stop_and_zeros() {
        let mut chat = format(r#"{"model":"m"}"#);
        assert_eq!(
            text_of(chat.finish().unwrap()),
            concat!(
                r#"{"id":"chatcmpl-streamhost","object":"chat.completion","created":1767225600,"model":"m","#,
                r#""choices":[{"index":0,"message":{"role":"assistant","content":"","refusal":null,"annotations":[]},"#,
                r#""logprobs":null,"finish_reason":"stop"}],"#,
                r#""usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,"prompt_tokens_details":{"cached_tokens":0}}}"#,
            )
        );
    }

    #[test]
    fn a_failed_whole_answer_fails_the_formatter_with_the_error() {
        let mut chat = format(r#"{"model":"m","stream":false}"#);
        chat.push(vec![Event::Text("Half".into())]).unwrap();
        let failure = chat.push(vec![Event::Error(error("throttled", "slow down"))]).unwrap_err();
        assert_eq!((failure.code.as_str(), failure.message.as_str()), ("throttled", "slow down"));
    }

    fn tool_use(id: &str, name: &str, input: &str) -> Event {
        Event::Metadata(format!(r#"{{"toolUse":{{"toolUseId":"{id}","name":"{name}","input":{input}}}}}"#))
    }

    #[test]
    fn tool_calls_are_streamed_in_order_with_the_text() {
        let mut chat = format(r#"{"id":"0123","model":"support","stream":true,"includeUsage":true}"#);
        let mut out = chat.push(vec![Event::Text("Let me look.".into())]).unwrap();
        out.extend(
            chat.push(vec![
                tool_use("tooluse_1", "lookup", r#"{"city":"Paris","days":[1,2],"a":{"z":1,"b":null}}"#),
                tool_use("tooluse_2", "clock", "{}"),
            ])
            .unwrap(),
        );
        out.extend(chat.push(vec![Event::End("tool_use".into()), Event::Usage(usage(5, 9, 0, 0))]).unwrap());
        out.extend(chat.finish().unwrap());
        let expected = [
            r#""choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#""choices":[{"index":0,"delta":{"content":"Let me look."},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#""choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"tooluse_1","type":"function","function":{"name":"lookup","arguments":"{\"city\":\"Paris\",\"days\":[1,2],\"a\":{\"z\":1,\"b\":null}}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#""choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"tooluse_2","type":"function","function":{"name":"clock","arguments":"{}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#""choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}"#,
            r#""choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":0}}}"#,
        ]
        .map(|rest| format!("{HEAD}{rest}\n\n"))
        .concat();
        assert_eq!(text_of(out), expected + "data: [DONE]\n\n");
    }

    #[test]
    fn a_tool_call_first_opens_the_stream_and_other_metadata_is_not_written() {
        let mut chat = format(r#"{"model":"m","stream":true}"#);
        let not_tool_calls = [
            r#"{"provider":"echo","model":"echo"}"#,
            r#"{"reasoning":{"index":0,"text":"Let me "}}"#,
            r#"{"toolUse":{"index":0,"input":"{\"a\""}}"#,
            r#"{"toolUse":{"toolUseId":"t","name":"f"}}"#,
            "not json",
        ];
        for metadata in not_tool_calls {
            assert!(chat.push(vec![Event::Metadata(metadata.into())]).unwrap().is_empty(), "{metadata}");
        }
        let head =
            r#"data: {"id":"chatcmpl-streamhost","object":"chat.completion.chunk","created":1767225600,"model":"m","#;
        let expected = [
            r#""choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}"#,
            r#""choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t\"1","type":"function","function":{"name":"f","arguments":"{\"q\":\"a \\\"b\\\"\\n\"}"}}]},"logprobs":null,"finish_reason":null}]}"#,
        ]
        .map(|rest| format!("{head}{rest}\n\n"))
        .concat();
        let call = Event::Metadata(
            r#"{"toolUse":{"toolUseId":"t\"1","name":"f","input":{"q":"a \"b\"\n"}},"extra":1}"#.into(),
        );
        assert_eq!(text_of(chat.push(vec![call]).unwrap()), expected);
    }

    #[test]
    fn a_whole_answer_has_its_tool_calls_in_the_message() {
        let mut chat = format(r#"{"id":"0123","model":"support","stream":false}"#);
        let out = chat
            .push(vec![
                Event::Text("Let me look.".into()),
                tool_use("tooluse_1", "lookup", r#"{"city":"Paris"}"#),
                tool_use("tooluse_2", "clock", "{}"),
                Event::End("tool_use".into()),
                Event::Usage(usage(3, 4, 0, 0)),
            ])
            .unwrap();
        assert!(out.is_empty());
        assert_eq!(
            text_of(chat.finish().unwrap()),
            concat!(
                r#"{"id":"chatcmpl-0123","object":"chat.completion","created":1767225600,"model":"support","#,
                r#""choices":[{"index":0,"message":{"role":"assistant","content":"Let me look.","tool_calls":["#,
                r#"{"id":"tooluse_1","type":"function","function":{"name":"lookup","arguments":"{\"city\":\"Paris\"}"}},"#,
                r#"{"id":"tooluse_2","type":"function","function":{"name":"clock","arguments":"{}"}}"#,
                r#"],"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"tool_calls"}],"#,
                r#""usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":0}}}"#,
            )
        );

        // Tool calls without text: content is null.
        let mut chat = format(r#"{"model":"m"}"#);
        chat.push(vec![tool_use("t", "f", r#"{"a":1}"#), Event::End("tool_use".into())]).unwrap();
        assert_eq!(
            text_of(chat.finish().unwrap()),
            concat!(
                r#"{"id":"chatcmpl-streamhost","object":"chat.completion","created":1767225600,"model":"m","#,
                r#""choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":["#,
                r#"{"id":"t","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}"#,
                r#"],"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"tool_calls"}],"#,
                r#""usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,"prompt_tokens_details":{"cached_tokens":0}}}"#,
            )
        );
    }

    #[test]
    fn stop_reasons_are_finish_reasons() {
        for (stop_reason, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("content_filtered", "content_filter"),
            ("guardrail_intervened", "content_filter"),
            ("something_new", "stop"),
        ] {
            assert_eq!(finish_reason(stop_reason), finish, "{stop_reason}");
        }
        // The first `end` decides.
        let mut chat = format(r#"{"model":"m"}"#);
        chat.push(vec![Event::End("max_tokens".into()), Event::End("end_turn".into())]).unwrap();
        assert!(text_of(chat.finish().unwrap()).contains(r#""finish_reason":"length""#));
    }

    #[test]
    fn settings_are_checked() {
        let context = || StreamContext { plugin: "openai-chat-format".into(), user_id: None, session_id: None };
        assert!(
            OpenAiChatFormat::open(context(), r#"{"model":"m","stream":true,"includeUsage":false,"id":"x"}"#).is_ok()
        );
        for settings in ["{}", r#"{"model":"m","stream":"yes"}"#, r#"{"model":"m","include_usage":true}"#] {
            let Err(failure) = OpenAiChatFormat::open(context(), settings) else { panic!("{settings} was accepted") };
            assert_eq!(failure.code, "invalid_config", "{settings}");
        }
    }
}
