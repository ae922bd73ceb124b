//! `anthropic-messages-request`: the **request filter** of `POST /v1/messages`.
//! It maps an Anthropic Messages body to the host's request, as
//! `docs/standard-apis.md` lays it down:
//!
//! ```json
//! {"model": "support-desk", "max_tokens": 1024, "system": "Be brief.", "stream": true,
//!  "metadata": {"user_id": "u-42"}, "temperature": 0.2,
//!  "messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"},
//!               {"role": "user", "content": [{"type": "text", "text": "Where is my order?"}]}]}
//! ```
//!
//! becomes the conversation as text (`user`, `assistant`, `user`), the
//! system prompt `Be brief.`, the user id `u-42`, the model options
//! `{"temperature":0.2,"maxTokens":1024}` and the formatter's settings
//! `{"anthropic-messages-format":{"model":"support-desk","stream":true}}`.
//! `model` names the pipeline (the host reads it); it never becomes a model
//! option.
//!
//! Content is a string or a list of blocks: text blocks (adjacent ones
//! joined by a blank line), and the client tools' `tool_use` (an
//! assistant's) and `tool_result` (a user's, its content a string or text
//! blocks) blocks; consecutive messages of one role are combined into one
//! turn, as Anthropic does. `tools` (custom tools: `name`, `description`,
//! `input_schema`) are the request's tools and `tool_choice` its
//! `model.toolChoice` (`auto`, `any`, `tool` by name, `none`). What
//! streamhost cannot do is refused with `400 invalid_request`, a message
//! naming the field: a missing `max_tokens` (the API requires it), other
//! blocks (`messages[0].content[1].type` is `image`), server tools,
//! thinking, a trailing assistant message (prefill), `top_k`, structured
//! outputs, and any field the API does not define. Fields that change nothing streamhost does
//! (`cache_control`, `service_tier`, `container`, ...) are accepted and
//! ignored; the README lists every field.
//!
//! No settings.

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use streamhost_guest::Role;
use streamhost_guest::model::{Content, ModelMessage, ToolCall, ToolResult, ToolSpec};
use streamhost_guest::request_filter::{
    IncomingRequest, PipelineRequest, Refusal, RequestFilter, invalid_request as invalid, json_object,
};

pub struct AnthropicMessagesRequest;

impl RequestFilter for AnthropicMessagesRequest {
    fn filter(request: IncomingRequest) -> Result<PipelineRequest, Refusal> {
        map(&request.body)
    }
}

const SHAPE: &str = r#"send {"model":…,"max_tokens":…,"messages":[{"role":"user","content":…}]}"#;

/// Text blocks, and consecutive turns of one role, are joined by a blank
/// line, so that their texts stay apart for the model.
const JOINER: &str = "\n\n";

/// Every field of the Messages API's body; any other is refused.
const FIELDS: [&str; 24] = [
    // Mapped.
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    // Refused when set (see `refuse_what_is_not_mapped`).
    "top_k",
    "thinking",
    "tools",
    "tool_choice",
    "mcp_servers",
    "inference_geo",
    "output_config",
    // Accepted and ignored: they change nothing streamhost does.
    "cache_control",
    "container",
    "context_management",
    "diagnostics",
    "service_tier",
    "speed",
    "user_profile_id",
    "workspace_id",
];

/// The host's request for a Messages body, or why it is refused.
fn map(body: &[u8]) -> Result<PipelineRequest, Refusal> {
    let body = json_object(body, SHAPE)?;
    if let Some(unknown) = body.keys().find(|name| !FIELDS.contains(&name.as_str())) {
        return Err(invalid(format!("`{unknown}` is not a field of the Messages API")));
    }
    refuse_what_is_not_mapped(&body)?;
    let model: String = required(&body, "model")?;
    let options = model_options(&body)?;
    let messages = conversation(&required::<Vec<Value>>(&body, "messages")?)?;
    let tools = tools(&body)?;
    let mut options = options;
    options.tool_choice = tool_choice(&body, &tools)?;
    let system = match body.get("system") {
        None | Some(Value::Null) => None,
        Some(system) => Some(text_of(system, "system")?).filter(|text| !text.is_empty()),
    };
    let metadata: Metadata = optional(&body, "metadata")?.unwrap_or_default();
    let stream = optional(&body, "stream")?.unwrap_or(false);
    Ok(PipelineRequest {
        messages,
        system,
        user_id: metadata.user_id.filter(|id| !id.is_empty()),
        session_id: None,
        model: Some(to_json(&options)),
        tools,
        config: Some(to_json(&FormatterConfig { format: FormatSettings { model: &model, stream } })),
        chain: None,
    })
}

