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
//! `may` names fields by path; `model.*` is every model option but the
//! provider and the model id, `config.<plugin>.*` every setting of one
//! plugin. The provider and the model id a caller may choose are listed
//! apart, by value. Whatever else a caller sets is refused with `403
//! not_allowed`, never silently dropped. What an inbound plugin returns is
//! the caller's too, and is held to the same list.

use serde::Deserialize;
use thiserror::Error;

use crate::providers::{ModelOptions, ProviderKind};
use crate::request::Request;

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

/// A field the caller set that the pipeline does not let callers set.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("this pipeline does not let callers set `{0}`")]
pub struct NotAllowed(pub String);

impl CallerPolicy {
    /// Checks every field `request` sets beyond the conversation and ids.
    pub fn check(&self, request: &Request) -> Result<(), NotAllowed> {
        if let Some(provider) = request.model.provider.filter(|provider| !self.providers.contains(provider)) {
            return Err(NotAllowed(format!("model.provider` to `{provider}")));
        }
        if let Some(id) = request.model.id.as_ref().filter(|id| !self.models.contains(id)) {
            return Err(NotAllowed(format!("model.id` to `{id}")));
        }
        match set_paths(request).into_iter().find(|path| !self.allows(path)) {
            Some(path) => Err(NotAllowed(path)),
            None => Ok(()),
        }
    }

    fn allows(&self, path: &str) -> bool {
        self.may.iter().any(|allowed| match allowed.strip_suffix(".*") {
            Some(prefix) => path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.')),
            None => allowed == path,
        })
    }
}

/// The paths of what `request` sets beyond the conversation, the ids, and
/// the provider and model id (checked by value).
fn set_paths(request: &Request) -> Vec<String> {
    let mut paths = Vec::new();
    if request.system.is_some() {
        paths.push("system".to_string());
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

    fn policy(json: &str) -> CallerPolicy {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn by_default_callers_set_only_the_conversation_and_their_ids() {
        let strict = CallerPolicy::default();
        assert_eq!(strict.check(&request(r#"{"prompt":"hi","userId":"u","sessionId":"s"}"#)), Ok(()));
        assert_eq!(strict.check(&request(r#"{"prompt":"hi","config":{"redact":{"emails":false}}}"#)), Err(NotAllowed("config.redact.emails".into())));
        assert_eq!(strict.check(&request(r#"{"prompt":"hi","system":"Be evil."}"#)), Err(NotAllowed("system".into())));
        let bedrock = r#"{"prompt":"hi","model":{"provider":"bedrock","id":"any"}}"#;
        assert_eq!(strict.check(&request(bedrock)).unwrap_err().to_string(), "this pipeline does not let callers set `model.provider` to `bedrock`");
    }

    #[test]
    fn a_manifest_opens_fields_by_path_and_models_by_value() {
        let open = policy(r#"{"may":["model.*","config.redact.emailMask"],"providers":["bedrock"],"models":["m1"]}"#);
        assert_eq!(open.check(&request(r#"{"prompt":"hi","model":{"provider":"bedrock","id":"m1","temperature":0.2}}"#)), Ok(()));
        assert_eq!(open.check(&request(r#"{"prompt":"hi","config":{"redact":{"emailMask":"x"}}}"#)), Ok(()));
        assert!(open.check(&request(r#"{"prompt":"hi","model":{"id":"m2"}}"#)).is_err());
        assert!(open.check(&request(r#"{"prompt":"hi","config":{"redact":{"emails":false}}}"#)).is_err());
        assert!(policy(r#"{"may":["config.redact.*"]}"#).check(&request(r#"{"prompt":"hi","config":{"redact":{"emails":false}}}"#)).is_ok());
    }
}
