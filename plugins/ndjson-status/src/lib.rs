//! `ndjson-status`: formats a tool's progress stream as NDJSON lines with a
//! timestamp each:
//!
//! ```text
//! {"type":"status","payload":{"message":"Analysing (2/3)"},"timestamp":"2026-11-22T07:40:00.521Z"}
//! {"type":"result","payload":{"rows":1200},"timestamp":"2026-11-22T07:40:01.323Z"}
//! ```
//!
//! Status events become `status` lines as they arrive. The text is the
//! result: at the end it becomes one `result` line, its payload the text's
//! JSON object, or `{"text": …}` when it is not one. Metadata becomes
//! `metadata` lines; a failure an `error` line (and no result). Timestamps
//! are when the line was formatted, in UTC.
//!
//! With the setting `{"layout":"tool-executor"}` the lines are those a SAM
//! agent's tool executor reads (`sam-lambda-tools`): numeric timestamps
//! (seconds since the epoch), no metadata lines, and the result as a
//! `ToolResult`:
//!
//! ```text
//! {"type":"status","payload":{"message":"Step 1/2"},"timestamp":1704067200.1}
//! {"type":"heartbeat","payload":{},"timestamp":1704067205.1}
//! {"type":"result","payload":{"tool_result":{"_schema":"ToolResult","_schema_version":"1.0","status":"success","message":"Done","data":null,"data_objects":[]}},"timestamp":1704067206.2}
//! ```
//!
//! A failure is `{"type":"error","payload":{"error":…,"error_code":…},…}`.
//! With `"heartbeatMs": M` an empty push (the host's tick when the source has
//! been silent for the pipeline's `idleMs`) is answered with a `heartbeat`
//! line once M ms have passed since the last line.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use streamhost_guest::json::ErrorJson;
use streamhost_guest::{ErrorInfo, Event, StreamContext, Transform, error};

#[derive(Serialize)]
struct Line<T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    payload: T,
    /// ISO 8601 text, or seconds since the epoch in the tool-executor layout.
    timestamp: Value,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
struct Settings {
    layout: Layout,
    heartbeat_ms: u64,
}

/// The shape of the lines: the `layout` setting.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Layout {
    /// ISO 8601 timestamps, metadata lines, the text's object as the result
    /// (the default).
    #[default]
    Lines,
    /// What a SAM tool executor reads: epoch-second timestamps, a
    /// `ToolResult`, heartbeats.
    ToolExecutor,
}

/// The `tool_result` of a tool-executor `result` line: SAM's `ToolResult`.
#[derive(Serialize)]
struct ToolResult {
    #[serde(rename = "_schema")]
    schema: &'static str,
    #[serde(rename = "_schema_version")]
    schema_version: &'static str,
    status: &'static str,
    message: String,
    data: Value,
    data_objects: [Value; 0],
}

#[derive(Serialize)]
struct ToolResultPayload {
    tool_result: ToolResult,
}

#[derive(Serialize)]
struct ToolError<'a> {
    error: &'a str,
    error_code: &'a str,
}

/// Where the time comes from: the wall clock, or a test's.
type Clock = Box<dyn Fn() -> SystemTime>;

pub struct NdjsonStatus {
    layout: Layout,
    /// How long a silence a tick must follow to earn a heartbeat; `None`
    /// for none.
    heartbeat: Option<Duration>,
    clock: Clock,
    /// When the last line was written (or the stream opened).
    last_line: SystemTime,
    text: String,
    failed: bool,
}

impl Default for NdjsonStatus {
    fn default() -> Self {
        Self::with_clock(Settings::default(), Box::new(SystemTime::now))
    }
}

impl Transform for NdjsonStatus {
    fn open(_context: StreamContext, settings: &str) -> Result<Self, ErrorInfo> {
        let settings: Settings = serde_json::from_str(settings)
            .map_err(|problem| error("invalid_config", format!("ndjson-status settings: {problem}")))?;
        Ok(Self::with_clock(settings, Box::new(SystemTime::now)))
    }

    fn content_type(&self) -> Option<String> {
        Some("application/x-ndjson".into())
    }

    fn push(&mut self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
        if events.is_empty() {
            return Ok(self.heartbeat().into_iter().collect());
        }
        Ok(events.into_iter().filter_map(|event| self.format(event)).collect())
    }

    fn finish(&mut self) -> Result<Vec<Event>, ErrorInfo> {
        if self.failed {
            return Ok(Vec::new());
        }
        let text = std::mem::take(&mut self.text);
        let object = match serde_json::from_str::<Value>(&text) {
            Ok(object @ Value::Object(_)) => Some(object),
            _ => None,
        };
        Ok(vec![match self.layout {
            Layout::Lines => self.line("result", object.unwrap_or_else(|| json!({ "text": text }))),
            Layout::ToolExecutor => {
                let tool_result = ToolResult {
                    schema: "ToolResult",
                    schema_version: "1.0",
                    status: "success",
                    message: text,
                    data: object.unwrap_or(Value::Null),
                    data_objects: [],
                };
                self.line("result", ToolResultPayload { tool_result })
            }
        }])
    }
}