/// `metadata`: Anthropic defines only `user_id`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Metadata {
    user_id: Option<String>,
}

/// The host's model options, only those the body sets.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Vec<String>>,
    /// `"auto"`, `"any"`, `"none"` or `{"tool": "<name>"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
}

/// `{"anthropic-messages-format": {"model": …, "stream": …}}`.
#[derive(Serialize)]
struct FormatterConfig<'a> {
    #[serde(rename = "anthropic-messages-format")]
    format: FormatSettings<'a>,
}

#[derive(Serialize)]
struct FormatSettings<'a> {
    model: &'a str,
    stream: bool,
}

fn model_options(body: &Map<String, Value>) -> Result<ModelOptions, Refusal> {
    let max_tokens: u32 = required(body, "max_tokens")?;
    if max_tokens == 0 {
        // Anthropic takes 0 to pre-warm its prompt cache; there is none here.
        return Err(invalid("`max_tokens` must be at least 1: streamhost has no prompt cache to pre-warm"));
    }
    Ok(ModelOptions {
        temperature: fraction(body, "temperature")?,
        max_tokens,
        top_p: fraction(body, "top_p")?,
        stop_sequences: stop_sequences(body)?,
        tool_choice: None,
    })
}

/// `tools`: custom tools, as the host's tool specs. Anthropic's server
/// tools (a `type` such as `web_search_20250305`) are refused.
fn tools(body: &Map<String, Value>) -> Result<Vec<ToolSpec>, Refusal> {
    let tools = optional::<Vec<Value>>(body, "tools")?.unwrap_or_default();
    tools.iter().enumerate().map(|(index, tool)| tool_spec(tool, &format!("tools[{index}]"))).collect()
}

/// One custom tool. `cache_control` is a prompt-cache hint, and the rest
/// of what the API lets a tool say (`strict`, `input_examples`, ...) only
/// tunes how Anthropic's own models use it: ignored.
#[derive(Deserialize)]
struct CustomTool {
    name: String,
    #[serde(default)]
    description: String,
    input_schema: Map<String, Value>,
}

fn tool_spec(tool: &Value, path: &str) -> Result<ToolSpec, Refusal> {
    if let Some(kind) = tool.get("type").and_then(Value::as_str).filter(|kind| *kind != "custom") {
        return Err(invalid(format!(
            "`{path}.type` is `{kind}`: Anthropic's server tools are not supported; declare custom tools"
        )));
    }
    let CustomTool { name, description, input_schema } = parse(tool, path)?;
    Ok(ToolSpec { name, description, input_schema: to_json(&input_schema) })
}

/// `tool_choice` as the host's `model.toolChoice`. Without tools, `auto`
/// and `none` say nothing and are left out (the pipeline need not open
/// `tools` for them); `any` or a tool is refused.
fn tool_choice(body: &Map<String, Value>, tools: &[ToolSpec]) -> Result<Option<Value>, Refusal> {
    let Some(choice) = optional::<ToolChoice>(body, "tool_choice")? else { return Ok(None) };
    let choice = match (choice.kind.as_str(), choice.name) {
        ("auto" | "none", _) if tools.is_empty() => return Ok(None),
        (_, _) if tools.is_empty() => {
            return Err(invalid("`tool_choice` asks for a tool call, but `tools` declares none"));
        }
        (kind @ ("auto" | "any" | "none"), _) => Value::from(kind),
        ("tool", Some(name)) => serde_json::json!({ "tool": name }),
        ("tool", None) => return Err(invalid("`tool_choice` of type `tool` names no tool: send its `name`")),
        (other, _) => {
            return Err(invalid(format!("`tool_choice.type` is `{other}`: one of `auto`, `any`, `tool`, `none`")));
        }
    };
    Ok(Some(choice))
}

