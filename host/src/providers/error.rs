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

    /// The error with what the source said scrubbed ([`scrub`]). What the
    /// host says of the request (`InvalidRequest`) is the caller's own.
    pub fn scrubbed(self) -> Self {
        match self {
            ProviderError::Upstream { failure, attempts } => {
                ProviderError::Upstream { failure: failure.scrubbed(), attempts }
            }
            other => other,
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

    fn scrubbed(self) -> Self {
        match self {
            UpstreamFailure::Throttled(message) => UpstreamFailure::Throttled(scrub(&message)),
            UpstreamFailure::Unavailable(message) => UpstreamFailure::Unavailable(scrub(&message)),
            UpstreamFailure::Rejected(message) => UpstreamFailure::Rejected(scrub(&message)),
            UpstreamFailure::Failed(message) => UpstreamFailure::Failed(scrub(&message)),
            UpstreamFailure::Timeout(held) => UpstreamFailure::Timeout(held),
        }
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

/// A source's text made safe for the caller: AWS error messages name the
/// host's role, a runtime or a model by its ARN, and the account id, which the
/// caller must not see. Every ARN (`arn:…`, or URL-encoded `arn%3A…`, as in an
/// AgentCore runtime's address) becomes `[arn]`; every run of 12 or more
/// digits, or 12 written `1234-5678-9012` (an account id), becomes
/// `[account]`. The text around them is kept byte for byte, so a JSON error
/// stays JSON.
///
/// The one scrubber of source text: `Providers::start` applies it to every
/// error that leaves this module ([`ProviderError::scrubbed`],
/// [`scrubbed_event`]), so no source can forget it; the agent runtime also
/// to an error's SSE event, which `sse-passthrough` forwards as it is.
pub fn scrub(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut scrubbed = String::with_capacity(text.len());
    let (mut kept, mut at) = (0, 0);
    while at < bytes.len() {
        let secret = arn_end(bytes, at)
            .map(|end| (end, "[arn]"))
            .or_else(|| account_end(bytes, at).map(|end| (end, "[account]")));
        match secret {
            // Both start and end at ASCII bytes, so on character boundaries.
            Some((end, mark)) => {
                scrubbed.push_str(&text[kept..at]);
                scrubbed.push_str(mark);
                (kept, at) = (end, end);
            }
            None => at += 1,
        }
    }
    scrubbed.push_str(&text[kept..]);
    scrubbed
}

/// Where the ARN that starts at `at` ends, if one does: `arn:` or `arn%3A`
/// (any case) at the start of a word, then at least one of an ARN's bytes.
fn arn_end(bytes: &[u8], at: usize) -> Option<usize> {
    if at > 0 && bytes[at - 1].is_ascii_alphanumeric() {
        return None; // `learn:` names no ARN
    }
    let rest = &bytes[at..];
    let prefix = ["arn:", "arn%3a"]
        .into_iter()
        .find(|prefix| rest.len() >= prefix.len() && rest[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes()))?;
    let length = rest[prefix.len()..].iter().take_while(|byte| is_arn_byte(**byte)).count();
    (length > 0).then_some(at + prefix.len() + length)
}

/// A byte of an ARN: its partition, service, region, account and resource
/// (IAM names take `+=.@_-`, Lambda versions `$`, paths `/`, URL encoding `%`).
fn is_arn_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b":/-_.+=@$%*".contains(&byte)
}

/// Where the account id that starts at `at` ends, if one does: 12 or more
/// digits in a row (from the run's first), or `dddd-dddd-dddd`.
fn account_end(bytes: &[u8], at: usize) -> Option<usize> {
    if !bytes[at].is_ascii_digit() || (at > 0 && bytes[at - 1].is_ascii_digit()) {
        return None;
    }
    let digits = |from: usize| bytes[from..].iter().take_while(|byte| byte.is_ascii_digit()).count();
    let run = digits(at);
    if run >= 12 {
        return Some(at + run);
    }
    let grouped =
        run == 4 && [at + 4, at + 9].into_iter().all(|dash| bytes.get(dash) == Some(&b'-') && digits(dash + 1) == 4);
    grouped.then_some(at + 14)
}

/// An event with its error message, if it is an error, scrubbed ([`scrub`]).
pub fn scrubbed_event(event: Event) -> Event {
    match event {
        Event::Error(ErrorInfo { code, message }) => Event::Error(ErrorInfo { code, message: scrub(&message) }),
        other => other,
    }
}

/// A source's stream ends at its first error event: keeps `events` up to it,
/// and says whether there was one.
pub fn end_at_error(events: &mut Vec<Event>) -> bool {
    match events.iter().position(|event| matches!(event, Event::Error(_))) {
        Some(at) => {
            events.truncate(at + 1);
            true
        }
        None => false,
    }
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
        assert_eq!(scrub(message), "User: [arn] is not authorized in account [account].");
    }

    #[test]
    fn scrubbing_keeps_the_text_around_what_it_removes() {
        // An agent runtime's in-band error, as the frame `sse-passthrough` forwards: still JSON.
        let frame = "data: {\"error\":\"User: arn:aws:sts::123456789012:assumed-role/R/x\"}\n\n";
        assert_eq!(scrub(frame), "data: {\"error\":\"User: [arn]\"}\n\n");
        // An ARN in parentheses, quotes or a URL, in any partition.
        assert_eq!(scrub("role (arn:aws-cn:iam::123456789012:role/a_b+c=d@e.f)."), "role ([arn]).");
        assert_eq!(scrub("'arn:aws:lambda:us-east-1:1:function:f:$LATEST'"), "'[arn]'");
        assert_eq!(
            scrub("/runtimes/arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A1%3Aruntime%2Fagent/invocations"),
            "/runtimes/[arn]",
            "an encoded ARN's end is not told from the path after it: the path goes too"
        );
        assert_eq!(scrub("ARN:aws:iam::1:root"), "[arn]");
        // Account ids in a word, after `=`, in the console's groups; not shorter numbers.
        assert_eq!(scrub("account=123456789012,"), "account=[account],");
        assert_eq!(scrub("acct 1234-5678-9012 ok"), "acct [account] ok");
        assert_eq!(scrub("order 12345678901 and 2024-05-01"), "order 12345678901 and 2024-05-01");
        assert_eq!(scrub("id 1234567890123456"), "id [account]");
        // Words that merely end in `arn`, and text that is not ASCII, stay.
        assert_eq!(scrub("learn: yarn:1 — café 123456789012é"), "learn: yarn:1 — café [account]é");
        assert_eq!(scrub("arn: nothing after"), "arn: nothing after");
    }

    #[test]
    fn a_failure_and_an_error_event_are_scrubbed_and_a_request_error_is_not() {
        let failure = UpstreamFailure::Rejected("HTTP 403 arn:aws:iam::123456789012:role/x".into());
        let error = ProviderError::Upstream { failure, attempts: 1 }.scrubbed();
        assert_eq!(error.to_string(), "the model source refused the request: HTTP 403 [arn] (1 attempt)");
        let own = ProviderError::InvalidRequest("model arn:aws:bedrock:us-east-1:123456789012:custom-model/m".into());
        assert!(own.scrubbed().to_string().contains("123456789012"), "the caller's own model id is kept");
        let Event::Error(event) = scrubbed_event(StreamErrorCode::Other.event("in 123456789012")) else {
            panic!("an error stays an error")
        };
        assert_eq!(event.message, "in [account]");
        assert_eq!(scrubbed_event(Event::Text("123456789012".into())), Event::Text("123456789012".into()));
    }

    #[test]
    fn a_stream_ends_at_its_first_error() {
        let mut events = vec![
            Event::Text("a".into()),
            StreamErrorCode::Other.event("first"),
            Event::End("end_turn".into()),
            StreamErrorCode::Other.event("second"),
        ];
        assert!(end_at_error(&mut events));
        assert_eq!(events, [Event::Text("a".into()), StreamErrorCode::Other.event("first")]);
        let mut clean = vec![Event::End("end_turn".into())];
        assert!(!end_at_error(&mut clean));
        assert_eq!(clean.len(), 1);
    }
}
