//! `openai-responses-request`: the request filter of `POST /v1/responses`.
//! It reads the body of OpenAI's Responses API, as the OpenAI SDKs'
//! `client.responses.create(...)` sends it:
//!
//! ```json
//! {"model": "support", "instructions": "Be brief.", "stream": true, "max_output_tokens": 200,
//!  "input": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
//!            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Where is my order?"}]}]}
//! ```
//!
//! and returns the host's request: the conversation (`input`: a string is one
//! user message; a list's message items in order, their content a string or
//! text parts joined), the system prompt (`instructions`, then the `system`
//! and `developer` items, joined by a blank line), the inference settings as
//! model options (`{"temperature": …, "maxTokens": …, "topP": …}`, only those
//! the body sets), the end user's id (`safety_identifier`, else `user`), and
//! the settings of the formatter that writes the answer:
//! `{"openai-responses-format": {"model": "support", "stream": true,
//! "store": true, "previousResponseId": "resp_…"}}`.
//!
//! State is the host's: it reads `previous_response_id` and `store` itself
//! (it prepends the conversation that response ended, and keeps this one);
//! here they are checked and passed to the formatter, which echoes them.
//!
//! Client tools: `tools` (functions: `name`, `description`, `parameters`)
//! are the request's tools, `tool_choice` its `model.toolChoice` (`auto`,
//! `required` as `any`, `none`, a named function); `function_call` items
//! are the assistant's tool calls (`arguments` a JSON object) and
//! `function_call_output` items the results, in the user's turn.
//!
//! What streamhost cannot do is refused with `400 invalid_request`, the
//! message naming the field, never dropped: images, files and audio, hosted
//! tools (web search, file search, MCP, ...), `conversation` objects and
//! stored `prompt`s, a `text.format` other than text, log probabilities,
//! extra `include`s, `background`, and any field the API does not define.
//! Fields that change nothing streamhost does (`metadata`, `parallel_tool_calls`,
//! `reasoning`, `service_tier`, ...) are read, so that a malformed one is
//! refused too, and set aside; the README lists them all.
//!
//! No settings.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use streamhost_guest::Role;
use streamhost_guest::model::{Content, ModelMessage, ToolCall, ToolResult, ToolSpec};
use streamhost_guest::request_filter::{
    IncomingRequest, PipelineRequest, Refusal, RequestFilter, invalid_request as invalid, json_object,
};

pub struct OpenAiResponsesRequest;

impl RequestFilter for OpenAiResponsesRequest {
    fn filter(request: IncomingRequest) -> Result<PipelineRequest, Refusal> {
        map(&request.body)
    }
}

const SHAPE: &str = r#"send {"model": "<pipeline>", "input": "<text>" or [{"role": "user", "content": "<text>"}, …]}"#;

/// The host's request for a Responses body, or why it is refused.
fn map(bytes: &[u8]) -> Result<PipelineRequest, Refusal> {
    let mut body = Body::default();
    for (name, value) in &json_object(bytes, SHAPE)? {
        body.read(name, value)?;
    }
    let Body {
        model,
        input,
        instructions,
        mut options,
        tools,
        stream,
        store,
        previous_response_id,
        user,
        safety_identifier,
    } = body;
    options.tool_choice = without_tools(options.tool_choice, &tools)?;
    let model = model.ok_or_else(|| invalid(format!("the body has no `model`; {SHAPE}")))?;
    let Conversation { messages, system } =
        input.ok_or_else(|| invalid(format!("the body has no `input`; {SHAPE}")))?;
    match messages.last() {
        None => return Err(invalid("`input` has no user message")),
        Some(last) if last.role != Role::User => {
            return Err(invalid("the last message of `input` must be the user's"));
        }
        Some(_) => {}
    }
    let system: Vec<String> = instructions.into_iter().chain(system).filter(|part| !part.is_empty()).collect();
    let mut mapped = PipelineRequest::prompt("");
    mapped.messages = messages;
    mapped.system = (!system.is_empty()).then(|| system.join("\n\n"));
    mapped.model = options.as_json();
    mapped.tools = tools;
    mapped.user_id = safety_identifier.or(user).filter(|id| !id.is_empty());
    let settings = FormatterSettings { model: &model, stream, store: store.unwrap_or(true), previous_response_id };
    mapped.config = Some(to_json(&FormatterConfig { settings }));
    Ok(mapped)
}

