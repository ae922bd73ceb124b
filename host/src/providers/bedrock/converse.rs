//! ConverseStream: the request from ours, and each stream event as ours.
//! Text deltas are `text`; reasoning and tool-use deltas are `metadata`
//! (`{"reasoning":{"text":…}}`, `{"toolUse":{…}}`); the stop is `end`; the
//! closing metadata is `usage`.

use aws_sdk_bedrockruntime::types::{
    ContentBlock, ContentBlockDelta, ContentBlockStart, ConversationRole, ConverseStreamOutput as StreamEvent, InferenceConfiguration, Message,
    ReasoningContentBlockDelta, SystemContentBlock,
};
use serde_json::json;

use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError as StreamException;

use super::{Bedrock, Decoded, Exception, call_failure, receive};
use crate::providers::error::StreamErrorCode;
use crate::event::{Event, Usage};
use crate::providers::{Started, UpstreamFailure};
use crate::request::{Request, Role};

impl Bedrock {
    pub async fn converse(&self, request: &Request, model_id: &str) -> Result<Started, UpstreamFailure> {
        let output = self
            .client
            .converse_stream()
            .model_id(model_id)
            .set_messages(Some(messages(request)))
            .set_system(request.system.clone().map(|system| vec![SystemContentBlock::Text(system)]))
            .inference_config(inference(request))
            .send()
            .await
            .map_err(call_failure)?;
        Ok(Started::new(receive(output.stream, decode)))
    }
}

fn messages(request: &Request) -> Vec<Message> {
    request
        .messages
        .iter()
        .map(|message| {
            let role = match message.role {
                Role::User => ConversationRole::User,
                Role::Assistant => ConversationRole::Assistant,
            };
            Message::builder().role(role).content(ContentBlock::Text(message.content.clone())).build().expect("role and content are set")
        })
        .collect()
}

fn inference(request: &Request) -> InferenceConfiguration {
    let options = &request.model;
    InferenceConfiguration::builder()
        .set_max_tokens(options.max_tokens.map(|tokens| tokens.min(i32::MAX as u32) as i32))
        // JSON numbers are f64, so `0.1` stays 0.1 in the raw and OpenAI
        // bodies; the SDK takes f32.
        .set_temperature(options.temperature.map(|temperature| temperature as f32))
        .set_top_p(options.top_p.map(|top_p| top_p as f32))
        .set_stop_sequences(options.stop_sequences.clone())
        .build()
}

fn decode(event: StreamEvent) -> Decoded {
    let complete = matches!(event, StreamEvent::MessageStop(_));
    let event = match event {
        StreamEvent::ContentBlockDelta(delta) => {
            let index = delta.content_block_index();
            match delta.delta {
                Some(ContentBlockDelta::Text(text)) => Some(Event::Text(text)),
                Some(ContentBlockDelta::ReasoningContent(ReasoningContentBlockDelta::Text(text))) => {
                    Some(metadata(json!({ "reasoning": { "index": index, "text": text } })))
                }
                Some(ContentBlockDelta::ToolUse(tool_use)) => Some(metadata(json!({ "toolUse": { "index": index, "input": tool_use.input } }))),
                _ => None,
            }
        }
        StreamEvent::ContentBlockStart(start) => match start.start {
            Some(ContentBlockStart::ToolUse(tool_use)) => Some(metadata(json!({
                "toolUse": { "index": start.content_block_index, "toolUseId": tool_use.tool_use_id, "name": tool_use.name }
            }))),
            _ => None,
        },
        StreamEvent::MessageStop(stop) => Some(Event::End(stop.stop_reason.as_str().to_string())),
        StreamEvent::Metadata(metadata) => metadata.usage.map(|usage| {
            let count = |tokens: i32| tokens.max(0) as u32;
            Event::Usage(Usage {
                input_tokens: count(usage.input_tokens),
                output_tokens: count(usage.output_tokens),
                total_tokens: count(usage.total_tokens),
                latency_ms: metadata.metrics.map_or(0, |metrics| metrics.latency_ms.clamp(0, u32::MAX.into()) as u32),
                cache_read_input_tokens: usage.cache_read_input_tokens.map_or(0, count),
                cache_write_input_tokens: usage.cache_write_input_tokens.map_or(0, count),
            })
        }),
        _ => None,
    };
    Decoded { event, complete }
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
