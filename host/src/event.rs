//! The event type (defined by the WIT, shared with plugins) and the host's
//! own encodings: for events that reach the end of a chain unformatted, and
//! for an error when the formatter itself is what failed.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error_code::Code;
pub use crate::wit::{ErrorInfo, Event, Usage};

/// What the host answers with when no plugin in the chain is a formatter.
pub const DEFAULT_CONTENT_TYPE: &str = "application/x-ndjson";

/// An error with a host's code ([`ErrorCode`](crate::error_code::ErrorCode))
/// or a plugin's: what an error event carries, and what a host import
/// returns to a plugin.
pub fn error_info<'a>(code: impl Into<Code<'a>>, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo { code: code.into().as_str().to_string(), message: message.into() }
}

/// An `error` event: see [`error_info`].
pub fn error_event<'a>(code: impl Into<Code<'a>>, message: impl Into<String>) -> Event {
    Event::Error(error_info(code, message))
}

/// The host's encoding for a response's content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// One `{"type":…,"data":…}` object per line.
    Ndjson,
    /// `event: <type>` / `data: <json>` frames.
    Sse,
    /// Text as it is; an error as a line of its own.
    Text,
    /// A standard API's stream (`pipeline::standard_api`), whose formatter
    /// writes every event as `raw` bytes: those as they are, and an error
    /// that reaches the end unwritten (the formatter itself failed) as
    /// `event: error` / `data: {"type":"error","error":{"type","code","message"}}`,
    /// which the OpenAI and the Anthropic SDKs both raise; nothing else.
    StandardApiSse,
}

impl Encoding {
    /// The encoding for a response of `content_type`: SSE for
    /// `text/event-stream`, text for any other `text/*`, else NDJSON.
    /// Its parameters (after `;`) and case are ignored.
    pub fn for_content_type(content_type: &str) -> Self {
        let media_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match media_type.as_str() {
            "text/event-stream" => Encoding::Sse,
            media_type if media_type.starts_with("text/") => Encoding::Text,
            _ => Encoding::Ndjson,
        }
    }

    /// Appends `event` to `out`. Raw bytes are already encoded.
    pub fn encode(self, event: &Event, out: &mut Vec<u8>) {
        if let Event::Raw(bytes) = event {
            out.extend_from_slice(bytes);
            return;
        }
        match self {
            Encoding::Ndjson => {
                serde_json::to_writer(&mut *out, &EventJson::from(event)).expect("writing to a Vec");
                out.push(b'\n');
            }
            Encoding::Sse => {
                let (kind, data) = type_and_data(event);
                out.extend_from_slice(format!("event: {kind}\ndata: {data}\n\n").as_bytes());
            }
            Encoding::StandardApiSse => {
                if let Event::Error(error) = event {
                    let data = serde_json::json!({
                        "type": "error",
                        "error": { "type": "api_error", "code": error.code, "message": error.message },
                    });
                    out.extend_from_slice(format!("event: error\ndata: {data}\n\n").as_bytes());
                }
            }
            Encoding::Text => match event {
                Event::Text(text) => out.extend_from_slice(text.as_bytes()),
                Event::Frame(bytes) => out.extend_from_slice(bytes),
                Event::Error(error) => {
                    out.extend_from_slice(format!("\nerror: {}: {}\n", error.code, error.message).as_bytes())
                }
                _ => {}
            },
        }
    }
}

/// An event as its type name and its data, the two halves of its JSON
/// shape (`"text"`, `"Hel"`): a detached run's log keeps them apart, as SSE's
/// `event:` and `data:` fields.
pub fn type_and_data(event: &Event) -> (String, serde_json::Value) {
    let mut json = match serde_json::to_value(EventJson::from(event)) {
        Ok(json) => json,
        // Metadata that no reader takes (a plugin's is checked, see
        // `check_metadata`): kept as its text rather than a panic.
        Err(_) => {
            let text = if let Event::Metadata(text) = event { text.as_str() } else { "" };
            serde_json::json!({ "type": "metadata", "data": text })
        }
    };
    let kind = json["type"].as_str().unwrap_or("event").to_string();
    (kind, json["data"].take())
}

/// A plugin's metadata event whose text is not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a metadata event must be a JSON object; got {excerpt:?} ({reason})")]
pub struct InvalidMetadata {
    /// Why it is not one: serde_json's error, or the kind of JSON value.
    reason: String,
    /// Its first 60 characters.
    excerpt: String,
}

