//! The request every frontend builds: which plugins to run, and the JSON
//! body `{prompt | messages, system, userId, sessionId, model, tools, config}`
//! (a message's `content` is text, or blocks with tool calls and results:
//! see `conversation`).

use serde::Deserialize;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::conversation::{ModelMessage, Role, ToolSpec};
use crate::error_code::ErrorCode;
use crate::history::ConversationKey;
use crate::plugin_store::{InvalidName, PluginName};
use crate::providers::{ModelCall, ModelOptions, ToolChoice, ToolChoiceMode};

/// The body as sent. Unknown fields are refused, so a misspelt `promt`
/// is an error rather than silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Body {
    prompt: Option<String>,
    messages: Option<Vec<ModelMessage>>,
    system: Option<String>,
    user_id: Option<String>,
    session_id: Option<String>,
    #[serde(default)]
    model: ModelOptions,
    #[serde(default)]
    tools: Vec<ToolSpec>,
    #[serde(default)]
    config: Map<String, Value>,
}

/// A request to run: its chain of plugins and what the body says.
#[derive(Debug, Clone)]
pub struct Request {
    /// The plugins to run, in order.
    pub chain: Vec<PluginName>,
    /// The conversation; the last message is the user's. Tool calls and
    /// results in it, like `tools`, are the caller's client tools.
    pub messages: Vec<ModelMessage>,
    /// The system prompt (`system`).
    pub system: Option<String>,
    /// Who is asking (`userId`); sent on to an upstream, and a part of the
    /// conversation's key.
    pub user_id: Option<String>,
    /// The conversation (`sessionId`); without it, no turns are kept or seen.
    pub session_id: Option<String>,
    /// The model source and its settings, as far as the caller chose them.
    pub model: ModelOptions,
    /// Tools the caller declares and runs itself (`tools`): the model's
    /// call of one ends the stream, for the caller to send its result back.
    pub tools: Vec<ToolSpec>,
    /// Settings per plugin name, each a JSON object.
    pub config: Map<String, Value>,
    /// A formatter that takes the place of the chain's own: a standard
    /// API's (`pipeline::standard_api`), set by the host, never by a body.
    /// Every transform of `chain` that declares a content type is then left
    /// out, and this one runs last.
    pub formatter: Option<PluginName>,
    /// Where to keep the answer with its conversation, for a later call to
    /// continue (OpenAI Responses' `store`): set by the host, never by a
    /// body (`pipeline::responses_state`).
    pub keep_response: Option<ConversationKey>,
}

/// Why a call's target or body is not a request.
#[derive(Debug, Error)]
pub enum RequestError {
    /// The target or a `?then=` plugin is not a valid plugin name.
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    /// The body is not JSON; holds the parser's error.
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The body is JSON but not the request's shape (an unknown field, both or
    /// neither of `prompt` and `messages`, a `config` for no plugin of its own).
    #[error("{0}")]
    Invalid(String),
}

impl RequestError {
    /// The code of this error in the host's table (error_code.rs).
    pub fn code(&self) -> ErrorCode {
        match self {
            RequestError::InvalidName(_) => ErrorCode::InvalidPluginName,
            RequestError::MalformedJson(_) => ErrorCode::MalformedJson,
            RequestError::Invalid(_) => ErrorCode::InvalidRequest,
        }
    }
}

impl Request {
    /// The request as a JSON body `Request::from_json` reads back: the
    /// conversation, the system prompt, the ids and every plugin's settings
    /// (a manifest's included). The model options are left out: a
    /// recording replays without a model.
    pub fn to_json(&self) -> Value {
        let mut body = serde_json::json!({ "messages": self.messages, "config": self.config });
        if !self.tools.is_empty() {
            body["tools"] = serde_json::json!(self.tools);
        }
        for (key, value) in [("system", &self.system), ("userId", &self.user_id), ("sessionId", &self.session_id)] {
            if let Some(value) = value {
                body[key] = Value::from(value.as_str());
            }
        }
        body
    }

    /// Whether the caller brings tools of its own: declared tools, a
    /// `model.toolChoice`, or tool calls and results in the conversation
    /// (what `callers.may` opens as `tools`).
    pub fn has_client_tools(&self) -> bool {
        !self.tools.is_empty()
            || self.model.tool_choice.is_some()
            || self.messages.iter().any(ModelMessage::has_tool_blocks)
    }

    /// The model call this request is on its own (no agent): its
    /// conversation, system prompt, tools and model options.
    pub fn model_call(&self) -> ModelCall {
        ModelCall {
            system: self.system.clone(),
            messages: self.messages.clone(),
            tools: self.tools.clone(),
            options: self.model.clone(),
            user_id: self.user_id.clone(),
            session_id: self.session_id.clone(),
        }
    }

