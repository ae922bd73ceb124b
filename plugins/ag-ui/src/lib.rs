//! `ag-ui`: formats any pipeline's stream as AG-UI protocol events, what
//! `@ag-ui/client`'s `HttpAgent` reads: Server-Sent Events, one `data:` line
//! of JSON an event, field names as `@ag-ui/core`'s schemas have them:
//!
//! ```text
//! data: {"type":"RUN_STARTED","threadId":"s1","runId":"run-streamhost"}
//!
//! data: {"type":"CUSTOM","name":"metadata","value":{"provider":"echo","model":"echo"}}
//!
//! data: {"type":"TEXT_MESSAGE_START","messageId":"msg-run-streamhost","role":"assistant"}
//!
//! data: {"type":"TEXT_MESSAGE_CONTENT","messageId":"msg-run-streamhost","delta":"Hel"}
//!
//! data: {"type":"TEXT_MESSAGE_END","messageId":"msg-run-streamhost"}
//!
//! data: {"type":"CUSTOM","name":"usage","value":{"inputTokens":2,"outputTokens":2,"totalTokens":4,"latencyMs":60}}
//!
//! data: {"type":"RUN_FINISHED","threadId":"s1","runId":"run-streamhost","result":{"stopReason":"end_turn"}}
//! ```
//!
//! A `status` event is `CUSTOM` named `status`, `{"message":…}`: a progress
//! note has no start and end, which `STEP_STARTED`/`STEP_FINISHED` need. A
//! failed stream ends with `{"type":"RUN_ERROR","message":…,"code":…}`, after
//! which the client takes no event. Empty text is never written (the protocol
//! refuses an empty `delta`). A message is ended before any other event
//! (`CUSTOM`, `RUN_ERROR`), which older clients refuse inside one; text after
//! that is the next message.
//!
//! The thread is the request's session id, else the `threadId` setting, else
//! `thread-streamhost`; the run is the `runId` setting, else `run-<the
//! stream's start in hex nanoseconds since the Unix epoch>`, one per stream
//! (a fixed default would make a client append each answer to the last);
//! the message id is `msg-<run id>`. (In golden tests, whose clock stands
//! still, the default is fixed.)

use serde::{Deserialize, Serialize};
use serde_json::Value;
use streamhost_guest::json::UsageJson;
use streamhost_guest::{ErrorInfo, Event, Level, StreamContext, Transform, error, log};

/// The settings, all optional.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
struct Settings {
    /// The thread id of a request without a session id.
    thread_id: Option<String>,
    /// The run id; a client that makes one per run (`RunAgentInput.runId`)
    /// passes it here.
    run_id: Option<String>,
}

/// One AG-UI event, as `@ag-ui/core`'s `EventSchemas` define it.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE", rename_all_fields = "camelCase")]
enum AgUiEvent<'a> {
    RunStarted {
        thread_id: &'a str,
        run_id: &'a str,
    },
    TextMessageStart {
        message_id: &'a str,
        role: &'static str,
    },
    TextMessageContent {
        message_id: &'a str,
        delta: &'a str,
    },
    TextMessageEnd {
        message_id: &'a str,
    },
    Custom {
        name: &'static str,
        value: CustomValue<'a>,
    },
    RunFinished {
        thread_id: &'a str,
        run_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<RunResult<'a>>,
    },
    RunError {
        message: &'a str,
        code: &'a str,
    },
}

/// The `value` of a `CUSTOM` event.
#[derive(Serialize)]
#[serde(untagged)]
enum CustomValue<'a> {
    Status { message: &'a str },
    Metadata(Value),
    Usage(UsageJson),
}

/// `RUN_FINISHED`'s `result`: why the model stopped.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunResult<'a> {
    stop_reason: &'a str,
}

/// A comment line, which SSE clients skip: it keeps idle connections open.
const KEEP_ALIVE: &str = ": keep-alive\n\n";