/// What the body says that the host's request needs, read field by field so
/// that a refusal names the field.
#[derive(Default)]
struct Body {
    model: Option<String>,
    input: Option<Conversation>,
    instructions: Option<String>,
    options: ModelOptions,
    tools: Vec<ToolSpec>,
    stream: bool,
    /// Whether the host keeps the answer for a later `previous_response_id`
    /// (the API's default: yes).
    store: Option<bool>,
    previous_response_id: Option<String>,
    user: Option<String>,
    safety_identifier: Option<String>,
}

impl Body {
    /// Reads the field `name`: mapped, accepted and set aside, or refused.
    fn read(&mut self, name: &str, value: &Value) -> Result<(), Refusal> {
        match name {
            "model" => self.model = Some(parse(name, value)?),
            "input" => self.input = Some(read_input(value)?),
            "instructions" => self.instructions = parse(name, value)?,
            "max_output_tokens" => self.options.max_tokens = parse(name, value)?,
            "temperature" => self.options.temperature = parse(name, value)?,
            "top_p" => self.options.top_p = parse(name, value)?,
            "stream" => self.stream = parse::<Option<bool>>(name, value)?.unwrap_or(false),
            "user" => self.user = parse(name, value)?,
            "safety_identifier" => self.safety_identifier = parse(name, value)?,
            "store" => self.store = parse(name, value)?,
            "previous_response_id" => self.previous_response_id = parse(name, value)?,
            // Every answer is text alone (no tools to call in parallel, no
            // reasoning items), and the cache, the tier, the obfuscation of
            // deltas and the metadata are OpenAI's.
            "parallel_tool_calls" => check::<bool>(name, value)?,
            "prompt_cache_key" | "prompt_cache_retention" | "service_tier" => check::<String>(name, value)?,
            "metadata" => check::<BTreeMap<String, String>>(name, value)?,
            "max_tool_calls" => check::<u32>(name, value)?,
            "truncation" => one_of(name, value, &["auto", "disabled"])?,
            "stream_options" => read_object(name, value, &[("include_obfuscation", check::<bool>)])?,
            // How hard a model thinks is the pipeline's to set; streamhost's
            // answers have no reasoning items to summarise.
            "reasoning" => read_object(
                name,
                value,
                &[("effort", check::<String>), ("summary", check::<String>), ("generate_summary", check::<String>)],
            )?,
            "text" => read_object(name, value, &[("format", check_text_format), ("verbosity", check::<String>)])?,
            "tool_choice" => self.options.tool_choice = tool_choice(value)?,
            "tools" => self.tools = tools(value)?,
            "conversation" => refuse_if_set(
                name,
                value,
                "streamhost keeps no conversation objects; continue with `previous_response_id`, or send the whole \
                 conversation in `input`",
            )?,
            "prompt" => refuse_if_set(name, value, "streamhost keeps no prompts; send `instructions` and `input`")?,
            "include" => refuse_if_set(name, value, "streamhost has nothing to include beyond the answer's text")?,
            "background" => refuse_if_set(name, value, "streamhost runs no background responses; stream instead")?,
            "top_logprobs" => refuse_if_set(name, value, "streamhost returns no log probabilities")?,
            _ => return Err(invalid(format!("`{name}` is not a field of the Responses API that streamhost takes"))),
        }
        Ok(())
    }
}

/// The inference settings, as the host's model options: only those the body
/// sets.
#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    /// `"auto"`, `"any"`, `"none"` or `{"tool": "<name>"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
}

impl ModelOptions {
    /// The options as JSON; none when the body sets none.
    fn as_json(&self) -> Option<String> {
        let unset = self.temperature.is_none()
            && self.max_tokens.is_none()
            && self.top_p.is_none()
            && self.tool_choice.is_none();
        (!unset).then(|| to_json(self))
    }
}

/// The settings of the formatter that writes the answer:
/// `{"openai-responses-format": {"model", "stream", "store", "previousResponseId"?}}`.
#[derive(Serialize)]
struct FormatterConfig<'a> {
    #[serde(rename = "openai-responses-format")]
    settings: FormatterSettings<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FormatterSettings<'a> {
    model: &'a str,
    stream: bool,
    store: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_response_id: Option<String>,
}