/// A sampling setting Anthropic bounds to 0..=1 (`temperature`, `top_p`).
fn fraction(body: &Map<String, Value>, name: &str) -> Result<Option<f64>, Refusal> {
    match optional::<f64>(body, name)? {
        Some(value) if !(0.0..=1.0).contains(&value) => Err(invalid(format!("`{name}` must be between 0 and 1"))),
        value => Ok(value),
    }
}

/// `stop_sequences`: a list of strings, or one string; none when empty.
fn stop_sequences(body: &Map<String, Value>) -> Result<Option<Vec<String>>, Refusal> {
    let sequences = match body.get("stop_sequences") {
        Some(Value::String(sequence)) => vec![sequence.clone()],
        _ => optional::<Vec<String>>(body, "stop_sequences")?.unwrap_or_default(),
    };
    Ok(Some(sequences).filter(|sequences| !sequences.is_empty()))
}

/// Refuses the fields that ask for what streamhost cannot do yet: each
/// would change the answer, so dropping it would answer another question.
fn refuse_what_is_not_mapped(body: &Map<String, Value>) -> Result<(), Refusal> {
    if optional::<Value>(body, "top_k")?.is_some() {
        return Err(invalid("`top_k` is not supported: the host's model options have no top-k sampling"));
    }
    if let Some(Thinking { kind }) = optional(body, "thinking")?
        && kind != "disabled"
    {
        return Err(invalid(format!(
            "`thinking` of type `{kind}` is not supported: streamhost does not stream thinking; leave it out or send {{\"type\":\"disabled\"}}"
        )));
    }
    if !optional::<Vec<Value>>(body, "mcp_servers")?.unwrap_or_default().is_empty() {
        return Err(invalid("`mcp_servers`: MCP servers are not mapped"));
    }
    if optional::<Value>(body, "inference_geo")?.is_some() {
        return Err(invalid("`inference_geo` is not supported: the pipeline decides where its model runs"));
    }
    let output = optional::<OutputConfig>(body, "output_config")?.unwrap_or_default();
    if output.format.is_some() {
        return Err(invalid("`output_config.format`: structured outputs are not supported"));
    }
    if output.effort.is_some() {
        return Err(invalid("`output_config.effort` is not supported: the host's model options have no effort"));
    }
    Ok(())
}

/// `thinking`: `{"type": "enabled" | "adaptive" | "disabled", …}`.
#[derive(Deserialize)]
struct Thinking {
    #[serde(rename = "type")]
    kind: String,
}

/// `tool_choice`: `{"type": "auto" | "any" | "tool" | "none", "name"?,
/// "disable_parallel_tool_use"?}` (calls in parallel are the model's to
/// make: the flag is not read).
#[derive(Deserialize)]
struct ToolChoice {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
}

/// `output_config`: nulls are as good as absent.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OutputConfig {
    effort: Option<Value>,
    format: Option<Value>,
}

/// `messages` as the host's conversation: consecutive turns of one role
/// combined (Anthropic combines them too, and the host's sources, such as
/// Bedrock's Converse, want the roles to alternate), the last the user's.
fn conversation(messages: &[Value]) -> Result<Vec<ModelMessage>, Refusal> {
    let mut conversation: Vec<ModelMessage> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let path = format!("messages[{index}]");
        let message = turn(message, &path)?;
        match conversation.last_mut() {
            Some(last) if last.role == message.role => {
                for block in message.content {
                    push_block(&mut last.content, block);
                }
            }
            _ => conversation.push(message),
        }
    }
    match conversation.last() {
        None => Err(invalid("`messages` is empty: send at least one user message")),
        Some(last) if last.role == Role::Assistant => Err(invalid(format!(
            "the last message, `messages[{}]`, is the assistant's: prefilling the answer is not supported yet; end with a user message",
            messages.len() - 1
        ))),
        Some(_) => Ok(conversation),
    }
}