/// One stream's formatter: its ids and what it has written so far.
pub struct AgUi {
    thread_id: String,
    run_id: String,
    /// Whether `RUN_STARTED` is written.
    started: bool,
    /// The id of the text message being written, between its start and end.
    open_message: Option<String>,
    /// How many text messages were started, which names the next one.
    messages: usize,
    stop_reason: Option<String>,
    /// `RUN_ERROR` was written: nothing more is.
    failed: bool,
}

/// A run id of its own for a stream: `run-<nanoseconds since the Unix
/// epoch, in hex>`.
fn run_of_now() -> String {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("run-{:x}", since_epoch.as_nanos())
}

impl Transform for AgUi {
    fn open(context: StreamContext, settings: &str) -> Result<Self, ErrorInfo> {
        let settings: Settings = serde_json::from_str(settings)
            .map_err(|problem| error("invalid_config", format!("ag-ui settings: {problem}")))?;
        // The session is the conversation, which is what an AG-UI thread is.
        let thread_id = context.session_id.or(settings.thread_id).unwrap_or_else(|| "thread-streamhost".into());
        let run_id = settings.run_id.unwrap_or_else(run_of_now);
        Ok(Self {
            thread_id,
            run_id,
            started: false,
            open_message: None,
            messages: 0,
            stop_reason: None,
            failed: false,
        })
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
        self.end_message(&mut out);
        let result = self.stop_reason.as_deref().map(|stop_reason| RunResult { stop_reason });
        write(&mut out, &AgUiEvent::RunFinished { thread_id: &self.thread_id, run_id: &self.run_id, result });
        Ok(vec![Event::Raw(out.into_bytes())])
    }
}

impl AgUi {
    /// The AG-UI events one event makes, as one `raw` event, or none.
    fn format(&mut self, event: Event) -> Option<Event> {
        if self.failed {
            return None;
        }
        let mut out = String::new();
        match event {
            Event::Text(text) => self.write_text(&mut out, &text),
            Event::Status(message) => {
                self.write_custom(&mut out, "status", CustomValue::Status { message: &message });
            }
            Event::Metadata(json) => match serde_json::from_str(&json) {
                Ok(value) => self.write_custom(&mut out, "metadata", CustomValue::Metadata(value)),
                Err(problem) => log(Level::Warn, &format!("metadata that is not JSON dropped: {problem}")),
            },
            Event::Usage(usage) => self.write_custom(&mut out, "usage", CustomValue::Usage(UsageJson::from(&usage))),
            Event::End(reason) => {
                self.end_message(&mut out);
                self.stop_reason = Some(reason);
            }
            Event::Error(failure) => {
                self.start(&mut out);
                self.end_message(&mut out);
                write(&mut out, &AgUiEvent::RunError { message: &failure.message, code: &failure.code });
                self.failed = true;
            }
            raw @ Event::Raw(_) => return Some(raw),
            Event::Frame(_) => {}
        }
        (!out.is_empty()).then(|| Event::Raw(out.into_bytes()))
    }

    /// `RUN_STARTED`, the first event the client takes.
    fn start(&mut self, out: &mut String) {
        if !self.started {
            self.started = true;
            write(out, &AgUiEvent::RunStarted { thread_id: &self.thread_id, run_id: &self.run_id });
        }
    }

    /// A text delta, in the open message or a new one. An empty delta is not
    /// written: the protocol refuses it.
    fn write_text(&mut self, out: &mut String, text: &str) {
        if text.is_empty() {
            return;
        }
        self.start(out);
        let message_id = match &self.open_message {
            Some(message_id) => message_id.clone(),
            None => {
                let message_id = self.next_message_id();
                write(out, &AgUiEvent::TextMessageStart { message_id: &message_id, role: "assistant" });
                self.open_message = Some(message_id.clone());
                message_id
            }
        };
        write(out, &AgUiEvent::TextMessageContent { message_id: &message_id, delta: text });
    }