/// `input` read: the conversation, and the text of its `system` and
/// `developer` items, which go to the system prompt.
struct Conversation {
    messages: Vec<ModelMessage>,
    system: Vec<String>,
}

impl Conversation {
    /// Adds `block` to the last message when it is `role`'s and holds the
    /// same kind of turn (an assistant's text and calls; a user's results),
    /// else as a message of its own.
    fn push_tool_block(&mut self, role: Role, block: Content) {
        match self.messages.last_mut() {
            Some(last) if last.role == role && (role == Role::Assistant || only_results(&last.content)) => {
                last.content.push(block)
            }
            _ => self.messages.push(ModelMessage { role, content: vec![block] }),
        }
    }
}

fn only_results(content: &[Content]) -> bool {
    content.iter().all(|block| matches!(block, Content::ToolResult(_)))
}

/// `tools`: functions, as the host's tool specs; hosted tools are refused.
fn tools(value: &Value) -> Result<Vec<ToolSpec>, Refusal> {
    let tools: Option<Vec<Map<String, Value>>> = parse("tools", value)?;
    let tools = tools.unwrap_or_default();
    tools.iter().enumerate().map(|(index, tool)| function_tool(&format!("tools[{index}]"), tool)).collect()
}

fn function_tool(path: &str, tool: &Map<String, Value>) -> Result<ToolSpec, Refusal> {
    match tool.get("type").and_then(Value::as_str) {
        Some("function") => {}
        Some(other) => {
            return Err(refused(&format!("{path}.type"), format!("only `function` tools are taken, not `{other}`")));
        }
        None => return Err(invalid(format!("`{path}.type` must be a string"))),
    }
    only_known(path, tool, &["type", "name", "description", "parameters", "strict"])?;
    let name: String = parse(&format!("{path}.name"), tool.get("name").unwrap_or(&Value::Null))?;
    let description: Option<String> =
        parse(&format!("{path}.description"), tool.get("description").unwrap_or(&Value::Null))?;
    check::<bool>(&format!("{path}.strict"), tool.get("strict").unwrap_or(&Value::Null))?;
    let parameters: Option<Map<String, Value>> =
        parse(&format!("{path}.parameters"), tool.get("parameters").unwrap_or(&Value::Null))?;
    // A function without parameters takes none: an empty object schema.
    let input_schema = match parameters {
        Some(parameters) => to_json(&parameters),
        None => r#"{"type":"object","properties":{}}"#.to_string(),
    };
    Ok(ToolSpec { name, description: description.unwrap_or_default(), input_schema })
}

/// `tool_choice` as the host's `model.toolChoice`.
fn tool_choice(value: &Value) -> Result<Option<Value>, Refusal> {
    match value {
        Value::Null => Ok(None),
        Value::String(mode) => match mode.as_str() {
            "auto" | "none" => Ok(Some(Value::from(mode.as_str()))),
            "required" => Ok(Some(Value::from("any"))),
            other => Err(invalid(format!("`tool_choice` must be `auto`, `none` or `required`, not `{other}`"))),
        },
        Value::Object(fields) => match (fields.get("type").and_then(Value::as_str), fields.get("name")) {
            (Some("function"), Some(Value::String(name))) => Ok(Some(serde_json::json!({ "tool": name }))),
            (Some("function"), _) => Err(invalid("`tool_choice.name` must be a string")),
            (kind, _) => Err(refused(
                "tool_choice.type",
                format!("only a `function` is taken, not `{}`", kind.unwrap_or("(none)")),
            )),
        },
        _ => Err(invalid("`tool_choice` must be a string or an object")),
    }
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

/// A `function_call` item: `{"call_id", "name", "arguments"}` (with the
/// `id` and `status` of an earlier answer's item, set aside).
fn function_call(path: &str, item: &Map<String, Value>) -> Result<ToolCall, Refusal> {
    only_known(path, item, &["type", "call_id", "name", "arguments", "id", "status"])?;
    let field = |name: &str| match item.get(name) {
        Some(Value::String(text)) => Ok(text.clone()),
        _ => Err(invalid(format!("`{path}.{name}` must be a string"))),
    };
    let (id, name, arguments) = (field("call_id")?, field("name")?, field("arguments")?);
    let input = if arguments.trim().is_empty() { "{}".to_string() } else { arguments };
    if !serde_json::from_str::<Value>(&input).is_ok_and(|input| input.is_object()) {
        return Err(invalid(format!("`{path}.arguments` must be a JSON object, as text")));
    }
    Ok(ToolCall { id, name, input })
}

/// A `function_call_output` item: `{"call_id", "output"}`, the output a
/// string or text parts.
fn function_call_output(path: &str, item: &Map<String, Value>) -> Result<ToolResult, Refusal> {
    only_known(path, item, &["type", "call_id", "output", "id", "status"])?;
    let id = match item.get("call_id") {
        Some(Value::String(id)) => id.clone(),
        _ => return Err(invalid(format!("`{path}.call_id` must be a string"))),
    };
    let content = read_content(&format!("{path}.output"), item.get("output"))?;
    Ok(ToolResult { id, content, is_error: false })
}

fn read_input(input: &Value) -> Result<Conversation, Refusal> {
    let mut conversation = Conversation { messages: Vec::new(), system: Vec::new() };
    match input {
        Value::String(text) => conversation.messages.push(ModelMessage::user(text.clone())),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                read_item(&format!("input[{index}]"), item, &mut conversation)?;
            }
        }
        _ => return Err(invalid("`input` must be a string or a list of items")),
    }
    Ok(conversation)
}