/// One message of the API: `{"role": "user" | "assistant", "content": …}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputMessage {
    role: String,
    content: Value,
}

/// Adds `block`, adjacent text joined by a blank line.
fn push_block(blocks: &mut Vec<Content>, block: Content) {
    match (blocks.last_mut(), block) {
        (Some(Content::Text(last)), Content::Text(text)) => {
            last.push_str(JOINER);
            last.push_str(&text);
        }
        (_, block) => blocks.push(block),
    }
}

fn turn(message: &Value, path: &str) -> Result<ModelMessage, Refusal> {
    let message: InputMessage = parse(message, path)?;
    let role = match message.role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(invalid(format!(
                "`{path}.role` is `{other}`: a message is the `user`'s or the `assistant`'s; a system prompt goes in `system`"
            )));
        }
    };
    let content = blocks_of(&message.content, &format!("{path}.content"), role)?;
    if content.iter().all(|block| matches!(block, Content::Text(text) if text.trim().is_empty())) {
        return Err(invalid(format!("`{path}.content` is empty")));
    }
    Ok(ModelMessage { role, content })
}

/// A message's `content` as blocks: a string, or text blocks and the
/// client tools' blocks (`tool_use` the assistant's, `tool_result` the
/// user's).
fn blocks_of(content: &Value, path: &str, role: Role) -> Result<Vec<Content>, Refusal> {
    let blocks = match content {
        Value::String(text) => return Ok(vec![Content::Text(text.clone())]),
        Value::Array(blocks) => blocks,
        _ => return Err(invalid(format!("`{path}` must be a string or a list of content blocks"))),
    };
    let mut content = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        let path = format!("{path}[{index}]");
        let block = match (block.get("type").and_then(Value::as_str), role) {
            (Some("tool_use"), Role::Assistant) => Content::ToolCall(tool_use(block, &path)?),
            (Some("tool_result"), Role::User) => Content::ToolResult(tool_result(block, &path)?),
            (Some(kind @ ("tool_use" | "tool_result")), _) => {
                return Err(invalid(format!(
                    "`{path}.type` is `{kind}`, which a `{}` message does not hold",
                    role_name(role)
                )));
            }
            _ => Content::Text(block_text(block, &path)?),
        };
        push_block(&mut content, block);
    }
    if content.is_empty() {
        return Err(invalid(format!("`{path}` is empty")));
    }
    Ok(content)
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

/// `{"type": "tool_use", "id", "name", "input": {…}}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolUseBlock {
    #[serde(rename = "type")]
    _kind: IgnoredAny,
    id: String,
    name: String,
    input: Map<String, Value>,
    #[serde(rename = "cache_control")]
    _cache_control: Option<IgnoredAny>,
}

fn tool_use(block: &Value, path: &str) -> Result<ToolCall, Refusal> {
    let ToolUseBlock { id, name, input, .. } = parse(block, path)?;
    Ok(ToolCall { id, name, input: to_json(&input) })
}

/// `{"type": "tool_result", "tool_use_id", "content"?, "is_error"?}`, its
/// content a string or text blocks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolResultBlock {
    #[serde(rename = "type")]
    _kind: IgnoredAny,
    tool_use_id: String,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    is_error: Option<bool>,
    #[serde(rename = "cache_control")]
    _cache_control: Option<IgnoredAny>,
}

fn tool_result(block: &Value, path: &str) -> Result<ToolResult, Refusal> {
    let ToolResultBlock { tool_use_id, content, is_error, .. } = parse(block, path)?;
    let content = match content {
        None | Some(Value::Null) => String::new(),
        Some(content) => text_of(&content, &format!("{path}.content"))?,
    };
    Ok(ToolResult { id: tool_use_id, content, is_error: is_error.unwrap_or(false) })
}

