//! `text-only`: only the text of a stream, as `text/plain`, then trailing
//! lines: the token usage and the session id.
//!
//! ```text
//! Hello there
//! usage: input=2 output=3 total=5 latency_ms=75
//! session: s1
//! ```
//!
//! The session id is the one an upstream reports in metadata (`sessionId`),
//! else the caller's. Status and metadata events are dropped; a failure is
//! written as an `error:` line.
//!
//! With the setting `{"layout":"agentcore"}` the trailer is the one of an
//! AgentCore Runtime proxy's "transformed" response: a `----------` line,
//! the usage as JSON, then the session id as JSON, with no final newline:
//!
//! With `{"layout":"plain"}` there is no trailer: the text alone, as a
//! client that reads a model's answer as plain text expects (seed 002's).
//!
//! ```text
//! Hello there
//! ----------
//! {"usage":{"inputTokens":2,"outputTokens":3,"totalTokens":5},"metrics":{"latencyMs":75}}
//! {"runtimeSessionId":"s1"}
//! ```

use serde_json::Value;
use streamhost_guest::{ErrorInfo, Event, StreamContext, Transform, Usage, error};

/// How the lines after the text are written: the `layout` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `usage: …` and `session: …` lines (the default).
    Lines,
    /// An AgentCore Runtime proxy's: `----------`, then JSON lines.
    AgentCore,
    /// None: the text alone.
    Plain,
}

impl Layout {
    /// Reads the `layout` setting from the plugin's settings object.
    fn from_settings(settings: &str) -> Result<Self, ErrorInfo> {
        let invalid = |problem: String| error("invalid_config", format!("text-only settings: {problem}"));
        let settings: serde_json::Map<String, Value> =
            serde_json::from_str(settings).map_err(|problem| invalid(problem.to_string()))?;
        if let Some(unknown) = settings.keys().find(|key| *key != "layout") {
            return Err(invalid(format!("unknown setting `{unknown}`, expected `layout`")));
        }
        match settings.get("layout").map(|layout| layout.as_str()) {
            None | Some(Some("lines")) => Ok(Self::Lines),
            Some(Some("agentcore")) => Ok(Self::AgentCore),
            Some(Some("plain")) => Ok(Self::Plain),
            Some(_) => Err(invalid("`layout` is \"lines\", \"agentcore\" or \"plain\"".into())),
        }
    }
}

pub struct Text {
    layout: Layout,
    session_id: Option<String>,
    usage: Option<Usage>,
    /// Whether the output so far ends inside a line, so a trailer needs a
    /// line break before it.
    mid_line: bool,
}

impl Transform for Text {
    fn open(context: StreamContext, settings: &str) -> Result<Self, ErrorInfo> {
        Ok(Self {
            layout: Layout::from_settings(settings)?,
            session_id: context.session_id,
            usage: None,
            mid_line: false,
        })
    }

    fn content_type(&self) -> Option<String> {
        Some("text/plain; charset=utf-8".into())
    }

    fn push(&mut self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
        Ok(events.into_iter().filter_map(|event| self.format(event)).collect())
    }

    fn finish(&mut self) -> Result<Vec<Event>, ErrorInfo> {
        let (usage, session_id) = (self.usage.take(), self.session_id.take());
        let trailer = match self.layout {
            Layout::Lines => {
                let mut lines = String::new();
                if let Some(usage) = usage {
                    lines.push_str(&format!(
                        "usage: input={} output={} total={} latency_ms={}\n",
                        usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.latency_ms
                    ));
                }
                if let Some(session_id) = session_id {
                    lines.push_str(&format!("session: {session_id}\n"));
                }
                lines
            }
            Layout::AgentCore => {
                let mut lines = vec!["----------".to_string()];
                lines.extend(usage.as_ref().map(agentcore_usage));
                lines.extend(session_id.map(|id| format!("{{\"runtimeSessionId\":{}}}", Value::String(id))));
                // The original proxy ends its response without a newline.
                lines.join("\n")
            }
            Layout::Plain => String::new(),
        };
        Ok(self.trailer(trailer).into_iter().collect())
    }
}

impl Text {
    fn format(&mut self, event: Event) -> Option<Event> {
        match event {
            Event::Text(text) if !text.is_empty() => {
                self.mid_line = !text.ends_with('\n');
                Some(Event::Raw(text.into_bytes()))
            }
            Event::Metadata(json) => {
                if let Some(session_id) = upstream_session_id(&json) {
                    self.session_id = Some(session_id);
                }
                None
            }
            Event::Usage(usage) => {
                self.usage = Some(usage);
                None
            }
            Event::Error(error) => self.trailer(format!("error: {}: {}\n", error.code, error.message)),
            raw @ Event::Raw(_) => Some(raw),
            Event::Text(_) | Event::Status(_) | Event::End(_) | Event::Frame(_) => None,
        }
    }

    /// Lines after the text start on a line of their own.
    fn trailer(&mut self, lines: String) -> Option<Event> {
        if lines.is_empty() {
            return None;
        }
        let newline = if std::mem::take(&mut self.mid_line) { "\n" } else { "" };
        Some(Event::Raw(format!("{newline}{lines}").into_bytes()))
    }
}

