//! `seed004-tool`: a **request filter** for seed 004's tool executor (Solace
//! Agent Mesh's Lambda executor in streaming mode). It posts, signed with
//! SigV4, to `<function URL>/invoke`:
//!
//! ```json
//! {"args": {"message": "hello", "steps": 5}, "tool_config": {…}, "context": {"session_id": "…", "user_id": "…"}}
//! ```
//!
//! The signature is checked before the host runs: the Function URL's
//! `AWS_IAM` auth refuses an unsigned or wrongly signed request, and puts
//! the caller in the request context (`authorizer.iam.userArn`).
//!
//! The mapping: the prompt is `args.message` when that string is all of
//! `args`, else the whole `args` object as compact JSON text (keys in the
//! caller's order), so that no argument is lost: `{"message": "hello",
//! "steps": 5}` reaches the tool with its 5 steps (`slow-process` reads
//! them);
//! the user id is `context.user_id`, else the IAM caller's `userArn`; the
//! session id is `context.session_id`. `tool_config` is the executor's
//! configuration of the tool, not the pipeline's: it is ignored, and no
//! plugin settings are passed on (callers may set none by default).
//! `context` is left out when the executor's `include_context` is off, and
//! its ids may be null: both mean no id.
//!
//! Refused: a path other than `/invoke` or `/` (empty segments aside, so
//! `//invoke` and `/invoke/` are `/invoke`): 404 `not_found`; a body that is
//! not a JSON object with an `args` object, a blank `args.message`, or ids
//! that are not strings: 400 `invalid_request`.
//!
//! No settings.

use serde_json::Value;
use streamhost_guest::request_filter::{
    IncomingRequest, PipelineRequest, Refusal, RequestFilter, invalid_request as invalid, json_object, refuse,
    string_field,
};

pub struct Seed004Tool;

impl RequestFilter for Seed004Tool {
    fn filter(request: IncomingRequest) -> Result<PipelineRequest, Refusal> {
        map(&request)
    }
}

const SHAPE: &str = r#"send {"args":{…},"tool_config":{…},"context":{"session_id":…,"user_id":…}}"#;

/// The host's request for `request`, or why it is refused.
fn map(request: &IncomingRequest) -> Result<PipelineRequest, Refusal> {
    // Its user id is the client's own claim, not an identity: a run read
    // names no caller, and the run id is the key.
    if request.asks_only_who() {
        return Ok(PipelineRequest::caller(None));
    }
    let segments: Vec<&str> = request.path.split('/').filter(|segment| !segment.is_empty()).collect();
    if !matches!(segments.as_slice(), [] | ["invoke"]) {
        return Err(refuse(
            404,
            "not_found",
            format!("nothing is served at `{}`: the tool is invoked at `/invoke`", request.path),
        ));
    }
    let fields = json_object(&request.body, SHAPE)?;
    let args = match fields.get("args") {
        Some(Value::Object(args)) => args,
        Some(_) => return Err(invalid("`args` must be a JSON object")),
        None => return Err(invalid(format!("the body has no `args`; {SHAPE}"))),
    };
    let prompt = match args.get("message") {
        Some(Value::String(message)) if message.trim().is_empty() => return Err(invalid("`args.message` is empty")),
        Some(Value::String(message)) if args.len() == 1 => message.clone(),
        _ => Value::Object(args.clone()).to_string(),
    };
    let (user_id, session_id) = match fields.get("context") {
        None | Some(Value::Null) => (None, None),
        Some(Value::Object(context)) => (
            string_field(context, "user_id", "context.user_id")?,
            string_field(context, "session_id", "context.session_id")?,
        ),
        Some(_) => return Err(invalid("`context` must be a JSON object")),
    };
    let mut mapped = PipelineRequest::prompt(prompt);
    mapped.user_id = user_id.or_else(|| iam_caller(request.request_context.as_deref()));
    mapped.session_id = session_id;
    Ok(mapped)
}

/// The `userArn` of the IAM caller that signed the request, from the
/// Lambda request context (`authorizer.iam.userArn`); none elsewhere.
fn iam_caller(request_context: Option<&str>) -> Option<String> {
    let context: Value = serde_json::from_str(request_context?).ok()?;
    let arn = context.pointer("/authorizer/iam/userArn")?.as_str()?;
    (!arn.is_empty()).then(|| arn.to_string())
}

streamhost_guest::export_request_filter!(Seed004Tool);

#[cfg(test)]
mod tests {
    use super::*;

    const IAM_CONTEXT: &str = r#"{"accountId":"123456789012","apiId":"abc","authorizer":{"iam":{"accessKey":"AKIA…","accountId":"123456789012","callerId":"AIDA…","userArn":"arn:aws:iam::123456789012:user/sam-agent","userId":"AIDA…"}},"http":{"method":"POST","path":"/invoke"}}"#;