/// The text of a message's `content` or of `system`: a string, or a list of
/// text blocks joined in order. Other blocks are refused, naming their type.
fn text_of(content: &Value, path: &str) -> Result<String, Refusal> {
    let blocks = match content {
        Value::String(text) => return Ok(text.clone()),
        Value::Array(blocks) => blocks,
        _ => return Err(invalid(format!("`{path}` must be a string or a list of content blocks"))),
    };
    let texts = blocks
        .iter()
        .enumerate()
        .map(|(index, block)| block_text(block, &format!("{path}[{index}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(texts.join(JOINER))
}

/// A text block. `cache_control` is a prompt-cache hint and `citations`
/// annotate the text, which is all the model gets: both are ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextBlock {
    #[serde(rename = "type")]
    _kind: IgnoredAny,
    text: String,
    #[serde(rename = "cache_control")]
    _cache_control: Option<IgnoredAny>,
    #[serde(rename = "citations")]
    _citations: Option<IgnoredAny>,
}

fn block_text(block: &Value, path: &str) -> Result<String, Refusal> {
    let kind = match block.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        _ => return Err(invalid(format!("`{path}.type` must be a string naming the block's type"))),
    };
    if kind == "text" {
        return Ok(parse::<TextBlock>(block, path)?.text);
    }
    // The server and MCP tools' own blocks.
    let why = if kind.ends_with("tool_use") || kind.ends_with("tool_result") {
        "Anthropic's server and MCP tools are not supported; client tools' blocks are `tool_use` and `tool_result`"
    } else if kind.contains("thinking") {
        "thinking is not supported"
    } else {
        "streamhost takes text blocks only"
    };
    Err(invalid(format!("`{path}.type` is `{kind}`: {why}")))
}

/// The field `name` as a `T`; none when absent or null.
fn optional<T: DeserializeOwned>(body: &Map<String, Value>, name: &str) -> Result<Option<T>, Refusal> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => parse(value, name).map(Some),
    }
}

/// The field `name` as a `T`, refused when absent or null.
fn required<T: DeserializeOwned>(body: &Map<String, Value>, name: &str) -> Result<T, Refusal> {
    optional(body, name)?.ok_or_else(|| invalid(format!("`{name}` is required; {SHAPE}")))
}

