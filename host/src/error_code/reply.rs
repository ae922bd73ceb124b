//! The one place an error becomes an answer (as axum's `AppError`): every
//! module's error type at its boundary implements [`CodedError`], and an
//! [`ErrorReply`] is made from any of them with the table's status.

use serde_json::json;

use super::{Code, ErrorCode};
use crate::request_id::RequestId;

/// An error with a code in the host's table (or a plugin's own code): what
/// every module's error type at its boundary is, so that any of them
/// becomes an [`ErrorReply`] the same way.
pub trait CodedError: std::fmt::Display {
    /// The error's code: its status comes from the table ([`Code::status`]).
    fn error_code(&self) -> Code<'_>;

    /// Whether the failure behind it was logged where it happened (a
    /// plugin's, in its sandbox). Default: not yet.
    fn logged(&self) -> bool {
        false
    }
}

impl<E: CodedError> From<&E> for ErrorReply {
    fn from(error: &E) -> Self {
        ErrorReply { logged: error.logged(), ..ErrorReply::coded(error.error_code(), error.to_string()) }
    }
}

/// An error answered before the response starts:
/// `{"error":{"code":…,"message":…,"requestId":…}}` with an HTTP status and, for a
/// refusal, its headers (`www-authenticate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// The HTTP status: the table's for the host's codes, 422 for a plugin's
    /// own, an inbound plugin's own for its refusal.
    pub status: u16,
    /// The error's code: the host's (error_code.rs) or a plugin's.
    pub code: String,
    /// What went wrong, in words for the caller.
    pub message: String,
    /// Headers to send with it: an inbound plugin's refusal's
    /// (`www-authenticate`), or `retry-after` when runs are full; else none.
    pub headers: Vec<(String, String)>,
    /// Whether the failure behind it was logged where it happened (a
    /// plugin's, in its sandbox); [`ErrorReply::log`] logs the others.
    pub logged: bool,
}

impl ErrorReply {
    /// An error of the host's own: its status is the table's
    /// ([`ErrorCode::status`]).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::coded(code.into(), message)
    }

    /// An error with a host's or a plugin's code ([`Code::status`]).
    pub fn coded(code: Code<'_>, message: impl Into<String>) -> Self {
        Self {
            status: code.status(),
            code: code.as_str().to_string(),
            message: message.into(),
            headers: Vec::new(),
            logged: false,
        }
    }

    /// The refusal of a body larger than `limit` bytes (`--max-body-bytes`).
    pub fn body_too_large(limit: usize) -> Self {
        ErrorReply::new(ErrorCode::BodyTooLarge, format!("the body is larger than the {limit}-byte limit"))
    }

    /// The response body: `{"error":{"code":…,"message":…,"requestId":…}}`,
    /// the request id when the call has one ([`RequestId::scope`]).
    pub fn to_json(&self) -> String {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(id) = RequestId::current() {
            error["requestId"] = json!(id.as_str());
        }
        json!({ "error": error }).to_string()
    }

    /// Logs the refusal once, unless its failure was logged already: a
    /// server error at `warn`, a client's at `info`.
    pub fn log(&self) {
        if self.logged {
            return;
        }
        let (status, code) = (self.status, self.code.as_str());
        let error = crate::log_text::escaped(&self.message);
        let error = error.as_ref();
        match status {
            500.. => tracing::warn!(status, code, error, "request failed"),
            _ => tracing::info!(status, code, error, "request refused"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::pipeline::{PipelineError, ResolveError};
    use crate::plugin_store::{PluginName, StoreError};
    use crate::providers::{ProviderError, UpstreamFailure};
    use crate::registry::{LoadError, PluginError};
    use crate::wit::ErrorInfo;

    fn name() -> PluginName {
        "router".parse().unwrap()
    }

    fn reply(error: impl Into<PipelineError>) -> (u16, String) {
        let reply = ErrorReply::from(&error.into());
        (reply.status, reply.code)
    }

    /// Each layer's errors, mapped by the one table: the same failure has
    /// the same code and status whichever role the plugin has.
    #[test]
    fn every_layers_error_takes_the_tables_code_and_status() {
        let mismatch = LoadError::DigestMismatch { name: name(), expected: "a".into(), actual: "b".into() };
        assert_eq!(reply(mismatch), (500, "digest_mismatch".into()));
        let unavailable = StoreError::Unavailable { name: name(), message: "down".into() };
        assert_eq!(reply(LoadError::Store(unavailable)), (503, "plugin_store_unavailable".into()));
        assert_eq!(reply(LoadError::NotWasm(name())), (500, "invalid_plugin".into()));
        let refused =
            PluginError::Refused { name: name(), error: ErrorInfo { code: "bad_setting".into(), message: "m".into() } };
        assert_eq!(reply(refused), (422, "bad_setting".into()));
        assert_eq!(reply(PluginError::Overloaded { limit: 1 }), (503, "overloaded".into()));
        let timeout = PluginError::Timeout { name: name(), limit: Duration::from_secs(1) };
        assert_eq!(reply(timeout), (500, "plugin_timeout".into()));
        let throttled = ProviderError::Upstream { failure: UpstreamFailure::Throttled("slow".into()), attempts: 3 };
        assert_eq!(reply(throttled), (429, "upstream_throttled".into()));
        let timed_out =
            ProviderError::Upstream { failure: UpstreamFailure::Timeout(Duration::from_secs(1)), attempts: 1 };
        assert_eq!(reply(timed_out), (504, "upstream_timeout".into()));
        let unknown_chain = ErrorReply::from(&ResolveError::UnknownChain("fast".into()));
        assert_eq!((unknown_chain.status, unknown_chain.code.as_str()), (400, "unknown_chain"));
    }
}