impl NdjsonStatus {
    fn with_clock(settings: Settings, clock: Clock) -> Self {
        let heartbeat = match (settings.layout, settings.heartbeat_ms) {
            (Layout::ToolExecutor, ms) if ms > 0 => Some(Duration::from_millis(ms)),
            // Only the tool executor knows heartbeat lines.
            _ => None,
        };
        Self { layout: settings.layout, heartbeat, last_line: clock(), clock, text: String::new(), failed: false }
    }

    fn format(&mut self, event: Event) -> Option<Event> {
        match (self.layout, event) {
            (_, Event::Status(message)) => Some(self.line("status", json!({ "message": message }))),
            (_, Event::Text(text)) => {
                self.text.push_str(&text);
                None
            }
            (Layout::Lines, Event::Metadata(metadata)) => {
                let payload = serde_json::from_str::<Value>(&metadata).unwrap_or(Value::String(metadata));
                Some(self.line("metadata", payload))
            }
            // The executor reads no metadata lines.
            (Layout::ToolExecutor, Event::Metadata(_)) => None,
            (layout, Event::Error(error)) => {
                self.failed = true;
                Some(match layout {
                    Layout::Lines => self.line("error", ErrorJson::from(&error)),
                    Layout::ToolExecutor => {
                        self.line("error", ToolError { error: &error.message, error_code: &error.code })
                    }
                })
            }
            (_, raw @ Event::Raw(_)) => Some(raw),
            (_, Event::Usage(_) | Event::End(_) | Event::Frame(_)) => None,
        }
    }

    /// A tick's answer: a heartbeat line when they are on and the stream has
    /// been quiet for long enough.
    fn heartbeat(&mut self) -> Option<Event> {
        let interval = self.heartbeat.filter(|_| !self.failed)?;
        let quiet = (self.clock)().duration_since(self.last_line).unwrap_or_default();
        (quiet >= interval).then(|| self.line("heartbeat", json!({})))
    }

    fn line(&mut self, kind: &'static str, payload: impl Serialize) -> Event {
        let now = (self.clock)();
        self.last_line = now;
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let timestamp = match self.layout {
            Layout::Lines => Value::String(iso8601(since_epoch.as_millis() as i64)),
            // Python's `time.time()`, as the executor's tools write it.
            Layout::ToolExecutor => json!(epoch_seconds(since_epoch)),
        };
        let mut bytes = serde_json::to_vec(&Line { kind, payload, timestamp }).expect("plain data serialises");
        bytes.push(b'\n');
        Event::Raw(bytes)
    }
}

/// Seconds since the epoch to the millisecond, as a float: `1704067200.1`.
fn epoch_seconds(since_epoch: Duration) -> f64 {
    since_epoch.as_millis() as f64 / 1000.0
}

fn iso8601(millis: i64) -> String {
    let (days, day_millis) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let (hours, minutes, seconds, ms) =
        (day_millis / 3_600_000, day_millis / 60_000 % 60, day_millis / 1000 % 60, day_millis % 1000);
    format!("{year:04}-{month:02}-{day:02}T{hours:02}:{minutes:02}:{seconds:02}.{ms:03}Z")
}

