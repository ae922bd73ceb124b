//! How a model source fails, before its first event (`ProviderError`, an
//! error response) and inside a stream (an `error` event with a stable code).

use std::fmt;
use std::time::Duration;

use thiserror::Error;

use super::ProviderKind;
use crate::error_code::ErrorCode;
use crate::event::{ErrorInfo, Event, error_event};

/// Why a model stream could not start, before the source's first event.
#[derive(Debug, Error)]
pub enum ProviderError {
    /// The call names a source this host has no settings for; holds the
    /// source and the setting it needs (`set --openai-base-url`).
    #[error("the `{0}` provider is not configured on this host: {1}")]
    NotConfigured(ProviderKind, &'static str),
    /// The request cannot be made as given (no model id, an unknown family).
    #[error("{0}")]
    InvalidRequest(String),
    /// The source failed before its first event, on the last attempt made.
    #[error("{failure} ({attempts} attempt{})", if *attempts == 1 { "" } else { "s" })]
    Upstream {
        /// How the last attempt failed.
        failure: UpstreamFailure,
        /// How many attempts were made, the last included.
        attempts: u32,
    },
}

impl ProviderError {
    /// The code an error response or an agent's failed model call carries.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProviderError::NotConfigured(..) => ErrorCode::ProviderNotConfigured,
            ProviderError::InvalidRequest(_) => ErrorCode::InvalidModelRequest,
            ProviderError::Upstream { failure, .. } => match failure {
                UpstreamFailure::Throttled(_) => ErrorCode::UpstreamThrottled,
                UpstreamFailure::Unavailable(_) => ErrorCode::UpstreamUnavailable,
                UpstreamFailure::Rejected(_) => ErrorCode::UpstreamRejected,
                UpstreamFailure::Failed(_) => ErrorCode::UpstreamFailed,
                UpstreamFailure::Timeout(_) => ErrorCode::UpstreamTimeout,
            },
        }
    }
}

/// Why one attempt at a source failed before its first event.
///
/// The retry rule: only what is safe to send again is retried, before the
/// first byte: a connection that was never made, a throttle (429) and a
/// gateway's or a service's unavailability (502, 503, 504). A 500 or a
/// connection that broke once the request was sent is not: an agent runtime
/// may have run tools before it failed.
#[derive(Debug, Error)]
pub enum UpstreamFailure {
    /// 429, or a throttling exception: retried.
    #[error("the model source is throttling requests: {0}")]
    Throttled(String),
    /// No connection, 502, 503, 504, or a service-unavailable exception:
    /// retried.
    #[error("the model source is unavailable: {0}")]
    Unavailable(String),
    /// A 4xx (but 429), or a validation exception: the request is wrong.
    #[error("the model source refused the request: {0}")]
    Rejected(String),
    /// A 500, another 5xx, a broken connection after the request was sent,
    /// or any other failure: it may have done work, so it is not retried.
    #[error("the model source failed: {0}")]
    Failed(String),
    /// No first event within `--provider-first-event-timeout-ms` (the time
    /// held): not retried.
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
        Self::by_status(status, format!("HTTP {status} {detail}"))
    }

    /// The failure an HTTP status stands for, with `message` as it is.
    pub fn by_status(status: u16, message: String) -> Self {
        match status {
            429 => UpstreamFailure::Throttled(message),
            502..=504 => UpstreamFailure::Unavailable(message),
            // 408: the source ran out of time; the request was not wrong.
            408 | 500.. => UpstreamFailure::Failed(message),
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
    /// A body the source cannot read (not its format, not its content type).
    UnexpectedContent,
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
            StreamErrorCode::UnexpectedContent,
        ]
        .into_iter()
        .find(|known| known.code().as_str() == code)
        .unwrap_or(StreamErrorCode::Other)
    }

    /// The code of the error event this error is.
    pub fn code(self) -> ErrorCode {
        match self {
            StreamErrorCode::Throttled => ErrorCode::Throttled,
            StreamErrorCode::ServiceUnavailable => ErrorCode::ServiceUnavailable,
            StreamErrorCode::InternalServerError => ErrorCode::InternalServerError,
            StreamErrorCode::ModelTimeout => ErrorCode::ModelTimeout,
            StreamErrorCode::ModelStreamError => ErrorCode::ModelStreamError,
            StreamErrorCode::ValidationError => ErrorCode::ValidationError,
            StreamErrorCode::Disconnected => ErrorCode::UpstreamDisconnected,
            StreamErrorCode::UnexpectedContent => ErrorCode::UpstreamUnexpectedContent,
            StreamErrorCode::Other => ErrorCode::UpstreamError,
        }
    }

    /// The failure this error stands for before a stream's first event (see
    /// [`UpstreamFailure`] for which are retried).
    pub fn failure(self, message: String) -> UpstreamFailure {
        match self {
            StreamErrorCode::Throttled => UpstreamFailure::Throttled(message),
            StreamErrorCode::ServiceUnavailable => UpstreamFailure::Unavailable(message),
            StreamErrorCode::ValidationError => UpstreamFailure::Rejected(message),
            _ => UpstreamFailure::Failed(message),
        }
    }

    pub fn event(self, message: impl Into<String>) -> Event {
        error_event(self.code(), message)
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
        let failure = |code: StreamErrorCode| {
            UpstreamFailure::from_stream_error(&ErrorInfo { code: code.code().to_string(), message: "m".into() })
        };
        assert!(matches!(failure(StreamErrorCode::Throttled), UpstreamFailure::Throttled(_)));
        assert!(failure(StreamErrorCode::ServiceUnavailable).is_retryable());
        assert!(!failure(StreamErrorCode::ValidationError).is_retryable());
        assert!(!failure(StreamErrorCode::ModelStreamError).is_retryable());
        assert!(!failure(StreamErrorCode::InternalServerError).is_retryable(), "a 500 may come after work was done");
    }

    #[test]
    fn only_statuses_that_are_safe_to_repeat_are_retried() {
        let retried: Vec<u16> =
            (400..600).filter(|&status| UpstreamFailure::from_status(status, "").is_retryable()).collect();
        assert_eq!(retried, [429, 502, 503, 504]);
    }

    #[test]
    fn scrubs_arns_and_account_ids() {
        let message = "User: arn:aws:sts::123456789012:assumed-role/r/f is not authorized in account 123456789012.";
        assert_eq!(scrub(message), "User: [arn] is not authorized in account [account]");
    }
}
