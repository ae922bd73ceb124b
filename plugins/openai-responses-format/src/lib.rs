//! `openai-responses-format`: writes a stream as OpenAI's Responses API
//! answers it (`POST /v1/responses`), so that the OpenAI SDKs'
//! `client.responses.create(...)` and `client.responses.stream(...)` read it.
//!
//! With `"stream": true`, Server-Sent Events, each named by its `type` and
//! numbered from 0 (`sequence_number`):
//!
//! ```text
//! event: response.created
//! data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_…","object":"response","status":"in_progress","output":[],…}}
//!
//! event: response.in_progress
//! data: {"type":"response.in_progress","sequence_number":1,"response":{…}}
//!
//! event: response.output_item.added
//! data: {"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"msg_…","type":"message","status":"in_progress","role":"assistant","content":[]}}
//!
//! event: response.content_part.added
//! data: {"type":"response.content_part.added","sequence_number":3,"item_id":"msg_…","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}}
//!
//! event: response.output_text.delta
//! data: {"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_…","output_index":0,"content_index":0,"delta":"Hel","logprobs":[]}
//! ```
//!
//! The message is closed (`response.output_text.done`,
//! `response.content_part.done`, `response.output_item.done`) when the stop
//! reason comes, and the response when the stream finishes (a model sends its
//! usage after its stop reason): `response.completed`, whose response has the
//! whole output and the usage; `response.incomplete` instead when the model
//! stopped at its token limit (`incomplete_details:
//! {"reason":"max_output_tokens"}`) or a content filter stopped it
//! (`"content_filter"`). A tick (an empty batch) is the SSE comment
//! `: keep-alive`.
//!
//! A tool call the model makes (a `metadata` event `{"toolUse": {"toolUseId",
//! "name", "input"}}`) closes the message, if text came before it, and is a
//! `function_call` output item of its own at the next output index, its
//! input whole in one arguments delta:
//!
//! ```text
//! event: response.output_item.added
//! data: {"type":"response.output_item.added","sequence_number":7,"output_index":1,"item":{"id":"fc_…_1","type":"function_call","status":"in_progress","call_id":"tooluse_1","name":"get_weather","arguments":""}}
//!
//! event: response.function_call_arguments.delta
//! data: {"type":"response.function_call_arguments.delta","sequence_number":8,"item_id":"fc_…_1","output_index":1,"delta":"{\"city\":\"Paris\"}"}
//!
//! event: response.function_call_arguments.done
//! data: {"type":"response.function_call_arguments.done","sequence_number":9,"item_id":"fc_…_1","output_index":1,"arguments":"{\"city\":\"Paris\"}"}
//!
//! event: response.output_item.done
//! data: {"type":"response.output_item.done","sequence_number":10,"output_index":1,"item":{"id":"fc_…_1","type":"function_call","status":"completed","call_id":"tooluse_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}
//! ```
//!
//! A failed stream ends with one `error` event and nothing after it. Its
//! payload carries the error twice: flat, as the API reference and the SDKs'
//! `ResponseErrorEvent` have it (`code`, `message`, `param`), and nested in
//! `error`, as OpenAI's servers send it; the nested object is what makes the
//! Python SDK raise (`APIError`) in the middle of its iteration. No
//! `response.failed` is written: no SDK raises on it, and its `error.code`
//! must be one of OpenAI's own codes.
//!
//! With `"stream": false`, the whole Response object as JSON, written at
//! the end, its output the same items; a failed stream fails the formatter
//! with the error's code and message, for the host to answer in the API's
//! error shape.
//!
//! Settings: `{"model": "<model as the caller sent it>", "stream": true,
//! "store": true, "previousResponseId": "resp_…", "id": "<request id>"}`
//! (the API's request filter sets the first four, echoed in the Response
//! object; the host the id, from which the response's id `resp_<id>`, its
//! message's `msg_<id>` and its function calls' `fc_<id>_<output index>`
//! are made: the host keeps a stored answer under `resp_<id>`).

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use streamhost_guest::json::{ToolUseJson, ToolUseMetadataJson};
use streamhost_guest::{ErrorInfo, Event, StreamContext, Transform, Usage, error};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The model as the caller named it, echoed in the Response object.
    #[serde(default = "default_model")]
    model: String,
    /// Server-Sent Events (`true`) or one JSON document (`false`, as the
    /// API's `stream` defaults).
    #[serde(default)]
    stream: bool,
    /// The call's request id, from which the response's ids are made.
    id: Option<String>,
    /// Whether the host keeps the answer (the request's `store`), echoed.
    #[serde(default)]
    store: bool,
    /// The response this one continues (the request's), echoed.
    #[serde(default, rename = "previousResponseId")]
    previous_response_id: Option<String>,
}

fn default_model() -> String {
    "streamhost".into()
}

/// What makes the ids when the host gives no request id: a fixed word, so
/// that the same stream always reads the same.
const FALLBACK_ID: &str = "streamhost";

/// A message's text is its only content part.
const CONTENT_INDEX: u32 = 0;

pub struct ResponsesFormat {
    stream: bool,
    model: String,
    /// The request id (or the fallback) the ids are made from.
    id: String,
    response_id: String,
    store: bool,
    previous_response_id: Option<String>,
    created_at: u64,
    /// The `sequence_number` of the next event (a cell: an event is
    /// numbered while the response it carries borrows the rest).
    next_sequence_number: Cell<u32>,
    /// `response.created` and `response.in_progress` are written.
    started: bool,
    /// The output items closed so far, in order.
    output: Vec<OutputItem>,
    /// The message taking text, opened on the first text (after a tool
    /// call, on the next), at the output index after the closed items.
    message: Option<Message>,
    stop_reason: Option<String>,
    usage: Option<Usage>,
    /// The stream failed (its error written, or returned): nothing more.
    failed: bool,
}

