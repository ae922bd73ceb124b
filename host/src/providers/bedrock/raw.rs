//! InvokeModelWithResponseStream: the host builds the request body in the
//! model family's own format (or sends the caller's `model.body` as is),
//! and each chunk goes downstream as a `frame` event, undecoded. Decoding is
//! a plugin's job (`plugins/decode-*`).
//!
//! Bedrock adds `amazon-bedrock-invocationMetrics` to the last chunk of every
//! model's stream, which is how a complete answer is told from a dropped one.

use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::ResponseStream;
use serde_json::{Map, Value, json};

use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
use aws_sdk_bedrockruntime::types::error::ResponseStreamError as StreamException;

use super::{Bedrock, Decode, Decoded, Exception, call_failure, receive};
use crate::conversation::{Message, Role};
use crate::event::Event;
use crate::providers::error::StreamErrorCode;
use crate::providers::source::{ModelSource, required_model};
use crate::providers::{ModelCall, ProviderKind};
use crate::providers::{ProviderError, Started, UpstreamFailure};

/// What an Anthropic model needs and the others default.
const DEFAULT_MAX_TOKENS: u32 = 1024;
const METRICS_KEY: &[u8] = b"amazon-bedrock-invocationMetrics";

/// InvokeModelWithResponseStream: the model's own request and chunks, on
/// the client of [`Bedrock`].
pub struct Raw<'a>(pub &'a Bedrock);

impl ModelSource for Raw<'_> {
    /// The model id and the request body.
    type Request = (String, Vec<u8>);
    const KIND: ProviderKind = ProviderKind::BedrockRaw;

    fn request(&self, call: &ModelCall, model: Option<&str>) -> Result<Self::Request, ProviderError> {
        let model_id = required_model(Self::KIND, model)?;
        Ok((model_id.to_string(), request_body(model_id, call)?))
    }

    async fn send(&self, (model_id, body): &Self::Request) -> Result<Started, UpstreamFailure> {
        let output = self
            .0
            .client
            .invoke_model_with_response_stream()
            .model_id(model_id)
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(body.as_slice()))
            .send()
            .await
            .map_err(call_failure)?;
        Ok(Started::new(receive(output.body, Chunks)))
    }
}

/// Each chunk as a frame, undecoded; the one with the invocation metrics
/// marks the answer complete. A chunk holds no block the host keeps open.
struct Chunks;

impl Decode<ResponseStream> for Chunks {
    fn decode(&mut self, item: ResponseStream) -> Decoded {
        let bytes = match item {
            ResponseStream::Chunk(part) => part.bytes.map(Blob::into_inner),
            _ => None,
        };
        let complete =
            bytes.as_ref().is_some_and(|bytes| bytes.windows(METRICS_KEY.len()).any(|window| window == METRICS_KEY));
        Decoded { events: bytes.map(Event::Frame).into_iter().collect(), complete }
    }
}

impl Exception for StreamException {
    fn kind(&self) -> StreamErrorCode {
        match self {
            StreamException::ThrottlingException(_) => StreamErrorCode::Throttled,
            StreamException::ServiceUnavailableException(_) => StreamErrorCode::ServiceUnavailable,
            StreamException::InternalServerException(_) => StreamErrorCode::InternalServerError,
            StreamException::ModelStreamErrorException(_) => StreamErrorCode::ModelStreamError,
            StreamException::ModelTimeoutException(_) => StreamErrorCode::ModelTimeout,
            StreamException::ValidationException(_) => StreamErrorCode::ValidationError,
            other => StreamErrorCode::from_aws(other.code()),
        }
    }
}

/// The model families whose request format the host knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Anthropic,
    Llama,
    CohereChat,
    CohereLegacy,
    Titan,
    /// Amazon Nova: the Messages API shape (`schemaVersion: messages-v1`).
    Nova,
    /// Mistral's text models: one `[INST]` prompt.
    MistralText,
    /// Mistral Large 2407 and later: chat messages.
    MistralChat,
}