/// One item of `input` (at `path`): a message, with or without its `"type":
/// "message"`. Its `id`, `status` and `phase`, which the API's own output
/// items carry when a client sends them back, are set aside.
fn read_item(path: &str, item: &Value, conversation: &mut Conversation) -> Result<(), Refusal> {
    let Value::Object(item) = item else {
        return Err(invalid(format!("`{path}` must be an object")));
    };
    match item.get("type") {
        None => {}
        Some(Value::String(kind)) if kind == "message" => {}
        Some(Value::String(kind)) if kind == "function_call" => {
            let call = function_call(path, item)?;
            conversation.push_tool_block(Role::Assistant, Content::ToolCall(call));
            return Ok(());
        }
        Some(Value::String(kind)) if kind == "function_call_output" => {
            let result = function_call_output(path, item)?;
            conversation.push_tool_block(Role::User, Content::ToolResult(result));
            return Ok(());
        }
        Some(Value::String(kind)) if kind == "item_reference" => {
            return Err(refused(
                &format!("{path}.type"),
                "streamhost keeps whole responses, not items: continue with `previous_response_id`",
            ));
        }
        Some(Value::String(kind)) => {
            return Err(refused(&format!("{path}.type"), format!("streamhost takes messages only, not `{kind}`")));
        }
        Some(_) => return Err(invalid(format!("`{path}.type` must be a string"))),
    }
    only_known(path, item, &["type", "role", "content", "id", "status", "phase"])?;
    let role = match item.get("role") {
        Some(Value::String(role)) => role.as_str(),
        Some(_) => return Err(invalid(format!("`{path}.role` must be a string"))),
        None => return Err(invalid(format!("`{path}` has no `role`"))),
    };
    let content = read_content(&format!("{path}.content"), item.get("content"))?;
    match role {
        "user" => conversation.messages.push(ModelMessage::user(content)),
        "assistant" => conversation.messages.push(ModelMessage::assistant(content)),
        "system" | "developer" => conversation.system.push(content),
        other => {
            return Err(invalid(format!(
                "`{path}.role` must be `user`, `assistant`, `system` or `developer`, not `{other}`"
            )));
        }
    }
    Ok(())
}

/// A message's content: a string, or its text parts joined in order.
fn read_content(path: &str, content: Option<&Value>) -> Result<String, Refusal> {
    match content {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Array(parts)) => {
            parts.iter().enumerate().map(|(index, part)| read_part(&format!("{path}[{index}]"), part)).collect()
        }
        Some(_) => Err(invalid(format!("`{path}` must be a string or a list of content parts"))),
        None => Err(invalid(format!("`{path}` is missing"))),
    }
}

