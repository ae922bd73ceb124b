//! `decode-mistral`: decodes the raw stream of Mistral AI models on Bedrock
//! (`--provider bedrock-raw`, model `mistral.…`). The family streams two
//! shapes, both read here:
//!
//! - the text-completion models (`mistral.mistral-7b-instruct-v0:2`,
//!   `mistral.mixtral-8x7b-instruct-v0:1`, `mistral.mistral-large-2402-v1:0`):
//!
//!   ```json
//!   {"outputs":[{"text":"Hel","stop_reason":null}]}
//!   {"outputs":[{"text":"lo","stop_reason":"stop"}],"amazon-bedrock-invocationMetrics":{…}}
//!   ```
//!
//! - the chat-completion model Mistral Large 2407
//!   (`mistral.mistral-large-2407-v1:0`):
//!
//!   ```json
//!   {"id":"…","object":"chat.completion.chunk","choices":[{"index":0,"message":{"role":"assistant","content":"Hel"},"stop_reason":null}]}
//!   ```
//!
//!   Recordings of OpenAI-style servers name the choice's message `delta`
//!   and its stop reason `finish_reason`; both are read too.
//!
//! Each output's `text` and each choice's `content` become text; the stop
//! reason the end (`stop` → `end_turn`, `length` and `model_length` →
//! `max_tokens`, `tool_calls` → `tool_use`, any other as it is); the last
//! chunk's invocation metrics the usage. Any field may be `null`, which
//! counts as absent. A choice's `tool_calls` are not decoded: the stream
//! ends with `tool_use` but the calls themselves are left out.
//!
//! Sources for the shapes: the Bedrock user guide's "Mistral AI text
//! completion" page (response `{"outputs":[{"text","stop_reason"}]}`,
//! `stop_reason` `stop` | `length`) and "Mistral AI chat completion" /
//! "Mistral AI Large (24.07)" pages (`choices[].message.content`,
//! `stop_reason`); the AWS SDK code examples
//! (`awsdocs/aws-doc-sdk-examples`,
//! `dotnetv3/Bedrock-runtime/Models/Mistral/InvokeModelWithResponseStream`)
//! reading `chunk["outputs"][0]["text"]`; client code streaming
//! `mistral.mistral-large-2407-v1:0` that reads
//! `chunk["choices"][0]["message"]["content"]`; and LiteLLM's Bedrock invoke
//! decoder (`BerriAI/litellm`, `litellm/llms/bedrock/chat/invoke_handler.py`),
//! which reads `outputs[0].text`.

use serde::Deserialize;
use streamhost_guest::bedrock::{Decoder, parse};
use streamhost_guest::{ErrorInfo, Event};

#[derive(Deserialize)]
struct Chunk {
    /// The text-completion models' shape.
    outputs: Option<Vec<Output>>,
    /// Mistral Large 2407's chat-completion shape.
    choices: Option<Vec<Choice>>,
}

#[derive(Deserialize)]
struct Output {
    text: Option<String>,
    stop_reason: Option<String>,
}

/// Two fields for each pair of names rather than `#[serde(alias)]`: an alias
/// makes a chunk that carries both names (`"finish_reason":"stop",
/// "stop_reason":null`, as vLLM-style servers send) a duplicate-field error.
#[derive(Deserialize)]
struct Choice {
    message: Option<Message>,
    delta: Option<Message>,
    stop_reason: Option<String>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
}

/// The [`Decoder`] of Mistral AI models (both shapes); stateless, each chunk stands alone.
#[derive(Default)]
pub struct Mistral;

impl Decoder for Mistral {
    fn decode(&mut self, chunk: &[u8]) -> Result<Vec<Event>, ErrorInfo> {
        let chunk: Chunk = parse(chunk)?;
        let outputs = chunk.outputs.into_iter().flatten().map(|output| (output.text, output.stop_reason));
        let choices = chunk.choices.into_iter().flatten().map(|choice| {
            let content = choice.message.or(choice.delta).and_then(|message| message.content);
            (content, choice.stop_reason.or(choice.finish_reason))
        });
        Ok(outputs
            .chain(choices)
            .flat_map(|(text, reason)| {
                let text = text.filter(|text| !text.is_empty()).map(Event::Text);
                text.into_iter().chain(reason.map(|reason| Event::End(end_reason(reason))))
            })
            .collect())
    }
}

