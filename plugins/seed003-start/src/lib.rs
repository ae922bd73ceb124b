//! `seed003-start`: a request filter for seed 003 (long-running Bedrock
//! invocations through AppSync). Its client calls the `startConversation`
//! mutation with `{conversationId, prompt}`, the conversation id of its own
//! choosing, already subscribed to `onReceiveChunk(conversationId)`; AppSync
//! hands that input to the function in an `Event` invocation. The same body
//! works with `POST /runs/seed003`.
//!
//! The prompt is the one user message; the conversation id is the session
//! id, which the run's AppSync sink sends every chunk under. Refused (400
//! `invalid_request`): a body that is not a JSON object, a missing or blank
//! `prompt`, a `conversationId` that is not a string. Reads of a run
//! (`GET`/`DELETE /runs/{id}`) are accepted without naming a caller: the
//! seed's clients have no identity, the run id is the key.

use streamhost_guest::request_filter::{
    IncomingRequest, PipelineRequest, Refusal, RequestFilter, json_object, required_text, string_field,
};

const SHAPE: &str = r#"send {"conversationId": "…", "prompt": "…"}"#;

pub struct StartConversation;

impl RequestFilter for StartConversation {
    fn filter(request: IncomingRequest) -> Result<PipelineRequest, Refusal> {
        if request.asks_only_who() {
            return Ok(PipelineRequest::caller(None));
        }
        let fields = json_object(&request.body, SHAPE)?;
        let mut mapped = PipelineRequest::prompt(required_text(&fields, "prompt", SHAPE)?);
        mapped.session_id = string_field(&fields, "conversationId", "conversationId")?;
        Ok(mapped)
    }
}

streamhost_guest::export_request_filter!(StartConversation);

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, body: &str) -> IncomingRequest {
        IncomingRequest {
            method: method.into(),
            path: path.into(),
            query: String::new(),
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            request_context: None,
        }
    }

    #[test]
    fn the_conversation_id_is_the_session() {
        let mapped =
            StartConversation::filter(request("POST", "/", r#"{"conversationId":"c-1","prompt":"Tell me a joke"}"#))
                .unwrap();
        assert_eq!(mapped.messages[0].text(), "Tell me a joke");
        assert_eq!(mapped.session_id.as_deref(), Some("c-1"));
    }

    #[test]
    fn refuses_what_is_not_a_start() {
        for body in
            ["", "[]", r#"{"conversationId":"c-1"}"#, r#"{"prompt":" "}"#, r#"{"prompt":"hi","conversationId":7}"#]
        {
            let refusal = StartConversation::filter(request("POST", "/", body)).expect_err(body);
            assert_eq!((refusal.status, refusal.error.code.as_str()), (400, "invalid_request"), "{body}");
        }
    }

    #[test]
    fn a_run_read_names_no_caller() {
        let read = StartConversation::filter(request("GET", "/runs/0123", "")).unwrap();
        assert_eq!((read.user_id, read.messages.len()), (None, 0));
    }
}
