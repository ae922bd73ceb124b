//! `openai-chat-request`: the request filter of `POST /v1/chat/completions`.
//! It reads an OpenAI Chat Completions body and returns the host's request
//! (docs/standard-apis.md):
//!
//! ```json
//! {"model": "support", "stream": true, "stream_options": {"include_usage": true}, "temperature": 0.2,
//!  "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}
//! ```
//!
//! becomes the conversation `[user: "Hi"]`, the system prompt `Be brief.`,
//! the model options `{"temperature":0.2}` and the formatter's settings
//! `{"openai-chat-format":{"model":"support","stream":true,"includeUsage":true}}`.
//!
//! - `system` and `developer` messages, wherever they stand, are the system
//!   prompt, joined by a blank line in order; `user` and `assistant`
//!   messages are the conversation, which must end with the user's. Content
//!   is a string or text parts, joined in order with nothing between them
//!   (an assistant's `refusal` counts as its text).
//! - `temperature`, `top_p`, `max_completion_tokens` (or the deprecated
//!   `max_tokens`) and `stop` are the model options `temperature`, `topP`,
//!   `maxTokens` and `stopSequences`, only those the body sets.
//! - The end user (`user-id`) is `safety_identifier`, else `user`.
//! - Client tools: `tools` (functions) are the request's tools, their
//!   `parameters` the input schema; `tool_choice` is `model.toolChoice`
//!   (`auto`, `required` as `any`, `none`, a named function); an
//!   assistant's `tool_calls` are its tool calls (`arguments` must be a
//!   JSON object), and `tool` messages the results, one user message for
//!   the results in a row.
//!
//! What streamhost cannot do is refused with `400 invalid_request`, the
//! message naming the field (`messages[2].content[0].type`): image, audio
//! and file parts, audio output, `n` other than 1, log probabilities,
//! penalties and token biases other than none, a `response_format` other
//! than text, custom (non-function) tools, the deprecated `functions` and
//! `function_call`, moderation, web search, and any field the API does not define. A null
//! is read as the field's absence, as the API reads it. Fields that change
//! nothing streamhost does (`metadata`, `store`, `seed`, `service_tier`,
//! `reasoning_effort`, ...) are accepted and ignored; the README lists every
//! field.
//!
//! No settings: the API's body alone decides.

use serde::Serialize;
use serde_json::{Map, Value};
use streamhost_guest::Role;
use streamhost_guest::model::{Content, ModelMessage, ToolCall, ToolResult, ToolSpec};
use streamhost_guest::request_filter::{
    IncomingRequest, PipelineRequest, Refusal, RequestFilter, invalid_request as invalid, json_object,
};

pub struct OpenAiChatRequest;

impl RequestFilter for OpenAiChatRequest {
    fn filter(request: IncomingRequest) -> Result<PipelineRequest, Refusal> {
        map(&request.body)
    }
}

const SHAPE: &str =
    r#"send a Chat Completions request, {"model":"<pipeline>","messages":[{"role":"user","content":"…"}]}"#;

/// Why the deprecated function fields are refused.
const FUNCTIONS: &str = "the deprecated functions are not taken: send `tools` and `tool_choice`";

/// The host's request for a Chat Completions body, or why it is refused.
fn map(body: &[u8]) -> Result<PipelineRequest, Refusal> {
    let mut request = ChatRequest::default();
    for (name, value) in &json_object(body, SHAPE)? {
        if !value.is_null() {
            request.read(name, value)?;
        }
    }
    request.into_pipeline_request()
}

/// What the body asks for, gathered field by field.
#[derive(Default)]
struct ChatRequest {
    model: Option<String>,
    conversation: Option<Conversation>,
    settings: InferenceSettings,
    tools: Vec<ToolSpec>,
    /// `max_tokens`, the deprecated name of `max_completion_tokens`.
    deprecated_max_tokens: Option<u32>,
    safety_identifier: Option<String>,
    user: Option<String>,
    stream: bool,
    include_usage: bool,
}

impl ChatRequest {
    /// Reads one field of the body, not null.
    fn read(&mut self, name: &str, value: &Value) -> Result<(), Refusal> {
        match name {
            "messages" => self.conversation = Some(conversation(value)?),
            "model" => self.model = Some(model(value)?),
            // The inference settings.
            "temperature" => self.settings.temperature = Some(number_within(value, name, 0.0, 2.0)?),
            "top_p" => self.settings.top_p = Some(number_within(value, name, 0.0, 1.0)?),
            "max_completion_tokens" => self.settings.max_tokens = Some(token_count(value, name)?),
            "max_tokens" => self.deprecated_max_tokens = Some(token_count(value, name)?),
            "stop" => self.settings.stop_sequences = Some(stop_sequences(value)?),
            // The formatter's settings and the end user.
            "stream" => self.stream = boolean(value, name)?,
            "stream_options" => self.include_usage = include_usage(value)?,
            "safety_identifier" => self.safety_identifier = user_id(value, name)?,
            "user" => self.user = user_id(value, name)?,
            // What streamhost cannot do, accepted only as the API's default.
            "n" => {
                refuse_unless(integer(value, name)? == 1, name, "streamhost writes one choice: send 1 or leave it out")?
            }
            "frequency_penalty" | "presence_penalty" => refuse_unless(
                number(value, name)? == 0.0,
                name,
                "the host's model sources apply no penalties: send 0 or leave it out",
            )?,
            "logit_bias" => {
                refuse_unless(object(value, name)?.is_empty(), name, "the host's model sources apply no token biases")?
            }
            "logprobs" => refuse_unless(!boolean(value, name)?, name, "streamhost returns no log probabilities")?,
            "top_logprobs" => {
                refuse_unless(integer(value, name)? == 0, name, "streamhost returns no log probabilities")?
            }
            "modalities" => text_modality_only(value)?,
            "response_format" => text_format_only(value)?,
            "tools" => self.tools = tools(value)?,
            "tool_choice" => self.settings.tool_choice = Some(tool_choice(value)?),
            "functions" => refuse_unless(array(value, name)?.is_empty(), name, FUNCTIONS)?,
            "function_call" => refuse_unless(matches!(value.as_str(), Some("none" | "auto")), name, FUNCTIONS)?,
            "audio" => return Err(unsupported(name, "streamhost answers text, not audio")),
            "moderation" => return Err(unsupported(name, "streamhost runs no moderation model")),
            "web_search_options" => return Err(unsupported(name, "streamhost does not search the web")),
            // Accepted and ignored: nothing streamhost does changes with them
            // (the README says why for each).
            "metadata" | "prediction" | "prompt_cache_options" => {
                object(value, name)?;
            }
            "parallel_tool_calls" | "store" => {
                boolean(value, name)?;
            }
            "prompt_cache_key" | "prompt_cache_retention" | "reasoning_effort" | "service_tier" | "verbosity" => {
                text(value, name)?;
            }
            "seed" => {
                integer(value, name)?;
            }
            _ => return Err(invalid(format!("`{name}` is not a field of a Chat Completions request"))),
        }
        Ok(())
    }

