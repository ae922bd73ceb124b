//! Pipeline manifests: `<name>.json` beside the plugins, in the same folder
//! or S3 prefix and reloaded the same way. `POST /<name>` then runs the
//! manifest's transforms, with its model and plugin settings as defaults
//! that the request may override field by field:
//!
//! ```json
//! {
//!   "description": "Llama on Bedrock, redacted, as NDJSON",
//!   "model": { "provider": "bedrock-raw", "id": "meta.llama3-8b-instruct-v1:0", "maxTokens": 512 },
//!   "transforms": ["decode-llama", "redact", "ndjson"],
//!   "config": { "redact": { "emailMask": "[email]" } }
//! }
//! ```
//!
//! A manifest with **agents** runs a multi-agent pipeline: the router plugin
//! picks one agent per request (with one agent and no router, that one),
//! and the agent's answer goes through the transforms. An agent is an agent
//! plugin, or the built-in model agent (a system prompt and model options
//! over the manifest's):
//!
//! ```json
//! {
//!   "router": "keyword-router",
//!   "agents": [
//!     { "name": "billing", "description": "Invoices, refunds, payments", "system": "You are a billing assistant." },
//!     { "name": "reports", "description": "Runs reports", "plugin": "tool-agent", "config": { "maxRounds": 4 } }
//!   ],
//!   "transforms": ["ndjson"],
//!   "config": { "keyword-router": { "keywords": { "billing": ["refund"] } } }
//! }
//! ```
//!
//! A pipeline whose callers' clients send their own shape of request names
//! an **inbound** request-filter plugin, which maps each request (or refuses
//! it) before anything else runs, and may pick one of the pipeline's named
//! **chains** of transforms; **callers** says what callers may set
//! (`callers` module; by default only the conversation and their ids):
//!
//! ```json
//! {
//!   "inbound": "seed001-auth",
//!   "model": { "provider": "upstream" },
//!   "transforms": ["sse-passthrough"],
//!   "chains": { "transformed": ["text-only"] },
//!   "config": { "seed001-auth": { "apiKeys": { "ops": "sha256:…" } } }
//! }
//! ```
//!
//! A name is looked up as a manifest first, then as a component.

pub mod sinks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{Map, Value};
use thiserror::Error;
use tracing::{info, warn};

use crate::callers::CallerPolicy;
use crate::error_code::ErrorCode;
use crate::plugin_store::{Fetched, ObjectKind, PluginName, PluginStore, Revision, StoreError};
use crate::providers::ModelOptions;

/// A pipeline manifest, `<name>.json` in the plugin store (see the module).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Manifest {
    /// For people: what the pipeline is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The default model source and settings; a request's options, then an
    /// agent's, override them field by field.
    #[serde(default)]
    pub model: ModelOptions,
    /// The router plugin that picks among `agents`.
    #[serde(default)]
    pub router: Option<PluginName>,
    /// The agents of a multi-agent pipeline: one, or several for `router`
    /// to choose among.
    #[serde(default)]
    pub agents: Vec<AgentSpec>,
    /// The transform plugins, in order.
    #[serde(default)]
    pub transforms: Vec<PluginName>,
    /// The request-filter plugin that maps each caller's request; without
    /// one, the body is the host's JSON request.
    #[serde(default)]
    pub inbound: Option<PluginName>,
    /// Other chains of transforms, by name, that the inbound plugin may pick
    /// for a request instead of `transforms`.
    #[serde(default)]
    pub chains: HashMap<String, Vec<PluginName>>,
    /// What callers may set (see `callers`); by default, nothing but the
    /// conversation and their ids.
    #[serde(default)]
    pub callers: CallerPolicy,
    /// After this many milliseconds without a source event, the transforms
    /// are pushed an empty batch (a tick), so that a formatter can send a
    /// keep-alive or a heartbeat while a tool or a model is silent.
    #[serde(default)]
    pub idle_ms: Option<u64>,
    /// Default settings per plugin (a transform or the router), each a JSON
    /// object.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// Where the events of this pipeline's detached runs go as they
    /// happen, by name ([`sinks`]).
    #[serde(default)]
    pub sinks: std::collections::BTreeMap<String, sinks::SinkConfig>,
}

