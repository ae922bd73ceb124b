//! `text-only`: only the text of a stream, as `text/plain`, then two trailing
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

use streamhost_guest::{ErrorInfo, Event, StreamContext, Transform, Usage};

pub struct Text {
    session_id: Option<String>,
    usage: Option<Usage>,
    /// Whether the output so far ends inside a line, so a trailer needs a
    /// line break before it.
    mid_line: bool,
}

impl Transform for Text {
    fn open(context: StreamContext, _settings: &str) -> Result<Self, ErrorInfo> {
        Ok(Self { session_id: context.session_id, usage: None, mid_line: false })
    }

    fn content_type(&self) -> Option<String> {
        Some("text/plain; charset=utf-8".into())
    }

    fn push(&mut self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
        Ok(events.into_iter().filter_map(|event| self.format(event)).collect())
    }

    fn finish(&mut self) -> Result<Vec<Event>, ErrorInfo> {
        let mut trailer = String::new();
        if let Some(usage) = self.usage.take() {
            trailer.push_str(&format!(
                "usage: input={} output={} total={} latency_ms={}\n",
                usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.latency_ms
            ));
        }
        if let Some(session_id) = self.session_id.take() {
            trailer.push_str(&format!("session: {session_id}\n"));
        }
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

fn upstream_session_id(metadata: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(metadata).ok()?;
    value.get("sessionId")?.as_str().map(str::to_string)
}

streamhost_guest::export_transform!(Text);

#[cfg(test)]
mod tests {
    use super::*;

    fn run(session_id: Option<&str>, events: Vec<Event>) -> String {
        let context = StreamContext { plugin: "text-only".into(), user_id: None, session_id: session_id.map(Into::into) };
        let mut text = Text::open(context, "{}").unwrap();
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
        let usage = Usage { input_tokens: 1, output_tokens: 2, total_tokens: 3, latency_ms: 40, cache_read_input_tokens: 0, cache_write_input_tokens: 0 };
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
        let out = run(Some("caller"), vec![Event::Metadata(r#"{"sessionId":"up-1"}"#.into()), Event::Text("x\n".into())]);
        assert_eq!(out, "x\nsession: up-1\n");
    }

    #[test]
    fn writes_an_error_on_its_own_line() {
        let out = run(None, vec![Event::Text("partial".into()), Event::Error(streamhost_guest::error("e", "m"))]);
        assert_eq!(out, "partial\nerror: e: m\n");
    }
}