impl Family {
    /// From a model id such as `meta.llama3-8b-instruct-v1:0`, or an
    /// inference profile id such as `us.anthropic.claude-3-haiku-…`.
    fn of(model_id: &str) -> Option<Self> {
        let mut parts = model_id.split('.');
        let first = parts.next()?;
        let (provider, model) = match parts.next() {
            Some(second) if !matches!(first, "anthropic" | "meta" | "cohere" | "amazon" | "mistral") => {
                (second, parts.next()?)
            }
            Some(second) => (first, second),
            None => return None,
        };
        match provider {
            "anthropic" => Some(Family::Anthropic),
            "meta" => Some(Family::Llama),
            "cohere" if model.starts_with("command-r") => Some(Family::CohereChat),
            "cohere" => Some(Family::CohereLegacy),
            "amazon" if model.starts_with("titan-text") => Some(Family::Titan),
            "amazon" if model.starts_with("nova-") => Some(Family::Nova),
            "mistral" if model.starts_with("mistral-large-24") && model != "mistral-large-2402-v1:0" => {
                Some(Family::MistralChat)
            }
            "mistral" => Some(Family::MistralText),
            _ => None,
        }
    }
}

/// The body InvokeModel takes for `model_id`: the caller's own, or one
/// built for the model's family.
fn request_body(model_id: &str, call: &ModelCall) -> Result<Vec<u8>, ProviderError> {
    let messages = call.text_messages(ProviderKind::BedrockRaw)?;
    let body = match &call.options.body {
        Some(body) => Value::Object(body.clone()),
        None => {
            let family = Family::of(model_id).ok_or_else(|| {
                ProviderError::InvalidRequest(format!(
                    "the host cannot tell the request format of `{model_id}`: give the model's own request as `model.body`"
                ))
            })?;
            family_body(family, call, &messages)?
        }
    };
    Ok(body.to_string().into_bytes())
}

fn family_body(family: Family, call: &ModelCall, messages: &[Message]) -> Result<Value, ProviderError> {
    let options = &call.options;
    let system = call.system.as_deref();
    let mut body = Map::new();
    let mut set = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            body.insert(key.to_string(), value);
        }
    };
    let stop = options.stop_sequences.clone().map(|stop| json!(stop));
    match family {
        Family::Anthropic => {
            set("anthropic_version", Some(json!("bedrock-2023-05-31")));
            set("max_tokens", Some(json!(options.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS))));
            set("system", system.map(Value::from));
            set("messages", Some(json!(messages)));
            set("temperature", options.temperature.map(Value::from));
            set("top_p", options.top_p.map(Value::from));
            set("stop_sequences", stop);
        }
        Family::Llama => {
            if stop.is_some() {
                return Err(ProviderError::InvalidRequest("Llama models on Bedrock take no `stopSequences`".into()));
            }
            set("prompt", Some(json!(llama_prompt(system, messages))));
            set("max_gen_len", options.max_tokens.map(Value::from));
            set("temperature", options.temperature.map(Value::from));
            set("top_p", options.top_p.map(Value::from));
        }
        Family::CohereChat => {
            let (last, earlier) = messages.split_last().expect("a request has a user message");
            let history = earlier.iter().map(|message| {
                let role = if message.role == Role::User { "USER" } else { "CHATBOT" };
                json!({ "role": role, "message": message.content })
            });
            set("message", Some(json!(last.content)));
            set("chat_history", Some(history.collect()));
            set("preamble", system.map(Value::from));
            set("max_tokens", options.max_tokens.map(Value::from));
            set("temperature", options.temperature.map(Value::from));
            set("p", options.top_p.map(Value::from));
            set("stop_sequences", stop);
        }
        Family::CohereLegacy => {
            set("prompt", Some(json!(transcript(system, messages, "User", "Chatbot"))));
            set("stream", Some(json!(true)));
            set("max_tokens", options.max_tokens.map(Value::from));
            set("temperature", options.temperature.map(Value::from));
            set("p", options.top_p.map(Value::from));
            set("stop_sequences", stop);
        }
        Family::Titan => {
            let config = inference_object("maxTokenCount", options, stop);
            set("inputText", Some(json!(transcript(system, messages, "User", "Bot"))));
            set("textGenerationConfig", Some(config));
        }
        Family::Nova => {
            let config = inference_object("maxTokens", options, stop);
            let turns = messages
                .iter()
                .map(|message| json!({ "role": message.role.as_str(), "content": [{ "text": message.content }] }));
            set("schemaVersion", Some(json!("messages-v1")));
            set("system", system.map(|system| json!([{ "text": system }])));
            set("messages", Some(Value::Array(turns.collect())));
            set("inferenceConfig", Some(config));
        }
        Family::MistralText | Family::MistralChat => {
            if family == Family::MistralText {
                set("prompt", Some(json!(mistral_prompt(system, messages))));
            } else {
                let system = system.map(|system| json!({ "role": "system", "content": system }));
                set(
                    "messages",
                    Some(system.into_iter().chain(messages.iter().map(|message| json!(message))).collect()),
                );
            }
            set("max_tokens", options.max_tokens.map(Value::from));
            set("temperature", options.temperature.map(Value::from));
            set("top_p", options.top_p.map(Value::from));
            set("stop", stop);
        }
    }
    Ok(Value::Object(body))
}