/// One content part: `input_text`, or `output_text` (an earlier answer's,
/// with its `annotations` and `logprobs`, set aside).
fn read_part(path: &str, part: &Value) -> Result<String, Refusal> {
    let Value::Object(part) = part else {
        return Err(invalid(format!("`{path}` must be an object")));
    };
    match part.get("type").and_then(Value::as_str) {
        Some("input_text") => only_known(path, part, &["type", "text", "prompt_cache_breakpoint"])?,
        Some("output_text") => only_known(path, part, &["type", "text", "annotations", "logprobs"])?,
        Some(other) => {
            return Err(refused(&format!("{path}.type"), format!("streamhost takes text only, not `{other}`")));
        }
        None => return Err(invalid(format!("`{path}.type` must be a string"))),
    }
    match part.get("text") {
        Some(Value::String(text)) => Ok(text.clone()),
        _ => Err(invalid(format!("`{path}.text` must be a string"))),
    }
}

/// `text.format`: plain text only.
fn check_text_format(path: &str, format: &Value) -> Result<(), Refusal> {
    if format.is_null() {
        return Ok(());
    }
    let Value::Object(fields) = format else {
        return Err(invalid(format!("`{path}` must be an object")));
    };
    match fields.get("type").and_then(Value::as_str) {
        Some("text") => only_known(path, fields, &["type"]),
        Some(other) => Err(refused(path, format!("streamhost writes plain text only, not `{other}`"))),
        None => Err(invalid(format!("`{path}.type` must be a string"))),
    }
}

/// A value that is, when present, of type `T`: checked, then set aside.
fn check<T: DeserializeOwned>(path: &str, value: &Value) -> Result<(), Refusal> {
    parse::<Option<T>>(path, value).map(drop)
}

/// Checks the value at a path (its first argument).
type Check = fn(&str, &Value) -> Result<(), Refusal>;

/// An object (or null) whose fields are among those of `known`, each checked
/// by its function; `path` names it in a refusal.
fn read_object(path: &str, value: &Value, known: &[(&str, Check)]) -> Result<(), Refusal> {
    let fields = match value {
        Value::Null => return Ok(()),
        Value::Object(fields) => fields,
        _ => return Err(invalid(format!("`{path}` must be an object"))),
    };
    for (name, value) in fields {
        let Some((_, check)) = known.iter().find(|(known, _)| known == name) else {
            return Err(invalid(format!("`{path}.{name}` is not a field the API defines")));
        };
        check(&format!("{path}.{name}"), value)?;
    }
    Ok(())
}

/// Refuses the first field of `fields` not in `known`.
fn only_known(path: &str, fields: &Map<String, Value>, known: &[&str]) -> Result<(), Refusal> {
    match fields.keys().find(|name| !known.contains(&name.as_str())) {
        Some(name) => Err(invalid(format!("`{path}.{name}` is not a field the API defines"))),
        None => Ok(()),
    }
}

/// A string (or null) that is one of `values`.
fn one_of(name: &str, value: &Value, values: &[&str]) -> Result<(), Refusal> {
    match parse::<Option<String>>(name, value)? {
        Some(given) if !values.contains(&given.as_str()) => {
            Err(invalid(format!("`{name}` must be one of `{}`, not `{given}`", values.join("`, `"))))
        }
        _ => Ok(()),
    }
}

/// Refuses a field that asks for what streamhost cannot do, unless it is
/// left at its default: null, `false`, 0, `""`, `[]` or `{}`.
fn refuse_if_set(name: &str, value: &Value, why: &str) -> Result<(), Refusal> {
    let unset = match value {
        Value::Null => true,
        Value::Bool(set) => !set,
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
    };
    if unset { Ok(()) } else { Err(refused(name, why)) }
}

/// `400 invalid_request`: the field at `path` asks for what streamhost
/// cannot do.
fn refused(path: &str, why: impl std::fmt::Display) -> Refusal {
    invalid(format!("`{path}`: {why}"))
}

