//! `decode-anthropic`: decodes the raw stream of Anthropic Claude models on
//! Bedrock (`--provider bedrock-raw`, model `anthropic.claude…`): the
//! Messages API's streaming events, one per chunk.
//!
//! ```json
//! {"type":"message_start","message":{"model":"claude-3-haiku","usage":{"input_tokens":9,"output_tokens":1}}}
//! {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}
//! {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}
//! {"type":"message_stop","amazon-bedrock-invocationMetrics":{…}}
//! ```
//!
//! Text deltas become text; `message_delta`'s stop reason the end; the last
//! chunk's invocation metrics the usage; an `error` event an error event.
//! Thinking and tool-use deltas are not text and are left out. Any field but
//! `type` may be `null`, which counts as absent.

use serde::Deserialize;
use streamhost_guest::bedrock::{Decoder, parse};
use streamhost_guest::{ErrorInfo, Event, error};

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Chunk {
    ContentBlockDelta {
        delta: Option<Delta>,
    },
    MessageDelta {
        delta: Option<MessageDelta>,
    },
    Error {
        error: Option<ApiError>,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Delta {
    TextDelta {
        text: Option<String>,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDelta {
    stop_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct ApiError {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

/// The code of an `error` event that does not say its type.
const UNTYPED_ERROR: &str = "model_stream_error";

#[derive(Default)]
pub struct Anthropic;

impl Decoder for Anthropic {
    fn decode(&mut self, chunk: &[u8]) -> Result<Vec<Event>, ErrorInfo> {
        Ok(match parse(chunk)? {
            Chunk::ContentBlockDelta { delta: Some(Delta::TextDelta { text: Some(text) }) } => vec![Event::Text(text)],
            Chunk::MessageDelta { delta: Some(MessageDelta { stop_reason: Some(reason) }) } => vec![Event::End(reason)],
            // An error chunk is an error even when its details are null.
            Chunk::Error { error: api_error } => {
                let ApiError { kind, message } = api_error.unwrap_or_default();
                vec![Event::Error(error(kind.as_deref().unwrap_or(UNTYPED_ERROR), message.unwrap_or_default()))]
            }
            _ => Vec::new(),
        })
    }
}

streamhost_guest::export_transform!(streamhost_guest::bedrock::Decoding<Anthropic>);

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunk: &str) -> Vec<Event> {
        Anthropic.decode(chunk.as_bytes()).unwrap()
    }

    #[test]
    fn decodes_messages_events() {
        assert!(decode(r#"{"type":"message_start","message":{"usage":{"input_tokens":9}}}"#).is_empty());
        assert!(
            decode(r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#).is_empty()
        );
        assert_eq!(
            decode(r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}"#),
            [Event::Text("Hel".into())]
        );
        assert!(
            decode(
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{"}}"#
            )
            .is_empty()
        );
        assert_eq!(
            decode(r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":5}}"#),
            [Event::End("max_tokens".into())]
        );
        let overloaded = decode(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
        assert_eq!(overloaded, [Event::Error(error("overloaded_error", "Overloaded"))]);
    }

    #[test]
    fn null_is_absent() {
        assert!(decode(r#"{"type":"message_start","message":{"model":null,"usage":{"input_tokens":null,"output_tokens":null}}}"#).is_empty());
        assert!(
            decode(r#"{"type":"content_block_delta","index":null,"delta":{"type":"text_delta","text":null}}"#)
                .is_empty()
        );
        assert!(decode(r#"{"type":"content_block_delta","index":0,"delta":null}"#).is_empty());
        assert!(
            decode(r#"{"type":"message_delta","delta":{"stop_reason":null,"stop_sequence":null},"usage":null}"#)
                .is_empty()
        );
        assert!(decode(r#"{"type":"message_delta","delta":null}"#).is_empty());
        assert_eq!(
            decode(r#"{"type":"error","error":{"type":null,"message":null}}"#),
            [Event::Error(error(UNTYPED_ERROR, ""))]
        );
        assert_eq!(decode(r#"{"type":"error","error":null}"#), [Event::Error(error(UNTYPED_ERROR, ""))]);
    }
}