impl Transform for ResponsesFormat {
    fn open(_context: StreamContext, settings: &str) -> Result<Self, ErrorInfo> {
        let settings: Settings = serde_json::from_str(settings)
            .map_err(|problem| error("invalid_config", format!("openai-responses-format settings: {problem}")))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
        Ok(Self::new(settings, now))
    }

    fn content_type(&self) -> Option<String> {
        Some(if self.stream { "text/event-stream" } else { "application/json" }.into())
    }

    /// Streamed, each event's SSE events as soon as they are known. Whole,
    /// nothing: the output is kept for `finish`.
    fn push(&mut self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
        if self.failed {
            return Ok(Vec::new());
        }
        let mut out = self.start();
        if events.is_empty() && self.stream {
            out.push(Event::Raw(b": keep-alive\n\n".to_vec()));
        }
        for event in events {
            out.extend(self.format(event)?);
            if self.failed {
                break;
            }
        }
        Ok(out)
    }

    /// Streamed, the closing lifecycle event alone, the one that needs the
    /// usage (the message was closed when the stop reason came, unless none
    /// came). Whole, the Response object.
    fn finish(&mut self) -> Result<Vec<Event>, ErrorInfo> {
        if self.failed {
            return Ok(Vec::new());
        }
        let mut out = self.start();
        out.extend(self.conclude());
        let response = self.response(true);
        out.push(if self.stream {
            self.sse(response.status.closing_event(), &Lifecycle { response: &response })
        } else {
            Event::Raw(to_json(&response).into_bytes())
        });
        Ok(out)
    }
}

impl ResponsesFormat {
    fn new(settings: Settings, created_at: u64) -> Self {
        let id = settings.id.filter(|id| !id.is_empty()).unwrap_or_else(|| FALLBACK_ID.into());
        Self {
            stream: settings.stream,
            model: settings.model,
            response_id: format!("resp_{id}"),
            id,
            store: settings.store,
            previous_response_id: settings.previous_response_id,
            created_at,
            next_sequence_number: Cell::new(0),
            started: false,
            output: Vec::new(),
            message: None,
            stop_reason: None,
            usage: None,
            failed: false,
        }
    }

    /// Takes in one event of the stream: its SSE events when streaming; with
    /// `stream` false, nothing, or the stream's error. `status` and `frame`
    /// are not written, nor metadata other than a tool call; `raw` bytes,
    /// already in another format, are dropped.
    fn format(&mut self, event: Event) -> Result<Vec<Event>, ErrorInfo> {
        Ok(match event {
            Event::Text(text) if text.is_empty() => Vec::new(),
            Event::Text(text) => self.add_text(&text),
            Event::Metadata(metadata) => match tool_use(&metadata) {
                Some(call) => self.add_call(call),
                None => Vec::new(),
            },
            Event::End(reason) => {
                self.stop_reason = Some(reason);
                self.conclude()
            }
            Event::Usage(usage) => {
                self.usage = Some(usage);
                Vec::new()
            }
            Event::Error(error) => {
                self.failed = true;
                if !self.stream {
                    return Err(error);
                }
                vec![self.sse("error", &StreamError::from(&error))]
            }
            Event::Status(_) | Event::Frame(_) | Event::Raw(_) => Vec::new(),
        })
    }

    /// `response.created` and `response.in_progress`, before anything else.
    fn start(&mut self) -> Vec<Event> {
        if !self.stream || std::mem::replace(&mut self.started, true) {
            return Vec::new();
        }
        let response = self.response(false);
        vec![
            self.sse("response.created", &Lifecycle { response: &response }),
            self.sse("response.in_progress", &Lifecycle { response: &response }),
        ]
    }

    /// Adds text to the open message, opening one first if none is.
    fn add_text(&mut self, text: &str) -> Vec<Event> {
        let (mut message, mut out) = self.take_message();
        message.text.push_str(text);
        if self.stream {
            out.push(self.sse(
                "response.output_text.delta",
                &TextDelta { item: message.text_position(), delta: text, logprobs: &[] },
            ));
        }
        self.message = Some(message);
        out
    }

    /// Closes the open message, complete (the model went on to call a tool),
    /// and adds the tool call as a function call item, whole.
    fn add_call(&mut self, call: ToolUse) -> Vec<Event> {
        let mut out = self.close_open_message(ItemStatus::Completed);
        let output_index = self.output.len();
        let call = FunctionCall {
            id: format!("fc_{}_{output_index}", self.id),
            output_index,
            call_id: call.tool_use_id,
            name: call.name,
            arguments: call.input.get().to_owned(),
        };
        if self.stream {
            out.extend(self.function_call_events(&call));
        }
        self.output.push(OutputItem::FunctionCall(call));
        out
    }

    /// Closes the answer's last message as the response ended; an answer
    /// with no output at all still has its message, empty, as OpenAI's has.
    fn conclude(&mut self) -> Vec<Event> {
        if self.message.is_none() && !self.output.is_empty() {
            return Vec::new();
        }
        let (message, mut out) = self.take_message();
        out.extend(self.close_message(message, self.outcome().item_status()));
        out
    }

    /// The message taking text, out of its place: the open one, or a new
    /// one with its opening events.
    fn take_message(&mut self) -> (Message, Vec<Event>) {
        if let Some(message) = self.message.take() {
            return (message, Vec::new());
        }
        let output_index = self.output.len();
        // The answer's first message is `msg_<id>`; one after a function
        // call is told apart by its place.
        let first = !self.output.iter().any(|item| matches!(item, OutputItem::Message(..)));
        let id = if first { format!("msg_{}", self.id) } else { format!("msg_{}_{output_index}", self.id) };
        let message = Message { id, output_index, text: String::new() };
        let opened = if self.stream { self.message_opened(&message) } else { Vec::new() };
        (message, opened)
    }

    fn close_open_message(&mut self, status: ItemStatus) -> Vec<Event> {
        match self.message.take() {
            Some(message) => self.close_message(message, status),
            None => Vec::new(),
        }
    }

