//! ConverseStream: the request from ours, and each stream event as ours.
//! Text deltas are `text`; reasoning deltas are `metadata`
//! (`{"reasoning":{"index":…,"text":…}}`, then its `signature`, or
//! `redactedContent` in base64: what a tool loop under extended thinking must
//! send back, see `call::ReasoningBlocks`); a tool call, once its block has
//! closed (or the message stopped with it open: see [`Decoder`]), is metadata
//! `{"toolUse":{…}}` (`call::tool_use_event`); the stop
//! is `end` (`guardrail_intervened` when a guardrail stopped it); the closing
//! metadata is `usage`, cache reads and writes included.
//!
//! The request carries the model options' guardrail (`guardrailConfig`) and
//! prompt-cache points (`cachePoint` blocks after the system prompt, the
//! tools or the last message).

use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError as StreamException;
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, ContentBlock, ContentBlockDelta, ContentBlockStart, ConversationRole,
    ConverseStreamOutput as StreamEvent, GuardrailStreamConfiguration, GuardrailStreamProcessingMode, GuardrailTrace,
    InferenceConfiguration, Message, ReasoningContentBlock, ReasoningContentBlockDelta, ReasoningTextBlock,
    SpecificToolChoice, SystemContentBlock, Tool, ToolChoice as ConverseToolChoice, ToolConfiguration, ToolInputSchema,
    ToolResultBlock, ToolResultContentBlock, ToolResultStatus, ToolSpecification, ToolUseBlock,
};
use aws_smithy_types::{Document, Number};
use base64::Engine;
use serde_json::{Value, json};

use super::{Bedrock, Decode, Decoded, Exception, call_failure, receive};
use crate::conversation::{Content, ModelMessage, Role, ToolCall, ToolSpec};
use crate::event::{Event, Usage};
use crate::providers::call::{ModelCall, tool_use_event};
use crate::providers::error::StreamErrorCode;
use crate::providers::source::{ModelSource, required_model};
use crate::providers::{
    CachePointAt, GuardrailOptions, ProviderError, ProviderKind, Started, ToolChoice, ToolChoiceMode, UpstreamFailure,
};

/// The parts of a ConverseStream request that cannot fail to build, made
/// once and reused by every attempt.
pub struct ConverseInput {
    messages: Vec<Message>,
    system: Option<Vec<SystemContentBlock>>,
    tools: Option<ToolConfiguration>,
    inference: InferenceConfiguration,
    guardrail: Option<GuardrailStreamConfiguration>,
}

impl ConverseInput {
    fn new(call: &ModelCall) -> Result<Self, ProviderError> {
        let invalid = |error: aws_sdk_bedrockruntime::error::BuildError| {
            ProviderError::InvalidRequest(format!("cannot build the Bedrock request: {error}"))
        };
        let cache_at = |at: CachePointAt| call.options.cache_points.as_ref().is_some_and(|points| points.contains(&at));
        let cache_point = || CachePointBlock::builder().r#type(CachePointType::Default).build().map_err(invalid);
        let mut messages: Vec<Message> =
            alternating(&call.messages).iter().map(message).collect::<Result<_, _>>().map_err(invalid)?;
        if cache_at(CachePointAt::Messages)
            && let Some(last) = messages.pop()
        {
            let mut content = last.content().to_vec();
            content.push(ContentBlock::CachePoint(cache_point()?));
            messages.push(
                Message::builder().role(last.role().clone()).set_content(Some(content)).build().map_err(invalid)?,
            );
        }
        if call.tools.is_empty() && call.messages.iter().any(ModelMessage::has_tool_blocks) {
            return Err(ProviderError::InvalidRequest(
                "Bedrock's Converse needs the tools declared (`tools`) while the conversation holds tool calls or \
                 results: send them again with the results"
                    .into(),
            ));
        }
        let choice = call.options.tool_choice.as_ref();
        let tools = if call.tools.is_empty() || leaves_tools_out(call) {
            None
        } else {
            let mut tools = call.tools.iter().map(tool).collect::<Result<Vec<_>, _>>().map_err(invalid)?;
            if cache_at(CachePointAt::Tools) {
                tools.push(Tool::CachePoint(cache_point()?));
            }
            let choice = choice.map(converse_tool_choice).transpose()?;
            Some(ToolConfiguration::builder().set_tools(Some(tools)).set_tool_choice(choice).build().map_err(invalid)?)
        };
        let mut system: Option<Vec<SystemContentBlock>> =
            call.system.clone().map(|system| vec![SystemContentBlock::Text(system)]);
        if let Some(system) = system.as_mut().filter(|_| cache_at(CachePointAt::System)) {
            system.push(SystemContentBlock::CachePoint(cache_point()?));
        }
        Ok(Self {
            messages,
            system,
            tools,
            inference: inference(call),
            guardrail: call.options.guardrail.as_ref().map(guardrail),
        })
    }
}