/// Holds plugins' metadata events to the contract: each must be a JSON
/// object, and is rewritten without whitespace outside its strings.
///
/// Why: formatters (`ndjson`, `sse`, the standard APIs') embed a metadata
/// string in their own JSON as it is, so text that is not JSON would break
/// every client's parser, and a pretty printer's spaces (Python's
/// `json.dumps` writes `{"a": 1}`) would reach the client. Key order and
/// number spelling are kept: only insignificant whitespace goes.
///
/// # Errors
/// [`InvalidMetadata`] for the first metadata event that is not a JSON
/// object; the events before it may have been rewritten.
pub fn check_metadata(events: &mut [Event]) -> Result<(), InvalidMetadata> {
    for event in events {
        if let Event::Metadata(json) = event {
            check_object(json)?;
            if let Some(compact) = without_whitespace(json) {
                *json = compact;
            }
        }
    }
    Ok(())
}

/// Parsed whole, not only scanned: what passes is JSON every reader takes
/// (no lone surrogate escape, no number past `f64`, nesting within serde's
/// limit), as the host's own encoders re-read it.
fn check_object(json: &str) -> Result<(), InvalidMetadata> {
    let invalid = |reason: String| InvalidMetadata { reason, excerpt: json.chars().take(60).collect() };
    match serde_json::from_str::<serde_json::Value>(json).map_err(|error| invalid(error.to_string()))? {
        serde_json::Value::Object(_) => Ok(()),
        _ => Err(invalid("not an object".to_string())),
    }
}