    /// Puts a message among the closed items, with its closing events.
    fn close_message(&mut self, message: Message, status: ItemStatus) -> Vec<Event> {
        let out = if self.stream { self.message_closed(&message, status) } else { Vec::new() };
        self.output.push(OutputItem::Message(message, status));
        out
    }

    /// The message's item, in progress and empty, and its text part.
    fn message_opened(&self, message: &Message) -> Vec<Event> {
        vec![
            self.sse(
                "response.output_item.added",
                &ItemEvent { output_index: message.output_index, item: message.item(ItemStatus::InProgress) },
            ),
            self.sse("response.content_part.added", &PartEvent { item: message.text_position(), part: part("") }),
        ]
    }

    /// The message's text, its part and its item, whole.
    fn message_closed(&self, message: &Message, status: ItemStatus) -> Vec<Event> {
        let text = &message.text;
        vec![
            self.sse("response.output_text.done", &TextDone { item: message.text_position(), text, logprobs: &[] }),
            self.sse("response.content_part.done", &PartEvent { item: message.text_position(), part: part(text) }),
            self.sse(
                "response.output_item.done",
                &ItemEvent { output_index: message.output_index, item: message.item(status) },
            ),
        ]
    }

    /// A function call's item, its arguments in one delta, and its item
    /// done.
    fn function_call_events(&self, call: &FunctionCall) -> Vec<Event> {
        let position = || ArgumentsPosition { item_id: &call.id, output_index: call.output_index };
        vec![
            self.sse(
                "response.output_item.added",
                &ItemEvent { output_index: call.output_index, item: call.item(ItemStatus::InProgress, "") },
            ),
            self.sse(
                "response.function_call_arguments.delta",
                &ArgumentsDelta { item: position(), delta: &call.arguments },
            ),
            self.sse(
                "response.function_call_arguments.done",
                &ArgumentsDone { item: position(), arguments: &call.arguments },
            ),
            self.sse(
                "response.output_item.done",
                &ItemEvent { output_index: call.output_index, item: call.item(ItemStatus::Completed, &call.arguments) },
            ),
        ]
    }

    /// How the response ended, from the model's stop reason.
    fn outcome(&self) -> Outcome {
        match self.stop_reason.as_deref() {
            Some("max_tokens") => Outcome::Incomplete("max_output_tokens"),
            Some("content_filtered" | "guardrail_intervened") => Outcome::Incomplete("content_filter"),
            _ => Outcome::Completed,
        }
    }

    /// The Response object: in progress, with no output yet, or finished,
    /// with its output items, the stop reason and the usage.
    fn response(&self, finished: bool) -> ResponseObject<'_> {
        let (status, incomplete_details) = match (finished, self.outcome()) {
            (false, _) => (ResponseStatus::InProgress, None),
            (true, Outcome::Completed) => (ResponseStatus::Completed, None),
            (true, Outcome::Incomplete(reason)) => (ResponseStatus::Incomplete, Some(IncompleteDetails { reason })),
        };
        let output = if finished { self.output.iter().map(OutputItem::item).collect() } else { Vec::new() };
        ResponseObject {
            id: &self.response_id,
            object: "response",
            created_at: self.created_at,
            status,
            error: (),
            incomplete_details,
            instructions: (),
            max_output_tokens: (),
            model: &self.model,
            output,
            parallel_tool_calls: true,
            previous_response_id: self.previous_response_id.as_deref(),
            reasoning: ReasoningConfig { effort: (), summary: () },
            store: self.store,
            temperature: (),
            text: TextConfig { format: TextFormat { kind: "text" } },
            tool_choice: "auto",
            tools: &[],
            top_p: (),
            truncation: "disabled",
            usage: self.usage.as_ref().filter(|_| finished).map(ResponseUsage::from),
            user: (),
            metadata: NoMetadata {},
        }
    }

    /// One SSE event, named by its type and numbered.
    fn sse(&self, kind: &str, body: &impl Serialize) -> Event {
        let sequence_number = self.next_sequence_number.replace(self.next_sequence_number.get() + 1);
        let payload = to_json(&Envelope { kind, sequence_number, body });
        Event::Raw(format!("event: {kind}\ndata: {payload}\n\n").into_bytes())
    }
}

/// A tool call as a model source sends it downstream (the guest SDK's
/// shape), its input kept as Box<RawValue>.
type ToolUse = ToolUseJson<Box<RawValue>>;
type ToolUseMetadata = ToolUseMetadataJson<Box<RawValue>>;

/// The tool call a metadata event carries, if it is one.
fn tool_use(metadata: &str) -> Option<ToolUse> {
    serde_json::from_str::<ToolUseMetadata>(metadata).ok().map(|metadata| metadata.tool_use)
}

/// An assistant message: its id, its place in the output, its text.
struct Message {
    id: String,
    output_index: usize,
    text: String,
}

impl Message {
    /// Its item: its text as one part once closed, no part while in
    /// progress.
    fn item(&self, status: ItemStatus) -> Item<'_> {
        let content = if status == ItemStatus::InProgress { Vec::new() } else { vec![part(&self.text)] };
        Item::Message(OutputMessage { id: &self.id, kind: "message", status, role: "assistant", content })
    }

    fn text_position(&self) -> TextPosition<'_> {
        TextPosition { item_id: &self.id, output_index: self.output_index, content_index: CONTENT_INDEX }
    }
}

/// A tool call in the API's words: `call_id` the source's tool use id,
/// `arguments` its input as JSON text.
struct FunctionCall {
    id: String,
    output_index: usize,
    call_id: String,
    name: String,
    arguments: String,
}

impl FunctionCall {
    fn item<'a>(&'a self, status: ItemStatus, arguments: &'a str) -> Item<'a> {
        Item::FunctionCall(FunctionCallItem {
            id: &self.id,
            kind: "function_call",
            status,
            call_id: &self.call_id,
            name: &self.name,
            arguments,
        })
    }
}