streamhost_guest::export_transform!(NdjsonStatus);

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(events: Vec<Event>) -> Vec<Value> {
        events
            .into_iter()
            .map(|event| match event {
                Event::Raw(bytes) => serde_json::from_slice(&bytes).unwrap(),
                other => panic!("a formatter returns raw bytes, not {other:?}"),
            })
            .collect()
    }

    #[test]
    fn status_lines_then_the_result() {
        let mut format =
            NdjsonStatus::open(StreamContext { plugin: "ndjson-status".into(), user_id: None, session_id: None }, "{}")
                .unwrap();
        let out = lines(
            format
                .push(vec![
                    Event::Status("Step 1".into()),
                    Event::Text(r#"{"rows":"#.into()),
                    Event::Text("12}".into()),
                ])
                .unwrap(),
        );
        assert_eq!(
            (out.len(), &out[0]["type"], &out[0]["payload"]),
            (1, &json!("status"), &json!({ "message": "Step 1" }))
        );
        let result = lines(format.finish().unwrap());
        assert_eq!((&result[0]["type"], &result[0]["payload"]), (&json!("result"), &json!({ "rows": 12 })));
        assert!(result[0]["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn text_that_is_not_an_object_is_wrapped_and_errors_end_it() {
        let mut format = NdjsonStatus::default();
        format.push(vec![Event::Text("plain".into())]).unwrap();
        assert_eq!(lines(format.finish().unwrap())[0]["payload"], json!({ "text": "plain" }));
        let mut failed = NdjsonStatus::default();
        let error =
            lines(failed.push(vec![Event::Error(ErrorInfo { code: "x".into(), message: "y".into() })]).unwrap());
        assert_eq!(error[0]["payload"], json!({ "code": "x", "message": "y" }));
        assert!(failed.finish().unwrap().is_empty());
    }

    #[test]
    fn formats_timestamps() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_795_333_200_123), "2026-11-22T07:40:00.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    use std::cell::Cell;
    use std::rc::Rc;

    /// A tool-executor formatter on a clock the test moves by hand, from
    /// 2024-01-01T00:00:00.100Z.
    fn executor(settings: &str) -> (NdjsonStatus, Rc<Cell<Duration>>) {
        let now = Rc::new(Cell::new(Duration::from_millis(1_704_067_200_100)));
        let clock = now.clone();
        let settings: Settings = serde_json::from_str(settings).unwrap();
        (NdjsonStatus::with_clock(settings, Box::new(move || UNIX_EPOCH + clock.get())), now)
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
    fn tool_executor_layout_writes_a_tool_result() {
        let (mut format, now) = executor(r#"{"layout":"tool-executor"}"#);
        let mut out = format
            .push(vec![
                Event::Metadata(r#"{"agent":"report"}"#.into()),
                Event::Status("Step 1/2".into()),
                Event::Text("Done".into()),
            ])
            .unwrap();
        now.set(now.get() + Duration::from_millis(1100));
        out.extend(format.finish().unwrap());
        assert_eq!(
            text_of(out),
            concat!(
                r#"{"type":"status","payload":{"message":"Step 1/2"},"timestamp":1704067200.1}"#,
                "\n",
                r#"{"type":"result","payload":{"tool_result":{"_schema":"ToolResult","_schema_version":"1.0","status":"success","#,
                r#""message":"Done","data":null,"data_objects":[]}},"timestamp":1704067201.2}"#,
                "\n",
            )
        );
    }

    #[test]
    fn tool_executor_result_data_is_the_texts_object() {
        let (mut format, _) = executor(r#"{"layout":"tool-executor"}"#);
        format.push(vec![Event::Text(r#"{"rows":12}"#.into())]).unwrap();
        let result = lines(format.finish().unwrap());
        assert_eq!(result[0]["payload"]["tool_result"]["data"], json!({ "rows": 12 }));
        assert_eq!(result[0]["payload"]["tool_result"]["message"], json!(r#"{"rows":12}"#));
    }

    #[test]
    fn tool_executor_errors_end_the_stream() {
        let (mut format, _) = executor(r#"{"layout":"tool-executor","heartbeatMs":1}"#);
        let out =
            format.push(vec![Event::Error(ErrorInfo { code: "timeout".into(), message: "too slow".into() })]).unwrap();
        assert_eq!(
            text_of(out),
            "{\"type\":\"error\",\"payload\":{\"error\":\"too slow\",\"error_code\":\"timeout\"},\"timestamp\":1704067200.1}\n"
        );
        assert!(format.push(Vec::new()).unwrap().is_empty());
        assert!(format.finish().unwrap().is_empty());
    }

    #[test]
    fn ticks_earn_a_heartbeat_after_a_quiet_interval() {
        let (mut format, now) = executor(r#"{"layout":"tool-executor","heartbeatMs":5000}"#);
        let advance = |ms| now.set(now.get() + Duration::from_millis(ms));
        advance(4999);
        assert!(format.push(Vec::new()).unwrap().is_empty(), "too soon after the start");
        advance(1);
        assert_eq!(
            text_of(format.push(Vec::new()).unwrap()),
            "{\"type\":\"heartbeat\",\"payload\":{},\"timestamp\":1704067205.1}\n"
        );
        advance(3000);
        format.push(vec![Event::Status("busy".into())]).unwrap();
        advance(4000);
        assert!(format.push(Vec::new()).unwrap().is_empty(), "a status line is a sign of life too");
        advance(1000);
        assert_eq!(lines(format.push(Vec::new()).unwrap())[0]["type"], json!("heartbeat"));
    }

    #[test]
    fn no_heartbeats_unless_asked_or_in_the_default_layout() {
        for settings in [r#"{"layout":"tool-executor"}"#, r#"{"heartbeatMs":10}"#] {
            let (mut format, now) = executor(settings);
            now.set(now.get() + Duration::from_secs(60));
            assert!(format.push(Vec::new()).unwrap().is_empty(), "{settings}");
        }
    }

    #[test]
    fn settings_are_checked() {
        let context = || StreamContext { plugin: "ndjson-status".into(), user_id: None, session_id: None };
        assert!(NdjsonStatus::open(context(), r#"{"layout":"lines","heartbeatMs":0}"#).is_ok());
        for settings in [r#"{"layout":"sam"}"#, r#"{"heartbeatMs":-1}"#, r#"{"heartbeat":1}"#] {
            let Err(error) = NdjsonStatus::open(context(), settings) else { panic!("{settings} was accepted") };
            assert_eq!(error.code, "invalid_config");
        }
    }
}