    fn into_pipeline_request(self) -> Result<PipelineRequest, Refusal> {
        let Some(model) = self.model else { return Err(invalid(format!("the body has no `model`; {SHAPE}"))) };
        let Some(conversation) = self.conversation else {
            return Err(invalid(format!("the body has no `messages`; {SHAPE}")));
        };
        let mut settings = self.settings;
        settings.tool_choice = without_tools(settings.tool_choice, &self.tools)?;
        settings.max_tokens = match (settings.max_tokens, self.deprecated_max_tokens) {
            (Some(current), Some(deprecated)) if current != deprecated => {
                return Err(invalid(
                    "`max_tokens` and `max_completion_tokens` differ: send one (`max_tokens` is deprecated)",
                ));
            }
            (current, deprecated) => current.or(deprecated),
        };
        let format = FormatConfig {
            format: FormatSettings { model: &model, stream: self.stream, include_usage: self.include_usage },
        };
        Ok(PipelineRequest {
            messages: conversation.messages,
            system: conversation.system,
            user_id: self.safety_identifier.or(self.user),
            session_id: None,
            model: settings.to_json(),
            tools: self.tools,
            config: Some(to_json(&format)),
            chain: None,
        })
    }
}

/// The host's model options that a Chat Completions body sets, as the
/// request's `model` object (`{"temperature":…,"maxTokens":…}`).
#[derive(Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
struct InferenceSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Vec<String>>,
    /// `"auto"`, `"any"`, `"none"` or `{"tool": "<name>"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
}

impl InferenceSettings {
    /// The `model` object, or none when the body sets no option (the
    /// pipeline's own apply).
    fn to_json(&self) -> Option<String> {
        (*self != Self::default()).then(|| to_json(self))
    }
}

/// The formatter's settings, under its name.
#[derive(Serialize)]
struct FormatConfig<'a> {
    #[serde(rename = "openai-chat-format")]
    format: FormatSettings<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FormatSettings<'a> {
    /// The model as sent: the answer names it back.
    model: &'a str,
    stream: bool,
    include_usage: bool,
}

fn model(value: &Value) -> Result<String, Refusal> {
    match text(value, "model")? {
        "" => Err(invalid("`model` is empty: it names the pipeline")),
        model => Ok(model.to_string()),
    }
}

/// The end user's id: none when empty.
fn user_id(value: &Value, path: &str) -> Result<Option<String>, Refusal> {
    let id = text(value, path)?;
    Ok((!id.is_empty()).then(|| id.to_string()))
}

/// A token limit: a positive integer the host's `maxTokens` holds.
fn token_count(value: &Value, path: &str) -> Result<u32, Refusal> {
    value
        .as_u64()
        .and_then(|count| u32::try_from(count).ok())
        .filter(|&count| count > 0)
        .ok_or_else(|| invalid(format!("`{path}` must be a positive integer below 2^32")))
}

fn number_within(value: &Value, path: &str, low: f64, high: f64) -> Result<f64, Refusal> {
    let number = number(value, path)?;
    refuse_unless((low..=high).contains(&number), path, &format!("must be between {low} and {high}"))?;
    Ok(number)
}

/// `stop`: one string or a list of them.
fn stop_sequences(value: &Value) -> Result<Vec<String>, Refusal> {
    match value {
        Value::String(stop) => Ok(vec![stop.clone()]),
        Value::Array(stops) => stops
            .iter()
            .enumerate()
            .map(|(index, stop)| text(stop, &format!("stop[{index}]")).map(str::to_string))
            .collect(),
        _ => Err(wrong_type("stop", "a string or an array of strings")),
    }
}

/// `stream_options.include_usage`; `include_obfuscation` is accepted (the
/// formatter pads nothing).
fn include_usage(value: &Value) -> Result<bool, Refusal> {
    let mut include_usage = false;
    for (name, value) in object(value, "stream_options")? {
        let path = format!("stream_options.{name}");
        match name.as_str() {
            _ if value.is_null() => {}
            "include_usage" => include_usage = boolean(value, &path)?,
            "include_obfuscation" => {
                boolean(value, &path)?;
            }
            _ => return Err(invalid(format!("`{path}` is not a field of `stream_options`"))),
        }
    }
    Ok(include_usage)
}