/// `toolChoice: none`, which Converse does not have, is its tools left out;
/// a conversation with tool turns needs them declared, so that is refused
/// in [`converse_tool_choice`] instead.
fn leaves_tools_out(call: &ModelCall) -> bool {
    call.options.tool_choice == Some(ToolChoice::Mode(ToolChoiceMode::None))
        && !call.messages.iter().any(ModelMessage::has_tool_blocks)
}

fn converse_tool_choice(choice: &ToolChoice) -> Result<ConverseToolChoice, ProviderError> {
    let invalid = |error: aws_sdk_bedrockruntime::error::BuildError| {
        ProviderError::InvalidRequest(format!("cannot build the Bedrock request: {error}"))
    };
    Ok(match choice {
        ToolChoice::Mode(ToolChoiceMode::Auto) => {
            ConverseToolChoice::Auto(aws_sdk_bedrockruntime::types::AutoToolChoice::builder().build())
        }
        ToolChoice::Mode(ToolChoiceMode::Any) => {
            ConverseToolChoice::Any(aws_sdk_bedrockruntime::types::AnyToolChoice::builder().build())
        }
        ToolChoice::Mode(ToolChoiceMode::None) => {
            return Err(ProviderError::InvalidRequest(
                "Bedrock's Converse has no `toolChoice: none` for a conversation with tool calls in it (its \
                 tools must be declared): send `auto`"
                    .into(),
            ));
        }
        ToolChoice::Tool { tool } => {
            ConverseToolChoice::Tool(SpecificToolChoice::builder().name(tool).build().map_err(invalid)?)
        }
    })
}

fn guardrail(options: &GuardrailOptions) -> GuardrailStreamConfiguration {
    let trace = if options.trace { GuardrailTrace::Enabled } else { GuardrailTrace::Disabled };
    GuardrailStreamConfiguration::builder()
        .guardrail_identifier(&options.identifier)
        .guardrail_version(&options.version)
        .trace(trace)
        .set_stream_processing_mode(options.stream_processing_mode.as_deref().map(GuardrailStreamProcessingMode::from))
        .build()
}

/// ConverseStream: Bedrock's one request shape for every model.
impl ModelSource for Bedrock {
    type Request = (ConverseInput, String);
    const KIND: ProviderKind = ProviderKind::Bedrock;

    fn request(&self, call: &ModelCall, model: Option<&str>) -> Result<Self::Request, ProviderError> {
        let model_id = required_model(Self::KIND, model)?;
        Ok((ConverseInput::new(call)?, model_id.to_string()))
    }

    async fn send(&self, (input, model_id): &Self::Request) -> Result<Started, UpstreamFailure> {
        let output = self
            .client
            .converse_stream()
            .model_id(model_id)
            .set_messages(Some(input.messages.clone()))
            .set_system(input.system.clone())
            .set_tool_config(input.tools.clone())
            .inference_config(input.inference.clone())
            .set_guardrail_config(input.guardrail.clone())
            .send()
            .await
            .map_err(call_failure)?;
        Ok(Started::new(receive(output.stream, Decoder::default())))
    }
}

/// `messages` with each run of one role's turns made one turn, their blocks
/// in order: Converse refuses two user (or assistant) messages in a row,
/// which a client's history may hold (two user messages sent one after
/// the other, a standard API's request as its SDK builds it).
fn alternating(messages: &[ModelMessage]) -> Vec<ModelMessage> {
    let mut turns: Vec<ModelMessage> = Vec::with_capacity(messages.len());
    for turn in messages {
        match turns.last_mut() {
            Some(last) if last.role == turn.role => last.content.extend(turn.content.iter().cloned()),
            _ => turns.push(turn.clone()),
        }
    }
    turns
}

fn message(turn: &ModelMessage) -> Result<Message, aws_sdk_bedrockruntime::error::BuildError> {
    let role = match turn.role {
        Role::User => ConversationRole::User,
        Role::Assistant => ConversationRole::Assistant,
    };
    let content = turn.content.iter().map(content_block).collect::<Result<Vec<_>, _>>()?;
    Message::builder().role(role).set_content(Some(content)).build()
}