/// Amazon's camelCase inference settings (Titan's `textGenerationConfig`,
/// Nova's `inferenceConfig`), whose token limit is `max_tokens_key`.
fn inference_object(max_tokens_key: &str, options: &crate::providers::ModelOptions, stop: Option<Value>) -> Value {
    let settings = [
        (max_tokens_key, options.max_tokens.map(Value::from)),
        ("temperature", options.temperature.map(Value::from)),
        ("topP", options.top_p.map(Value::from)),
        ("stopSequences", stop),
    ];
    Value::Object(settings.into_iter().filter_map(|(key, value)| Some((key.to_string(), value?))).collect())
}

/// Llama 3's chat template, ending where the assistant's answer begins.
fn llama_prompt(system: Option<&str>, messages: &[Message]) -> String {
    let mut prompt = String::from("<|begin_of_text|>");
    let turn = |prompt: &mut String, role: &str, content: &str| {
        prompt.push_str(&format!("<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>"));
    };
    if let Some(system) = system {
        turn(&mut prompt, "system", system);
    }
    for message in messages {
        turn(&mut prompt, message.role.as_str(), &message.content);
    }
    prompt.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
    prompt
}

/// Mistral's instruction format: each user turn in `[INST]`, the system
/// prompt before the first.
fn mistral_prompt(system: Option<&str>, messages: &[Message]) -> String {
    let mut prompt = String::from("<s>");
    let mut system = system.map(|system| format!("{system}\n\n"));
    for message in messages {
        match message.role {
            Role::User => {
                prompt.push_str(&format!("[INST] {}{} [/INST]", system.take().unwrap_or_default(), message.content))
            }
            Role::Assistant => prompt.push_str(&format!("{}</s>", message.content)),
        }
    }
    prompt
}