fn text_modality_only(value: &Value) -> Result<(), Refusal> {
    for (index, modality) in array(value, "modalities")?.iter().enumerate() {
        let path = format!("modalities[{index}]");
        match modality.as_str() {
            Some("text") => {}
            Some("audio") => return Err(unsupported(&path, "streamhost answers text, not audio")),
            _ => return Err(wrong_type(&path, "`text` or `audio`")),
        }
    }
    Ok(())
}

fn text_format_only(value: &Value) -> Result<(), Refusal> {
    let format = object(value, "response_format")?;
    match format.get("type").map(|kind| text(kind, "response_format.type")).transpose()? {
        Some("text") => only_fields(format, "response_format", "a `text` format", &["type"]),
        Some("json_object" | "json_schema") => {
            Err(unsupported("response_format.type", "structured output is not supported: only `text` is taken"))
        }
        _ => Err(wrong_type("response_format.type", "`text`, `json_object` or `json_schema`")),
    }
}

/// `tools`: functions, as the host's tool specs.
fn tools(value: &Value) -> Result<Vec<ToolSpec>, Refusal> {
    let entries = array(value, "tools")?;
    entries.iter().enumerate().map(|(index, entry)| tool(entry, &format!("tools[{index}]"))).collect()
}

fn tool(entry: &Value, path: &str) -> Result<ToolSpec, Refusal> {
    let fields = object(entry, path)?;
    match fields.get("type").map(|kind| text(kind, &format!("{path}.type"))).transpose()? {
        Some("function") => {}
        Some(other) => {
            return Err(unsupported(
                &format!("{path}.type"),
                &format!("only `function` tools are taken, not `{other}`"),
            ));
        }
        None => return Err(invalid(format!("`{path}` has no `type`"))),
    }
    only_fields(fields, path, "a tool", &["type", "function"])?;
    let Some(function) = fields.get("function") else { return Err(invalid(format!("`{path}` has no `function`"))) };
    let path = format!("{path}.function");
    let function = object(function, &path)?;
    only_fields(function, &path, "a function", &["name", "description", "parameters", "strict"])?;
    let name = match function.get("name") {
        Some(name) => text(name, &format!("{path}.name"))?.to_string(),
        None => return Err(invalid(format!("`{path}` has no `name`"))),
    };
    let description = match function.get("description").filter(|value| !value.is_null()) {
        Some(description) => text(description, &format!("{path}.description"))?.to_string(),
        None => String::new(),
    };
    if let Some(strict) = function.get("strict").filter(|value| !value.is_null()) {
        boolean(strict, &format!("{path}.strict"))?;
    }
    // A function without parameters takes none: an empty object schema.
    let input_schema = match function.get("parameters").filter(|value| !value.is_null()) {
        Some(parameters) => to_json(object(parameters, &format!("{path}.parameters"))?),
        None => r#"{"type":"object","properties":{}}"#.to_string(),
    };
    Ok(ToolSpec { name, description, input_schema })
}

/// A tool choice without tools: `auto` and `none` say nothing, and are left
/// out (the pipeline need not open `tools` for them); any other is refused.
fn without_tools(choice: Option<Value>, tools: &[ToolSpec]) -> Result<Option<Value>, Refusal> {
    match choice {
        Some(choice) if tools.is_empty() => match choice.as_str() {
            Some("auto" | "none") => Ok(None),
            _ => Err(invalid("`tool_choice` asks for a tool call, but `tools` declares none")),
        },
        choice => Ok(choice),
    }
}

/// `tool_choice` as the host's `model.toolChoice`.
fn tool_choice(value: &Value) -> Result<Value, Refusal> {
    match value {
        Value::String(mode) => match mode.as_str() {
            "auto" | "none" => Ok(Value::from(mode.as_str())),
            "required" => Ok(Value::from("any")),
            other => Err(invalid(format!("`tool_choice`: `{other}` is not `auto`, `none` or `required`"))),
        },
        Value::Object(fields) => {
            let kind = fields.get("type").map(|kind| text(kind, "tool_choice.type")).transpose()?;
            if kind != Some("function") {
                return Err(unsupported("tool_choice.type", "only a `function` is taken"));
            }
            let name = fields
                .get("function")
                .and_then(|function| function.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("`tool_choice.function.name` must be a string"))?;
            Ok(serde_json::json!({ "tool": name }))
        }
        _ => Err(wrong_type("tool_choice", "a string or an object")),
    }
}

/// The conversation and the system prompt, from `messages`.
struct Conversation {
    system: Option<String>,
    messages: Vec<ModelMessage>,
}

/// What one message of `messages` adds.
enum Said {
    /// A `system` or `developer` message's text.
    Instructions(String),
    /// A `user` or `assistant` message.
    Turn(ModelMessage),
    /// A `tool` message: a tool's result.
    ToolResult(ToolResult),
}

fn conversation(value: &Value) -> Result<Conversation, Refusal> {
    let entries = array(value, "messages")?;
    if entries.is_empty() {
        return Err(invalid("`messages` is empty"));
    }
    let mut instructions = Vec::new();
    let mut messages = Vec::new();
    // The index in `messages` of the conversation's last message, to name it.
    let mut last_turn = 0;
    for (index, entry) in entries.iter().enumerate() {
        match message(entry, &format!("messages[{index}]"))? {
            Said::Instructions(instruction) if instruction.is_empty() => {}
            Said::Instructions(instruction) => instructions.push(instruction),
            Said::Turn(message) => {
                messages.push(message);
                last_turn = index;
            }
            // The results in a row are one user message.
            Said::ToolResult(result) => {
                match messages.last_mut() {
                    Some(ModelMessage { role: Role::User, content })
                        if content.iter().all(|block| matches!(block, Content::ToolResult(_))) =>
                    {
                        content.push(Content::ToolResult(result))
                    }
                    _ => messages.push(ModelMessage { role: Role::User, content: vec![Content::ToolResult(result)] }),
                }
                last_turn = index;
            }
        }
    }
    match messages.last().map(|message| message.role) {
        Some(Role::User) => {}
        Some(Role::Assistant) => {
            return Err(invalid(format!(
                "`messages[{last_turn}]` is the assistant's: the conversation must end with the user's message"
            )));
        }
        None => return Err(invalid("`messages` has no user message")),
    }
    let system = (!instructions.is_empty()).then(|| instructions.join("\n\n"));
    Ok(Conversation { system, messages })
}

