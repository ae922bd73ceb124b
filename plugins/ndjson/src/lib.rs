//! `ndjson`: formats a stream as newline-delimited JSON in the multi-agent
//! orchestrator's schema, one object per line:
//!
//! ```text
//! {"type":"metadata","data":{"model":"echo"}}
//! {"type":"chunk","data":"Hel"}
//! {"type":"complete","data":{"stopReason":"end_turn","usage":{...}}}
//! ```
//!
//! `complete` is written when the stream finishes, so it carries the stop
//! reason and the usage that models report after the last text. A failed
//! stream ends with `{"type":"error","data":{"code":…,"message":…}}` instead.

use serde::Serialize;
use serde_json::value::RawValue;
use streamhost_guest::json::{ErrorJson, UsageJson};
use streamhost_guest::{ErrorInfo, Event, StreamContext, Transform, Usage};

/// One output line; fields serialise in this order.
#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    data: T,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Complete {
    stop_reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageJson>,
}

#[derive(Serialize)]
struct Status {
    message: String,
}


#[derive(Default)]
pub struct Ndjson {
    stop_reason: Option<String>,
    usage: Option<Usage>,
    failed: bool,
}

impl Transform for Ndjson {
    fn open(_context: StreamContext, _settings: &str) -> Result<Self, ErrorInfo> {
        Ok(Self::default())
    }

    fn content_type(&self) -> Option<String> {
        Some("application/x-ndjson".into())
    }

    fn push(&mut self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
        Ok(events.into_iter().filter_map(|event| self.format(event)).collect())
    }

    fn finish(&mut self) -> Result<Vec<Event>, ErrorInfo> {
        if self.failed {
            return Ok(Vec::new());
        }
        let complete = Complete {
            stop_reason: self.stop_reason.take().unwrap_or_else(|| "end_turn".into()),
            usage: self.usage.take().as_ref().map(UsageJson::from),
        };
        Ok(vec![line("complete", complete)])
    }
}

impl Ndjson {
    fn format(&mut self, event: Event) -> Option<Event> {
        match event {
            Event::Metadata(json) => Some(line("metadata", as_json(json))),
            Event::Text(text) => Some(line("chunk", text)),
            Event::Status(message) => Some(line("status", Status { message })),
            Event::Usage(usage) => {
                self.usage = Some(usage);
                None
            }
            Event::End(reason) => {
                self.stop_reason = Some(reason);
                None
            }
            Event::Error(error) => {
                self.failed = true;
                Some(line("error", ErrorJson::from(&error)))
            }
            raw @ Event::Raw(_) => Some(raw),
            Event::Frame(_) => None,
        }
    }
}

/// Metadata is JSON by contract and is embedded as it came; anything else is
/// kept as a string rather than dropped.
fn as_json(json: String) -> Box<RawValue> {
    RawValue::from_string(json.clone())
        .or_else(|_| serde_json::value::to_raw_value(&json))
        .expect("a string serialises")
}

fn line(kind: &str, data: impl Serialize) -> Event {
    let mut bytes = serde_json::to_vec(&Line { kind, data }).expect("plain data serialises");
    bytes.push(b'\n');
    Event::Raw(bytes)
}

streamhost_guest::export_transform!(Ndjson);

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> StreamContext {
        StreamContext { plugin: "ndjson".into(), user_id: None, session_id: None }
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
    fn formats_a_whole_stream_in_the_orchestrator_schema() {
        let mut ndjson = Ndjson::open(context(), "{}").unwrap();
        let usage = Usage { input_tokens: 1, output_tokens: 2, total_tokens: 3, latency_ms: 4, cache_read_input_tokens: 0, cache_write_input_tokens: 0 };
        let mut out = ndjson
            .push(vec![
                Event::Metadata(r#"{"model":"m"}"#.into()),
                Event::Text("Hi \"you\"\n".into()),
                Event::End("max_tokens".into()),
                Event::Usage(usage),
            ])
            .unwrap();
        out.extend(ndjson.finish().unwrap());
        assert_eq!(
            text_of(out),
            concat!(
                "{\"type\":\"metadata\",\"data\":{\"model\":\"m\"}}\n",
                "{\"type\":\"chunk\",\"data\":\"Hi \\\"you\\\"\\n\"}\n",
                "{\"type\":\"complete\",\"data\":{\"stopReason\":\"max_tokens\",\"usage\":",
                "{\"inputTokens\":1,\"outputTokens\":2,\"totalTokens\":3,\"latencyMs\":4}}}\n",
            )
        );
    }

    #[test]
    fn an_error_replaces_the_complete_line() {
        let mut ndjson = Ndjson::open(context(), "{}").unwrap();
        let out = ndjson.push(vec![Event::Error(streamhost_guest::error("throttled", "slow down"))]).unwrap();
        assert_eq!(text_of(out), "{\"type\":\"error\",\"data\":{\"code\":\"throttled\",\"message\":\"slow down\"}}\n");
        assert!(ndjson.finish().unwrap().is_empty());
    }
}