    /// Parses a JSON body for the plugins in `chain`; `config` may set the
    /// chain's plugins and `others` (a pipeline's router and agents).
    pub fn from_json(chain: Vec<PluginName>, others: &[PluginName], body: &[u8]) -> Result<Self, RequestError> {
        if chain.len() > MAX_CHAIN {
            return Err(invalid(format!("a chain runs at most {MAX_CHAIN} plugins; this one names {}", chain.len())));
        }
        let body: Body = serde_json::from_slice(body).map_err(|error| match error.classify() {
            serde_json::error::Category::Data => RequestError::Invalid(error.to_string()),
            _ => RequestError::MalformedJson(error.to_string()),
        })?;
        let messages = match (body.prompt, body.messages) {
            (Some(prompt), None) => vec![ModelMessage::text(Role::User, prompt)],
            (None, Some(messages)) => messages,
            (Some(_), Some(_)) => return Err(invalid("give either `prompt` or `messages`, not both")),
            (None, None) => return Err(invalid("`prompt` or `messages` is required")),
        };
        check_inference(&body.model)?;
        check_tool_choice(body.model.tool_choice.as_ref(), &body.tools)?;
        if body.session_id.as_deref().is_some_and(|session| session.starts_with(RESPONSE_SESSION_PREFIX)) {
            return Err(invalid(format!(
                "`sessionId` may not start with `{RESPONSE_SESSION_PREFIX}`: the host keeps responses under such ids"
            )));
        }
        if messages.last().map(|message| message.role) != Some(Role::User) {
            return Err(invalid("`messages` must end with a message whose role is `user`"));
        }
        for (name, settings) in &body.config {
            if !chain.iter().chain(others).any(|plugin| plugin.as_str() == name) {
                return Err(invalid(format!(
                    "`config` has settings for `{name}`, which is not one of this request's plugins"
                )));
            }
            if !settings.is_object() {
                return Err(invalid(format!("`config.{name}` must be a JSON object")));
            }
        }
        Ok(Self {
            chain,
            messages,
            system: body.system,
            user_id: body.user_id,
            session_id: body.session_id,
            model: body.model,
            tools: body.tools,
            config: body.config,
            formatter: None,
            keep_response: None,
        })
    }

    /// Takes each plugin's settings that the request does not give, key by
    /// key, from a pipeline manifest's `config` (plugin name -> settings
    /// object). (Model options are merged where the model is called: an
    /// agent's own come between the request's and the manifest's.)
    pub fn with_defaults(mut self, config: &Map<String, Value>) -> Self {
        for (plugin, defaults) in config {
            if let Value::Object(defaults) = defaults {
                self.merge_settings(plugin, defaults);
            }
        }
        self
    }

    /// The settings of one plugin as a JSON object (`{}` when none).
    pub fn settings_for(&self, plugin: &PluginName) -> String {
        self.config.get(plugin.as_str()).map_or_else(|| "{}".to_string(), Value::to_string)
    }

    /// A plugin's settings: the request's, each key not given taken from
    /// `defaults`.
    pub fn settings_over(&self, plugin: &PluginName, defaults: &Map<String, Value>) -> String {
        let mut settings = self.config.get(plugin.as_str()).and_then(Value::as_object).cloned().unwrap_or_default();
        merge(&mut settings, defaults);
        Value::Object(settings).to_string()
    }

    fn merge_settings(&mut self, plugin: &str, defaults: &Map<String, Value>) {
        if let Value::Object(settings) =
            self.config.entry(plugin.to_string()).or_insert_with(|| Value::Object(Map::new()))
        {
            merge(settings, defaults);
        }
    }
}

/// Adds each key of `defaults` that `settings` does not have.
fn merge(settings: &mut Map<String, Value>, defaults: &Map<String, Value>) {
    for (key, value) in defaults {
        settings.entry(key.clone()).or_insert_with(|| value.clone());
    }
}

/// A tool choice that demands a call needs a tool to call: `any` needs
/// `tools`, and a named tool must be one of them.
fn check_tool_choice(choice: Option<&ToolChoice>, tools: &[ToolSpec]) -> Result<(), RequestError> {
    match choice {
        Some(ToolChoice::Mode(ToolChoiceMode::Any)) if tools.is_empty() => {
            Err(invalid("`model.toolChoice` `any` asks for a tool call, but `tools` declares none"))
        }
        Some(ToolChoice::Tool { tool }) if !tools.iter().any(|declared| &declared.name == tool) => {
            Err(invalid(format!("`model.toolChoice` names `{tool}`, which `tools` does not declare")))
        }
        _ => Ok(()),
    }
}

/// The start of the session ids the host keeps Responses' answers under
/// (`pipeline::responses_state`): no caller's session id may start so,
/// so no caller's conversation shares a key with a kept response.
pub const RESPONSE_SESSION_PREFIX: &str = "response:";

/// The most plugins one chain may run: each holds an instance for the
/// stream, so an unbounded chain could take every instance slot.
pub const MAX_CHAIN: usize = 16;

/// `plugin` followed by the comma-separated names in `then`.
pub fn parse_chain(plugin: &str, then: Option<&str>) -> Result<Vec<PluginName>, InvalidName> {
    let rest = then.into_iter().flat_map(|then| then.split(','));
    std::iter::once(plugin).chain(rest).map(str::parse).collect()
}