fn message(entry: &Value, path: &str) -> Result<Said, Refusal> {
    let fields = object(entry, path)?;
    let Some(role) = fields.get("role") else { return Err(invalid(format!("`{path}` has no `role`"))) };
    let role = text(role, &format!("{path}.role"))?;
    let known: &[&str] = match role {
        "system" | "developer" | "user" => &["role", "content", "name"],
        // `annotations`: an earlier answer's, as the SDK sends the message
        // it got back (`messages.append(completion.choices[0].message)`).
        "assistant" => &["role", "content", "name", "refusal", "audio", "tool_calls", "function_call", "annotations"],
        "tool" => return tool_result(fields, path).map(Said::ToolResult),
        "function" => return Err(unsupported(path, FUNCTIONS)),
        other => {
            return Err(invalid(format!(
                "`{path}.role`: `{other}` is not a role of Chat Completions (system, developer, user, assistant, tool)"
            )));
        }
    };
    only_fields(fields, path, &format!("a `{role}` message"), known)?;
    // `name` tells participants of the same role apart; the host's
    // conversation has none to tell apart.
    if let Some(name) = fields.get("name").filter(|name| !name.is_null()) {
        text(name, &format!("{path}.name"))?;
    }
    let content = content_text(fields, path, role)?;
    match role {
        "assistant" => Ok(Said::Turn(assistant(fields, path, content)?)),
        _ => {
            let Some(content) = content else { return Err(invalid(format!("`{path}` has no `content`"))) };
            Ok(match role {
                "user" => Said::Turn(ModelMessage::user(content)),
                _ => Said::Instructions(content),
            })
        }
    }
}

/// An assistant message: its text (its content, then its refusal: the model
/// answers one or the other), then its tool calls. Audio is refused.
fn assistant(fields: &Map<String, Value>, path: &str, content: Option<String>) -> Result<ModelMessage, Refusal> {
    let present = |name: &str| fields.get(name).filter(|value| !value.is_null());
    if present("function_call").is_some() {
        return Err(unsupported(&format!("{path}.function_call"), FUNCTIONS));
    }
    if present("audio").is_some() {
        return Err(unsupported(&format!("{path}.audio"), "streamhost's conversation is text, not audio"));
    }
    if let Some(annotations) = present("annotations") {
        array(annotations, &format!("{path}.annotations"))?;
    }
    let calls_path = format!("{path}.tool_calls");
    let calls = match present("tool_calls") {
        Some(calls) => array(calls, &calls_path)?
            .iter()
            .enumerate()
            .map(|(index, call)| tool_call(call, &format!("{calls_path}[{index}]")))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let refusal = present("refusal").map(|refusal| text(refusal, &format!("{path}.refusal"))).transpose()?;
    let text = match (content, refusal) {
        (None, None) if calls.is_empty() => return Err(invalid(format!("`{path}` has no `content`"))),
        (content, refusal) => content.unwrap_or_default() + refusal.unwrap_or_default(),
    };
    let mut blocks: Vec<Content> = Some(text).filter(|text| !text.is_empty()).map(Content::Text).into_iter().collect();
    blocks.extend(calls.into_iter().map(Content::ToolCall));
    if blocks.is_empty() {
        blocks.push(Content::Text(String::new()));
    }
    Ok(ModelMessage { role: Role::Assistant, content: blocks })
}

/// One of an assistant's `tool_calls`: `{"id", "type": "function",
/// "function": {"name", "arguments"}}`, its arguments a JSON object.
fn tool_call(call: &Value, path: &str) -> Result<ToolCall, Refusal> {
    let fields = object(call, path)?;
    // `index`: a streamed call's, which the SDK's stream helper keeps.
    only_fields(fields, path, "a tool call", &["id", "type", "function", "index"])?;
    let field = |name: &str| fields.get(name).ok_or_else(|| invalid(format!("`{path}` has no `{name}`")));
    let id = text(field("id")?, &format!("{path}.id"))?.to_string();
    if text(field("type")?, &format!("{path}.type"))? != "function" {
        return Err(unsupported(&format!("{path}.type"), "only `function` calls are taken"));
    }
    let function_path = format!("{path}.function");
    let function = object(field("function")?, &function_path)?;
    only_fields(function, &function_path, "a function call", &["name", "arguments"])?;
    let part = |name: &str| {
        function
            .get(name)
            .ok_or_else(|| invalid(format!("`{function_path}` has no `{name}`")))
            .and_then(|value| text(value, &format!("{function_path}.{name}")))
    };
    let name = part("name")?.to_string();
    let arguments = part("arguments")?;
    // An empty string is a call with no arguments.
    let input = if arguments.trim().is_empty() { "{}".to_string() } else { arguments.to_string() };
    if !serde_json::from_str::<Value>(&input).is_ok_and(|input| input.is_object()) {
        return Err(invalid(format!("`{function_path}.arguments` must be a JSON object, as text")));
    }
    Ok(ToolCall { id, name, input })
}

/// A `tool` message: `{"role": "tool", "tool_call_id", "content"}`.
fn tool_result(fields: &Map<String, Value>, path: &str) -> Result<ToolResult, Refusal> {
    only_fields(fields, path, "a `tool` message", &["role", "content", "tool_call_id"])?;
    let id = match fields.get("tool_call_id") {
        Some(id) => text(id, &format!("{path}.tool_call_id"))?.to_string(),
        None => return Err(invalid(format!("`{path}` has no `tool_call_id`"))),
    };
    let Some(content) = content_text(fields, path, "tool")? else {
        return Err(invalid(format!("`{path}` has no `content`")));
    };
    Ok(ToolResult { id, content, is_error: false })
}

/// A message's `content` as text: a string, or its parts joined in order;
/// none when absent or null.
fn content_text(fields: &Map<String, Value>, path: &str, role: &str) -> Result<Option<String>, Refusal> {
    match fields.get("content") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(index, part)| part_text(part, &format!("{path}.content[{index}]"), role))
            .collect::<Result<String, Refusal>>()
            .map(Some),
        Some(_) => Err(wrong_type(&format!("{path}.content"), "a string or an array of content parts")),
    }
}

