//! `seed000-body`: a **request filter** for seed 000's browser client (the
//! Agent Squad orchestrator on Lambda). The client `fetch`es the bare URL
//! with the JSON body
//!
//! ```json
//! {"query": "What is artificial intelligence?", "userId": "user123", "sessionId": "session456"}
//! ```
//!
//! and this maps it to the host's request: `query` is the one user message,
//! `userId` and `sessionId` the ids. Other fields are ignored (the client
//! may add its own).
//!
//! Refused, before anything else runs:
//! - a path other than `/` (the client posts to the bare URL): 404 `not_found`;
//! - a `content-type` that is neither JSON (`application/json`, `…+json`),
//!   `text/plain` (what `fetch` sends for a string body without headers)
//!   nor `application/x-www-form-urlencoded` (what `curl -d` labels any
//!   body): 415 `unsupported_media_type`. No `content-type` is fine; the
//!   body must parse as JSON whatever its label;
//! - a body that is not a JSON object with a non-blank string `query`, or
//!   whose `userId` / `sessionId` is there but not a string: 400
//!   `invalid_request`.
//!
//! No settings.

use streamhost_guest::request_filter::{
    IncomingRequest, PipelineRequest, Refusal, RequestFilter, json_object, refuse, required_text, string_field,
};

pub struct Seed000Body;

impl RequestFilter for Seed000Body {
    fn filter(request: IncomingRequest) -> Result<PipelineRequest, Refusal> {
        map(&request)
    }
}

const SHAPE: &str = r#"send {"query":"…","userId":"…","sessionId":"…"}"#;

/// The host's request for `request`, or why it is refused.
fn map(request: &IncomingRequest) -> Result<PipelineRequest, Refusal> {
    // Its user id is the client's own claim, not an identity: a run read
    // names no caller, and the run id is the key.
    if request.asks_only_who() {
        return Ok(PipelineRequest::caller(None));
    }
    if request.path != "/" {
        return Err(refuse(
            404,
            "not_found",
            format!("nothing is served at `{}`: post the query to the pipeline's own URL", request.path),
        ));
    }
    if let Some(media_type) = request.media_type().filter(|media_type| !accepted(media_type)) {
        return Err(refuse(
            415,
            "unsupported_media_type",
            format!("the body must be JSON (`content-type: application/json`), not `{media_type}`; {SHAPE}"),
        ));
    }
    let fields = json_object(&request.body, SHAPE)?;
    let query = required_text(&fields, "query", SHAPE)?;
    let mut mapped = PipelineRequest::prompt(query);
    mapped.user_id = string_field(&fields, "userId", "userId")?;
    mapped.session_id = string_field(&fields, "sessionId", "sessionId")?;
    Ok(mapped)
}

/// JSON, or `text/plain` (a browser's `fetch` with a string body and no
/// `content-type` of its own sends `text/plain;charset=UTF-8`), or
/// `application/x-www-form-urlencoded` (`curl -d '{…}'` labels it so).
fn accepted(media_type: &str) -> bool {
    matches!(media_type, "application/json" | "text/plain" | "application/x-www-form-urlencoded")
        || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}

streamhost_guest::export_request_filter!(Seed000Body);

#[cfg(test)]
mod tests {
    use super::*;
    use streamhost_guest::model::ModelMessage;

    fn request(content_type: Option<&str>, body: &str) -> IncomingRequest {
        IncomingRequest {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            headers: content_type.map(|value| ("content-type".to_string(), value.to_string())).into_iter().collect(),
            body: body.as_bytes().to_vec(),
            request_context: None,
        }
    }

    fn refusal(request: IncomingRequest) -> (u16, String, String) {
        let refusal = map(&request).expect_err("refused");
        (refusal.status, refusal.error.code, refusal.error.message)
    }

    #[test]
    fn maps_the_seed_body() {
        let body = r#"{"query":"What is artificial intelligence?","userId":"user123","sessionId":"session456"}"#;
        let mapped = map(&request(Some("application/json"), body)).unwrap();
        assert_eq!(mapped.messages, vec![ModelMessage::user("What is artificial intelligence?")]);
        assert_eq!(mapped.user_id.as_deref(), Some("user123"));
        assert_eq!(mapped.session_id.as_deref(), Some("session456"));
        assert!(mapped.system.is_none() && mapped.model.is_none() && mapped.config.is_none() && mapped.chain.is_none());
    }

    #[test]
    fn takes_a_fetch_without_headers_and_ignores_extra_fields() {
        let body = r#"{"query":"hi","clientVersion":3,"extra":{"a":1}}"#;
        let mapped = map(&request(Some("text/plain;charset=UTF-8"), body)).unwrap();
        assert_eq!(mapped.messages[0].text(), "hi");
        assert_eq!((mapped.user_id, mapped.session_id), (None, None));
        assert!(map(&request(None, body)).is_ok());
        assert!(map(&request(Some("Application/JSON; charset=utf-8"), body)).is_ok());
        assert!(map(&request(Some("application/vnd.api+json"), body)).is_ok());
    }

    #[test]
    fn null_or_empty_ids_are_none() {
        let mapped = map(&request(None, r#"{"query":"hi","userId":null,"sessionId":""}"#)).unwrap();
        assert_eq!((mapped.user_id, mapped.session_id), (None, None));
    }

    #[test]
    fn refuses_other_media_types() {
        let (status, code, message) = refusal(request(Some("multipart/form-data; boundary=x"), "--x"));
        assert_eq!((status, code.as_str()), (415, "unsupported_media_type"));
        assert!(message.contains("multipart/form-data"), "{message}");
        assert!(
            map(&request(Some("application/x-www-form-urlencoded"), r#"{"query":"hi"}"#)).is_ok(),
            "what `curl -d` sends"
        );
    }

    #[test]
    fn refuses_a_body_without_a_string_query() {
        for body in [
            "query=hi",
            "",
            "[1,2]",
            r#"{"prompt":"hi"}"#,
            r#"{"query":42}"#,
            r#"{"query":"  "}"#,
            r#"{"query":"hi","userId":7}"#,
        ] {
            let (status, code, message) = refusal(request(Some("application/json"), body));
            assert_eq!((status, code.as_str()), (400, "invalid_request"), "{body}: {message}");
        }
        assert!(refusal(request(None, r#"{"prompt":"hi"}"#)).2.contains("no `query`"));
        assert!(refusal(request(None, "not json")).2.contains("not valid JSON"));
        assert!(refusal(request(None, r#"{"query":"hi","sessionId":[]}"#)).2.contains("`sessionId` must be a string"));
    }

    #[test]
    fn refuses_other_paths() {
        let mut other = request(None, r#"{"query":"hi"}"#);
        other.path = "/admin".into();
        assert_eq!(refusal(other).0, 404);
    }
}
