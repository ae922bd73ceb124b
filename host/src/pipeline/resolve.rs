//! From a call's target to what runs: the named pipeline's manifest or the
//! plugin with its `then` chain, the chain the manifest picks, and the
//! request built for it and held to what the pipeline lets callers set.
//! The inbound step decides which targets are served (`inbound::prepare`); this
//! decides what a target means.

use std::sync::Arc;

use thiserror::Error;

use super::Pipeline;
use crate::callers::NotAllowed;
use crate::error_code::ErrorCode;
use crate::manifest::{Manifest, ManifestError};
use crate::plugin_store::PluginName;
use crate::providers::ModelOptions;
use crate::request::{Request, RequestError, parse_chain};

/// Why a target or a request for it cannot run.
#[derive(Debug, Error)]
pub enum ResolveError {
    /// A bad plugin name, or a body that is not a request.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The pipeline's manifest cannot be read or is not valid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The inbound plugin picked a chain the manifest does not name.
    #[error("this pipeline has no chain named `{0}`")]
    UnknownChain(String),
    /// The caller set what the pipeline's `callers` does not allow.
    #[error(transparent)]
    NotAllowed(#[from] NotAllowed),
}

impl ResolveError {
    /// The code of the error answered to the caller.
    pub fn code(&self) -> ErrorCode {
        match self {
            ResolveError::Request(error) => error.code(),
            ResolveError::Manifest(error) => error.code(),
            ResolveError::UnknownChain(_) => ErrorCode::UnknownChain,
            ResolveError::NotAllowed(_) => ErrorCode::NotAllowed,
        }
    }
}

/// A call's target, found: its chain as named, and its manifest when it is
/// a named pipeline.
pub struct Target {
    /// The target and its `then` plugins; for a named pipeline, its name,
    /// which [`Target::request`] replaces with the manifest's chain.
    pub chain: Vec<PluginName>,
    /// The named pipeline's manifest.
    pub manifest: Option<Arc<Manifest>>,
}

impl Pipeline {
    /// Finds `target`, a named pipeline or a plugin, with `then` (the
    /// `?then=` list) after it.
    pub async fn resolve(&self, target: &str, then: Option<&str>) -> Result<Target, ResolveError> {
        let chain = parse_chain(target, then).map_err(RequestError::from)?;
        let manifest = self.manifest(&chain[0]).await?;
        Ok(Target { chain, manifest })
    }
}

impl Target {
    /// The request to run for `body` (a request's JSON): on a named
    /// pipeline, over the manifest's chain `chain_name` (its default chain
    /// without one), checked against its `callers` and with its defaults.
    /// `inference` says what inference settings the pipeline does not open do.
    pub fn request(self, chain_name: Option<&str>, body: &[u8], inference: Inference) -> Result<Request, ResolveError> {
        let Some(manifest) = self.manifest else {
            return Ok(Request::from_json(self.chain, &[], body)?);
        };
        let transforms = manifest
            .chain(chain_name)
            .ok_or_else(|| ResolveError::UnknownChain(chain_name.unwrap_or_default().to_string()))?;
        let mut chain = self.chain;
        chain.splice(0..1, transforms.iter().cloned());
        let others: Vec<PluginName> = manifest.orchestration_plugins().cloned().collect();
        let mut request = Request::from_json(chain, &others, body)?;
        if !manifest.agents.is_empty() && request.has_client_tools() {
            return Err(RequestError::Invalid(
                "this pipeline's agents call tools of their own: it takes no tools from callers (`tools`, \
                 `model.toolChoice`, tool calls or results in `messages`)"
                    .into(),
            )
            .into());
        }
        let mut shortening = None;
        if inference == Inference::SetAsideClosed {
            let set_aside = manifest.callers.set_aside_closed_inference(&mut request.model);
            if !set_aside.is_empty() {
                tracing::debug!(settings = ?set_aside, "inference settings the pipeline does not open were set aside");
            }
            shortening = Some(request.model.take_shortening());
        }
        manifest.callers.check(&request, &own_model(&manifest))?;
        if let Some(shortening) = shortening {
            request.model.shortened_by(shortening, &manifest.model);
        }
        Ok(request.with_defaults(&manifest.config))
    }
}

/// What a request's inference settings (`model.temperature`, ...) that the
/// pipeline's `callers` does not open do: refuse the request (a JSON body,
/// whose caller chose them), or be set aside (a standard API's, whose
/// client sends them unasked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inference {
    /// `403 not_allowed`, as any field the pipeline does not open.
    Refused,
    /// Those that change how the model answers (`temperature`, `topP`)
    /// cleared, the pipeline's own applying; those that only shorten the
    /// answer (`maxTokens`, capped by the pipeline's own, and
    /// `stopSequences`) honoured.
    SetAsideClosed,
}

/// The provider and model a caller may name because the pipeline already
/// uses them: the manifest's, unless an agent has its own (a caller's model
/// options come before an agent's, so naming the manifest's would replace
/// the agent's).
fn own_model(manifest: &Manifest) -> ModelOptions {
    let mut own =
        ModelOptions { provider: manifest.model.provider, id: manifest.model.id.clone(), ..Default::default() };
    if manifest.agents.iter().any(|agent| agent.model.provider.is_some()) {
        own.provider = None;
    }
    if manifest.agents.iter().any(|agent| agent.model.id.is_some()) {
        own.id = None;
    }
    own
}

impl crate::error_code::CodedError for ResolveError {
    fn error_code(&self) -> crate::error_code::Code<'_> {
        self.code().into()
    }
}