/// The text of one content part: a `text` part, or an assistant's
/// `refusal` part. Image, audio and file parts are refused.
fn part_text<'a>(part: &'a Value, path: &str, role: &str) -> Result<&'a str, Refusal> {
    let fields = object(part, path)?;
    let Some(kind) = fields.get("type") else { return Err(invalid(format!("`{path}` has no `type`"))) };
    let kind_path = format!("{path}.type");
    let (known, text_field): (&[&str], &str) = match (text(kind, &kind_path)?, role) {
        // `prompt_cache_breakpoint` marks a prefix for OpenAI's prompt
        // cache, which the host's model sources do not have.
        ("text", _) => (&["type", "text", "prompt_cache_breakpoint"], "text"),
        ("refusal", "assistant") => (&["type", "refusal"], "refusal"),
        ("image_url", "user") => {
            return Err(unsupported(&kind_path, "image parts are not supported: the host reads text"));
        }
        ("input_audio", "user") => {
            return Err(unsupported(&kind_path, "audio parts are not supported: the host reads text"));
        }
        ("file", "user") => return Err(unsupported(&kind_path, "file parts are not supported: the host reads text")),
        (other, _) => {
            return Err(invalid(format!("`{kind_path}`: `{other}` is not a content part of a `{role}` message")));
        }
    };
    only_fields(fields, path, &format!("a `{text_field}` part"), known)?;
    match fields.get(text_field) {
        Some(value) => text(value, &format!("{path}.{text_field}")),
        None => Err(invalid(format!("`{path}` has no `{text_field}`"))),
    }
}

/// Refuses a field of the object at `path` that `known` does not name.
fn only_fields(fields: &Map<String, Value>, path: &str, what: &str, known: &[&str]) -> Result<(), Refusal> {
    match fields.keys().find(|name| !known.contains(&name.as_str())) {
        Some(name) => Err(invalid(format!("`{path}.{name}` is not a field of {what}"))),
        None => Ok(()),
    }
}

fn refuse_unless(accepted: bool, path: &str, why: &str) -> Result<(), Refusal> {
    if accepted { Ok(()) } else { Err(unsupported(path, why)) }
}

/// A field streamhost cannot honour.
fn unsupported(path: &str, why: &str) -> Refusal {
    invalid(format!("`{path}`: {why}"))
}

fn wrong_type(path: &str, what: &str) -> Refusal {
    invalid(format!("`{path}` must be {what}"))
}

fn text<'a>(value: &'a Value, path: &str) -> Result<&'a str, Refusal> {
    value.as_str().ok_or_else(|| wrong_type(path, "a string"))
}

fn boolean(value: &Value, path: &str) -> Result<bool, Refusal> {
    value.as_bool().ok_or_else(|| wrong_type(path, "true or false"))
}

fn number(value: &Value, path: &str) -> Result<f64, Refusal> {
    value.as_f64().ok_or_else(|| wrong_type(path, "a number"))
}

fn integer(value: &Value, path: &str) -> Result<i64, Refusal> {
    value.as_i64().ok_or_else(|| wrong_type(path, "an integer"))
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, Refusal> {
    value.as_object().ok_or_else(|| wrong_type(path, "a JSON object"))
}

fn array<'a>(value: &'a Value, path: &str) -> Result<&'a [Value], Refusal> {
    value.as_array().map(Vec::as_slice).ok_or_else(|| wrong_type(path, "an array"))
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

