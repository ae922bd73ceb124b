//! What a model source is asked: a conversation of text and tool blocks, the
//! tools the model may call, and the model options. A caller's request
//! becomes one (text only); an agent plugin's `model.start` builds one.

use serde_json::{Map, Value, json};

use super::{ModelOptions, ProviderError, ProviderKind};
use crate::conversation::{Content, MAX_TOOL_INPUT_DEPTH, Message, ModelMessage, ToolCall, ToolSpec, json_depth};
use crate::error_code::ErrorCode;
use crate::event::{Event, error_event};

/// One call to a model source.
#[derive(Debug, Clone)]
pub struct ModelCall {
    /// The system prompt, if any.
    pub system: Option<String>,
    /// The conversation, oldest first; the last message is the user's.
    pub messages: Vec<ModelMessage>,
    /// The tools the model may ask for.
    pub tools: Vec<ToolSpec>,
    /// The source, the model and its inference settings.
    pub options: ModelOptions,
    /// The caller's user id, for sources that take one (an agent runtime).
    pub user_id: Option<String>,
    /// The caller's session id, for sources that keep sessions.
    pub session_id: Option<String>,
}

impl ModelCall {
    /// The conversation as text messages, for sources that take no tools.
    pub fn text_messages(&self, kind: ProviderKind) -> Result<Vec<Message>, ProviderError> {
        let unsupported = || {
            ProviderError::InvalidRequest(format!(
                "the `{kind}` provider takes no tools; use `bedrock`, `openai` or `echo` for tool use"
            ))
        };
        if !self.tools.is_empty() {
            return Err(unsupported());
        }
        self.messages
            .iter()
            .map(|turn| {
                let texts = turn.content.iter().map(|block| match block {
                    Content::Text(text) => Ok(text.as_str()),
                    // Only the provider that made it reads it back.
                    Content::Reasoning { .. } | Content::RedactedReasoning(_) => Ok(""),
                    Content::ToolCall(_) | Content::ToolResult { .. } => Err(unsupported()),
                });
                Ok(Message { role: turn.role, content: texts.collect::<Result<String, _>>()? })
            })
            .collect()
    }
}

/// A whole tool call travels in the event stream as metadata
/// `{"toolUse":{"toolUseId":…,"name":…,"input":{…}}}`: what a caller of the
/// plain stream sees, and what an agent's `model-stream` turns into a
/// `tool-call`.
///
/// A call whose input nests deeper than [`MAX_TOOL_INPUT_DEPTH`] is the
/// model's failure, an `upstream_unexpected_content` error event: the host
/// could not carry it to the client and back.
pub fn tool_use_event(call: &ToolCall) -> Event {
    if json_depth(&call.input) > MAX_TOOL_INPUT_DEPTH {
        return error_event(
            ErrorCode::UpstreamUnexpectedContent,
            format!(
                "the model's call of `{}` has an input nested deeper than {MAX_TOOL_INPUT_DEPTH} levels",
                call.name
            ),
        );
    }
    Event::Metadata(json!({ "toolUse": { "toolUseId": call.id, "name": call.name, "input": call.input } }).to_string())
}

/// The tool call in a metadata event made by [`tool_use_event`].
pub fn tool_use_of(metadata: &str) -> Option<ToolCall> {
    let value: Map<String, Value> = serde_json::from_str(metadata).ok()?;
    let tool_use = value.get("toolUse")?;
    Some(ToolCall {
        id: tool_use.get("toolUseId")?.as_str()?.to_string(),
        name: tool_use.get("name")?.as_str()?.to_string(),
        input: tool_use.get("input")?.clone(),
    })
}

/// The reasoning a model stream sent before its tool calls, from its
/// `{"reasoning":{…}}` metadata events, put back together as blocks.
///
/// Bedrock refuses a tool loop's next request under extended thinking unless
/// the assistant turn that made the calls carries its reasoning blocks,
/// signatures included. An agent plugin sends back only the tool calls, so
/// the host keeps the blocks and puts them in front of those calls.
#[derive(Debug, Default)]
pub struct ReasoningBlocks {
    /// By content block index: text and signature so far, or redacted bytes.
    blocks: Vec<(Option<u64>, Content)>,
}

impl ReasoningBlocks {
    /// Takes in one metadata event's reasoning, if it has any.
    pub fn observe(&mut self, metadata: &str) {
        let Ok(value) = serde_json::from_str::<Value>(metadata) else { return };
        let Some(reasoning) = value.get("reasoning") else { return };
        let index = reasoning.get("index").and_then(Value::as_u64);
        if let Some(redacted) = reasoning.get("redactedContent").and_then(Value::as_str) {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD.decode(redacted).unwrap_or_default();
            self.blocks.push((index, Content::RedactedReasoning(bytes)));
            return;
        }
        let position =
            match self.blocks.iter().position(|(at, block)| *at == index && matches!(block, Content::Reasoning { .. }))
            {
                Some(position) => position,
                None => {
                    self.blocks.push((index, Content::Reasoning { text: String::new(), signature: None }));
                    self.blocks.len() - 1
                }
            };
        if let Content::Reasoning { text, signature } = &mut self.blocks[position].1 {
            text.push_str(reasoning.get("text").and_then(Value::as_str).unwrap_or_default());
            if let Some(signed) = reasoning.get("signature").and_then(Value::as_str) {
                *signature = Some(signed.to_string());
            }
        }
    }

    /// The blocks so far, in the order they began.
    pub fn blocks(&self) -> Vec<Content> {
        self.blocks.iter().map(|(_, block)| block.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_models_tool_call_nested_past_the_bound_is_an_error_event() {
        let mut input = json!(1);
        for _ in 0..MAX_TOOL_INPUT_DEPTH {
            input = json!({ "a": input });
        }
        let call = ToolCall { id: "t1".into(), name: "deep".into(), input };
        let Event::Error(error) = tool_use_event(&call) else { panic!("an error event") };
        assert_eq!(error.code, "upstream_unexpected_content");
        assert!(error.message.contains("`deep` has an input nested deeper than 32 levels"), "{}", error.message);
    }

    #[test]
    fn a_tool_call_survives_the_event_stream() {
        let call = ToolCall { id: "t1".into(), name: "add".into(), input: json!({ "a": 1 }) };
        let Event::Metadata(metadata) = tool_use_event(&call) else { unreachable!() };
        assert_eq!(tool_use_of(&metadata), Some(call));
        assert_eq!(tool_use_of(r#"{"toolUse":{"index":0,"input":"{\"a\""}}"#), None);
    }

    #[test]
    fn reasoning_is_put_back_together_with_its_signature() {
        let mut reasoning = ReasoningBlocks::default();
        for metadata in [
            r#"{"reasoning":{"index":0,"text":"Let me "}}"#,
            r#"{"reasoning":{"index":0,"text":"look."}}"#,
            r#"{"reasoning":{"index":0,"signature":"sig"}}"#,
            r#"{"reasoning":{"index":1,"redactedContent":"AQI="}}"#,
            r#"{"toolUse":{"toolUseId":"t"}}"#,
        ] {
            reasoning.observe(metadata);
        }
        assert_eq!(
            reasoning.blocks(),
            [
                Content::Reasoning { text: "Let me look.".into(), signature: Some("sig".into()) },
                Content::RedactedReasoning(vec![1, 2])
            ]
        );
    }
}
