//! Frontends adapt a transport to the pipeline and nothing else: they build
//! a [`Request`](crate::request::Request), open the pipeline and write the
//! body out. Every frontend answers errors the same way, from here.

pub mod cli;
pub mod http;
pub mod lambda;
pub mod publish;

use serde_json::json;

use crate::manifest::ManifestError;
use crate::pipeline::{Pipeline, PipelineError, Response};
use crate::providers::{ProviderError, UpstreamFailure};
use crate::registry::{LoadError, PluginError};
use crate::request::{Request, RequestError, parse_chain};
use crate::store::StoreError;

/// What every frontend does with a call: `plugin` (then the `then` chain)
/// on a JSON `body`, opened up to its first bytes. `plugin` may name a
/// pipeline manifest, whose transforms take its place in the chain.
pub async fn open(pipeline: &Pipeline, plugin: &str, then: Option<&str>, body: &[u8]) -> Result<Response, ErrorReply> {
    let mut chain = parse_chain(plugin, then).map_err(|error| ErrorReply::from(&RequestError::from(error)))?;
    let manifest = pipeline.manifest(&chain[0]).await.map_err(|error| ErrorReply::from(&error))?;
    let mut others = Vec::new();
    if let Some(manifest) = &manifest {
        chain.splice(0..1, manifest.transforms.iter().cloned());
        others.extend(manifest.orchestration_plugins().cloned());
    }
    let mut request = Request::from_json(chain, &others, body).map_err(|error| ErrorReply::from(&error))?;
    if let Some(manifest) = &manifest {
        request = request.with_defaults(manifest);
    }
    pipeline.open(request, manifest).await.map_err(|error| ErrorReply::from(&error))
}

/// An error answered before the response starts:
/// `{"error":{"code":…,"message":…}}` with an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ErrorReply {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self { status, code: code.to_string(), message: message.into() }
    }

    pub fn body_too_large(limit: usize) -> Self {
        ErrorReply::new(413, "body_too_large", format!("the body is larger than the {limit}-byte limit"))
    }

    pub fn to_json(&self) -> String {
        json!({ "error": { "code": self.code, "message": self.message } }).to_string()
    }
}

impl From<&RequestError> for ErrorReply {
    fn from(error: &RequestError) -> Self {
        let code = match error {
            RequestError::InvalidName(_) => "invalid_plugin_name",
            RequestError::MalformedJson(_) => "malformed_json",
            RequestError::Invalid(_) => "invalid_request",
        };
        ErrorReply::new(400, code, error.to_string())
    }
}

impl From<&StoreError> for ErrorReply {
    fn from(error: &StoreError) -> Self {
        let message = error.to_string();
        match error {
            StoreError::NotFound(_) => ErrorReply::new(404, "unknown_plugin", message),
            StoreError::Io { .. } => ErrorReply::new(500, "plugin_store_error", message),
            StoreError::Unavailable { .. } => ErrorReply::new(503, "plugin_store_unavailable", message),
        }
    }
}

impl From<&ManifestError> for ErrorReply {
    fn from(error: &ManifestError) -> Self {
        match error {
            ManifestError::Store(store) => ErrorReply::from(store),
            ManifestError::Invalid { .. } => ErrorReply::new(500, "invalid_manifest", error.to_string()),
        }
    }
}

impl From<&PipelineError> for ErrorReply {
    fn from(error: &PipelineError) -> Self {
        let message = error.to_string();
        match error {
            PipelineError::Load(LoadError::Store(store)) => ErrorReply::from(store),
            PipelineError::Load(LoadError::DigestMismatch { .. }) => ErrorReply::new(500, "digest_mismatch", message),
            PipelineError::Load(_) => ErrorReply::new(500, "invalid_plugin", message),
            // The plugin's own, deliberate refusal (a bad setting, say).
            PipelineError::Plugin(refused @ PluginError::Refused { .. }) => ErrorReply::new(422, refused.code(), message),
            PipelineError::Plugin(overloaded @ PluginError::Overloaded { .. }) => ErrorReply::new(503, overloaded.code(), message),
            PipelineError::Plugin(failure) => ErrorReply::new(500, failure.code(), message),
            PipelineError::Provider(provider) => {
                let status = match provider {
                    ProviderError::NotConfigured(..) | ProviderError::InvalidRequest(_) => 400,
                    ProviderError::Upstream { failure, .. } => match failure {
                        UpstreamFailure::Throttled(_) => 429,
                        UpstreamFailure::Unavailable(_) => 503,
                        UpstreamFailure::Rejected(_) | UpstreamFailure::Failed(_) => 502,
                        UpstreamFailure::Timeout(_) => 504,
                    },
                };
                ErrorReply::new(status, provider.code(), message)
            }
        }
    }
}