fn content_block(block: &Content) -> Result<ContentBlock, aws_sdk_bedrockruntime::error::BuildError> {
    Ok(match block {
        Content::Text(text) => ContentBlock::Text(text.clone()),
        Content::ToolCall(call) => ContentBlock::ToolUse(
            ToolUseBlock::builder().tool_use_id(&call.id).name(&call.name).input(document(&call.input)).build()?,
        ),
        Content::ToolResult { id, content, is_error } => ContentBlock::ToolResult(
            ToolResultBlock::builder()
                .tool_use_id(id)
                .content(ToolResultContentBlock::Text(content.clone()))
                .status(if *is_error { ToolResultStatus::Error } else { ToolResultStatus::Success })
                .build()?,
        ),
        Content::Reasoning { text, signature } => ContentBlock::ReasoningContent(ReasoningContentBlock::ReasoningText(
            ReasoningTextBlock::builder().text(text).set_signature(signature.clone()).build()?,
        )),
        Content::RedactedReasoning(bytes) => {
            ContentBlock::ReasoningContent(ReasoningContentBlock::RedactedContent(Blob::new(bytes.clone())))
        }
    })
}

fn tool(spec: &ToolSpec) -> Result<Tool, aws_sdk_bedrockruntime::error::BuildError> {
    let specification = ToolSpecification::builder()
        .name(&spec.name)
        // Converse takes no empty description: a tool without one has none.
        .set_description(Some(spec.description.clone()).filter(|description| !description.is_empty()))
        .input_schema(ToolInputSchema::Json(document(&spec.input_schema)))
        .build()?;
    Ok(Tool::ToolSpec(specification))
}

/// JSON as the SDK's document type.
fn document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(flag) => Document::Bool(*flag),
        Value::Number(number) => Document::Number(match (number.as_u64(), number.as_i64()) {
            (Some(unsigned), _) => Number::PosInt(unsigned),
            (None, Some(signed)) => Number::NegInt(signed),
            _ => Number::Float(number.as_f64().unwrap_or_default()),
        }),
        Value::String(text) => Document::String(text.clone()),
        Value::Array(items) => Document::Array(items.iter().map(document).collect()),
        Value::Object(fields) => {
            Document::Object(fields.iter().map(|(key, value)| (key.clone(), document(value))).collect())
        }
    }
}

fn inference(call: &ModelCall) -> InferenceConfiguration {
    let options = &call.options;
    InferenceConfiguration::builder()
        .set_max_tokens(options.max_tokens.map(|tokens| tokens.min(i32::MAX as u32) as i32))
        // JSON numbers are f64, so `0.1` stays 0.1 in the raw and OpenAI
        // bodies; the SDK takes f32.
        .set_temperature(options.temperature.map(|temperature| temperature as f32))
        .set_top_p(options.top_p.map(|top_p| top_p as f32))
        .set_stop_sequences(options.stop_sequences.clone())
        .build()
}

/// Turns stream events into ours, putting each tool call's input together
/// from its deltas.
///
/// The rule for a tool call's block: it is delivered when it closes, at its
/// `contentBlockStop` or, from a server that never sends one, when another
/// block starts at its index or its message ends (`messageStop`, or the
/// stream's end after it). Delivered is as its call if its input is whole
/// JSON, else as an error that ends the stream: a block is never dropped.
/// Tool input for a block that never started is an error too.
#[derive(Default)]
struct Decoder {
    /// The tool calls whose blocks are open, in the order they started.
    open: Vec<OpenToolUse>,
}

/// A tool call whose block has not closed.
struct OpenToolUse {
    /// Its content block index.
    index: i32,
    call: ToolCall,
    /// Its input's JSON text so far.
    input: String,
}

impl OpenToolUse {
    /// The whole call as its event, or an error if its input is not a JSON
    /// object.
    fn close(mut self) -> Event {
        match parse_input(&self.input) {
            Some(input) => {
                self.call.input = input;
                tool_use_event(&self.call)
            }
            None => StreamErrorCode::ModelStreamError
                .event(format!("the model's input for tool `{}` is not a JSON object", self.call.name)),
        }
    }
}

