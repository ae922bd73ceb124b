//! The one shape of a model source, as Spin's `LlmEngine` is one shape of
//! an LLM backend: a source builds its own request from a [`ModelCall`] once
//! (`request`), then sends it (`send`), which the host's retry policy may
//! repeat before the first event. Adding a source is one implementation of
//! [`ModelSource`] and one arm in `Providers::start`, the one place that
//! picks a source by its [`ProviderKind`].

use std::future::Future;

use super::{ModelCall, ProviderError, ProviderKind, Started, UpstreamFailure};

/// A model source.
pub trait ModelSource: Send + Sync {
    /// What the source is sent: its wire request, built once and reused by
    /// every attempt.
    type Request: Send + Sync;

    /// The source's name in the request's `model.provider` and in errors.
    const KIND: ProviderKind;

    /// Whether `send` goes through the host's retry policy, which also waits
    /// for the first event (so an exception sent as the first event is
    /// retried, and a source that sends nothing times out). A source that
    /// cannot fail once its request is built (the offline echo) opts out,
    /// and its stream starts at once.
    const RETRIED: bool = true;

    /// Builds the source's request for `call`, on `model` (the call's, else
    /// the host's `--model`). Refuses, before anything is sent, a call the
    /// source cannot take (no model id, tools it cannot carry):
    /// [`ProviderError::InvalidRequest`].
    fn request(&self, call: &ModelCall, model: Option<&str>) -> Result<Self::Request, ProviderError>;

    /// One attempt: sends `request` and answers with the source's stream of
    /// events once it has an answer, or why the attempt failed (see
    /// [`UpstreamFailure`] for which failures are tried again).
    fn send(&self, request: &Self::Request) -> impl Future<Output = Result<Started, UpstreamFailure>> + Send;
}

/// The model a source needs: `model`, or an error that says how to give one.
pub fn required_model(kind: ProviderKind, model: Option<&str>) -> Result<&str, ProviderError> {
    model.ok_or_else(|| {
        ProviderError::InvalidRequest(format!(
            "the `{kind}` provider needs a model: give `model.id` in the request, or start the host with --model"
        ))
    })
}