    fn request(path: &str, body: &str, request_context: Option<&str>) -> IncomingRequest {
        IncomingRequest {
            method: "POST".into(),
            path: path.into(),
            query: String::new(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
            request_context: request_context.map(str::to_string),
        }
    }

    fn refusal(request: IncomingRequest) -> (u16, String, String) {
        let refusal = map(&request).expect_err("refused");
        (refusal.status, refusal.error.code, refusal.error.message)
    }

    #[test]
    fn maps_the_executor_payload() {
        let body =
            r#"{"args":{"message":"hello"},"tool_config":{"x":1},"context":{"session_id":"s-1","user_id":"u-1"}}"#;
        let mapped = map(&request("/invoke", body, Some(IAM_CONTEXT))).unwrap();
        assert_eq!(mapped.messages[0].text(), "hello");
        assert_eq!(mapped.user_id.as_deref(), Some("u-1"));
        assert_eq!(mapped.session_id.as_deref(), Some("s-1"));
        assert!(mapped.config.is_none() && mapped.chain.is_none() && mapped.model.is_none() && mapped.system.is_none());
    }

    #[test]
    fn every_argument_reaches_the_tool() {
        let body = r#"{"args":{"message":"hello","steps":5}}"#;
        assert_eq!(
            map(&request("/invoke", body, None)).unwrap().messages[0].text(),
            r#"{"message":"hello","steps":5}"#
        );
        let body = r#"{"args":{"steps":2,"message":"hi","verbose":true}}"#;
        assert_eq!(
            map(&request("/invoke", body, None)).unwrap().messages[0].text(),
            r#"{"steps":2,"message":"hi","verbose":true}"#
        );
    }

    #[test]
    fn args_without_a_message_are_the_prompt_as_json() {
        let body = r#"{"args":{"steps":3,"topic":"analysing data","message":7}}"#;
        let mapped = map(&request("/invoke", body, None)).unwrap();
        assert_eq!(mapped.messages[0].text(), r#"{"steps":3,"topic":"analysing data","message":7}"#);
        assert_eq!(map(&request("/", r#"{"args":{}}"#, None)).unwrap().messages[0].text(), "{}");
    }

    #[test]
    fn the_iam_caller_is_the_user_without_a_context_user() {
        let arn = Some("arn:aws:iam::123456789012:user/sam-agent");
        assert_eq!(
            map(&request("/invoke", r#"{"args":{"message":"hi"}}"#, Some(IAM_CONTEXT))).unwrap().user_id.as_deref(),
            arn
        );
        let nulls = r#"{"args":{"message":"hi"},"context":{"session_id":null,"user_id":null}}"#;
        let mapped = map(&request("/invoke", nulls, Some(IAM_CONTEXT))).unwrap();
        assert_eq!((mapped.user_id.as_deref(), mapped.session_id), (arn, None));
        // Off Lambda, or without IAM auth, there is no caller to name.
        assert_eq!(map(&request("/invoke", r#"{"args":{"message":"hi"}}"#, None)).unwrap().user_id, None);
        let no_iam = r#"{"authorizer":{"iam":{"userArn":null}}}"#;
        assert_eq!(map(&request("/invoke", r#"{"args":{"message":"hi"}}"#, Some(no_iam))).unwrap().user_id, None);
        assert_eq!(map(&request("/invoke", r#"{"args":{"message":"hi"}}"#, Some("not json"))).unwrap().user_id, None);
    }

    #[test]
    fn takes_invoke_and_the_bare_url_only() {
        for path in ["/invoke", "/", "//invoke", "/invoke/"] {
            assert!(map(&request(path, r#"{"args":{"message":"hi"}}"#, None)).is_ok(), "{path}");
        }
        for path in ["/other", "/invoke/more", "/Invoke"] {
            let (status, code, _) = refusal(request(path, r#"{"args":{"message":"hi"}}"#, None));
            assert_eq!((status, code.as_str()), (404, "not_found"), "{path}");
        }
    }

    #[test]
    fn refuses_a_body_without_an_args_object() {
        for body in [
            "",
            "args=1",
            "[]",
            r#"{"message":"hi"}"#,
            r#"{"args":"hi"}"#,
            r#"{"args":null}"#,
            r#"{"args":{"message":"  "}}"#,
            r#"{"args":{},"context":"x"}"#,
            r#"{"args":{},"context":{"user_id":1}}"#,
        ] {
            let (status, code, message) = refusal(request("/invoke", body, None));
            assert_eq!((status, code.as_str()), (400, "invalid_request"), "{body}: {message}");
        }
        assert!(refusal(request("/invoke", r#"{"tool_config":{}}"#, None)).2.contains("no `args`"));
    }
}
