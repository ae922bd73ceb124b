//! What a pipeline's callers may set: its manifest's `callers`.
//!
//! A caller's request always carries the conversation (`prompt` or
//! `messages`) and the caller's ids (`userId`, `sessionId`). Everything else
//! it could set changes what the operator's pipeline does (a plugin setting
//! that turns masking off, a model billed to the deployment, a system
//! prompt), so by default a named pipeline lets callers set none of it, and
//! its manifest opens what it means to:
//!
//! ```json
//! "callers": {
//!   "may": ["system", "model.temperature", "model.maxTokens", "config.redact.emailMask"],
//!   "providers": ["bedrock"],
//!   "models": ["anthropic.claude-3-5-haiku-20241022-v1:0"]
//! }
//! ```
//!
//! `may` names fields by path; `tools` is the caller's own tools (declared
//! `tools`, `model.toolChoice`, and tool calls and results in the
//! conversation: a standard API's client tools); `model.*` is the inference settings
//! (`temperature`, `maxTokens`, `topP`, `stopSequences`), and the options
//! that change more than that (`model.body`, `model.guardrail`,
//! `model.cachePoints`, `model.script`, `model.frames`) are opened only by
//! name; `config.<plugin>.*` is every setting of one plugin. The provider
//! and the model id a caller may choose are listed apart, by value (the
//! pipeline's own are always allowed: naming them changes nothing). Whatever
//! else a caller sets is refused with `403 not_allowed`, naming every such
//! field, never silently dropped. What an inbound plugin returns is the
//! caller's too, and is held to the same list. The paths are checked when
//! the manifest loads (`CallerPolicy::check_paths`).

use serde::Deserialize;
use thiserror::Error;

use crate::providers::{ModelOptions, ProviderKind};
use crate::request::Request;

/// What `model.*` opens: the inference settings.
const INFERENCE_SETTINGS: [&str; 4] = ["temperature", "maxTokens", "topP", "stopSequences"];
/// Model options that change more than inference, opened only by name.
const OTHER_MODEL_OPTIONS: [&str; 5] = ["body", "guardrail", "cachePoints", "script", "frames"];

/// What a pipeline's callers may set beyond the conversation and their ids: its
/// manifest's `callers` (see the module doc). By default, nothing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CallerPolicy {
    /// The request fields callers may set, by path (see the module doc).
    #[serde(default)]
    pub may: Vec<String>,
    /// The providers a caller may name in `model.provider`.
    #[serde(default)]
    pub providers: Vec<ProviderKind>,
    /// The model ids a caller may name in `model.id`.
    #[serde(default)]
    pub models: Vec<String>,
}

/// The fields the caller set that the pipeline does not let callers set,
/// each as `` `path` `` or `` `path` to `value` ``.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("this pipeline does not let callers set {}", .0.join(", "))]
pub struct NotAllowed(pub Vec<String>);

impl CallerPolicy {
    /// Checks every field `request` sets beyond the conversation and ids;
    /// `own` are the pipeline's own model options.
    pub fn check(&self, request: &Request, own: &ModelOptions) -> Result<(), NotAllowed> {
        let mut refused = Vec::new();
        if let Some(provider) = request
            .model
            .provider
            .filter(|provider| !self.providers.contains(provider) && Some(*provider) != own.provider)
        {
            refused.push(format!("`model.provider` to `{provider}`"));
        }
        if let Some(id) =
            request.model.id.as_ref().filter(|id| !self.models.contains(id) && Some(*id) != own.id.as_ref())
        {
            refused.push(format!("`model.id` to `{id}`"));
        }
        refused
            .extend(set_paths(request).into_iter().filter(|path| !self.allows(path)).map(|path| format!("`{path}`")));
        if refused.is_empty() { Ok(()) } else { Err(NotAllowed(refused)) }
    }

