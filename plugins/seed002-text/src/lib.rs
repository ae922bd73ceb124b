//! `seed002-text`: a request filter for seed 002's client (Bedrock streaming
//! on a custom Lambda runtime), which posts the prompt as the raw body, in
//! plain text. The body, decoded as UTF-8 (a leading byte order mark and
//! trailing line breaks dropped, as `curl --data-binary @prompt.txt` leaves
//! them), is the one user message; nothing else is set.
//!
//! Refused before anything else runs: an empty body, or one that is not
//! UTF-8 (400 `invalid_request`); a body whose `content-type` says it is
//! JSON or a multipart form (415 `unsupported_media_type`): a structured
//! request sent to the wrong pipeline, not a prompt. (`curl -d 'a prompt'`
//! labels its body `application/x-www-form-urlencoded`, so that one is
//! read as text.) The same filter in Python is `seed002-text-py`.

use streamhost_guest::request_filter::{IncomingRequest, PipelineRequest, Refusal, RequestFilter, refuse};

/// Media types whose body is a structured request, not a prompt.
const REFUSED_MEDIA_TYPES: [&str; 2] = ["application/json", "multipart/form-data"];

pub struct PlainText;

impl RequestFilter for PlainText {
    fn filter(request: IncomingRequest) -> Result<PipelineRequest, Refusal> {
        // It names no caller: a run read or a standard API's call (whose
        // body that API's own filter reads) is let through as no one.
        if request.asks_only_who() {
            return Ok(PipelineRequest::caller(None));
        }
        if let Some(media_type) = request.media_type().filter(|media_type| is_structured(media_type)) {
            let message =
                format!("the body is the prompt as plain text (`content-type: text/plain`), not `{media_type}`");
            return Err(refuse(415, "unsupported_media_type", message));
        }
        let text = String::from_utf8(request.body).map_err(|error| {
            refuse(
                400,
                "invalid_request",
                format!("the body is not UTF-8 text (byte {})", error.utf8_error().valid_up_to()),
            )
        })?;
        let prompt = text.strip_prefix('\u{feff}').unwrap_or(&text).trim_end_matches(['\r', '\n']);
        if prompt.trim().is_empty() {
            return Err(refuse(400, "invalid_request", "the body is empty: post the prompt as plain text"));
        }
        Ok(PipelineRequest::prompt(prompt))
    }
}

fn is_structured(media_type: &str) -> bool {
    REFUSED_MEDIA_TYPES.contains(&media_type)
        || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}

streamhost_guest::export_request_filter!(PlainText);

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: Option<&str>, body: &[u8]) -> IncomingRequest {
        let headers = content_type.map(|value| ("content-type".to_string(), value.to_string())).into_iter().collect();
        IncomingRequest {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            headers,
            body: body.to_vec(),
            request_context: None,
        }
    }

    #[test]
    fn the_body_is_the_prompt() {
        let mapped =
            PlainText::filter(request(Some("text/plain; charset=utf-8"), "\u{feff}Tell me a joke\r\n".as_bytes()))
                .unwrap();
        assert_eq!(mapped.messages[0].text(), "Tell me a joke");
        assert!(PlainText::filter(request(None, b"hi")).is_ok());
        assert!(
            PlainText::filter(request(Some("application/x-www-form-urlencoded"), b"hi")).is_ok(),
            "what `curl -d` sends"
        );
    }

    #[test]
    fn refuses_what_is_not_a_prompt() {
        assert_eq!(PlainText::filter(request(Some("application/json"), b"{}")).unwrap_err().status, 415);
        assert_eq!(PlainText::filter(request(Some("application/vnd.api+json"), b"{}")).unwrap_err().status, 415);
        assert_eq!(PlainText::filter(request(None, b"  \n")).unwrap_err().status, 400);
        assert_eq!(PlainText::filter(request(None, &[0xff, 0xfe])).unwrap_err().error.code, "invalid_request");
    }
}
