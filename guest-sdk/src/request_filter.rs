//! The request-filter role: the inbound side of a pipeline. It sees the
//! caller's request as it came (method, the path below the pipeline's,
//! query, headers, body) and maps it to the host's request, or refuses it
//! with a status, a code and headers. It runs before any other plugin and
//! any model call; it is the only role that sees credentials.
//!
//! ```no_run
//! use streamhost_guest::request_filter::{IncomingRequest, PipelineRequest, Refusal, RequestFilter};
//!
//! /// The body is the prompt, as plain text.
//! struct PlainText;
//!
//! impl RequestFilter for PlainText {
//!     fn filter(request: IncomingRequest) -> Result<PipelineRequest, Refusal> {
//!         let prompt = String::from_utf8(request.body)
//!             .map_err(|_| streamhost_guest::request_filter::refuse(400, "invalid_body", "the body is not UTF-8 text"))?;
//!         Ok(PipelineRequest::prompt(prompt))
//!     }
//! }
//!
//! streamhost_guest::export_request_filter!(PlainText);
//! ```

pub use crate::bindings::request_filter::exports::streamhost::plugin::filter::{
    IncomingRequest, PipelineRequest, Refusal,
};
use crate::error;
use crate::model::ModelMessage;

/// A request filter. The host calls `filter` once per request.
pub trait RequestFilter {
    /// The host's request, or the refusal answered to the caller.
    fn filter(request: IncomingRequest) -> Result<PipelineRequest, Refusal>;
}

/// A refusal with no extra headers.
pub fn refuse(status: u16, code: &str, message: impl Into<String>) -> Refusal {
    Refusal { status, error: error(code, message), headers: Vec::new() }
}

/// A `400 invalid_request` refusal: the body is not the client's shape.
pub fn invalid_request(message: impl Into<String>) -> Refusal {
    refuse(400, "invalid_request", message)
}

/// The body as a JSON object, or `400 invalid_request` saying what the
/// client should send (`shape`). With the `json-body` feature.
#[cfg(feature = "json-body")]
pub fn json_object(body: &[u8], shape: &str) -> Result<serde_json::Map<String, serde_json::Value>, Refusal> {
    match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(invalid_request(format!("the body must be a JSON object; {shape}"))),
        Err(problem) => Err(invalid_request(format!("the body is not valid JSON ({problem}); {shape}"))),
    }
}

/// The string field `name` that the request cannot do without (the
/// prompt): `400 invalid_request` when it is missing, blank or not a
/// string. With the `json-body` feature.
#[cfg(feature = "json-body")]
pub fn required_text(
    fields: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    shape: &str,
) -> Result<String, Refusal> {
    use serde_json::Value;
    match fields.get(name) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.clone()),
        Some(Value::String(_)) => Err(invalid_request(format!("`{name}` is empty"))),
        Some(_) => Err(invalid_request(format!("`{name}` must be a string"))),
        None => Err(invalid_request(format!("the body has no `{name}`; {shape}"))),
    }
}

/// The string field `name` of a JSON object from the body (`path` names it
/// in the refusal, `context.user_id`, say): none when absent, null or
/// empty; `400 invalid_request` when it is anything but a string. With the
/// `json-body` feature.
#[cfg(feature = "json-body")]
pub fn string_field(
    fields: &serde_json::Map<String, serde_json::Value>,
    name: &str,
    path: &str,
) -> Result<Option<String>, Refusal> {
    use serde_json::Value;
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) if value.is_empty() => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(invalid_request(format!("`{path}` must be a string"))),
    }
}

impl IncomingRequest {
    /// The first value of the header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(header, _)| header.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// Whether this is a read of a detached run started through the
    /// pipeline (`GET` or `DELETE` of `/runs/{id}…`, no body) rather than a
    /// request: the host asks the filter only who the caller is (the
    /// `user-id` of an accepted request; the rest is ignored), or for its
    /// refusal. A filter that does not identify callers accepts it with
    /// [`PipelineRequest::caller`]`(None)`.
    pub fn is_run_read(&self) -> bool {
        matches!(self.method.as_str(), "GET" | "DELETE") && self.path.starts_with("/runs/")
    }

    /// Whether this is a call through a standard API (`POST /v1/chat/completions`,
    /// `/v1/responses`, `/v1/messages`), whose body the API's own request
    /// filter maps: as for a run read, the host asks this filter only who
    /// the caller is, or for its refusal.
    pub fn is_standard_api_call(&self) -> bool {
        self.path.starts_with("/v1/")
    }

    /// Whether the host asks only who the caller is ([`Self::is_run_read`]
    /// or [`Self::is_standard_api_call`]): answer with
    /// [`PipelineRequest::caller`], or refuse.
    pub fn asks_only_who(&self) -> bool {
        self.is_run_read() || self.is_standard_api_call()
    }

    /// The media type of the body (`application/json`), without parameters,
    /// in lower case; none without a `content-type` header.
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|value| value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
    }
}

impl PipelineRequest {
    /// The answer to a run read ([`IncomingRequest::is_run_read`]): who
    /// the caller is, nothing else.
    pub fn caller(user_id: Option<String>) -> Self {
        Self { messages: Vec::new(), user_id, ..Self::prompt("") }
    }

    /// A one-message request: `prompt` from the user, nothing else set.
    pub fn prompt(prompt: impl Into<String>) -> Self {
        Self {
            messages: vec![ModelMessage::user(prompt)],
            system: None,
            user_id: None,
            session_id: None,
            model: None,
            tools: Vec::new(),
            config: None,
            chain: None,
        }
    }
}

/// Exports a [`RequestFilter`] as this component's `filter` interface.
///
/// Expands to nothing outside wasm32, so the crate still builds natively.
#[macro_export]
macro_rules! export_request_filter {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct Exports;
            impl $crate::bindings::request_filter::exports::streamhost::plugin::filter::Guest for Exports {
                fn filter(
                    request: $crate::request_filter::IncomingRequest,
                ) -> Result<$crate::request_filter::PipelineRequest, $crate::request_filter::Refusal> {
                    <$plugin as $crate::request_filter::RequestFilter>::filter(request)
                }
            }
            $crate::bindings::request_filter::export_request_filter_world!(Exports with_types_in $crate::bindings::request_filter);
        };
    };
}