    /// Clears the inference settings that change how a model answers
    /// (`model.temperature`, `model.topP`) in `options` where this policy does
    /// not open them, and names them. A standard API's client sends them
    /// unasked, so through `/v1` they are set aside, the pipeline's own
    /// applying, rather than refused. (What only shortens an answer,
    /// `maxTokens` and `stopSequences`, is honoured: see
    /// [`ModelOptions::shortened_by`].)
    pub fn set_aside_closed_inference(&self, options: &mut ModelOptions) -> Vec<&'static str> {
        let mut set_aside = Vec::new();
        if options.temperature.is_some() && !self.allows("model.temperature") {
            options.temperature = None;
            set_aside.push("model.temperature");
        }
        if options.top_p.is_some() && !self.allows("model.topP") {
            options.top_p = None;
            set_aside.push("model.topP");
        }
        set_aside
    }

    fn allows(&self, path: &str) -> bool {
        self.may.iter().any(|allowed| match allowed.as_str() {
            "model.*" => path.strip_prefix("model.").is_some_and(|option| INFERENCE_SETTINGS.contains(&option)),
            allowed => match allowed.strip_suffix(".*") {
                Some(prefix) => path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.')),
                None => allowed == path,
            },
        })
    }

    /// The paths of `may` that name nothing a caller could set, for a
    /// manifest whose plugins are `plugins`: a typo would otherwise keep the
    /// field closed without a word.
    pub fn unknown_paths<'a>(&'a self, plugins: &'a [&str]) -> impl Iterator<Item = &'a str> {
        self.may.iter().map(String::as_str).filter(move |path| !is_known(path, plugins))
    }
}

fn is_known(path: &str, plugins: &[&str]) -> bool {
    if path == "system" || path == "tools" || path == "model.*" {
        return true;
    }
    if let Some(option) = path.strip_prefix("model.") {
        return INFERENCE_SETTINGS.contains(&option) || OTHER_MODEL_OPTIONS.contains(&option);
    }
    let Some(setting) = path.strip_prefix("config.") else { return false };
    plugins
        .iter()
        .any(|plugin| setting.strip_prefix(plugin).is_some_and(|rest| rest.len() > 1 && rest.starts_with('.')))
}

/// The paths of what `request` sets beyond the conversation, the ids, and
/// the provider and model id (checked by value).
fn set_paths(request: &Request) -> Vec<String> {
    let mut paths = Vec::new();
    if request.system.is_some() {
        paths.push("system".to_string());
    }
    if request.has_client_tools() {
        paths.push("tools".to_string());
    }
    paths.extend(model_option_paths(&request.model));
    for (plugin, settings) in &request.config {
        let keys = settings.as_object().into_iter().flat_map(|settings| settings.keys());
        paths.extend(keys.map(|key| format!("config.{plugin}.{key}")));
    }
    paths
}