/// One agent of a multi-agent pipeline.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentSpec {
    /// What the router names it by, and what the first metadata event says.
    pub name: String,
    /// For the router: what this agent is for.
    pub description: String,
    /// An agent plugin; without one, the built-in model agent answers.
    #[serde(default)]
    pub plugin: Option<PluginName>,
    /// The system prompt, unless the request gives one.
    #[serde(default)]
    pub system: Option<String>,
    /// Model options over the manifest's, under the request's.
    #[serde(default)]
    pub model: ModelOptions,
    /// The agent plugin's settings.
    #[serde(default)]
    pub config: Map<String, Value>,
}

/// Why a pipeline's manifest could not be had.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The plugin store could not be read for it.
    #[error(transparent)]
    Store(StoreError),
    /// The manifest is not JSON of a manifest's shape, or breaks one of its
    /// rules (a `config` for a plugin it does not run, a `router` without `agents`).
    #[error("the pipeline manifest `{name}.json` is invalid: {message}")]
    Invalid {
        /// The pipeline's name.
        name: PluginName,
        /// What is wrong with it.
        message: String,
    },
}

impl ManifestError {
    /// The code of this error in the host's table (error_code.rs).
    pub fn code(&self) -> ErrorCode {
        match self {
            ManifestError::Store(store) => store.code(),
            ManifestError::Invalid { .. } => ErrorCode::InvalidManifest,
        }
    }
}

impl Manifest {
    pub(crate) fn parse(name: &PluginName, bytes: &[u8]) -> Result<Self, ManifestError> {
        let invalid = |message: String| ManifestError::Invalid { name: name.clone(), message };
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|error| invalid(error.to_string()))?;
        for (sink_name, sink) in &manifest.sinks {
            sink.check().map_err(|problem| invalid(format!("sink `{sink_name}`: {problem}")))?;
        }
        for (plugin, settings) in &manifest.config {
            let configurable = manifest
                .transforms
                .iter()
                .chain(manifest.chains.values().flatten())
                .chain(&manifest.router)
                .chain(&manifest.inbound);
            if !configurable.into_iter().any(|name| name.as_str() == plugin) {
                return Err(invalid(format!(
                    "`config` has settings for `{plugin}`, which is not one of its `transforms`, `chains`, `router` or `inbound`"
                )));
            }
            if !settings.is_object() {
                return Err(invalid(format!("`config.{plugin}` must be a JSON object")));
            }
        }
        let plugins: Vec<&str> = manifest
            .transforms
            .iter()
            .chain(manifest.chains.values().flatten())
            .chain(manifest.orchestration_plugins())
            .map(PluginName::as_str)
            .collect();
        if let Some(path) = manifest.callers.unknown_paths(&plugins).next() {
            return Err(invalid(format!(
                "`callers.may` names `{path}`, which no caller could set: `system`, `model.<option>`, `model.*` or `config.<one of its plugins>.<setting>` (or `.*`)"
            )));
        }
        if manifest.router.is_some() && manifest.agents.is_empty() {
            return Err(invalid("a `router` needs `agents` to choose from".into()));
        }
        if manifest.router.is_none() && manifest.agents.len() > 1 {
            return Err(invalid("several `agents` need a `router` to choose among them".into()));
        }
        for (index, agent) in manifest.agents.iter().enumerate() {
            if agent.name.trim().is_empty() {
                return Err(invalid(format!("agent {index} has no `name`")));
            }
            if manifest.agents[..index].iter().any(|earlier| earlier.name == agent.name) {
                return Err(invalid(format!("two agents are named `{}`", agent.name)));
            }
            if agent.plugin.is_none() && !agent.config.is_empty() {
                return Err(invalid(format!("agent `{}` has `config` but no `plugin` to take it", agent.name)));
            }
        }
        Ok(manifest)
    }

    /// The agent named `name`.
    pub fn agent(&self, name: &str) -> Option<&AgentSpec> {
        self.agents.iter().find(|agent| agent.name == name)
    }

    /// The transforms of the chain named `name` (`None`: `transforms`).
    pub fn chain(&self, name: Option<&str>) -> Option<&[PluginName]> {
        match name {
            None => Some(&self.transforms),
            Some(name) => self.chains.get(name).map(Vec::as_slice),
        }
    }

    /// Every plugin the pipeline runs, in any role: its inbound plugin, the
    /// transforms of every chain, its router and its agents.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginName> {
        let chains = self.transforms.iter().chain(self.chains.values().flatten());
        self.inbound.iter().chain(chains).chain(self.orchestration_plugins())
    }

    /// Every plugin the pipeline runs besides its transforms (and besides
    /// its inbound plugin, whose settings are the operator's alone).
    pub fn orchestration_plugins(&self) -> impl Iterator<Item = &PluginName> {
        self.router.iter().chain(self.agents.iter().filter_map(|agent| agent.plugin.as_ref()))
    }
}