impl Decode<StreamEvent> for Decoder {
    fn decode(&mut self, event: StreamEvent) -> Decoded {
        let complete = matches!(event, StreamEvent::MessageStop(_));
        let events = match event {
            StreamEvent::ContentBlockDelta(delta) => {
                let index = delta.content_block_index();
                delta.delta.and_then(|delta| self.delta(index, delta)).into_iter().collect()
            }
            StreamEvent::ContentBlockStart(start) => {
                // A block started where one is open closes that one first.
                let events: Vec<Event> = self.close(start.content_block_index).into_iter().collect();
                if let Some(ContentBlockStart::ToolUse(tool_use)) = start.start {
                    let call = ToolCall { id: tool_use.tool_use_id, name: tool_use.name, input: Value::Null };
                    self.open.push(OpenToolUse { index: start.content_block_index, call, input: String::new() });
                }
                events
            }
            StreamEvent::ContentBlockStop(stop) => self.close(stop.content_block_index).into_iter().collect(),
            StreamEvent::MessageStop(stop) => {
                let mut events = self.end();
                events.push(Event::End(stop.stop_reason.as_str().to_string()));
                events
            }
            StreamEvent::Metadata(metadata) => metadata
                .usage
                .map(|usage| {
                    let count = |tokens: i32| tokens.max(0) as u32;
                    Event::Usage(Usage {
                        input_tokens: count(usage.input_tokens),
                        output_tokens: count(usage.output_tokens),
                        total_tokens: count(usage.total_tokens),
                        latency_ms: metadata
                            .metrics
                            .map_or(0, |metrics| metrics.latency_ms.clamp(0, u32::MAX.into()) as u32),
                        cache_read_input_tokens: usage.cache_read_input_tokens.map_or(0, count),
                        cache_write_input_tokens: usage.cache_write_input_tokens.map_or(0, count),
                    })
                })
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        Decoded { events, complete }
    }

    /// Every block still open, closed in the order they started.
    fn end(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.open).into_iter().map(OpenToolUse::close).collect()
    }
}

impl Decoder {
    /// One delta of the block at `index`: text and reasoning as they come,
    /// tool input kept until its block closes.
    fn delta(&mut self, index: i32, delta: ContentBlockDelta) -> Option<Event> {
        match delta {
            ContentBlockDelta::Text(text) => Some(Event::Text(text)),
            ContentBlockDelta::ReasoningContent(ReasoningContentBlockDelta::Text(text)) => {
                Some(metadata(json!({ "reasoning": { "index": index, "text": text } })))
            }
            ContentBlockDelta::ReasoningContent(ReasoningContentBlockDelta::Signature(signature)) => {
                Some(metadata(json!({ "reasoning": { "index": index, "signature": signature } })))
            }
            ContentBlockDelta::ReasoningContent(ReasoningContentBlockDelta::RedactedContent(bytes)) => {
                let redacted = base64::engine::general_purpose::STANDARD.encode(bytes.as_ref());
                Some(metadata(json!({ "reasoning": { "index": index, "redactedContent": redacted } })))
            }
            ContentBlockDelta::ToolUse(tool_use) => {
                match self.open.iter_mut().find(|open| open.index == index) {
                    Some(open) => {
                        open.input.push_str(&tool_use.input);
                        None
                    }
                    None => Some(StreamErrorCode::ModelStreamError.event(format!(
                        "the model sent tool input for content block {index}, where no tool call started"
                    ))),
                }
            }
            _ => None,
        }
    }

    /// The block at `index` closed: its call, if it is a tool call.
    fn close(&mut self, index: i32) -> Option<Event> {
        let at = self.open.iter().position(|open| open.index == index)?;
        Some(self.open.remove(at).close())
    }
}

/// A tool input's JSON text; a tool that takes nothing may send none.
fn parse_input(input: &str) -> Option<Value> {
    if input.trim().is_empty() {
        return Some(json!({}));
    }
    serde_json::from_str::<Value>(input).ok().filter(Value::is_object)
}

impl Exception for StreamException {
    fn kind(&self) -> StreamErrorCode {
        match self {
            StreamException::ThrottlingException(_) => StreamErrorCode::Throttled,
            StreamException::ServiceUnavailableException(_) => StreamErrorCode::ServiceUnavailable,
            StreamException::InternalServerException(_) => StreamErrorCode::InternalServerError,
            StreamException::ModelStreamErrorException(_) => StreamErrorCode::ModelStreamError,
            StreamException::ValidationException(_) => StreamErrorCode::ValidationError,
            other => StreamErrorCode::from_aws(other.code()),
        }
    }
}

fn metadata(value: serde_json::Value) -> Event {
    Event::Metadata(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_of_one_role_in_a_row_are_one_turn() {
        let text = |role, text: &str| ModelMessage { role, content: vec![Content::Text(text.into())] };
        let turns = alternating(&[
            text(Role::User, "a"),
            text(Role::User, "b"),
            text(Role::Assistant, "c"),
            text(Role::User, "d"),
        ]);
        let both =
            ModelMessage { role: Role::User, content: vec![Content::Text("a".into()), Content::Text("b".into())] };
        assert_eq!(turns, [both, text(Role::Assistant, "c"), text(Role::User, "d")]);
    }
}
