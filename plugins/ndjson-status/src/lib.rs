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

use serde::Serialize;
use serde_json::{Value, json};
use streamhost_guest::json::ErrorJson;
use streamhost_guest::{ErrorInfo, Event, StreamContext, Transform};

#[derive(Serialize)]
struct Line<T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    payload: T,
    timestamp: String,
}

#[derive(Default)]
pub struct NdjsonStatus {
    text: String,
    failed: bool,
}

impl Transform for NdjsonStatus {
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
        let text = std::mem::take(&mut self.text);
        let payload = match serde_json::from_str::<Value>(&text) {
            Ok(object @ Value::Object(_)) => object,
            _ => json!({ "text": text }),
        };
        Ok(vec![line("result", payload)])
    }
}

impl NdjsonStatus {
    fn format(&mut self, event: Event) -> Option<Event> {
        match event {
            Event::Status(message) => Some(line("status", json!({ "message": message }))),
            Event::Text(text) => {
                self.text.push_str(&text);
                None
            }
            Event::Metadata(metadata) => {
                let payload = serde_json::from_str::<Value>(&metadata).unwrap_or(Value::String(metadata));
                Some(line("metadata", payload))
            }
            Event::Error(error) => {
                self.failed = true;
                Some(line("error", ErrorJson::from(&error)))
            }
            raw @ Event::Raw(_) => Some(raw),
            Event::Usage(_) | Event::End(_) | Event::Frame(_) => None,
        }
    }
}

fn line(kind: &'static str, payload: impl Serialize) -> Event {
    let mut bytes = serde_json::to_vec(&Line { kind, payload, timestamp: now() }).expect("plain data serialises");
    bytes.push(b'\n');
    Event::Raw(bytes)
}

/// The time now as ISO 8601 in UTC, to the millisecond.
fn now() -> String {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    iso8601(since_epoch.as_millis() as i64)
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
    let (hours, minutes, seconds, ms) = (day_millis / 3_600_000, day_millis / 60_000 % 60, day_millis / 1000 % 60, day_millis % 1000);
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
        let mut format = NdjsonStatus::open(StreamContext { plugin: "ndjson-status".into(), user_id: None, session_id: None }, "{}").unwrap();
        let out = lines(format.push(vec![Event::Status("Step 1".into()), Event::Text(r#"{"rows":"#.into()), Event::Text("12}".into())]).unwrap());
        assert_eq!((out.len(), &out[0]["type"], &out[0]["payload"]), (1, &json!("status"), &json!({ "message": "Step 1" })));
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
        let error = lines(failed.push(vec![Event::Error(ErrorInfo { code: "x".into(), message: "y".into() })]).unwrap());
        assert_eq!(error[0]["payload"], json!({ "code": "x", "message": "y" }));
        assert!(failed.finish().unwrap().is_empty());
    }

    #[test]
    fn formats_timestamps() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1795333200_123), "2026-11-22T07:40:00.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