/// The manifests read so far, each with the revision it was read at.
pub struct Manifests {
    store: Arc<PluginStore>,
    loaded: Mutex<HashMap<PluginName, (Revision, Arc<Manifest>)>>,
}

impl Manifests {
    /// Manifests read from `store`, none read yet.
    pub fn new(store: Arc<PluginStore>) -> Self {
        Self { store, loaded: Mutex::default() }
    }

    /// The current manifest named `name`, or `None` when there is none.
    pub async fn get(&self, name: &PluginName) -> Result<Option<Arc<Manifest>>, ManifestError> {
        let known = self.loaded.lock().unwrap().get(name).cloned();
        match self.store.fetch(name, ObjectKind::Manifest, known.as_ref().map(|(revision, _)| revision)).await {
            Ok(Fetched::Unchanged) => Ok(known.map(|(_, manifest)| manifest)),
            Ok(Fetched::Changed { bytes, revision }) => {
                let manifest = Arc::new(Manifest::parse(name, &bytes)?);
                info!(pipeline = %name, transforms = ?manifest.transforms, "pipeline manifest loaded");
                self.loaded.lock().unwrap().insert(name.clone(), (revision, manifest.clone()));
                Ok(Some(manifest))
            }
            Err(StoreError::NotFound(_)) => {
                self.loaded.lock().unwrap().remove(name);
                Ok(None)
            }
            // The store is down and no manifest of this name was ever read:
            // go on to the component, which may be loaded already (a loaded
            // manifest would have been answered `Unchanged`, stale).
            Err(error @ StoreError::Unavailable { .. }) if known.is_none() => {
                warn!(pipeline = %name, %error, "cannot look for a pipeline manifest; trying a plugin of that name");
                Ok(None)
            }
            Err(error) => Err(ManifestError::Store(error)),
        }
    }
}

impl crate::error_code::CodedError for ManifestError {
    fn error_code(&self) -> crate::error_code::Code<'_> {
        self.code().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(&"p".parse().unwrap(), json.as_bytes())
    }

    #[test]
    fn reads_a_manifest() {
        let manifest = parse(r#"{"model":{"provider":"bedrock","maxTokens":9},"transforms":["redact","ndjson"],"config":{"redact":{"cards":false}}}"#).unwrap();
        assert_eq!(manifest.transforms.iter().map(PluginName::as_str).collect::<Vec<_>>(), ["redact", "ndjson"]);
        assert_eq!(manifest.model.max_tokens, Some(9));
    }

    #[test]
    fn refuses_what_would_fail_later() {
        let message = |json| parse(json).unwrap_err().to_string();
        assert!(message(r#"{"transforms":["../x"]}"#).contains("invalid plugin name"));
        assert!(message(r#"{"transforms":[],"extra":1}"#).contains("unknown field `extra`"));
        assert!(message(r#"{"transforms":["a"],"config":{"b":{}}}"#).ends_with(
            "`config` has settings for `b`, which is not one of its `transforms`, `chains`, `router` or `inbound`"
        ));
        assert!(message(r#"{"router":"r","agents":[]}"#).ends_with("a `router` needs `agents` to choose from"));
        let twins = r#"{"router":"r","agents":[{"name":"a","description":""},{"name":"a","description":""}]}"#;
        assert!(message(twins).ends_with("two agents are named `a`"));
        assert!(
            message(r#"{"agents":[{"name":"a","description":""},{"name":"b","description":""}]}"#)
                .ends_with("need a `router` to choose among them")
        );
        assert!(message(r#"{"transforms":["a"],"config":{"a":1}}"#).ends_with("`config.a` must be a JSON object"));
        assert!(
            message(r#"{"transforms":["a"],"callers":{"may":["modle.temperature"]}}"#)
                .contains("`callers.may` names `modle.temperature`")
        );
    }
}