/// The usage as an AgentCore Runtime reports it, `metrics` apart. Written by
/// hand so the keys keep this order whatever serde_json's features.
fn agentcore_usage(usage: &Usage) -> String {
    let mut tokens = format!(
        "\"inputTokens\":{},\"outputTokens\":{},\"totalTokens\":{}",
        usage.input_tokens, usage.output_tokens, usage.total_tokens
    );
    // Bedrock adds the prompt-cache counts only when there are some.
    if usage.cache_read_input_tokens != 0 {
        tokens.push_str(&format!(",\"cacheReadInputTokens\":{}", usage.cache_read_input_tokens));
    }
    if usage.cache_write_input_tokens != 0 {
        tokens.push_str(&format!(",\"cacheWriteInputTokens\":{}", usage.cache_write_input_tokens));
    }
    format!("{{\"usage\":{{{tokens}}},\"metrics\":{{\"latencyMs\":{}}}}}", usage.latency_ms)
}

fn upstream_session_id(metadata: &str) -> Option<String> {
    let value: Value = serde_json::from_str(metadata).ok()?;
    value.get("sessionId")?.as_str().map(str::to_string)
}

streamhost_guest::export_transform!(Text);

#[cfg(test)]
mod tests {
    use super::*;

    fn context(session_id: Option<&str>) -> StreamContext {
        StreamContext { plugin: "text-only".into(), user_id: None, session_id: session_id.map(Into::into) }
    }

    fn usage(input: u32, output: u32, latency_ms: u32) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            total_tokens: input + output,
            latency_ms,
            cache_read_input_tokens: 0,
            cache_write_input_tokens: 0,
        }
    }

    fn run(session_id: Option<&str>, events: Vec<Event>) -> String {
        run_with("{}", session_id, events)
    }

    fn run_with(settings: &str, session_id: Option<&str>, events: Vec<Event>) -> String {
        let mut text = Text::open(context(session_id), settings).unwrap();
        let mut out = text.push(events).unwrap();
        out.extend(text.finish().unwrap());
        out.into_iter()
            .map(|event| match event {
                Event::Raw(bytes) => String::from_utf8(bytes).unwrap(),
                other => panic!("a formatter returns raw bytes, not {other:?}"),
            })
            .collect()
    }

    #[test]
    fn writes_text_then_usage_and_session() {
        let usage = usage(1, 2, 40);
        let out = run(
            Some("caller"),
            vec![
                Event::Metadata(r#"{"model":"m"}"#.into()),
                Event::Status("thinking".into()),
                Event::Text("Hel".into()),
                Event::Text("lo".into()),
                Event::End("end_turn".into()),
                Event::Usage(usage),
            ],
        );
        assert_eq!(out, "Hello\nusage: input=1 output=2 total=3 latency_ms=40\nsession: caller\n");
    }

    #[test]
    fn prefers_the_upstream_session_id() {
        let out =
            run(Some("caller"), vec![Event::Metadata(r#"{"sessionId":"up-1"}"#.into()), Event::Text("x\n".into())]);
        assert_eq!(out, "x\nsession: up-1\n");
    }

    #[test]
    fn writes_an_error_on_its_own_line() {
        let out = run(None, vec![Event::Text("partial".into()), Event::Error(streamhost_guest::error("e", "m"))]);
        assert_eq!(out, "partial\nerror: e: m\n");
    }

    const AGENTCORE: &str = r#"{"layout":"agentcore"}"#;

    #[test]
    fn agentcore_layout_ends_like_the_transformed_proxy_response() {
        let out = run_with(
            AGENTCORE,
            Some("caller"),
            vec![
                Event::Metadata(r#"{"provider":"upstream","sessionId":"afa31b91"}"#.into()),
                Event::Text("Hello! How can".into()),
                Event::Text(" I help?".into()),
                Event::End("end_turn".into()),
                Event::Usage(usage(8, 30, 909)),
            ],
        );
        assert_eq!(
            out,
            concat!(
                "Hello! How can I help?\n----------\n",
                r#"{"usage":{"inputTokens":8,"outputTokens":30,"totalTokens":38},"metrics":{"latencyMs":909}}"#,
                "\n",
                r#"{"runtimeSessionId":"afa31b91"}"#,
            )
        );
    }

    #[test]
    fn agentcore_layout_leaves_out_what_it_does_not_have() {
        assert_eq!(run_with(AGENTCORE, None, vec![Event::Text("Hi".into())]), "Hi\n----------");
        let cached = Usage { cache_read_input_tokens: 5, ..usage(1, 2, 3) };
        assert_eq!(
            run_with(AGENTCORE, Some("a\"b"), vec![Event::Text("Hi\n".into()), Event::Usage(cached)]),
            concat!(
                "Hi\n----------\n",
                r#"{"usage":{"inputTokens":1,"outputTokens":2,"totalTokens":3,"cacheReadInputTokens":5},"metrics":{"latencyMs":3}}"#,
                "\n",
                r#"{"runtimeSessionId":"a\"b"}"#,
            )
        );
    }

    #[test]
    fn agentcore_layout_writes_errors_as_the_default_does() {
        let out = run_with(
            AGENTCORE,
            Some("s1"),
            vec![Event::Text("partial".into()), Event::Error(streamhost_guest::error("e", "m"))],
        );
        assert_eq!(out, "partial\nerror: e: m\n----------\n{\"runtimeSessionId\":\"s1\"}");
    }

    #[test]
    fn rejects_unknown_settings() {
        for settings in [r#"{"layout":"fancy"}"#, r#"{"layout":1}"#, r#"{"style":"agentcore"}"#, "[]"] {
            let Err(error) = Text::open(context(None), settings) else { panic!("{settings} was accepted") };
            assert_eq!(error.code, "invalid_config");
        }
        assert!(Text::open(context(None), r#"{"layout":"lines"}"#).is_ok());
        let mut plain = Text::open(context(Some("s")), r#"{"layout":"plain"}"#).unwrap();
        plain.push(vec![Event::Text("just this".into())]).unwrap();
        assert!(plain.finish().unwrap().is_empty(), "the plain layout has no trailer");
    }
}
