//! How a model source fails, before its first event (`ProviderError`, an
//! error response) and inside a stream (an `error` event with a stable code).

use std::fmt;
use std::time::Duration;

use thiserror::Error;

use super::ProviderKind;
use crate::event::{ErrorInfo, Event, error_event};

#[derive(Debug, Error)]
pub enum ProviderError {
    #[error("the `{0}` provider is not configured on this host: {1}")]
    NotConfigured(ProviderKind, &'static str),
    /// The request cannot be made as given (no model id, an unknown family).
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{failure} ({attempts} attempt{})", if *attempts == 1 { "" } else { "s" })]
    Upstream { failure: UpstreamFailure, attempts: u32 },
}

impl ProviderError {
    /// The code an error response or an agent's failed model call carries.
    pub fn code(&self) -> &'static str {
        match self {
            ProviderError::NotConfigured(..) => "provider_not_configured",
            ProviderError::InvalidRequest(_) => "invalid_model_request",
            ProviderError::Upstream { failure, .. } => match failure {
                UpstreamFailure::Throttled(_) => "upstream_throttled",
                UpstreamFailure::Unavailable(_) => "upstream_unavailable",
                UpstreamFailure::Rejected(_) => "upstream_rejected",
                UpstreamFailure::Timeout(_) => "upstream_timeout",
            },
        }
    }
}

/// Why one attempt at a source failed before its first event.
#[derive(Debug, Error)]
pub enum UpstreamFailure {
    #[error("the model source is throttling requests: {0}")]
    Throttled(String),
    #[error("the model source is unavailable: {0}")]
    Unavailable(String),
    #[error("the model source refused the request: {0}")]
    Rejected(String),
    #[error("the model source sent nothing within {0:?}")]
    Timeout(Duration),
}

impl UpstreamFailure {
    /// Whether trying again may help: throttling and unavailability may
    /// pass; a refusal will not, and a timeout has used its time.
    pub fn is_retryable(&self) -> bool {
        matches!(self, UpstreamFailure::Throttled(_) | UpstreamFailure::Unavailable(_))
    }

    /// The failure an in-stream error event stands for, when it is the
    /// source's first event.
    pub fn from_stream_error(error: &ErrorInfo) -> Self {
        StreamErrorCode::from_code(&error.code).failure(format!("{}: {}", error.code, error.message))
    }

    /// From an HTTP status and a description of the answer.
    pub fn from_status(status: u16, detail: impl fmt::Display) -> Self {
        let message = format!("HTTP {status} {detail}");
        match status {
            429 => UpstreamFailure::Throttled(message),
            500.. => UpstreamFailure::Unavailable(message),
            _ => UpstreamFailure::Rejected(message),
        }
    }
}

/// The codes of a source's in-stream errors: Bedrock's exceptions, and
/// what the host sees of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamErrorCode {
    Throttled,
    ServiceUnavailable,
    InternalServerError,
    ModelTimeout,
    ModelStreamError,
    ValidationError,
    /// The connection ended before the source said it had finished.
    Disconnected,
    Other,
}

impl StreamErrorCode {
    /// From an AWS error name: `ThrottlingException`, `throttlingException`.
    pub fn from_aws(name: Option<&str>) -> Self {
        let Some(name) = name else { return StreamErrorCode::Disconnected };
        let name = name.trim_end_matches("Exception").to_ascii_lowercase();
        match name.as_str() {
            "throttling" | "servicequotaexceeded" | "toomanyrequests" => StreamErrorCode::Throttled,
            "serviceunavailable" => StreamErrorCode::ServiceUnavailable,
            "internalserver" | "internalfailure" => StreamErrorCode::InternalServerError,
            "modeltimeout" => StreamErrorCode::ModelTimeout,
            "modelstreamerror" => StreamErrorCode::ModelStreamError,
            "validation" => StreamErrorCode::ValidationError,
            _ => StreamErrorCode::Other,
        }
    }

    fn from_code(code: &str) -> Self {
        [
            StreamErrorCode::Throttled,
            StreamErrorCode::ServiceUnavailable,
            StreamErrorCode::InternalServerError,
            StreamErrorCode::ModelTimeout,
            StreamErrorCode::ModelStreamError,
            StreamErrorCode::ValidationError,
            StreamErrorCode::Disconnected,
        ]
        .into_iter()
        .find(|known| known.as_str() == code)
        .unwrap_or(StreamErrorCode::Other)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StreamErrorCode::Throttled => "throttled",
            StreamErrorCode::ServiceUnavailable => "service_unavailable",
            StreamErrorCode::InternalServerError => "internal_server_error",
            StreamErrorCode::ModelTimeout => "model_timeout",
            StreamErrorCode::ModelStreamError => "model_stream_error",
            StreamErrorCode::ValidationError => "validation_error",
            StreamErrorCode::Disconnected => "upstream_disconnected",
            StreamErrorCode::Other => "upstream_error",
        }
    }

    /// The failure this error stands for before a stream's first event.
    pub fn failure(self, message: String) -> UpstreamFailure {
        match self {
            StreamErrorCode::Throttled => UpstreamFailure::Throttled(message),
            StreamErrorCode::ServiceUnavailable | StreamErrorCode::InternalServerError | StreamErrorCode::ModelTimeout => {
                UpstreamFailure::Unavailable(message)
            }
            _ => UpstreamFailure::Rejected(message),
        }
    }

    pub fn event(self, message: impl Into<String>) -> Event {
        error_event(self.as_str(), message)
    }
}

/// A source's message made safe for the caller: AWS error messages can name
/// the host's role ARN and account id, which the caller must not see.
pub fn scrub(message: &str) -> String {
    message
        .split(' ')
        .map(|word| {
            if word.contains("arn:") {
                "[arn]"
            } else if word.as_bytes().windows(12).any(|run| run.iter().all(u8::is_ascii_digit)) {
                "[account]"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_aws_error_names() {
        assert_eq!(StreamErrorCode::from_aws(Some("ThrottlingException")), StreamErrorCode::Throttled);
        assert_eq!(StreamErrorCode::from_aws(Some("modelStreamErrorException")), StreamErrorCode::ModelStreamError);
        assert_eq!(StreamErrorCode::from_aws(None), StreamErrorCode::Disconnected);
        assert_eq!(StreamErrorCode::from_aws(Some("AccessDeniedException")), StreamErrorCode::Other);
    }

    #[test]
    fn a_first_error_event_retries_only_when_transient() {
        let failure = |code: StreamErrorCode| UpstreamFailure::from_stream_error(&ErrorInfo { code: code.as_str().into(), message: "m".into() });
        assert!(matches!(failure(StreamErrorCode::Throttled), UpstreamFailure::Throttled(_)));
        assert!(failure(StreamErrorCode::ServiceUnavailable).is_retryable());
        assert!(!failure(StreamErrorCode::ValidationError).is_retryable());
        assert!(!failure(StreamErrorCode::ModelStreamError).is_retryable());
    }

    #[test]
    fn scrubs_arns_and_account_ids() {
        let message = "User: arn:aws:sts::123456789012:assumed-role/r/f is not authorized in account 123456789012.";
        assert_eq!(scrub(message), "User: [arn] is not authorized in account [account]");
    }
}
