//! `decode-nova`: decodes the raw stream of Amazon Nova models on Bedrock
//! (`--provider bedrock-raw`, model `amazon.nova-micro-v1:0`,
//! `amazon.nova-lite-v1:0`, `amazon.nova-pro-v1:0`, and the same shapes from
//! `amazon.nova-2-lite-v1:0`). Nova's InvokeModelWithResponseStream chunks are
//! ConverseStream's events as JSON, one per chunk:
//!
//! ```json
//! {"messageStart":{"role":"assistant"}}
//! {"contentBlockDelta":{"delta":{"text":"Hel"},"contentBlockIndex":0}}
//! {"contentBlockStop":{"contentBlockIndex":0}}
//! {"messageStop":{"stopReason":"end_turn"}}
//! {"metadata":{"usage":{"inputTokens":5,"outputTokens":2},"metrics":{},"trace":{}},"amazon-bedrock-invocationMetrics":{…}}
//! ```
//!
//! Text deltas become text; a reasoning delta
//! (`{"delta":{"reasoningContent":{"text":"…"}}}`) metadata
//! `{"reasoning":{"index":N,"text":"…"}}`, as the host's `bedrock` provider
//! writes ConverseStream's; `messageStop` the end, its stop reason passed
//! through (Nova already uses Bedrock's names: `end_turn`, `max_tokens`,
//! `stop_sequence`, `tool_use`, `content_filtered`, …), `end_turn` when it
//! has none. Nova's own `metadata.usage` is not a second usage: the
//! `amazon-bedrock-invocationMetrics` on the same, last chunk is the one
//! usage, read by `Decoding` as for every family. Tool use
//! (`contentBlockStart.start.toolUse`, `delta.toolUse.input`) is not decoded:
//! a stream that calls a tool ends with `tool_use` and nothing else of the
//! call. Any field may be `null`, which counts as absent.
//!
//! Sources for the shapes: the Amazon Nova user guide's "Streaming
//! responses" page (InvokeModelWithResponseStream reading
//! `chunk["contentBlockDelta"]["delta"]["text"]`, and the event types), and
//! its "Response structure highlights" (stop reasons, `reasoningContent`);
//! Bedrock's API reference for `ReasoningContentBlockDelta` (`text`);
//! AWS samples streaming Nova (`aws-samples/sample-amazon-bedrock-global-cris`,
//! `NonbiriTarsan/bedrock-book-nova`); LiteLLM's Bedrock invoke decoder
//! (`BerriAI/litellm`, `litellm/llms/bedrock/chat/invoke_handler.py`), which
//! unwraps `contentBlockDelta` for Nova; and a recorded last chunk quoted in
//! an open-source proxy's Bedrock provider, with `metadata` and
//! `amazon-bedrock-invocationMetrics` side by side.

use serde::Deserialize;
use serde_json::json;
use streamhost_guest::bedrock::{Decoder, parse};
use streamhost_guest::{ErrorInfo, Event};

