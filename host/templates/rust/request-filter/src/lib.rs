//! {{name}}: a streamhost request filter. It takes a caller's
//! `{"question": "…"}` and maps it to the host's request, or refuses a body
//! without one. Change `filter` to make it yours; `wit/inbound.wit` is the
//! contract.

wit_bindgen::generate!({ path: "wit", world: "request-filter" });

use exports::streamhost::plugin::filter::{Guest, IncomingRequest, PipelineRequest, Refusal};
use streamhost::plugin::types::{Content, ErrorInfo, ModelMessage, Role};

struct Plugin;

impl Guest for Plugin {
    fn filter(request: IncomingRequest) -> Result<PipelineRequest, Refusal> {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let Some(question) = body.get("question").and_then(|question| question.as_str()) else {
            return Err(Refusal {
                status: 400,
                error: ErrorInfo { code: "missing_question".into(), message: "send {\"question\": \"…\"}".into() },
                headers: Vec::new(),
            });
        };
        Ok(PipelineRequest {
            messages: vec![ModelMessage { role: Role::User, content: vec![Content::Text(question.to_string())] }],
            system: None,
            user_id: None,
            session_id: None,
            model: None,
            tools: Vec::new(),
            config: None,
            chain: None,
        })
    }
}

export!(Plugin);