/// Mistral's stop reasons in Bedrock's names.
fn end_reason(reason: String) -> String {
    match reason.as_str() {
        "stop" => "end_turn".into(),
        "length" | "model_length" => "max_tokens".into(),
        "tool_calls" => "tool_use".into(),
        _ => reason,
    }
}

streamhost_guest::export_transform!(streamhost_guest::bedrock::Decoding<Mistral>);

#[cfg(test)]
mod tests {
    use streamhost_guest::bedrock::Decoding;
    use streamhost_guest::{StreamContext, Transform, Usage};

    use super::*;

    fn decode(chunk: &str) -> Vec<Event> {
        Mistral.decode(chunk.as_bytes()).unwrap()
    }

    #[test]
    fn decodes_text_completion_outputs_stop_and_usage() {
        let context = StreamContext { plugin: "decode-mistral".into(), user_id: None, session_id: None };
        let mut decoder = Decoding::<Mistral>::open(context, "{}").unwrap();
        let chunks = [
            r#"{"outputs":[{"text":"Hel","stop_reason":null}]}"#,
            r#"{"outputs":[{"text":"lo","stop_reason":"length"}],"amazon-bedrock-invocationMetrics":{"inputTokenCount":9,"outputTokenCount":2,"invocationLatency":250,"firstByteLatency":90}}"#,
        ];
        let events = chunks.iter().map(|chunk| Event::Frame(chunk.as_bytes().to_vec())).collect();
        let usage = Usage {
            input_tokens: 9,
            output_tokens: 2,
            total_tokens: 11,
            latency_ms: 250,
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
    fn decodes_chat_completion_choices() {
        let first = r#"{"id":"a1","object":"chat.completion.chunk","choices":[{"index":0,"message":{"role":"assistant","content":"Hel"},"stop_reason":null}]}"#;
        assert_eq!(decode(first), [Event::Text("Hel".into())]);
        let last = r#"{"id":"a1","object":"chat.completion.chunk","choices":[{"index":0,"message":{"role":"assistant","content":"lo"},"stop_reason":"stop"}]}"#;
        assert_eq!(decode(last), [Event::Text("lo".into()), Event::End("end_turn".into())]);
    }

    #[test]
    fn reads_delta_and_finish_reason_as_message_and_stop_reason() {
        let delta = r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
        assert_eq!(decode(delta), [Event::Text("Hi".into())]);
        let both = r#"{"choices":[{"index":0,"delta":{"content":""},"finish_reason":"length","stop_reason":null}]}"#;
        assert_eq!(decode(both), [Event::End("max_tokens".into())]);
    }

    #[test]
    fn a_tool_call_ends_the_stream_as_tool_use_without_the_call() {
        let call = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"","tool_calls":[{"id":"t1","function":{"name":"f","arguments":"{}"}}]},"stop_reason":"tool_calls"}]}"#;
        assert_eq!(decode(call), [Event::End("tool_use".into())]);
    }

    #[test]
    fn null_is_absent() {
        assert!(decode(r#"{"outputs":[{"text":null,"stop_reason":null}]}"#).is_empty());
        assert!(decode(r#"{"outputs":null,"choices":null}"#).is_empty());
        assert!(decode(r#"{"id":null,"object":null,"choices":[{"index":null,"message":null,"delta":null,"stop_reason":null,"finish_reason":null}]}"#).is_empty());
        assert!(
            decode(r#"{"choices":[{"message":{"role":null,"content":null,"tool_calls":null},"stop_reason":null}]}"#)
                .is_empty()
        );
        assert_eq!(decode(r#"{"outputs":[{"text":null,"stop_reason":"stop"}]}"#), [Event::End("end_turn".into())]);
    }
}