streamhost_guest::export_request_filter!(OpenAiChatRequest);

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(body: &str) -> PipelineRequest {
        map(body.as_bytes()).unwrap_or_else(|refusal| panic!("{body} was refused: {}", refusal.error.message))
    }

    /// The refusal's message, once it is checked to be a 400 `invalid_request`.
    fn refused(body: &str) -> String {
        let Err(refusal) = map(body.as_bytes()) else { panic!("{body} was accepted") };
        assert_eq!((refusal.status, refusal.error.code.as_str()), (400, "invalid_request"), "{body}");
        assert!(refusal.headers.is_empty());
        refusal.error.message
    }

    /// A body of `fields` (JSON members, without braces) around a one-message conversation.
    fn with(fields: &str) -> String {
        format!(r#"{{"model":"support","messages":[{{"role":"user","content":"Hi"}}],{fields}}}"#)
    }

    #[test]
    fn maps_a_streamed_request() {
        let request = mapped(
            r#"{"model":"support","stream":true,"stream_options":{"include_usage":true},"temperature":0.2,
                "messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}"#,
        );
        assert_eq!(request.messages, vec![ModelMessage::user("Hi")]);
        assert_eq!(request.system.as_deref(), Some("Be brief."));
        assert_eq!(request.model.as_deref(), Some(r#"{"temperature":0.2}"#));
        assert_eq!(
            request.config.as_deref(),
            Some(r#"{"openai-chat-format":{"model":"support","stream":true,"includeUsage":true}}"#)
        );
        assert_eq!((request.user_id, request.session_id, request.chain), (None, None, None));
    }

    #[test]
    fn a_bare_request_sets_no_model_options_and_answers_whole() {
        let request = mapped(r#"{"model":"support","messages":[{"role":"user","content":"Hi"}]}"#);
        assert_eq!((request.model, request.system), (None, None));
        assert_eq!(
            request.config.as_deref(),
            Some(r#"{"openai-chat-format":{"model":"support","stream":false,"includeUsage":false}}"#)
        );
    }

    #[test]
    fn system_and_developer_messages_are_the_system_prompt_in_order() {
        let request = mapped(
            r#"{"model":"m","messages":[
                {"role":"developer","content":[{"type":"text","text":"Be "},{"type":"text","text":"brief."}]},
                {"role":"user","content":"Hi","name":"ada"},
                {"role":"assistant","content":"Hello.","name":"bot","refusal":null},
                {"role":"system","content":"Answer in French.","name":"ops"},
                {"role":"system","content":""},
                {"role":"user","content":[{"type":"text","text":"How "},{"type":"text","text":"are you?","prompt_cache_breakpoint":{"mode":"explicit"}}]}
            ]}"#,
        );
        assert_eq!(request.system.as_deref(), Some("Be brief.\n\nAnswer in French."));
        assert_eq!(
            request.messages,
            vec![ModelMessage::user("Hi"), ModelMessage::assistant("Hello."), ModelMessage::user("How are you?")]
        );
    }

    #[test]
    fn an_assistant_refusal_is_its_text() {
        let request = mapped(
            r#"{"model":"m","messages":[
                {"role":"user","content":"a"},
                {"role":"assistant","content":null,"refusal":"I can't."},
                {"role":"user","content":"b"},
                {"role":"assistant","content":[{"type":"text","text":"Well, "},{"type":"refusal","refusal":"no."}],"tool_calls":[]},
                {"role":"user","content":"c"}
            ]}"#,
        );
        assert_eq!(request.messages[1], ModelMessage::assistant("I can't."));
        assert_eq!(request.messages[3], ModelMessage::assistant("Well, no."));
    }

    #[test]
    fn inference_settings_are_the_model_options() {
        let request = mapped(&with(r#""temperature":1,"top_p":0.5,"max_completion_tokens":64,"stop":"END""#));
        assert_eq!(
            request.model.as_deref(),
            Some(r#"{"temperature":1.0,"maxTokens":64,"topP":0.5,"stopSequences":["END"]}"#)
        );
        let request = mapped(&with(r#""max_tokens":32,"stop":["a","b"]"#));
        assert_eq!(request.model.as_deref(), Some(r#"{"maxTokens":32,"stopSequences":["a","b"]}"#));
        let request = mapped(&with(r#""max_tokens":32,"max_completion_tokens":32,"temperature":null"#));
        assert_eq!(request.model.as_deref(), Some(r#"{"maxTokens":32}"#));
        assert_eq!(
            refused(&with(r#""max_tokens":32,"max_completion_tokens":64"#)),
            "`max_tokens` and `max_completion_tokens` differ: send one (`max_tokens` is deprecated)"
        );
        assert_eq!(refused(&with(r#""temperature":2.5"#)), "`temperature`: must be between 0 and 2");
        assert_eq!(refused(&with(r#""top_p":"high""#)), "`top_p` must be a number");
        for tokens in ["0", "-1", "1.5", "4294967296"] {
            assert_eq!(
                refused(&with(&format!(r#""max_completion_tokens":{tokens}"#))),
                "`max_completion_tokens` must be a positive integer below 2^32"
            );
        }
        assert_eq!(refused(&with(r#""stop":["a",1]"#)), "`stop[1]` must be a string");
    }

    #[test]
    fn the_end_user_is_the_safety_identifier_else_the_user() {
        assert_eq!(mapped(&with(r#""user":"u-1","safety_identifier":"s-1""#)).user_id.as_deref(), Some("s-1"));
        assert_eq!(mapped(&with(r#""user":"u-1","safety_identifier":"""#)).user_id.as_deref(), Some("u-1"));
        assert_eq!(mapped(&with(r#""user":"""#)).user_id, None);
        assert_eq!(refused(&with(r#""user":7"#)), "`user` must be a string");
    }

    #[test]
    fn stream_options_give_include_usage() {
        let config = |fields: &str| mapped(&with(fields)).config.unwrap();
        assert_eq!(
            config(r#""stream":true,"stream_options":{"include_usage":false,"include_obfuscation":false}"#),
            r#"{"openai-chat-format":{"model":"support","stream":true,"includeUsage":false}}"#
        );
        assert_eq!(
            config(r#""stream":null,"stream_options":{"include_usage":true}"#),
            r#"{"openai-chat-format":{"model":"support","stream":false,"includeUsage":true}}"#
        );
        assert_eq!(
            refused(&with(r#""stream_options":{"include_usage":true,"chunk_size":2}"#)),
            "`stream_options.chunk_size` is not a field of `stream_options`"
        );
        assert_eq!(refused(&with(r#""stream":"yes""#)), "`stream` must be true or false");
    }

    #[test]
    fn maps_client_tools_their_calls_and_their_results() {
        let request = mapped(
            r#"{"model":"m","tool_choice":{"type":"function","function":{"name":"lookup"}},
            "tools":[{"type":"function","function":{"name":"lookup","description":"Finds an order","parameters":{"type":"object","properties":{"order":{"type":"string"}}}}},
                     {"type":"function","function":{"name":"now"}}],
            "messages":[{"role":"user","content":"Where is A-1?"},
                {"role":"assistant","content":null,"tool_calls":[
                    {"id":"c1","type":"function","function":{"name":"lookup","arguments":"{\"order\":\"A-1\"}"}},
                    {"id":"c2","type":"function","function":{"name":"now","arguments":""}}]},
                {"role":"tool","tool_call_id":"c1","content":"shipped"},
                {"role":"tool","tool_call_id":"c2","content":[{"type":"text","text":"noon"}]}]}"#,
        );
        assert_eq!(
            request.tools,
            vec![
                ToolSpec {
                    name: "lookup".into(),
                    description: "Finds an order".into(),
                    input_schema: r#"{"type":"object","properties":{"order":{"type":"string"}}}"#.into(),
                },
                ToolSpec {
                    name: "now".into(),
                    description: String::new(),
                    input_schema: r#"{"type":"object","properties":{}}"#.into()
                },
            ]
        );
        assert_eq!(request.model.as_deref(), Some(r#"{"toolChoice":{"tool":"lookup"}}"#));
        let call = |id: &str, name: &str, input: &str| {
            Content::ToolCall(ToolCall { id: id.into(), name: name.into(), input: input.into() })
        };
        let result = |id: &str, content: &str| {
            Content::ToolResult(ToolResult { id: id.into(), content: content.into(), is_error: false })
        };
        assert_eq!(
            request.messages,
            vec![
                ModelMessage::user("Where is A-1?"),
                ModelMessage {
                    role: Role::Assistant,
                    content: vec![call("c1", "lookup", r#"{"order":"A-1"}"#), call("c2", "now", "{}")]
                },
                ModelMessage { role: Role::User, content: vec![result("c1", "shipped"), result("c2", "noon")] },
            ]
        );
        let required = with(r#""tool_choice":"required","tools":[{"type":"function","function":{"name":"f"}}]"#);
        assert_eq!(mapped(&required).model.as_deref(), Some(r#"{"toolChoice":"any"}"#));
        assert_eq!(
            refused(&with(r#""tool_choice":"required""#)),
            "`tool_choice` asks for a tool call, but `tools` declares none"
        );
    }

    #[test]
    fn accepts_what_changes_nothing_and_the_defaults_of_what_it_cannot_do() {
        let request = mapped(&with(
            r#""metadata":{"k":"v"},"store":true,"seed":7,"service_tier":"auto","parallel_tool_calls":false,
               "prompt_cache_key":"k","prompt_cache_retention":"24h","prompt_cache_options":{"mode":"implicit"},
               "reasoning_effort":"low","verbosity":"low","prediction":{"type":"content","content":"x"},
               "n":1,"frequency_penalty":0,"presence_penalty":0.0,"logit_bias":{},"logprobs":false,"top_logprobs":0,
               "tools":[],"functions":[],"tool_choice":"auto","function_call":"none","modalities":["text"],
               "response_format":{"type":"text"},"audio":null,"moderation":null,"web_search_options":null"#,
        ));
        assert_eq!((request.model, request.user_id), (None, None));
        assert!(mapped(&with(r#""tool_choice":"none""#)).config.is_some());
        assert_eq!(refused(&with(r#""seed":"7""#)), "`seed` must be an integer");
        assert_eq!(refused(&with(r#""metadata":[]"#)), "`metadata` must be a JSON object");
    }

    #[test]
    fn refuses_what_streamhost_cannot_do_naming_the_field() {
        for (fields, message) in [
            (r#""n":2"#, "`n`: streamhost writes one choice: send 1 or leave it out"),
            (
                r#""frequency_penalty":0.5"#,
                "`frequency_penalty`: the host's model sources apply no penalties: send 0 or leave it out",
            ),
            (
                r#""presence_penalty":-1"#,
                "`presence_penalty`: the host's model sources apply no penalties: send 0 or leave it out",
            ),
            (r#""logit_bias":{"50256":-100}"#, "`logit_bias`: the host's model sources apply no token biases"),
            (r#""logprobs":true"#, "`logprobs`: streamhost returns no log probabilities"),
            (r#""top_logprobs":2"#, "`top_logprobs`: streamhost returns no log probabilities"),
            (
                r#""tools":[{"type":"custom","custom":{"name":"f"}}]"#,
                "`tools[0].type`: only `function` tools are taken, not `custom`",
            ),
            (
                r#""tools":[{"type":"function","function":{"name":"f","parameters":[]}}]"#,
                "`tools[0].function.parameters` must be a JSON object",
            ),
            (
                r#""functions":[{"name":"f"}]"#,
                "`functions`: the deprecated functions are not taken: send `tools` and `tool_choice`",
            ),
            (r#""tool_choice":"sometimes""#, "`tool_choice`: `sometimes` is not `auto`, `none` or `required`"),
            (
                r#""function_call":{"name":"f"}"#,
                "`function_call`: the deprecated functions are not taken: send `tools` and `tool_choice`",
            ),
            (
                r#""response_format":{"type":"json_schema","json_schema":{}}"#,
                "`response_format.type`: structured output is not supported: only `text` is taken",
            ),
            (
                r#""response_format":{"type":"text","strict":true}"#,
                "`response_format.strict` is not a field of a `text` format",
            ),
            (
                r#""response_format":{"type":"yaml"}"#,
                "`response_format.type` must be `text`, `json_object` or `json_schema`",
            ),
            (r#""modalities":["text","audio"]"#, "`modalities[1]`: streamhost answers text, not audio"),
            (r#""audio":{"voice":"alloy","format":"mp3"}"#, "`audio`: streamhost answers text, not audio"),
            (r#""moderation":{"model":"omni-moderation-latest"}"#, "`moderation`: streamhost runs no moderation model"),
            (r#""web_search_options":{}"#, "`web_search_options`: streamhost does not search the web"),
            (r#""thinking":{"type":"enabled"}"#, "`thinking` is not a field of a Chat Completions request"),
        ] {
            assert_eq!(refused(&with(fields)), message, "{fields}");
        }
    }

    #[test]
    fn refuses_parts_and_messages_it_cannot_map_naming_the_path() {
        let conversation = |messages: &str| format!(r#"{{"model":"m","messages":[{messages}]}}"#);
        for (messages, message) in [
            (
                r#"{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":[{"type":"text","text":"c"},{"type":"image_url","image_url":{"url":"x"}}]}"#,
                "`messages[2].content[1].type`: image parts are not supported: the host reads text",
            ),
            (
                r#"{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}"#,
                "`messages[0].content[0].type`: audio parts are not supported: the host reads text",
            ),
            (
                r#"{"role":"user","content":[{"type":"file","file":{}}]}"#,
                "`messages[0].content[0].type`: file parts are not supported: the host reads text",
            ),
            (
                r#"{"role":"system","content":[{"type":"image_url"}]},{"role":"user","content":"a"}"#,
                "`messages[0].content[0].type`: `image_url` is not a content part of a `system` message",
            ),
            (
                r#"{"role":"user","content":[{"type":"refusal","refusal":"no"}]}"#,
                "`messages[0].content[0].type`: `refusal` is not a content part of a `user` message",
            ),
            (
                r#"{"role":"user","content":[{"type":"text","text":"a","cache_control":{}}]}"#,
                "`messages[0].content[0].cache_control` is not a field of a `text` part",
            ),
            (r#"{"role":"user","content":[{"text":"a"}]}"#, "`messages[0].content[0]` has no `type`"),
            (r#"{"role":"user","content":[{"type":"text"}]}"#, "`messages[0].content[0]` has no `text`"),
            (
                r#"{"role":"user","content":[{"type":"text","text":1}]}"#,
                "`messages[0].content[0].text` must be a string",
            ),
            (r#"{"role":"user","content":7}"#, "`messages[0].content` must be a string or an array of content parts"),
            (
                r#"{"role":"user","content":"a"},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]},{"role":"tool","tool_call_id":"c","content":"1"}"#,
                "`messages[1].tool_calls[0].function.arguments` must be a JSON object, as text",
            ),
            (r#"{"role":"tool","content":"1"}"#, "`messages[0]` has no `tool_call_id`"),
            (
                r#"{"role":"function","name":"f","content":"1"}"#,
                "`messages[0]`: the deprecated functions are not taken: send `tools` and `tool_choice`",
            ),
            (
                r#"{"role":"assistant","function_call":{"name":"f","arguments":"{}"}},{"role":"user","content":"a"}"#,
                "`messages[0].function_call`: the deprecated functions are not taken: send `tools` and `tool_choice`",
            ),
            (
                r#"{"role":"assistant","audio":{"id":"a1"}},{"role":"user","content":"a"}"#,
                "`messages[0].audio`: streamhost's conversation is text, not audio",
            ),
            (r#"{"role":"assistant"},{"role":"user","content":"a"}"#, "`messages[0]` has no `content`"),
            (r#"{"role":"user"}"#, "`messages[0]` has no `content`"),
            (
                r#"{"role":"user","content":"a","tool_call_id":"c"}"#,
                "`messages[0].tool_call_id` is not a field of a `user` message",
            ),
            (r#"{"role":"user","content":"a","name":1}"#, "`messages[0].name` must be a string"),
            (
                r#"{"role":"critic","content":"a"}"#,
                "`messages[0].role`: `critic` is not a role of Chat Completions (system, developer, user, assistant, tool)",
            ),
            (r#"{"content":"a"}"#, "`messages[0]` has no `role`"),
            (r#""a""#, "`messages[0]` must be a JSON object"),
            (
                r#"{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"system","content":"c"}"#,
                "`messages[1]` is the assistant's: the conversation must end with the user's message",
            ),
            (r#"{"role":"system","content":"a"}"#, "`messages` has no user message"),
            ("", "`messages` is empty"),
        ] {
            assert_eq!(refused(&conversation(messages)), message, "{messages}");
        }
    }

    #[test]
    fn refuses_a_body_that_is_not_a_chat_completions_request() {
        assert!(refused("").starts_with("the body is not valid JSON"));
        assert!(refused(r#"["model"]"#).starts_with("the body must be a JSON object"));
        assert!(refused(r#"{"messages":[{"role":"user","content":"a"}]}"#).starts_with("the body has no `model`"));
        assert!(
            refused(r#"{"model":null,"messages":[{"role":"user","content":"a"}]}"#)
                .starts_with("the body has no `model`")
        );
        assert!(refused(r#"{"model":"m"}"#).starts_with("the body has no `messages`"));
        assert_eq!(refused(r#"{"model":1,"messages":[]}"#), "`model` must be a string");
        assert_eq!(refused(r#"{"model":"","messages":[]}"#), "`model` is empty: it names the pipeline");
        assert_eq!(refused(r#"{"model":"m","messages":{}}"#), "`messages` must be an array");
    }
}