/// `json` (valid JSON) without the whitespace between its tokens, or `None`
/// when it has none.
fn without_whitespace(json: &str) -> Option<String> {
    let is_space = |byte: &u8| matches!(byte, b' ' | b'\t' | b'\n' | b'\r');
    if !json.as_bytes().iter().any(is_space) {
        return None;
    }
    let mut compact = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for character in json.chars() {
        if in_string {
            match character {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if matches!(character, ' ' | '\t' | '\n' | '\r') {
            continue;
        } else if character == '"' {
            in_string = true;
        }
        compact.push(character);
    }
    (compact.len() != json.len()).then_some(compact)
}

/// The JSON shape of an event: `{"type":"text","data":"Hel"}`.
#[derive(Serialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
enum EventJson<'a> {
    Text(&'a str),
    Status(&'a str),
    Metadata(&'a RawValue),
    Usage(UsageJson),
    End(&'a str),
    Error {
        code: &'a str,
        message: &'a str,
    },
    /// An undecoded source frame, as text, so that a stream without a
    /// decoder still shows what the source sent.
    Frame(std::borrow::Cow<'a, str>),
    /// Metadata that is not JSON, kept as a string rather than dropped.
    #[serde(rename = "metadata")]
    MetadataText(&'a str),
    /// A formatter's output, as text (in a detached run's event log; a
    /// response writes the bytes as they are).
    Raw(std::borrow::Cow<'a, str>),
}

/// The JSON shape of a usage event's data, as the host writes it and a
/// golden fixture reads it back:
/// `{"inputTokens","outputTokens","totalTokens","latencyMs","cacheReadInputTokens"?,"cacheWriteInputTokens"?}`
/// (the cache counts only when not 0; `latencyMs` and the cache counts may
/// be left out when read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageJson {
    /// Tokens of the input.
    pub input_tokens: u32,
    /// Tokens generated.
    pub output_tokens: u32,
    /// Input and output together.
    pub total_tokens: u32,
    /// The call's latency, in ms.
    #[serde(default)]
    pub latency_ms: u32,
    /// Input tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_read_input_tokens: u32,
    /// Input tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_input_tokens: u32,
}

impl From<&Usage> for UsageJson {
    fn from(usage: &Usage) -> Self {
        UsageJson {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            total_tokens: usage.total_tokens,
            latency_ms: usage.latency_ms,
            cache_read_input_tokens: usage.cache_read_input_tokens,
            cache_write_input_tokens: usage.cache_write_input_tokens,
        }
    }
}

impl From<&UsageJson> for Usage {
    fn from(usage: &UsageJson) -> Self {
        Usage {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            total_tokens: usage.total_tokens,
            latency_ms: usage.latency_ms,
            cache_read_input_tokens: usage.cache_read_input_tokens,
            cache_write_input_tokens: usage.cache_write_input_tokens,
        }
    }
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}

impl<'a> From<&'a Event> for EventJson<'a> {
    fn from(event: &'a Event) -> Self {
        match event {
            Event::Text(text) => EventJson::Text(text),
            Event::Status(message) => EventJson::Status(message),
            Event::Metadata(json) => match serde_json::from_str::<&RawValue>(json) {
                Ok(raw) => EventJson::Metadata(raw),
                Err(_) => EventJson::MetadataText(json),
            },
            Event::Usage(usage) => EventJson::Usage(usage.into()),
            Event::End(reason) => EventJson::End(reason),
            Event::Error(error) => EventJson::Error { code: &error.code, message: &error.message },
            Event::Frame(bytes) => EventJson::Frame(String::from_utf8_lossy(bytes)),
            Event::Raw(bytes) => EventJson::Raw(String::from_utf8_lossy(bytes)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(encoding: Encoding, events: &[Event]) -> String {
        let mut out = Vec::new();
        for event in events {
            encoding.encode(event, &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    fn metadata(json: &str) -> Result<Event, InvalidMetadata> {
        let mut events = [Event::Metadata(json.to_string())];
        check_metadata(&mut events)?;
        Ok(events[0].clone())
    }

    #[test]
    fn metadata_is_kept_compact_with_its_key_order_strings_and_numbers() {
        let pretty = "{\n  \"z\": 1.50, \"a\": [1, 2],\t\"s\": \"a b \\\" c\"\r\n}";
        assert_eq!(metadata(pretty), Ok(Event::Metadata(r#"{"z":1.50,"a":[1,2],"s":"a b \" c"}"#.into())));
        assert_eq!(metadata(r#"{"done":true}"#), Ok(Event::Metadata(r#"{"done":true}"#.into())));
        assert_eq!(metadata(r#"{"text": "two  spaces"}"#), Ok(Event::Metadata(r#"{"text":"two  spaces"}"#.into())));
    }

    #[test]
    fn metadata_that_is_not_a_json_object_is_refused_with_what_it_was() {
        for (json, reason) in [("[1, 2]", "not an object"), ("\"text\"", "not an object"), ("{\"a\":", "EOF")] {
            let error = metadata(json).unwrap_err().to_string();
            assert!(error.contains(reason) && error.contains(&format!("{json:?}")), "{json}: {error}");
        }
        let mut events = [Event::Text("not checked".into()), Event::Metadata("x".into())];
        assert!(check_metadata(&mut events).is_err());
        // What a scan would let through and a reader then fails on.
        let deep = format!("{{\"d\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        for unreadable in [r#"{"n":1e400}"#, r#"{"s":"\ud83d"}"#, deep.as_str()] {
            assert!(metadata(unreadable).is_err(), "{unreadable}");
        }
        let (kind, data) = type_and_data(&Event::Metadata(r#"{"n":1e400}"#.into()));
        assert_eq!((kind.as_str(), data), ("metadata", serde_json::json!(r#"{"n":1e400}"#)), "kept as text, no panic");
    }

    #[test]
    fn ndjson_writes_type_then_data() {
        let events = [
            Event::Metadata(r#"{"model":"echo"}"#.into()),
            Event::Text("a\"b".into()),
            Event::Usage(Usage {
                input_tokens: 1,
                output_tokens: 2,
                total_tokens: 3,
                latency_ms: 4,
                cache_read_input_tokens: 5,
                cache_write_input_tokens: 0,
            }),
            Event::End("end_turn".into()),
            error_event(Code::Plugin("x"), "y"),
            Event::Raw(b"as is\n".to_vec()),
            Event::Frame(br#"{"generation":"x"}"#.to_vec()),
        ];
        assert_eq!(
            encoded(Encoding::Ndjson, &events),
            concat!(
                "{\"type\":\"metadata\",\"data\":{\"model\":\"echo\"}}\n",
                "{\"type\":\"text\",\"data\":\"a\\\"b\"}\n",
                "{\"type\":\"usage\",\"data\":{\"inputTokens\":1,\"outputTokens\":2,\"totalTokens\":3,\"latencyMs\":4,\"cacheReadInputTokens\":5}}\n",
                "{\"type\":\"end\",\"data\":\"end_turn\"}\n",
                "{\"type\":\"error\",\"data\":{\"code\":\"x\",\"message\":\"y\"}}\n",
                "as is\n",
                "{\"type\":\"frame\",\"data\":\"{\\\"generation\\\":\\\"x\\\"}\"}\n",
            )
        );
    }

    #[test]
    fn sse_and_text_encode_errors_in_their_own_format() {
        let error = [error_event(crate::error_code::ErrorCode::PluginTrapped, "boom")];
        assert_eq!(
            encoded(Encoding::Sse, &error),
            "event: error\ndata: {\"code\":\"plugin_trapped\",\"message\":\"boom\"}\n\n"
        );
        assert_eq!(encoded(Encoding::Text, &error), "\nerror: plugin_trapped: boom\n");
    }

    #[test]
    fn picks_the_encoding_by_media_type() {
        assert_eq!(Encoding::for_content_type("text/event-stream"), Encoding::Sse);
        assert_eq!(Encoding::for_content_type("text/plain; charset=utf-8"), Encoding::Text);
        assert_eq!(Encoding::for_content_type("application/x-ndjson"), Encoding::Ndjson);
        assert_eq!(Encoding::for_content_type("application/json"), Encoding::Ndjson);
    }
}