    /// `msg-<run id>`, then, for text after that message ended, `-2`, `-3`...:
    /// the client keeps each message under its id.
    fn next_message_id(&mut self) -> String {
        self.messages += 1;
        match self.messages {
            1 => format!("msg-{}", self.run_id),
            n => format!("msg-{}-{n}", self.run_id),
        }
    }

    fn end_message(&mut self, out: &mut String) {
        if let Some(message_id) = self.open_message.take() {
            write(out, &AgUiEvent::TextMessageEnd { message_id: &message_id });
        }
    }

    /// A `CUSTOM` event, after the open message's end: older clients
    /// (`@ag-ui/client` 0.0.30, for one) refuse any other event inside a
    /// message.
    fn write_custom(&mut self, out: &mut String, name: &'static str, value: CustomValue<'_>) {
        self.start(out);
        self.end_message(out);
        write(out, &AgUiEvent::Custom { name, value });
    }
}

/// One SSE event, `data: <json>`. Compact JSON has no line break, so one
/// `data:` line holds it.
fn write(out: &mut String, event: &AgUiEvent<'_>) {
    out.push_str("data: ");
    out.push_str(&serde_json::to_string(event).expect("plain data serialises"));
    out.push_str("\n\n");
}

streamhost_guest::export_transform!(AgUi);

#[cfg(test)]
mod tests {
    use streamhost_guest::Usage;

    use super::*;

    fn open_with(session_id: Option<&str>, settings: &str) -> AgUi {
        let context = StreamContext {
            plugin: "ag-ui".into(),
            user_id: Some("u1".into()),
            session_id: session_id.map(str::to_string),
        };
        // A run id of the test's own: the default is the clock's.
        let settings = match settings {
            "{}" => r#"{"runId":"run-streamhost"}"#,
            settings => settings,
        };
        AgUi::open(context, settings).unwrap()
    }