/// A closed output item: a message (completed, or incomplete with the
/// response) or a function call (always completed: its input came whole).
enum OutputItem {
    Message(Message, ItemStatus),
    FunctionCall(FunctionCall),
}

impl OutputItem {
    fn item(&self) -> Item<'_> {
        match self {
            OutputItem::Message(message, status) => message.item(*status),
            OutputItem::FunctionCall(call) => call.item(ItemStatus::Completed, &call.arguments),
        }
    }
}

/// How a response ends: completed, or incomplete for a reason.
#[derive(Clone, Copy)]
enum Outcome {
    Completed,
    Incomplete(&'static str),
}

impl Outcome {
    /// The last message's status: incomplete when the response is.
    fn item_status(self) -> ItemStatus {
        match self {
            Outcome::Completed => ItemStatus::Completed,
            Outcome::Incomplete(_) => ItemStatus::Incomplete,
        }
    }
}

#[derive(Serialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum ResponseStatus {
    InProgress,
    Completed,
    Incomplete,
}

impl ResponseStatus {
    /// The event that ends a stream with a response in this status.
    fn closing_event(self) -> &'static str {
        match self {
            ResponseStatus::Incomplete => "response.incomplete",
            ResponseStatus::InProgress | ResponseStatus::Completed => "response.completed",
        }
    }
}

#[derive(Serialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum ItemStatus {
    InProgress,
    Completed,
    Incomplete,
}

/// The Response object, its fields in the order OpenAI writes them. What
/// streamhost does not echo from the request is null or the API's default
/// (`()` is written `null`).
#[derive(Serialize)]
struct ResponseObject<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: ResponseStatus,
    error: (),
    incomplete_details: Option<IncompleteDetails>,
    instructions: (),
    max_output_tokens: (),
    model: &'a str,
    output: Vec<Item<'a>>,
    parallel_tool_calls: bool,
    previous_response_id: Option<&'a str>,
    reasoning: ReasoningConfig,
    store: bool,
    temperature: (),
    text: TextConfig,
    tool_choice: &'static str,
    tools: &'static [()],
    top_p: (),
    truncation: &'static str,
    usage: Option<ResponseUsage>,
    user: (),
    metadata: NoMetadata,
}

#[derive(Serialize)]
struct IncompleteDetails {
    reason: &'static str,
}

#[derive(Serialize)]
struct ReasoningConfig {
    effort: (),
    summary: (),
}

#[derive(Serialize)]
struct TextConfig {
    format: TextFormat,
}

#[derive(Serialize)]
struct TextFormat {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// `{}`.
#[derive(Serialize)]
struct NoMetadata {}

/// The usage in the API's words: the source's counts as it reports them,
/// its cache reads `cached_tokens` and its cache writes `cache_write_tokens`
/// (which the SDKs' newer types require).
#[derive(Serialize)]
struct ResponseUsage {
    input_tokens: u32,
    input_tokens_details: InputTokensDetails,
    output_tokens: u32,
    output_tokens_details: OutputTokensDetails,
    total_tokens: u32,
}

#[derive(Serialize)]
struct InputTokensDetails {
    cached_tokens: u32,
    cache_write_tokens: u32,
}

#[derive(Serialize)]
struct OutputTokensDetails {
    reasoning_tokens: u32,
}

impl From<&Usage> for ResponseUsage {
    fn from(usage: &Usage) -> Self {
        Self {
            input_tokens: usage.input_tokens,
            input_tokens_details: InputTokensDetails {
                cached_tokens: usage.cache_read_input_tokens,
                cache_write_tokens: usage.cache_write_input_tokens,
            },
            output_tokens: usage.output_tokens,
            output_tokens_details: OutputTokensDetails { reasoning_tokens: 0 },
            total_tokens: usage.total_tokens,
        }
    }
}

/// An output item as the API writes it.
#[derive(Serialize)]
#[serde(untagged)]
enum Item<'a> {
    Message(OutputMessage<'a>),
    FunctionCall(FunctionCallItem<'a>),
}

/// An assistant message item.
#[derive(Serialize)]
struct OutputMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    status: ItemStatus,
    role: &'static str,
    content: Vec<OutputText<'a>>,
}

/// The message's text part.
#[derive(Serialize)]
struct OutputText<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
    annotations: &'static [()],
}

fn part(text: &str) -> OutputText<'_> {
    OutputText { kind: "output_text", text, annotations: &[] }
}

/// A function call item.
#[derive(Serialize)]
struct FunctionCallItem<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    status: ItemStatus,
    call_id: &'a str,
    name: &'a str,
    arguments: &'a str,
}

/// Every streamed event: its type and number, then its own fields.
#[derive(Serialize)]
struct Envelope<'a, T> {
    #[serde(rename = "type")]
    kind: &'a str,
    sequence_number: u32,
    #[serde(flatten)]
    body: T,
}

/// `response.created`, `response.in_progress`, `response.completed`,
/// `response.incomplete`.
#[derive(Serialize)]
struct Lifecycle<'a> {
    response: &'a ResponseObject<'a>,
}

/// `response.output_item.added` and `response.output_item.done`.
#[derive(Serialize)]
struct ItemEvent<'a> {
    output_index: usize,
    item: Item<'a>,
}

/// Where the text is: the message's id, its output index, the part's index.
#[derive(Serialize)]
struct TextPosition<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
}

/// `response.content_part.added` and `response.content_part.done`.
#[derive(Serialize)]
struct PartEvent<'a> {
    #[serde(flatten)]
    item: TextPosition<'a>,
    part: OutputText<'a>,
}

#[derive(Serialize)]
struct TextDelta<'a> {
    #[serde(flatten)]
    item: TextPosition<'a>,
    delta: &'a str,
    logprobs: &'static [()],
}