/// Inference settings no model takes are refused before any model call,
/// whoever mapped them (a JSON body, a standard API's request filter): a
/// temperature outside 0-2, a `topP` outside 0-1, a `maxTokens` of 0.
fn check_inference(model: &ModelOptions) -> Result<(), RequestError> {
    let outside = |value: Option<f64>, high: f64| value.is_some_and(|value| !(0.0..=high).contains(&value));
    if outside(model.temperature, 2.0) {
        return Err(invalid("`model.temperature` must be between 0 and 2"));
    }
    if outside(model.top_p, 1.0) {
        return Err(invalid("`model.topP` must be between 0 and 1"));
    }
    if model.max_tokens == Some(0) {
        return Err(invalid("`model.maxTokens` must be at least 1"));
    }
    Ok(())
}

fn invalid(message: impl Into<String>) -> RequestError {
    RequestError::Invalid(message.into())
}

impl crate::error_code::CodedError for RequestError {
    fn error_code(&self) -> crate::error_code::Code<'_> {
        self.code().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> Vec<PluginName> {
        parse_chain("redact", Some("ndjson")).unwrap()
    }

    #[test]
    fn a_prompt_becomes_one_user_message() {
        let request =
            Request::from_json(chain(), &[], br#"{"prompt":"hi","userId":"u","config":{"redact":{"cards":false}}}"#)
                .unwrap();
        assert_eq!(request.messages, vec![ModelMessage::text(Role::User, "hi")]);
        assert_eq!(request.user_id.as_deref(), Some("u"));
        assert_eq!(request.settings_for(&request.chain[0]), r#"{"cards":false}"#);
        assert_eq!(request.settings_for(&request.chain[1]), "{}");
    }

    #[test]
    fn a_chain_runs_at_most_sixteen_plugins() {
        let long = parse_chain("redact", Some(&["ndjson"; MAX_CHAIN].join(","))).unwrap();
        let refused = Request::from_json(long, &[], br#"{"prompt":"hi"}"#).unwrap_err();
        assert_eq!(refused.to_string(), "a chain runs at most 16 plugins; this one names 17");
        assert!(Request::from_json(long_chain(MAX_CHAIN), &[], br#"{"prompt":"hi"}"#).is_ok());
    }

    fn long_chain(plugins: usize) -> Vec<PluginName> {
        vec!["ndjson".parse().unwrap(); plugins]
    }

    /// Found by fuzz/request_json: a number a setting holds reads back as
    /// the very number written (`invoke --record` writes requests out).
    #[test]
    fn a_request_reads_back_exactly_as_it_was_written() {
        let body = br#"{"prompt":"x","config":{"redact":{"ratio":70.1904076845419972212e-32}}}"#;
        let request = Request::from_json(chain(), &[], body).unwrap();
        let written = request.to_json().to_string();
        assert_eq!(Request::from_json(chain(), &[], written.as_bytes()).unwrap().to_json(), request.to_json());
    }

    #[test]
    fn tells_malformed_json_from_a_wrong_shape() {
        assert!(matches!(Request::from_json(chain(), &[], b"{\"prompt\":"), Err(RequestError::MalformedJson(_))));
        assert!(matches!(Request::from_json(chain(), &[], br#"{"promt":"hi"}"#), Err(RequestError::Invalid(_))));
        assert!(matches!(Request::from_json(chain(), &[], br#"{}"#), Err(RequestError::Invalid(_))));
        let last_not_user = br#"{"messages":[{"role":"assistant","content":"x"}]}"#;
        assert!(matches!(Request::from_json(chain(), &[], last_not_user), Err(RequestError::Invalid(_))));
        let unknown_plugin = br#"{"prompt":"x","config":{"sse":{}}}"#;
        assert!(matches!(Request::from_json(chain(), &[], unknown_plugin), Err(RequestError::Invalid(_))));
    }

    #[test]
    fn inference_settings_no_model_takes_are_refused() {
        for (model, message) in [
            (r#"{"temperature":-3}"#, "`model.temperature` must be between 0 and 2"),
            (r#"{"topP":7}"#, "`model.topP` must be between 0 and 1"),
            (r#"{"maxTokens":0}"#, "`model.maxTokens` must be at least 1"),
        ] {
            let body = format!(r#"{{"prompt":"x","model":{model}}}"#);
            let refused = Request::from_json(chain(), &[], body.as_bytes()).unwrap_err();
            assert_eq!(refused.to_string(), message);
        }
        let within = br#"{"prompt":"x","model":{"temperature":2,"topP":0,"maxTokens":1}}"#;
        assert!(Request::from_json(chain(), &[], within).is_ok());
    }

    #[test]
    fn parses_a_chain() {
        let names: Vec<String> = chain().iter().map(ToString::to_string).collect();
        assert_eq!(names, ["redact", "ndjson"]);
        assert!(parse_chain("a", Some("b,../x")).is_err());
        assert!(parse_chain("a", Some("")).is_err());
    }
}