/// The chunks that make events; `messageStart`, `contentBlockStart`,
/// `contentBlockStop` and `metadata` make none.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chunk {
    content_block_delta: Option<ContentBlockDelta>,
    message_stop: Option<MessageStop>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContentBlockDelta {
    delta: Option<Delta>,
    content_block_index: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delta {
    text: Option<String>,
    reasoning_content: Option<ReasoningDelta>,
}

#[derive(Deserialize)]
struct ReasoningDelta {
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop {
    stop_reason: Option<String>,
}

/// The [`Decoder`] of Amazon Nova models; stateless, each chunk stands alone.
#[derive(Default)]
pub struct Nova;

impl Decoder for Nova {
    fn decode(&mut self, chunk: &[u8]) -> Result<Vec<Event>, ErrorInfo> {
        let chunk: Chunk = parse(chunk)?;
        let mut events = Vec::new();
        if let Some(ContentBlockDelta { delta: Some(delta), content_block_index }) = chunk.content_block_delta {
            events.extend(delta.text.filter(|text| !text.is_empty()).map(Event::Text));
            let reasoning =
                delta.reasoning_content.and_then(|reasoning| reasoning.text).filter(|text| !text.is_empty());
            events.extend(reasoning.map(|text| {
                let index = content_block_index.unwrap_or(0);
                Event::Metadata(json!({ "reasoning": { "index": index, "text": text } }).to_string())
            }));
        }
        // A `messageStop` is the end even without a reason: the model did stop.
        if let Some(stop) = chunk.message_stop {
            events.push(Event::End(stop.stop_reason.unwrap_or_else(|| "end_turn".into())));
        }
        Ok(events)
    }
}

streamhost_guest::export_transform!(streamhost_guest::bedrock::Decoding<Nova>);

#[cfg(test)]
mod tests {
    use streamhost_guest::bedrock::Decoding;
    use streamhost_guest::{StreamContext, Transform, Usage};

    use super::*;

    fn decode(chunk: &str) -> Vec<Event> {
        Nova.decode(chunk.as_bytes()).unwrap()
    }

    #[test]
    fn decodes_a_whole_stream_with_one_usage() {
        let context = StreamContext { plugin: "decode-nova".into(), user_id: None, session_id: None };
        let mut decoder = Decoding::<Nova>::open(context, "{}").unwrap();
        let chunks = [
            r#"{"messageStart":{"role":"assistant"}}"#,
            r#"{"contentBlockDelta":{"delta":{"text":"Hel"},"contentBlockIndex":0}}"#,
            r#"{"contentBlockDelta":{"delta":{"text":"lo"},"contentBlockIndex":0}}"#,
            r#"{"contentBlockStop":{"contentBlockIndex":0}}"#,
            r#"{"messageStop":{"stopReason":"max_tokens"}}"#,
            r#"{"metadata":{"usage":{"inputTokens":5,"outputTokens":2},"metrics":{},"trace":{}},"amazon-bedrock-invocationMetrics":{"inputTokenCount":5,"outputTokenCount":2,"invocationLatency":420,"firstByteLatency":150}}"#,
        ];
        let events = chunks.iter().map(|chunk| Event::Frame(chunk.as_bytes().to_vec())).collect();
        let usage = Usage {
            input_tokens: 5,
            output_tokens: 2,
            total_tokens: 7,
            latency_ms: 420,
            cache_read_input_tokens: 0,
            cache_write_input_tokens: 0,
        };
        assert_eq!(
            decoder.push(events).unwrap(),
            [Event::Text("Hel".into()), Event::Text("lo".into()), Event::End("max_tokens".into()), Event::Usage(usage)]
        );
        let error = decoder.push(vec![Event::Frame(b"<html>".to_vec())]).unwrap_err();
        assert_eq!(error.code, "undecodable_chunk");
    }

    #[test]
    fn nova_metadata_alone_is_no_usage() {
        let context = StreamContext { plugin: "decode-nova".into(), user_id: None, session_id: None };
        let mut decoder = Decoding::<Nova>::open(context, "{}").unwrap();
        let metadata = br#"{"metadata":{"usage":{"inputTokens":5,"outputTokens":2},"metrics":{},"trace":{}}}"#;
        assert!(decoder.push(vec![Event::Frame(metadata.to_vec())]).unwrap().is_empty());
    }

    #[test]
    fn reasoning_is_metadata() {
        let reasoning =
            r#"{"contentBlockDelta":{"delta":{"reasoningContent":{"text":"Let \"x\" be"}},"contentBlockIndex":1}}"#;
        assert_eq!(decode(reasoning), [Event::Metadata(r#"{"reasoning":{"index":1,"text":"Let \"x\" be"}}"#.into())]);
    }

    #[test]
    fn stop_reasons_pass_through_and_tool_use_is_left_out() {
        assert!(
            decode(
                r#"{"contentBlockStart":{"start":{"toolUse":{"toolUseId":"t1","name":"f"}},"contentBlockIndex":1}}"#
            )
            .is_empty()
        );
        assert!(
            decode(r#"{"contentBlockDelta":{"delta":{"toolUse":{"input":"{\"a\":1}"}},"contentBlockIndex":1}}"#)
                .is_empty()
        );
        assert_eq!(decode(r#"{"messageStop":{"stopReason":"tool_use"}}"#), [Event::End("tool_use".into())]);
        assert_eq!(
            decode(r#"{"messageStop":{"stopReason":"content_filtered"}}"#),
            [Event::End("content_filtered".into())]
        );
    }

    #[test]
    fn null_is_absent() {
        assert!(decode(r#"{"messageStart":{"role":null}}"#).is_empty());
        assert!(decode(r#"{"contentBlockDelta":null,"messageStop":null}"#).is_empty());
        assert!(decode(r#"{"contentBlockDelta":{"delta":null,"contentBlockIndex":null}}"#).is_empty());
        assert!(
            decode(r#"{"contentBlockDelta":{"delta":{"text":null,"reasoningContent":null},"contentBlockIndex":0}}"#)
                .is_empty()
        );
        assert!(decode(r#"{"contentBlockDelta":{"delta":{"reasoningContent":{"text":null}}}}"#).is_empty());
        let reasoning =
            r#"{"contentBlockDelta":{"delta":{"reasoningContent":{"text":"hm"}},"contentBlockIndex":null}}"#;
        assert_eq!(decode(reasoning), [Event::Metadata(r#"{"reasoning":{"index":0,"text":"hm"}}"#.into())]);
        assert_eq!(decode(r#"{"messageStop":{"stopReason":null}}"#), [Event::End("end_turn".into())]);
        assert!(
            decode(r#"{"metadata":{"usage":{"inputTokens":null,"outputTokens":null},"metrics":null,"trace":null}}"#)
                .is_empty()
        );
    }
}