/// A conversation as one text prompt, for models without a chat format.
fn transcript(system: Option<&str>, messages: &[Message], user: &str, assistant: &str) -> String {
    let mut prompt = system.map(|system| format!("{system}\n\n")).unwrap_or_default();
    for message in messages {
        let speaker = if message.role == Role::User { user } else { assistant };
        prompt.push_str(&format!("{speaker}: {}\n", message.content));
    }
    prompt.push_str(&format!("{assistant}:"));
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Request, parse_chain};

    fn request(body: &str) -> ModelCall {
        Request::from_json(parse_chain("ndjson", None).unwrap(), &[], body.as_bytes()).unwrap().model_call()
    }

    fn body(model_id: &str, request: &ModelCall) -> Value {
        serde_json::from_slice(&request_body(model_id, request).unwrap()).unwrap()
    }

    #[test]
    fn tells_families_from_model_and_profile_ids() {
        assert_eq!(Family::of("anthropic.claude-3-haiku-20240307-v1:0"), Some(Family::Anthropic));
        assert_eq!(Family::of("us.anthropic.claude-3-5-sonnet-20241022-v2:0"), Some(Family::Anthropic));
        assert_eq!(Family::of("meta.llama3-1-8b-instruct-v1:0"), Some(Family::Llama));
        assert_eq!(Family::of("cohere.command-r-plus-v1:0"), Some(Family::CohereChat));
        assert_eq!(Family::of("cohere.command-text-v14"), Some(Family::CohereLegacy));
        assert_eq!(Family::of("amazon.titan-text-express-v1"), Some(Family::Titan));
        assert_eq!(Family::of("amazon.nova-pro-v1:0"), Some(Family::Nova));
        assert_eq!(Family::of("us.amazon.nova-lite-v1:0"), Some(Family::Nova));
        assert_eq!(Family::of("mistral.mistral-7b-instruct-v0:2"), Some(Family::MistralText));
        assert_eq!(Family::of("mistral.mistral-large-2402-v1:0"), Some(Family::MistralText));
        assert_eq!(Family::of("mistral.mistral-large-2407-v1:0"), Some(Family::MistralChat));
        assert_eq!(Family::of("amazon.titan-embed-text-v2:0"), None);
        assert_eq!(Family::of("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/x"), None);
    }

    #[test]
    fn builds_each_family_body() {
        let request = request(r#"{"system":"Be brief.","prompt":"Hi","model":{"maxTokens":64,"temperature":0.5}}"#);
        assert_eq!(
            body("anthropic.claude-3-haiku-20240307-v1:0", &request),
            json!({"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"system":"Be brief.","messages":[{"role":"user","content":"Hi"}],"temperature":0.5})
        );
        assert_eq!(
            body("meta.llama3-8b-instruct-v1:0", &request),
            json!({"prompt":"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n","max_gen_len":64,"temperature":0.5})
        );
        assert_eq!(
            body("amazon.titan-text-express-v1", &request),
            json!({"inputText":"Be brief.\n\nUser: Hi\nBot:","textGenerationConfig":{"maxTokenCount":64,"temperature":0.5}})
        );
        assert_eq!(body("cohere.command-text-v14", &request)["stream"], json!(true));
        assert_eq!(body("cohere.command-r-v1:0", &request)["preamble"], json!("Be brief."));
        assert_eq!(
            body("amazon.nova-lite-v1:0", &request),
            json!({"schemaVersion":"messages-v1","system":[{"text":"Be brief."}],"messages":[{"role":"user","content":[{"text":"Hi"}]}],"inferenceConfig":{"maxTokens":64,"temperature":0.5}})
        );
        assert_eq!(
            body("mistral.mistral-7b-instruct-v0:2", &request)["prompt"],
            json!("<s>[INST] Be brief.\n\nHi [/INST]")
        );
        assert_eq!(
            body("mistral.mistral-large-2407-v1:0", &request)["messages"][0],
            json!({"role":"system","content":"Be brief."})
        );
    }

    #[test]
    fn the_callers_body_is_sent_as_is_and_an_unknown_family_needs_one() {
        let own = request(r#"{"prompt":"x","model":{"body":{"inputs":"x"}}}"#);
        assert_eq!(body("arn:aws:bedrock:us-east-1:1:custom-model/m", &own), json!({"inputs":"x"}));
        assert!(matches!(
            request_body("amazon.titan-embed-text-v2:0", &request(r#"{"prompt":"x"}"#)),
            Err(ProviderError::InvalidRequest(_))
        ));
    }
}