/// The field `name` as a `T`, or `400 invalid_request` naming it.
fn parse<T: DeserializeOwned>(name: &str, value: &Value) -> Result<T, Refusal> {
    T::deserialize(value).map_err(|problem| invalid(format!("`{name}`: {problem}")))
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

streamhost_guest::export_request_filter!(OpenAiResponsesRequest);

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(body: &str) -> PipelineRequest {
        map(body.as_bytes()).unwrap_or_else(|refusal| panic!("{body}: refused: {}", refusal.error.message))
    }

    /// The refusal's message; every refusal is `400 invalid_request`.
    fn refusal(body: &str) -> String {
        let Err(refusal) = map(body.as_bytes()) else { panic!("{body}: accepted") };
        assert_eq!((refusal.status, refusal.error.code.as_str()), (400, "invalid_request"), "{body}");
        assert!(refusal.headers.is_empty());
        refusal.error.message
    }

    fn conversation(request: &PipelineRequest) -> Vec<(Role, &str)> {
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
            r#"{"model":"m","tool_choice":"required",
                "tools":[{"type":"function","name":"lookup","description":"Finds an order","parameters":{"type":"object"},"strict":true}],
                "input":[{"role":"user","content":"Where is A-1?"},
                    {"id":"msg_1","type":"message","role":"assistant","status":"completed","content":[{"type":"output_text","text":"Let me look.","annotations":[]}]},
                    {"id":"fc_1","type":"function_call","status":"completed","call_id":"c1","name":"lookup","arguments":"{\"order\":\"A-1\"}"},
                    {"type":"function_call_output","call_id":"c1","output":"shipped"},
                    {"type":"function_call_output","call_id":"c2","output":[{"type":"input_text","text":"late"}]}]}"#,
        );
        assert_eq!(
            request.tools,
            vec![ToolSpec {
                name: "lookup".into(),
                description: "Finds an order".into(),
                input_schema: r#"{"type":"object"}"#.into()
            }]
        );
        assert_eq!(request.model.as_deref(), Some(r#"{"toolChoice":"any"}"#));
        let result = |id: &str, content: &str| {
            Content::ToolResult(ToolResult { id: id.into(), content: content.into(), is_error: false })
        };
        assert_eq!(
            request.messages[1..],
            [
                ModelMessage {
                    role: Role::Assistant,
                    content: vec![
                        Content::Text("Let me look.".into()),
                        Content::ToolCall(ToolCall {
                            id: "c1".into(),
                            name: "lookup".into(),
                            input: r#"{"order":"A-1"}"#.into()
                        }),
                    ],
                },
                ModelMessage { role: Role::User, content: vec![result("c1", "shipped"), result("c2", "late")] },
            ]
        );
    }

    #[test]
    fn a_string_input_is_one_user_message() {
        let request = mapped(r#"{"model":"support","input":"Hi there"}"#);
        assert_eq!(conversation(&request), [(Role::User, "Hi there")]);
        assert_eq!(request.system, None);
        assert_eq!(request.model, None);
        assert_eq!(request.user_id, None);
        assert_eq!(
            request.config.as_deref(),
            Some(r#"{"openai-responses-format":{"model":"support","stream":false,"store":true}}"#)
        );
        assert_eq!((request.session_id, request.chain), (None, None));
    }

    #[test]
    fn maps_a_whole_request() {
        let body = r#"{
            "model": "support",
            "instructions": "Be brief.",
            "input": [
                {"role": "developer", "content": "Answer in French."},
                {"role": "user", "content": "Hi"},
                {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
                 "content": [{"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []},
                             {"type": "output_text", "text": "!", "annotations": []}]},
                {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "No emoji."}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Where is "},
                                                                {"type": "input_text", "text": "my order?"}]}
            ],
            "stream": true,
            "max_output_tokens": 200,
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "old-user-field",
            "safety_identifier": "user-7"
        }"#;
        let request = mapped(body);
        assert_eq!(
            conversation(&request),
            [(Role::User, "Hi"), (Role::Assistant, "Hello!"), (Role::User, "Where is my order?")]
        );
        assert_eq!(request.system.as_deref(), Some("Be brief.\n\nAnswer in French.\n\nNo emoji."));
        assert_eq!(request.model.as_deref(), Some(r#"{"temperature":0.2,"maxTokens":200,"topP":0.9}"#));
        assert_eq!(request.user_id.as_deref(), Some("user-7"));
        assert_eq!(
            request.config.as_deref(),
            Some(r#"{"openai-responses-format":{"model":"support","stream":true,"store":true}}"#)
        );
    }

    #[test]
    fn passes_the_state_fields_to_the_formatter_for_the_host_reads_them_itself() {
        let request = mapped(r#"{"model":"m","input":"x","store":false,"previous_response_id":"resp_1"}"#);
        assert_eq!(conversation(&request), [(Role::User, "x")]);
        assert_eq!(
            request.config.as_deref(),
            Some(
                r#"{"openai-responses-format":{"model":"m","stream":false,"store":false,"previousResponseId":"resp_1"}}"#
            )
        );
    }

    #[test]
    fn takes_an_earlier_answer_sent_back_as_the_sdk_dumps_it() {
        // `input + [item.model_dump() for item in response.output]`, as the
        // Python SDK sends it.
        let body = r#"{"model":"m","input":[{"role":"user","content":"hi"},{"id":"msg_abc","content":[{"annotations":[],"text":"Hello","type":"output_text","logprobs":null}],"role":"assistant","status":"completed","type":"message","phase":null},{"role":"user","content":"again"}]}"#;
        assert_eq!(
            conversation(&mapped(body)),
            [(Role::User, "hi"), (Role::Assistant, "Hello"), (Role::User, "again")]
        );
    }

    #[test]
    fn sets_only_the_options_given() {
        assert_eq!(
            mapped(r#"{"model":"m","input":"x","max_output_tokens":64}"#).model.as_deref(),
            Some(r#"{"maxTokens":64}"#)
        );
        assert_eq!(mapped(r#"{"model":"m","input":"x","temperature":null,"top_p":null}"#).model, None);
    }

    #[test]
    fn the_user_field_names_the_user_without_a_safety_identifier() {
        assert_eq!(mapped(r#"{"model":"m","input":"x","user":"u-1"}"#).user_id.as_deref(), Some("u-1"));
        assert_eq!(mapped(r#"{"model":"m","input":"x","user":""}"#).user_id, None);
        let body = r#"{"model":"m","input":"x","metadata":{"user_id":"not-this"}}"#;
        assert_eq!(mapped(body).user_id, None);
    }

    #[test]
    fn accepts_what_changes_nothing() {
        let body = r#"{"model":"m","input":"x","store":false,"metadata":{"k":"v"},"parallel_tool_calls":true,
            "service_tier":"auto","prompt_cache_key":"k","prompt_cache_retention":"24h","max_tool_calls":3,
            "truncation":"auto","stream_options":{"include_obfuscation":false},
            "reasoning":{"effort":"low","summary":"auto"},"text":{"format":{"type":"text"},"verbosity":"low"},
            "tool_choice":"auto","tools":[],"include":[],"background":false,"top_logprobs":0,
            "previous_response_id":null,"conversation":null,"prompt":null}"#;
        assert_eq!(conversation(&mapped(body)), [(Role::User, "x")]);
        for nulls in ["store", "metadata", "reasoning", "text", "tool_choice", "tools", "truncation", "stream_options"]
        {
            mapped(&format!(r#"{{"model":"m","input":"x","{nulls}":null}}"#));
        }
        mapped(r#"{"model":"m","input":"x","tool_choice":"none","reasoning":{},"text":{}}"#);
    }

    #[test]
    fn refuses_what_streamhost_cannot_do_naming_the_field() {
        for (field, value, says) in [
            (
                "tools",
                r#"[{"type":"web_search"}]"#,
                "`tools[0].type`: only `function` tools are taken, not `web_search`",
            ),
            ("tools", r#"[{"type":"function"}]"#, "`tools[0].name`: invalid type: null"),
            ("tool_choice", r#""required""#, "`tool_choice` asks for a tool call, but `tools` declares none"),
            ("tool_choice", r#"{"type":"file_search"}"#, "`tool_choice.type`: only a `function` is taken"),
            ("previous_response_id", "1", "`previous_response_id`: invalid type"),
            ("conversation", r#""conv_1""#, "`conversation`: streamhost keeps no conversation objects"),
            ("prompt", r#"{"id":"pmpt_1"}"#, "`prompt`: streamhost keeps no prompts"),
            ("include", r#"["message.output_text.logprobs"]"#, "`include`: "),
            ("background", "true", "`background`: "),
            ("top_logprobs", "5", "`top_logprobs`: streamhost returns no log probabilities"),
            (
                "text",
                r#"{"format":{"type":"json_schema","name":"x","schema":{}}}"#,
                "`text.format`: streamhost writes plain text only, not `json_schema`",
            ),
            ("text", r#"{"format":{"type":"json_object"}}"#, "not `json_object`"),
            ("text", r#"{"format":{"type":"text","extra":1}}"#, "`text.format.extra` is not a field"),
            ("text", r#"{"colour":"red"}"#, "`text.colour` is not a field"),
            ("reasoning", r#"{"effort":"low","budget":3}"#, "`reasoning.budget` is not a field"),
            ("reasoning", r#"{"effort":3}"#, "`reasoning.effort`: invalid type"),
            ("stream_options", r#"{"include_usage":true}"#, "`stream_options.include_usage` is not a field"),
            ("truncation", r#""sometimes""#, "`truncation` must be one of `auto`, `disabled`, not `sometimes`"),
            ("temperature", r#""hot""#, "`temperature`: invalid type: string \"hot\""),
            ("max_output_tokens", "-1", "`max_output_tokens`: invalid value"),
            ("stream", r#""yes""#, "`stream`: invalid type"),
            ("metadata", r#"{"n":1}"#, "`metadata`: invalid type"),
            ("store", r#""no""#, "`store`: invalid type"),
            ("n", "2", "`n` is not a field of the Responses API that streamhost takes"),
            ("stop", r#""\n""#, "`stop` is not a field"),
        ] {
            let message = refusal(&format!(r#"{{"model":"m","input":"x","{field}":{value}}}"#));
            assert!(message.contains(says), "{field}: {value}: {message}");
        }
    }

    #[test]
    fn refuses_what_input_cannot_hold_naming_its_path() {
        for (input, says) in [
            (
                r#"[{"role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_image","image_url":"https://x"}]}]"#,
                "`input[0].content[1].type`: streamhost takes text only, not `input_image`",
            ),
            (
                r#"[{"role":"user","content":"a"},{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]"#,
                "`input[1].content[0].type`: streamhost takes text only, not `input_file`",
            ),
            (
                r#"[{"type":"function_call","call_id":"c","name":"f","arguments":"[]"},{"role":"user","content":"a"}]"#,
                "`input[0].arguments` must be a JSON object, as text",
            ),
            (
                r#"[{"role":"user","content":"a"},{"type":"function_call_output","output":"1"}]"#,
                "`input[1].call_id` must be a string",
            ),
            (
                r#"[{"type":"item_reference","id":"msg_1"}]"#,
                "`input[0].type`: streamhost keeps whole responses, not items",
            ),
            (
                r#"[{"type":"reasoning","summary":[]}]"#,
                "`input[0].type`: streamhost takes messages only, not `reasoning`",
            ),
            (
                r#"[{"role":"tool","content":"a"}]"#,
                "`input[0].role` must be `user`, `assistant`, `system` or `developer`, not `tool`",
            ),
            (r#"[{"content":"a"}]"#, "`input[0]` has no `role`"),
            (r#"[{"role":"user"}]"#, "`input[0].content` is missing"),
            (r#"[{"role":"user","content":7}]"#, "`input[0].content` must be a string or a list of content parts"),
            (r#"[{"role":"user","content":[{"type":"input_text"}]}]"#, "`input[0].content[0].text` must be a string"),
            (r#"[{"role":"user","content":[{"text":"a"}]}]"#, "`input[0].content[0].type` must be a string"),
            (r#"[{"role":"user","content":["a"]}]"#, "`input[0].content[0]` must be an object"),
            (
                r#"[{"role":"user","content":[{"type":"input_text","text":"a","x":1}]}]"#,
                "`input[0].content[0].x` is not a field",
            ),
            (r#"[{"role":"user","content":"a","name":"bob"}]"#, "`input[0].name` is not a field"),
            (r#"["hi"]"#, "`input[0]` must be an object"),
            ("7", "`input` must be a string or a list of items"),
            ("[]", "`input` has no user message"),
            (r#"[{"role":"system","content":"only a prompt"}]"#, "`input` has no user message"),
            (
                r#"[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]"#,
                "the last message of `input` must be the user's",
            ),
        ] {
            let message = refusal(&format!(r#"{{"model":"m","input":{input}}}"#));
            assert!(message.contains(says), "{input}: {message}");
        }
    }

    #[test]
    fn refuses_a_body_without_model_or_input() {
        assert!(refusal(r#"{"input":"x"}"#).contains("the body has no `model`"));
        assert!(refusal(r#"{"model":"m"}"#).contains("the body has no `input`"));
        assert!(refusal(r#"{"model":7,"input":"x"}"#).contains("`model`: invalid type"));
        assert!(refusal("[]").contains("the body must be a JSON object"));
        assert!(refusal("{").contains("the body is not valid JSON"));
    }
}