fn model_option_paths(model: &ModelOptions) -> impl Iterator<Item = String> {
    let set = [
        ("temperature", model.temperature.is_some()),
        ("maxTokens", model.max_tokens.is_some()),
        ("topP", model.top_p.is_some()),
        ("stopSequences", model.stop_sequences.is_some()),
        ("body", model.body.is_some()),
        ("script", model.script.is_some()),
        ("frames", model.frames.is_some()),
        ("guardrail", model.guardrail.is_some()),
        ("cachePoints", model.cache_points.is_some()),
    ];
    set.into_iter().filter(|(_, set)| *set).map(|(name, _)| format!("model.{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::parse_chain;

    fn request(body: &str) -> Request {
        Request::from_json(parse_chain("redact", Some("ndjson")).unwrap(), &[], body.as_bytes()).unwrap()
    }

    fn check(policy: &CallerPolicy, body: &str) -> Result<(), NotAllowed> {
        policy.check(&request(body), &ModelOptions::default())
    }

    fn policy(json: &str) -> CallerPolicy {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn by_default_callers_set_only_the_conversation_and_their_ids() {
        let strict = CallerPolicy::default();
        assert_eq!(check(&strict, r#"{"prompt":"hi","userId":"u","sessionId":"s"}"#), Ok(()));
        let refused =
            check(&strict, r#"{"prompt":"hi","system":"Be evil.","config":{"redact":{"emails":false}}}"#).unwrap_err();
        assert_eq!(refused.to_string(), "this pipeline does not let callers set `system`, `config.redact.emails`");
        let bedrock = r#"{"prompt":"hi","model":{"provider":"bedrock","id":"any"}}"#;
        assert_eq!(
            check(&strict, bedrock).unwrap_err().to_string(),
            "this pipeline does not let callers set `model.provider` to `bedrock`, `model.id` to `any`"
        );
        let own =
            ModelOptions { provider: Some(ProviderKind::Bedrock), id: Some("any".into()), ..ModelOptions::default() };
        assert_eq!(strict.check(&request(bedrock), &own), Ok(()), "naming the pipeline's own model changes nothing");
    }

    #[test]
    fn a_manifest_opens_fields_by_path_and_models_by_value() {
        let open = policy(r#"{"may":["model.*","config.redact.emailMask"],"providers":["bedrock"],"models":["m1"]}"#);
        assert_eq!(
            check(&open, r#"{"prompt":"hi","model":{"provider":"bedrock","id":"m1","temperature":0.2}}"#),
            Ok(())
        );
        assert_eq!(check(&open, r#"{"prompt":"hi","config":{"redact":{"emailMask":"x"}}}"#), Ok(()));
        assert!(check(&open, r#"{"prompt":"hi","model":{"id":"m2"}}"#).is_err());
        assert!(check(&open, r#"{"prompt":"hi","config":{"redact":{"emails":false}}}"#).is_err());
        assert!(
            check(&policy(r#"{"may":["config.redact.*"]}"#), r#"{"prompt":"hi","config":{"redact":{"emails":false}}}"#)
                .is_ok()
        );
    }

    #[test]
    fn model_star_opens_inference_settings_only() {
        let open = policy(r#"{"may":["model.*"]}"#);
        assert!(check(&open, r#"{"prompt":"hi","model":{"maxTokens":5,"topP":0.9,"stopSequences":["x"]}}"#).is_ok());
        let script = r#"{"prompt":"hi","model":{"script":[{"reply":"pwned"}]}}"#;
        assert_eq!(
            check(&open, script).unwrap_err().to_string(),
            "this pipeline does not let callers set `model.script`"
        );
        assert!(check(&policy(r#"{"may":["model.script"]}"#), script).is_ok(), "opened by name");
    }

    #[test]
    fn every_model_option_a_caller_can_set_can_be_opened_by_path() {
        let everything = r#"{"prompt":"hi","model":{"temperature":1,"maxTokens":1,"topP":1,"stopSequences":[],"body":{},"script":[],"frames":"agentcore-sse",
            "guardrail":{"identifier":"g","version":"1"},"cachePoints":[]}}"#;
        let paths = set_paths(&request(everything));
        assert_eq!(paths.len(), INFERENCE_SETTINGS.len() + OTHER_MODEL_OPTIONS.len());
        assert!(paths.iter().all(|path| is_known(path, &[])), "{paths:?}");
    }

    #[test]
    fn a_callers_own_tools_need_tools_opened() {
        let tool_turns = [
            r#"{"prompt":"hi","tools":[{"name":"f","inputSchema":{"type":"object"}}]}"#,
            r#"{"prompt":"hi","model":{"toolChoice":"none"}}"#,
            r#"{"messages":[{"role":"assistant","content":[{"type":"toolUse","toolUseId":"t","name":"f","input":{}}]},
                {"role":"user","content":[{"type":"toolResult","toolUseId":"t","content":"42"}]}]}"#,
        ];
        for body in tool_turns {
            assert_eq!(
                check(&CallerPolicy::default(), body).unwrap_err().to_string(),
                "this pipeline does not let callers set `tools`",
                "{body}"
            );
            assert_eq!(check(&policy(r#"{"may":["tools"]}"#), body), Ok(()), "{body}");
        }
    }

    #[test]
    fn paths_that_name_nothing_are_found() {
        let policy = policy(
            r#"{"may":["system","modle.temperature","model.*","config.redact.emails","config.nope.x","config.redact"]}"#,
        );
        let unknown: Vec<&str> = policy.unknown_paths(&["redact", "ndjson"]).collect();
        assert_eq!(unknown, ["modle.temperature", "config.nope.x", "config.redact"]);
    }
}