    fn open() -> AgUi {
        open_with(Some("s1"), "{}")
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
    fn run(agent: &mut AgUi, batches: Vec<Vec<Event>>) -> String {
        let mut body = String::new();
        for batch in batches {
            body.push_str(&text_of(agent.push(batch).unwrap()));
        }
        body + &text_of(agent.finish().unwrap())
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
    fn an_answer_is_one_message_in_one_run() {
        let body = run(
            &mut open(),
            vec![
                vec![Event::Metadata(r#"{"provider":"echo","model":"echo"}"#.into()), Event::Text("Hel".into())],
                vec![Event::Text("lo".into())],
                vec![Event::End("end_turn".into()), Event::Usage(usage())],
            ],
        );
        assert_eq!(
            body,
            "data: {\"type\":\"RUN_STARTED\",\"threadId\":\"s1\",\"runId\":\"run-streamhost\"}\n\n\
             data: {\"type\":\"CUSTOM\",\"name\":\"metadata\",\"value\":{\"provider\":\"echo\",\"model\":\"echo\"}}\n\n\
             data: {\"type\":\"TEXT_MESSAGE_START\",\"messageId\":\"msg-run-streamhost\",\"role\":\"assistant\"}\n\n\
             data: {\"type\":\"TEXT_MESSAGE_CONTENT\",\"messageId\":\"msg-run-streamhost\",\"delta\":\"Hel\"}\n\n\
             data: {\"type\":\"TEXT_MESSAGE_CONTENT\",\"messageId\":\"msg-run-streamhost\",\"delta\":\"lo\"}\n\n\
             data: {\"type\":\"TEXT_MESSAGE_END\",\"messageId\":\"msg-run-streamhost\"}\n\n\
             data: {\"type\":\"CUSTOM\",\"name\":\"usage\",\"value\":\
             {\"inputTokens\":5,\"outputTokens\":9,\"totalTokens\":14,\"latencyMs\":0}}\n\n\
             data: {\"type\":\"RUN_FINISHED\",\"threadId\":\"s1\",\"runId\":\"run-streamhost\",\
             \"result\":{\"stopReason\":\"end_turn\"}}\n\n"
        );
    }

    #[test]
    fn status_is_a_custom_event_written_as_it_arrives() {
        let mut agent = open();
        let out = agent.push(vec![Event::Status("running lookup_order".into()), Event::Text("Yes".into())]).unwrap();
        assert_eq!(out.len(), 2, "one raw event per event");
        assert_eq!(
            text_of(out),
            "data: {\"type\":\"RUN_STARTED\",\"threadId\":\"s1\",\"runId\":\"run-streamhost\"}\n\n\
             data: {\"type\":\"CUSTOM\",\"name\":\"status\",\"value\":{\"message\":\"running lookup_order\"}}\n\n\
             data: {\"type\":\"TEXT_MESSAGE_START\",\"messageId\":\"msg-run-streamhost\",\"role\":\"assistant\"}\n\n\
             data: {\"type\":\"TEXT_MESSAGE_CONTENT\",\"messageId\":\"msg-run-streamhost\",\"delta\":\"Yes\"}\n\n"
        );
    }

    #[test]
    fn the_thread_is_the_session_else_the_setting_else_fixed() {
        let started = |agent: &mut AgUi| text_of(agent.push(vec![Event::Status("x".into())]).unwrap());
        let settings = r#"{"threadId":"t9","runId":"r7"}"#;
        assert!(
            started(&mut open_with(Some("s1"), settings))
                .starts_with("data: {\"type\":\"RUN_STARTED\",\"threadId\":\"s1\",\"runId\":\"r7\"}\n\n")
        );
        assert!(
            started(&mut open_with(None, settings))
                .starts_with("data: {\"type\":\"RUN_STARTED\",\"threadId\":\"t9\",\"runId\":\"r7\"}\n\n")
        );
        assert!(started(&mut open_with(None, "{}")).starts_with(
            "data: {\"type\":\"RUN_STARTED\",\"threadId\":\"thread-streamhost\",\"runId\":\"run-streamhost\"}\n\n"
        ));
    }

    #[test]
    fn the_message_id_follows_the_run_id() {
        let mut agent = open_with(Some("s1"), r#"{"runId":"r7"}"#);
        let body = run(
            &mut agent,
            vec![vec![Event::Text("a".into()), Event::End("end_turn".into()), Event::Text("b".into())]],
        );
        assert!(body.contains("{\"type\":\"TEXT_MESSAGE_END\",\"messageId\":\"msg-r7\"}"), "{body}");
        assert!(body.contains("{\"type\":\"TEXT_MESSAGE_START\",\"messageId\":\"msg-r7-2\",\"role\":\"assistant\"}"));
        assert!(body.ends_with(
            "data: {\"type\":\"TEXT_MESSAGE_END\",\"messageId\":\"msg-r7-2\"}\n\n\
             data: {\"type\":\"RUN_FINISHED\",\"threadId\":\"s1\",\"runId\":\"r7\",\"result\":{\"stopReason\":\"end_turn\"}}\n\n"
        ));
    }

    #[test]
    fn other_events_end_the_open_message_and_text_goes_on_in_the_next() {
        let mut agent = open();
        agent.push(vec![Event::Text("Let me look.".into())]).unwrap();
        let out = agent.push(vec![Event::Status("running lookup_order".into()), Event::Text("Found it.".into())]);
        assert_eq!(
            text_of(out.unwrap()),
            "data: {\"type\":\"TEXT_MESSAGE_END\",\"messageId\":\"msg-run-streamhost\"}\n\n\
             data: {\"type\":\"CUSTOM\",\"name\":\"status\",\"value\":{\"message\":\"running lookup_order\"}}\n\n\
             data: {\"type\":\"TEXT_MESSAGE_START\",\"messageId\":\"msg-run-streamhost-2\",\"role\":\"assistant\"}\n\n\
             data: {\"type\":\"TEXT_MESSAGE_CONTENT\",\"messageId\":\"msg-run-streamhost-2\",\"delta\":\"Found it.\"}\n\n"
        );
        // A routed turn's usage comes before its end: the message is ended once.
        let out = agent.push(vec![Event::Usage(usage()), Event::End("end_turn".into())]).unwrap();
        assert_eq!(
            text_of(out),
            "data: {\"type\":\"TEXT_MESSAGE_END\",\"messageId\":\"msg-run-streamhost-2\"}\n\n\
             data: {\"type\":\"CUSTOM\",\"name\":\"usage\",\"value\":\
             {\"inputTokens\":5,\"outputTokens\":9,\"totalTokens\":14,\"latencyMs\":0}}\n\n"
        );
    }

    #[test]
    fn an_error_ends_the_message_then_the_run_and_nothing_follows() {
        let mut agent = open();
        agent.push(vec![Event::Text("Half".into())]).unwrap();
        let out = agent
            .push(vec![
                Event::Error(error("model_stream_error", "the model stopped")),
                Event::Text("more".into()),
                Event::Raw(b"late".to_vec()),
            ])
            .unwrap();
        assert_eq!(
            text_of(out),
            "data: {\"type\":\"TEXT_MESSAGE_END\",\"messageId\":\"msg-run-streamhost\"}\n\n\
             data: {\"type\":\"RUN_ERROR\",\"message\":\"the model stopped\",\"code\":\"model_stream_error\"}\n\n"
        );
        assert!(agent.push(Vec::new()).unwrap().is_empty(), "no keep-alive after the end");
        assert!(agent.finish().unwrap().is_empty());
    }

    #[test]
    fn an_error_first_still_starts_the_run() {
        let mut agent = open();
        assert_eq!(
            text_of(agent.push(vec![Event::Error(error("throttled", "slow down"))]).unwrap()),
            "data: {\"type\":\"RUN_STARTED\",\"threadId\":\"s1\",\"runId\":\"run-streamhost\"}\n\n\
             data: {\"type\":\"RUN_ERROR\",\"message\":\"slow down\",\"code\":\"throttled\"}\n\n"
        );
    }

    #[test]
    fn empty_text_is_never_written() {
        let mut agent = open();
        assert!(agent.push(vec![Event::Text(String::new())]).unwrap().is_empty());
        assert_eq!(
            run(&mut agent, vec![]),
            "data: {\"type\":\"RUN_STARTED\",\"threadId\":\"s1\",\"runId\":\"run-streamhost\"}\n\n\
             data: {\"type\":\"RUN_FINISHED\",\"threadId\":\"s1\",\"runId\":\"run-streamhost\"}\n\n"
        );
    }

    #[test]
    fn metadata_keeps_its_order_and_loses_its_line_breaks() {
        let mut agent = open();
        agent.started = true;
        let out = agent.push(vec![Event::Metadata("{\"z\":1,\n \"a\":[1, 2]}".into())]).unwrap();
        assert_eq!(
            text_of(out),
            "data: {\"type\":\"CUSTOM\",\"name\":\"metadata\",\"value\":{\"z\":1,\"a\":[1,2]}}\n\n"
        );
        assert!(agent.push(vec![Event::Metadata("not json".into())]).unwrap().is_empty());
    }

    #[test]
    fn a_tick_is_a_comment_and_frames_are_dropped() {
        let mut agent = open();
        assert_eq!(text_of(agent.push(Vec::new()).unwrap()), ": keep-alive\n\n");
        assert!(agent.push(vec![Event::Frame(b"{}".to_vec())]).unwrap().is_empty());
        assert_eq!(text_of(agent.push(vec![Event::Raw(b"as is".to_vec())]).unwrap()), "as is");
    }

    #[test]
    fn unknown_or_mistyped_settings_are_refused() {
        let context = || StreamContext { plugin: "ag-ui".into(), user_id: None, session_id: None };
        for settings in [r#"{"id":"x"}"#, r#"{"runId":7}"#, r#"{"thread_id":"t"}"#] {
            let Err(refusal) = AgUi::open(context(), settings) else { panic!("{settings} accepted") };
            assert_eq!(refusal.code, "invalid_config", "{settings}");
        }
    }
}