#[derive(Serialize)]
struct TextDone<'a> {
    #[serde(flatten)]
    item: TextPosition<'a>,
    text: &'a str,
    logprobs: &'static [()],
}

/// Where a function call's arguments are: its item's id and output index.
#[derive(Serialize)]
struct ArgumentsPosition<'a> {
    item_id: &'a str,
    output_index: usize,
}

#[derive(Serialize)]
struct ArgumentsDelta<'a> {
    #[serde(flatten)]
    item: ArgumentsPosition<'a>,
    delta: &'a str,
}

#[derive(Serialize)]
struct ArgumentsDone<'a> {
    #[serde(flatten)]
    item: ArgumentsPosition<'a>,
    arguments: &'a str,
}

/// The `error` event: the error flat, as the API reference has it, and
/// nested, as OpenAI's servers send it and the Python SDK raises it.
#[derive(Serialize)]
struct StreamError<'a> {
    code: &'a str,
    message: &'a str,
    param: (),
    error: ErrorObject<'a>,
}

/// OpenAI's error object. Its `type` is the code, as OpenAI's own
/// `too_many_requests` errors have it: streamhost's codes are its types.
#[derive(Serialize)]
struct ErrorObject<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    code: &'a str,
    message: &'a str,
    param: (),
}

impl<'a> From<&'a ErrorInfo> for StreamError<'a> {
    fn from(error: &'a ErrorInfo) -> Self {
        let (code, message) = (error.code.as_str(), error.message.as_str());
        Self { code, message, param: (), error: ErrorObject { kind: code, code, message, param: () } }
    }
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