/// `value` as a `T`, or a refusal naming it by `path` (serde's own message
/// says what was wrong, but not where).
fn parse<T: DeserializeOwned>(value: &Value, path: &str) -> Result<T, Refusal> {
    T::deserialize(value).map_err(|problem| invalid(format!("`{path}`: {problem}")))
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

streamhost_guest::export_request_filter!(AnthropicMessagesRequest);

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(body: &str) -> PipelineRequest {
        map(body.as_bytes()).unwrap_or_else(|refusal| panic!("refused: {}", refusal.error.message))
    }

    /// The refusal's message, after checking it is a `400 invalid_request`.
    fn refused(body: &str) -> String {
        let refusal = map(body.as_bytes()).err().unwrap_or_else(|| panic!("accepted: {body}"));
        assert_eq!((refusal.status, refusal.error.code.as_str()), (400, "invalid_request"), "{body}");
        refusal.error.message
    }

    fn texts(request: &PipelineRequest) -> Vec<(Role, &str)> {
        fn text(message: &ModelMessage) -> &str {
            match message.content.as_slice() {
                [Content::Text(text)] => text.as_str(),
                other => panic!("not one text block: {other:?}"),
            }
        }
        request.messages.iter().map(|message| (message.role, text(message))).collect()
    }

    #[test]
    fn maps_client_tools_their_calls_and_their_results() {
        let request = mapped(
            r#"{"model":"m","max_tokens":5,"tool_choice":{"type":"tool","name":"lookup"},
                "tools":[{"name":"lookup","description":"Finds an order","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"}}],
                "messages":[{"role":"user","content":"Where is A-1?"},
                    {"role":"assistant","content":[{"type":"text","text":"Let me look."},{"type":"tool_use","id":"t1","name":"lookup","input":{"order":"A-1"}}]},
                    {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"shipped"}]},
                        {"type":"tool_result","tool_use_id":"t2","content":"no such order","is_error":true},{"type":"text","text":"And?"}]}]}"#,
        );
        assert_eq!(
            request.tools,
            vec![ToolSpec {
                name: "lookup".into(),
                description: "Finds an order".into(),
                input_schema: r#"{"type":"object"}"#.into()
            }]
        );
        assert_eq!(request.model.as_deref(), Some(r#"{"maxTokens":5,"toolChoice":{"tool":"lookup"}}"#));
        let result = |id: &str, content: &str, is_error| {
            Content::ToolResult(ToolResult { id: id.into(), content: content.into(), is_error })
        };
        assert_eq!(
            request.messages[1..],
            [
                ModelMessage {
                    role: Role::Assistant,
                    content: vec![
                        Content::Text("Let me look.".into()),
                        Content::ToolCall(ToolCall {
                            id: "t1".into(),
                            name: "lookup".into(),
                            input: r#"{"order":"A-1"}"#.into()
                        }),
                    ],
                },
                ModelMessage {
                    role: Role::User,
                    content: vec![
                        result("t1", "shipped", false),
                        result("t2", "no such order", true),
                        Content::Text("And?".into())
                    ],
                },
            ]
        );
        let misplaced = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]}]}"#;
        assert_eq!(
            refused(misplaced),
            "`messages[0].content[0].type` is `tool_use`, which a `user` message does not hold"
        );
    }

    #[test]
    fn maps_a_whole_body() {
        let request = mapped(
            r#"{"model":"support-desk","max_tokens":1024,"system":"Be brief.","stream":true,
                "metadata":{"user_id":"u-42"},"temperature":0.2,"top_p":0.9,"stop_sequences":["END"],
                "messages":[{"role":"user","content":"Hello"},{"role":"assistant","content":"Hi!"},
                            {"role":"user","content":[{"type":"text","text":"Where is my order?"}]}]}"#,
        );
        assert_eq!(
            texts(&request),
            [(Role::User, "Hello"), (Role::Assistant, "Hi!"), (Role::User, "Where is my order?")]
        );
        assert_eq!(request.system.as_deref(), Some("Be brief."));
        assert_eq!(request.user_id.as_deref(), Some("u-42"));
        assert_eq!(
            request.model.as_deref(),
            Some(r#"{"temperature":0.2,"maxTokens":1024,"topP":0.9,"stopSequences":["END"]}"#)
        );
        assert_eq!(
            request.config.as_deref(),
            Some(r#"{"anthropic-messages-format":{"model":"support-desk","stream":true}}"#)
        );
        assert_eq!((request.session_id, request.chain), (None, None));
    }

    #[test]
    fn a_minimal_body_sets_only_max_tokens_and_does_not_stream() {
        let request = mapped(r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#);
        assert_eq!(texts(&request), [(Role::User, "hi")]);
        assert_eq!(request.model.as_deref(), Some(r#"{"maxTokens":5}"#));
        assert_eq!(request.config.as_deref(), Some(r#"{"anthropic-messages-format":{"model":"m","stream":false}}"#));
        assert_eq!((request.system, request.user_id), (None, None));
    }

    #[test]
    fn text_blocks_are_joined_and_their_cache_hints_ignored() {
        let request = mapped(
            r#"{"model":"m","max_tokens":5,
                "system":[{"type":"text","text":"You are terse."},
                          {"type":"text","text":"Answer in French.","cache_control":{"type":"ephemeral"}}],
                "messages":[{"role":"user","content":[{"type":"text","text":"one"},
                    {"type":"text","text":"two","cache_control":{"type":"ephemeral","ttl":"1h"},"citations":null}]}]}"#,
        );
        assert_eq!(request.system.as_deref(), Some("You are terse.\n\nAnswer in French."));
        assert_eq!(texts(&request), [(Role::User, "one\n\ntwo")]);
    }

    #[test]
    fn consecutive_turns_of_one_role_are_combined() {
        let request = mapped(
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},
                {"role":"assistant","content":"c"},{"role":"assistant","content":"d"},{"role":"user","content":"e"}]}"#,
        );
        assert_eq!(texts(&request), [(Role::User, "a\n\nb"), (Role::Assistant, "c\n\nd"), (Role::User, "e")]);
    }

    #[test]
    fn stop_sequences_may_be_one_string_and_an_empty_list_sets_nothing() {
        let body = |stop: &str| {
            format!(
                r#"{{"model":"m","max_tokens":5,"stop_sequences":{stop},"messages":[{{"role":"user","content":"hi"}}]}}"#
            )
        };
        assert_eq!(mapped(&body(r#""END""#)).model.as_deref(), Some(r#"{"maxTokens":5,"stopSequences":["END"]}"#));
        assert_eq!(mapped(&body("[]")).model.as_deref(), Some(r#"{"maxTokens":5}"#));
        assert_eq!(mapped(&body("null")).model.as_deref(), Some(r#"{"maxTokens":5}"#));
        assert!(refused(&body("[1]")).starts_with("`stop_sequences`: invalid type"));
    }

    #[test]
    fn fields_that_change_nothing_here_are_accepted() {
        let request = mapped(
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}],
                "cache_control":{"type":"ephemeral"},"container":"container_1","context_management":{"edits":[]},
                "diagnostics":{"previous_message_id":"msg_1"},"service_tier":"auto","speed":"fast",
                "user_profile_id":"p","workspace_id":"w","thinking":{"type":"disabled"},"tools":[],
                "tool_choice":{"type":"auto"},"mcp_servers":[],"top_k":null,"inference_geo":null,
                "output_config":{"effort":null},"metadata":{"user_id":null},"system":""}"#,
        );
        assert_eq!(request.model.as_deref(), Some(r#"{"maxTokens":5}"#));
        assert_eq!((request.system, request.user_id), (None, None));
    }

    #[test]
    fn refuses_a_body_without_max_tokens_like_anthropic() {
        let message = refused(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
        assert!(message.starts_with("`max_tokens` is required"), "{message}");
        assert!(
            refused(r#"{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"hi"}]}"#)
                .starts_with("`max_tokens` must be at least 1")
        );
        assert!(
            refused(r#"{"model":"m","max_tokens":"9","messages":[{"role":"user","content":"hi"}]}"#)
                .starts_with("`max_tokens`: invalid type: string")
        );
    }

    #[test]
    fn refuses_what_is_not_mapped_naming_the_field() {
        let with = |field: &str| {
            refused(&format!(r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":"hi"}}],{field}}}"#))
        };
        for (field, message) in [
            (r#""top_k":40"#, "`top_k` is not supported: the host's model options have no top-k sampling"),
            (
                r#""thinking":{"type":"enabled","budget_tokens":2048}"#,
                "`thinking` of type `enabled` is not supported: streamhost does not stream thinking; leave it out or send {\"type\":\"disabled\"}",
            ),
            (
                r#""tools":[{"type":"web_search_20250305","name":"web_search"}]"#,
                "`tools[0].type` is `web_search_20250305`: Anthropic's server tools are not supported; declare custom tools",
            ),
            (r#""tool_choice":{"type":"any"}"#, "`tool_choice` asks for a tool call, but `tools` declares none"),
            (
                r#""mcp_servers":[{"type":"url","url":"https://x","name":"x"}]"#,
                "`mcp_servers`: MCP servers are not mapped",
            ),
            (r#""inference_geo":"us""#, "`inference_geo` is not supported: the pipeline decides where its model runs"),
            (
                r#""output_config":{"format":{"type":"json_schema","schema":{}}}"#,
                "`output_config.format`: structured outputs are not supported",
            ),
            (
                r#""output_config":{"effort":"high"}"#,
                "`output_config.effort` is not supported: the host's model options have no effort",
            ),
            (r#""temperature":1.5"#, "`temperature` must be between 0 and 1"),
            (r#""top_p":-0.1"#, "`top_p` must be between 0 and 1"),
            (r#""n":2"#, "`n` is not a field of the Messages API"),
            (r#""metadata":{"user":"u"}"#, "`metadata`: unknown field `user`, expected `user_id`"),
            (r#""stream":"yes""#, "`stream`: invalid type: string \"yes\", expected a boolean"),
        ] {
            assert_eq!(with(field), message, "{field}");
        }
    }

    #[test]
    fn refuses_blocks_other_than_text_naming_their_path() {
        let with = |content: &str| {
            refused(&format!(r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":{content}}}]}}"#))
        };
        assert_eq!(
            with(
                r#"[{"type":"text","text":"see"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":""}}]"#
            ),
            "`messages[0].content[1].type` is `image`: streamhost takes text blocks only"
        );
        assert_eq!(
            with(r#"[{"type":"document","source":{}}]"#),
            "`messages[0].content[0].type` is `document`: streamhost takes text blocks only"
        );
        assert_eq!(
            with(r#"[{"type":"server_tool_use","id":"s","name":"web_search","input":{}}]"#),
            "`messages[0].content[0].type` is `server_tool_use`: Anthropic's server and MCP tools are not supported; client tools' blocks are `tool_use` and `tool_result`"
        );
        assert_eq!(
            with(r#"[{"text":"no type"}]"#),
            "`messages[0].content[0].type` must be a string naming the block's type"
        );
        assert_eq!(
            with(r#"[{"type":"text","text":"hi","extra":1}]"#),
            "`messages[0].content[0]`: unknown field `extra`, expected one of `type`, `text`, `cache_control`, `citations`"
        );
        assert_eq!(with("42"), "`messages[0].content` must be a string or a list of content blocks");
        assert_eq!(with(r#"" ""#), "`messages[0].content` is empty");
        assert_eq!(with("[]"), "`messages[0].content` is empty");
        let tool_use = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"},
            {"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":[]}]},{"role":"user","content":"go"}]}"#;
        assert!(refused(tool_use).starts_with("`messages[1].content[0]`: invalid type: sequence, expected a map"));
        let thinking = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"},
            {"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"s"},{"type":"text","text":"ok"}]},
            {"role":"user","content":"go"}]}"#;
        assert_eq!(refused(thinking), "`messages[1].content[0].type` is `thinking`: thinking is not supported");
        let system =
            r#"{"model":"m","max_tokens":5,"system":[{"type":"image"}],"messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(refused(system), "`system[0].type` is `image`: streamhost takes text blocks only");
    }

    #[test]
    fn refuses_a_conversation_that_does_not_end_with_the_user() {
        let body = |messages: &str| format!(r#"{{"model":"m","max_tokens":5,"messages":{messages}}}"#);
        assert_eq!(
            refused(&body(
                r#"[{"role":"user","content":"Sun in Greek? (A) Sol (B) Helios"},{"role":"assistant","content":"The answer is ("}]"#
            )),
            "the last message, `messages[1]`, is the assistant's: prefilling the answer is not supported yet; end with a user message"
        );
        assert_eq!(refused(&body("[]")), "`messages` is empty: send at least one user message");
        assert_eq!(
            refused(&body(r#"[{"role":"system","content":"x"},{"role":"user","content":"hi"}]"#)),
            "`messages[0].role` is `system`: a message is the `user`'s or the `assistant`'s; a system prompt goes in `system`"
        );
        assert_eq!(
            refused(&body(r#"[{"role":"user","content":"hi","name":"ana"}]"#)),
            "`messages[0]`: unknown field `name`, expected `role` or `content`"
        );
        assert!(refused(r#"{"model":"m","max_tokens":5}"#).starts_with("`messages` is required"));
    }

    #[test]
    fn refuses_a_body_that_is_not_a_json_object() {
        for body in ["", "hello", "[]", r#"{"model":"m""#] {
            refused(body);
        }
        assert!(
            refused(r#"{"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#)
                .starts_with("`model` is required")
        );
    }
}