streamhost_guest::export_transform!(ResponsesFormat);

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T00:00:00Z, the golden tests' clock.
    const NEW_YEAR: u64 = 1_767_225_600;

    fn open(settings: &str) -> ResponsesFormat {
        ResponsesFormat::new(serde_json::from_str(settings).unwrap(), NEW_YEAR)
    }

    fn streaming() -> ResponsesFormat {
        open(r#"{"model":"gpt-test","stream":true,"id":"abc"}"#)
    }

    fn usage(input_tokens: u32, output_tokens: u32, cache_read_input_tokens: u32) -> Event {
        Event::Usage(Usage {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens + output_tokens,
            latency_ms: 40,
            cache_read_input_tokens,
            cache_write_input_tokens: 0,
        })
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

    /// The SSE events of `out` as (name, data JSON) pairs.
    fn sse_events(out: &str) -> Vec<(String, serde_json::Value)> {
        out.split_terminator("\n\n")
            .filter(|event| !event.starts_with(':'))
            .map(|event| {
                let (name, data) = event.split_once('\n').unwrap();
                let name = name.strip_prefix("event: ").unwrap();
                let data = data.strip_prefix("data: ").unwrap();
                (name.to_string(), serde_json::from_str(data).unwrap())
            })
            .collect()
    }

    const IN_PROGRESS: &str = r#"{"id":"resp_abc","object":"response","created_at":1767225600,"status":"in_progress","error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"gpt-test","output":[],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":false,"temperature":null,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":null,"truncation":"disabled","usage":null,"user":null,"metadata":{}}"#;

    #[test]
    fn streams_the_responses_events_in_order() {
        let mut format = streaming();
        let mut out =
            format.push(vec![Event::Metadata(r#"{"model":"echo"}"#.into()), Event::Text("Hel".into())]).unwrap();
        out.extend(format.push(vec![Event::Text("lo".into()), Event::End("end_turn".into())]).unwrap());
        out.extend(format.push(vec![usage(5, 2, 3)]).unwrap());
        out.extend(format.finish().unwrap());
        let completed = IN_PROGRESS
            .replace(r#""status":"in_progress""#, r#""status":"completed""#)
            .replace(
                r#""output":[]"#,
                r#""output":[{"id":"msg_abc","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hello","annotations":[]}]}]"#,
            )
            .replace(
                r#""usage":null"#,
                r#""usage":{"input_tokens":5,"input_tokens_details":{"cached_tokens":3,"cache_write_tokens":0},"output_tokens":2,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":7}"#,
            );
        let expected = [
            format!("event: response.created\ndata: {{\"type\":\"response.created\",\"sequence_number\":0,\"response\":{IN_PROGRESS}}}\n\n"),
            format!("event: response.in_progress\ndata: {{\"type\":\"response.in_progress\",\"sequence_number\":1,\"response\":{IN_PROGRESS}}}\n\n"),
            "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":2,\"output_index\":0,\"item\":{\"id\":\"msg_abc\",\"type\":\"message\",\"status\":\"in_progress\",\"role\":\"assistant\",\"content\":[]}}\n\n".into(),
            "event: response.content_part.added\ndata: {\"type\":\"response.content_part.added\",\"sequence_number\":3,\"item_id\":\"msg_abc\",\"output_index\":0,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}}\n\n".into(),
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"item_id\":\"msg_abc\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hel\",\"logprobs\":[]}\n\n".into(),
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":5,\"item_id\":\"msg_abc\",\"output_index\":0,\"content_index\":0,\"delta\":\"lo\",\"logprobs\":[]}\n\n".into(),
            "event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"sequence_number\":6,\"item_id\":\"msg_abc\",\"output_index\":0,\"content_index\":0,\"text\":\"Hello\",\"logprobs\":[]}\n\n".into(),
            "event: response.content_part.done\ndata: {\"type\":\"response.content_part.done\",\"sequence_number\":7,\"item_id\":\"msg_abc\",\"output_index\":0,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"Hello\",\"annotations\":[]}}\n\n".into(),
            "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"sequence_number\":8,\"output_index\":0,\"item\":{\"id\":\"msg_abc\",\"type\":\"message\",\"status\":\"completed\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hello\",\"annotations\":[]}]}}\n\n".into(),
            format!("event: response.completed\ndata: {{\"type\":\"response.completed\",\"sequence_number\":9,\"response\":{completed}}}\n\n"),
        ];
        assert_eq!(text_of(out), expected.concat());
    }

    #[test]
    fn writes_each_delta_as_it_comes() {
        let mut format = streaming();
        let first = sse_events(&text_of(format.push(vec![Event::Text("Hel".into())]).unwrap()));
        let names: Vec<&str> = first.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta"
            ]
        );
        let second =
            sse_events(&text_of(format.push(vec![Event::Text("lo".into()), Event::Text(String::new())]).unwrap()));
        assert_eq!(second.len(), 1);
        assert_eq!((second[0].1["delta"].as_str(), second[0].1["sequence_number"].as_u64()), (Some("lo"), Some(5)));
    }

    #[test]
    fn a_max_tokens_stop_is_an_incomplete_response() {
        let mut format = streaming();
        let mut out = format.push(vec![Event::Text("Cut sh".into()), Event::End("max_tokens".into())]).unwrap();
        out.extend(format.finish().unwrap());
        let events = sse_events(&text_of(out));
        let (name, last) = events.last().unwrap();
        assert_eq!(name, "response.incomplete");
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(last["response"]["status"], "incomplete");
        assert_eq!(last["response"]["incomplete_details"], serde_json::json!({"reason": "max_output_tokens"}));
        assert_eq!(last["response"]["output"][0]["status"], "incomplete");
        // No usage came: the response says so rather than count zeros.
        assert_eq!(last["response"]["usage"], serde_json::Value::Null);
        let (name, item_done) = &events[events.len() - 2];
        assert_eq!((name.as_str(), &item_done["item"]["status"]), ("response.output_item.done", &"incomplete".into()));
    }

    #[test]
    fn a_content_filter_stop_is_an_incomplete_response() {
        for reason in ["content_filtered", "guardrail_intervened"] {
            let mut format = streaming();
            let mut out = format.push(vec![Event::End(reason.into())]).unwrap();
            out.extend(format.finish().unwrap());
            let events = sse_events(&text_of(out));
            let (name, last) = events.last().unwrap();
            assert_eq!(name, "response.incomplete", "{reason}");
            assert_eq!(last["response"]["incomplete_details"]["reason"], "content_filter", "{reason}");
        }
    }

    #[test]
    fn other_stops_complete_the_response() {
        for reason in ["end_turn", "stop_sequence", "tool_use", "something_new"] {
            let mut format = streaming();
            let mut out = format.push(vec![Event::Text("x".into()), Event::End(reason.into())]).unwrap();
            out.extend(format.finish().unwrap());
            let events = sse_events(&text_of(out));
            assert_eq!(events.last().unwrap().0, "response.completed", "{reason}");
        }
    }

    #[test]
    fn an_answer_without_text_still_has_its_message() {
        let mut format = streaming();
        let events = sse_events(&text_of(format.finish().unwrap()));
        let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        let numbers: Vec<u64> = events.iter().map(|(_, data)| data["sequence_number"].as_u64().unwrap()).collect();
        assert_eq!(numbers, (0..8).collect::<Vec<_>>());
        assert_eq!(events[7].1["response"]["output"][0]["content"][0]["text"], "");
    }

    #[test]
    fn an_error_ends_the_stream_raisably() {
        let mut format = streaming();
        let mut out = format.push(vec![Event::Text("Half".into())]).unwrap();
        out.extend(
            format
                .push(vec![Event::Error(error("model_stream_error", "the model stopped")), Event::Text("never".into())])
                .unwrap(),
        );
        let out = text_of(out);
        assert!(out.ends_with(
            "event: error\ndata: {\"type\":\"error\",\"sequence_number\":5,\"code\":\"model_stream_error\",\
             \"message\":\"the model stopped\",\"param\":null,\"error\":{\"type\":\"model_stream_error\",\
             \"code\":\"model_stream_error\",\"message\":\"the model stopped\",\"param\":null}}\n\n"
        ));
        assert!(!out.contains("never"));
        assert!(format.push(vec![Event::Text("more".into())]).unwrap().is_empty());
        assert!(format.finish().unwrap().is_empty());
    }

    #[test]
    fn an_error_first_still_opens_the_response() {
        let mut format = streaming();
        let events = sse_events(&text_of(format.push(vec![Event::Error(error("throttled", "slow down"))]).unwrap()));
        let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["response.created", "response.in_progress", "error"]);
    }

    #[test]
    fn a_tick_is_a_comment() {
        let mut format = streaming();
        let first = text_of(format.push(Vec::new()).unwrap());
        assert!(first.starts_with("event: response.created\n"));
        assert!(first.ends_with("\n\n: keep-alive\n\n"));
        assert_eq!(text_of(format.push(Vec::new()).unwrap()), ": keep-alive\n\n");
    }

    #[test]
    fn drops_what_the_api_has_no_place_for() {
        let mut format = streaming();
        format.push(Vec::new()).unwrap();
        let out = format
            .push(vec![
                Event::Metadata("{}".into()),
                Event::Status("thinking".into()),
                Event::Frame(b"{}".to_vec()),
                Event::Raw(b"data: other\n\n".to_vec()),
            ])
            .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn a_whole_response_is_one_json_document() {
        let mut format = open(r#"{"model":"gpt-test","id":"abc"}"#);
        assert_eq!(format.content_type().as_deref(), Some("application/json"));
        assert!(format.push(vec![Event::Text("Hel".into())]).unwrap().is_empty());
        assert!(format.push(Vec::new()).unwrap().is_empty());
        assert!(
            format
                .push(vec![Event::Text("lo".into()), Event::End("end_turn".into()), usage(5, 2, 0)])
                .unwrap()
                .is_empty()
        );
        let whole = IN_PROGRESS
            .replace(r#""status":"in_progress""#, r#""status":"completed""#)
            .replace(
                r#""output":[]"#,
                r#""output":[{"id":"msg_abc","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hello","annotations":[]}]}]"#,
            )
            .replace(
                r#""usage":null"#,
                r#""usage":{"input_tokens":5,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":2,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":7}"#,
            );
        assert_eq!(text_of(format.finish().unwrap()), whole);
    }

    #[test]
    fn a_whole_response_stopped_at_the_limit_is_incomplete() {
        let mut format = open(r#"{"model":"gpt-test"}"#);
        format.push(vec![Event::Text("Cut".into()), Event::End("max_tokens".into())]).unwrap();
        let whole: serde_json::Value = serde_json::from_str(&text_of(format.finish().unwrap())).unwrap();
        assert_eq!(whole["id"], "resp_streamhost");
        assert_eq!(whole["status"], "incomplete");
        assert_eq!(whole["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(whole["output"][0]["id"], "msg_streamhost");
        assert_eq!(whole["output"][0]["status"], "incomplete");
        assert_eq!(whole["output"][0]["content"][0]["text"], "Cut");
    }

    #[test]
    fn a_whole_response_fails_with_the_streams_error() {
        let mut format = open(r#"{"model":"gpt-test","stream":false}"#);
        format.push(vec![Event::Text("Half".into())]).unwrap();
        let failure = format.push(vec![Event::Error(error("throttled", "slow down"))]).unwrap_err();
        assert_eq!((failure.code.as_str(), failure.message.as_str()), ("throttled", "slow down"));
        assert!(format.finish().unwrap().is_empty());
    }

    #[test]
    fn streams_with_the_stream_setting() {
        assert_eq!(streaming().content_type().as_deref(), Some("text/event-stream"));
    }

    #[test]
    fn refuses_unknown_settings() {
        let context = StreamContext { plugin: "openai-responses-format".into(), user_id: None, session_id: None };
        let refused = ResponsesFormat::open(context.clone(), r#"{"model":"m","includeUsage":true}"#).err().unwrap();
        assert_eq!(refused.code, "invalid_config");
        assert!(refused.message.contains("includeUsage"), "{}", refused.message);
        assert_eq!(ResponsesFormat::open(context, r#"{"stream":"yes"}"#).err().unwrap().code, "invalid_config");
    }

    fn tool_use(id: &str, name: &str, input: &str) -> Event {
        Event::Metadata(format!(r#"{{"toolUse":{{"toolUseId":"{id}","name":"{name}","input":{input}}}}}"#))
    }

    fn names(events: &[(String, serde_json::Value)]) -> Vec<&str> {
        events.iter().map(|(name, _)| name.as_str()).collect()
    }

    #[test]
    fn streams_a_tool_call_after_the_text() {
        let mut format = streaming();
        format.push(vec![Event::Text("Let me look.".into())]).unwrap();
        let call = text_of(format.push(vec![tool_use("tooluse_1", "get_weather", r#"{"city":"Paris"}"#)]).unwrap());
        let expected = [
            "event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"sequence_number\":5,\"item_id\":\"msg_abc\",\"output_index\":0,\"content_index\":0,\"text\":\"Let me look.\",\"logprobs\":[]}\n\n",
            "event: response.content_part.done\ndata: {\"type\":\"response.content_part.done\",\"sequence_number\":6,\"item_id\":\"msg_abc\",\"output_index\":0,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"Let me look.\",\"annotations\":[]}}\n\n",
            "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"sequence_number\":7,\"output_index\":0,\"item\":{\"id\":\"msg_abc\",\"type\":\"message\",\"status\":\"completed\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Let me look.\",\"annotations\":[]}]}}\n\n",
            "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":8,\"output_index\":1,\"item\":{\"id\":\"fc_abc_1\",\"type\":\"function_call\",\"status\":\"in_progress\",\"call_id\":\"tooluse_1\",\"name\":\"get_weather\",\"arguments\":\"\"}}\n\n",
            "event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"sequence_number\":9,\"item_id\":\"fc_abc_1\",\"output_index\":1,\"delta\":\"{\\\"city\\\":\\\"Paris\\\"}\"}\n\n",
            "event: response.function_call_arguments.done\ndata: {\"type\":\"response.function_call_arguments.done\",\"sequence_number\":10,\"item_id\":\"fc_abc_1\",\"output_index\":1,\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}\n\n",
            "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"sequence_number\":11,\"output_index\":1,\"item\":{\"id\":\"fc_abc_1\",\"type\":\"function_call\",\"status\":\"completed\",\"call_id\":\"tooluse_1\",\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}\n\n",
        ];
        assert_eq!(call, expected.concat());
        // The stop reason has no message left to close.
        assert!(format.push(vec![Event::End("tool_use".into()), usage(5, 9, 0)]).unwrap().is_empty());
        let completed = IN_PROGRESS
            .replace(r#""status":"in_progress""#, r#""status":"completed""#)
            .replace(
                r#""output":[]"#,
                r#""output":[{"id":"msg_abc","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Let me look.","annotations":[]}]},{"id":"fc_abc_1","type":"function_call","status":"completed","call_id":"tooluse_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}]"#,
            )
            .replace(
                r#""usage":null"#,
                r#""usage":{"input_tokens":5,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":9,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":14}"#,
            );
        assert_eq!(
            text_of(format.finish().unwrap()),
            format!(
                "event: response.completed\ndata: {{\"type\":\"response.completed\",\"sequence_number\":12,\"response\":{completed}}}\n\n"
            )
        );
    }

    #[test]
    fn a_tool_call_without_text_is_the_only_item() {
        let mut format = streaming();
        let mut out = format.push(vec![tool_use("t1", "now", "{}"), Event::End("tool_use".into())]).unwrap();
        out.extend(format.finish().unwrap());
        let events = sse_events(&text_of(out));
        assert_eq!(
            names(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        assert_eq!(events[2].1["output_index"], 0);
        assert_eq!(events[3].1["item_id"], "fc_abc_0");
        assert_eq!(events[3].1["delta"], "{}");
        let response = &events[6].1["response"];
        assert_eq!(response["status"], "completed");
        assert_eq!(
            response["output"],
            serde_json::json!([{"id": "fc_abc_0", "type": "function_call", "status": "completed", "call_id": "t1", "name": "now", "arguments": "{}"}])
        );
    }

    #[test]
    fn several_tool_calls_follow_each_other() {
        let mut format = streaming();
        let out = format
            .push(vec![
                Event::Text("Both.".into()),
                tool_use("t1", "get_weather", r#"{"city":"Paris"}"#),
                tool_use("t2", "get_weather", r#"{"city":"Rome"}"#),
                Event::End("tool_use".into()),
            ])
            .unwrap();
        let mut events = sse_events(&text_of(out));
        events.extend(sse_events(&text_of(format.finish().unwrap())));
        let numbers: Vec<u64> = events.iter().map(|(_, data)| data["sequence_number"].as_u64().unwrap()).collect();
        assert_eq!(numbers, (0..events.len() as u64).collect::<Vec<_>>());
        let added: Vec<(u64, &str)> = events
            .iter()
            .filter(|(name, _)| name == "response.output_item.added")
            .map(|(_, data)| (data["output_index"].as_u64().unwrap(), data["item"]["id"].as_str().unwrap()))
            .collect();
        assert_eq!(added, [(0, "msg_abc"), (1, "fc_abc_1"), (2, "fc_abc_2")]);
        let output = &events.last().unwrap().1["response"]["output"];
        let calls: Vec<(&str, &str)> = (1..=2)
            .map(|index| (output[index]["call_id"].as_str().unwrap(), output[index]["arguments"].as_str().unwrap()))
            .collect();
        assert_eq!(calls, [("t1", r#"{"city":"Paris"}"#), ("t2", r#"{"city":"Rome"}"#)]);
    }

    #[test]
    fn text_after_a_tool_call_is_a_message_of_its_own() {
        let mut format = streaming();
        let mut out = format
            .push(vec![Event::Text("First.".into()), tool_use("t1", "f", "{}"), Event::Text("Then.".into())])
            .unwrap();
        out.extend(format.finish().unwrap());
        let events = sse_events(&text_of(out));
        let delta = events.iter().rfind(|(name, _)| name == "response.output_text.delta").unwrap();
        assert_eq!((&delta.1["item_id"], &delta.1["output_index"]), (&"msg_abc_2".into(), &2.into()));
        let output = &events.last().unwrap().1["response"]["output"];
        let items: Vec<&str> = (0..3).map(|index| output[index]["id"].as_str().unwrap()).collect();
        assert_eq!(items, ["msg_abc", "fc_abc_1", "msg_abc_2"]);
        assert_eq!(output[2]["content"][0]["text"], "Then.");
    }

    #[test]
    fn a_tool_calls_arguments_are_its_input_as_sent() {
        let mut format = streaming();
        let input = r#"{"units":"celsius","city":"Paris","days":[1,2]}"#;
        let events = sse_events(&text_of(format.push(vec![tool_use("t1", "forecast", input)]).unwrap()));
        let done = events.iter().find(|(name, _)| name == "response.function_call_arguments.done").unwrap();
        assert_eq!(done.1["arguments"], input);
    }

    #[test]
    fn metadata_without_a_whole_tool_call_is_not_written() {
        let mut format = streaming();
        format.push(Vec::new()).unwrap();
        for metadata in [r#"{"toolUse":{"index":0,"input":"{\"a\""}}"#, r#"{"model":"echo"}"#, "not json"] {
            assert!(format.push(vec![Event::Metadata(metadata.into())]).unwrap().is_empty(), "{metadata}");
        }
    }

    /// A call's output is capped (the host's `--plugin-call-output-bytes`):
    /// the text's three closing copies go out with the stop reason, its
    /// fourth, with the usage, in `finish`.
    #[test]
    fn the_message_closes_when_the_stop_reason_comes() {
        let mut format = streaming();
        let text = "word ".repeat(1000);
        format.push(vec![Event::Text(text.clone())]).unwrap();
        let closing = sse_events(&text_of(format.push(vec![Event::End("end_turn".into())]).unwrap()));
        assert_eq!(
            names(&closing),
            ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
        );
        format.push(vec![usage(5, 1000, 0)]).unwrap();
        let last = text_of(format.finish().unwrap());
        assert_eq!(last.matches(&text).count(), 1);
        let last = sse_events(&last);
        assert_eq!(names(&last), ["response.completed"]);
        assert_eq!(last[0].1["response"]["usage"]["output_tokens"], 1000);
    }

    #[test]
    fn a_stream_without_a_stop_reason_closes_its_message_at_the_end() {
        let mut format = streaming();
        format.push(vec![Event::Text("Cut".into())]).unwrap();
        let events = sse_events(&text_of(format.finish().unwrap()));
        assert_eq!(
            names(&events),
            [
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
    }

    #[test]
    fn a_whole_response_has_its_tool_calls() {
        let mut format = open(r#"{"model":"gpt-test","id":"abc"}"#);
        let out = format
            .push(vec![
                Event::Text("Let me look.".into()),
                tool_use("tooluse_1", "get_weather", r#"{"city":"Paris"}"#),
                Event::End("tool_use".into()),
                usage(5, 9, 0),
            ])
            .unwrap();
        assert!(out.is_empty());
        let whole = IN_PROGRESS
            .replace(r#""status":"in_progress""#, r#""status":"completed""#)
            .replace(
                r#""output":[]"#,
                r#""output":[{"id":"msg_abc","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Let me look.","annotations":[]}]},{"id":"fc_abc_1","type":"function_call","status":"completed","call_id":"tooluse_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"}]"#,
            )
            .replace(
                r#""usage":null"#,
                r#""usage":{"input_tokens":5,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":9,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":14}"#,
            );
        assert_eq!(text_of(format.finish().unwrap()), whole);
    }
}
