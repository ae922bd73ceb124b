//! `streamhost invoke`: one request through the pipeline, the body written
//! to stdout as it streams.

use std::io::Write;

use futures::StreamExt;
use serde_json::{Value, json};

use super::{ErrorReply, Inbound, RouteSettings};
use crate::pipeline::Pipeline;

/// What `invoke` was asked for on the command line.
pub struct Invocation<'a> {
    pub plugin: &'a str,
    pub then: Option<&'a str>,
    /// A whole JSON body, or else one built from `prompt` and the ids.
    pub body: Option<&'a str>,
    pub prompt: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
}

impl Invocation<'_> {
    fn body(&self) -> String {
        if let Some(body) = self.body {
            return body.to_string();
        }
        let mut body = json!({ "prompt": self.prompt.unwrap_or_default() });
        for (key, value) in [("userId", self.user_id), ("sessionId", self.session_id)] {
            if let Some(value) = value {
                body[key] = Value::from(value);
            }
        }
        body.to_string()
    }
}

/// Runs the invocation, writing the body to `out` chunk by chunk.
pub async fn invoke(pipeline: &Pipeline, invocation: &Invocation<'_>, out: &mut impl Write) -> Result<(), ErrorReply> {
    // The command line is the operator's own: any plugin or chain, any size.
    let routes = RouteSettings { default_pipeline: None, named_pipelines_only: Some(false), max_body_bytes: usize::MAX };
    let (target, path) = Inbound::split_path(invocation.plugin);
    let inbound = Inbound {
        method: "POST".into(),
        target,
        path,
        query: invocation.then.map(|then| format!("then={then}")).unwrap_or_default(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: invocation.body().into(),
        request_context: None,
    };
    let mut response = super::open(pipeline, &routes, inbound).await?;
    while let Some(chunk) = response.body.next().await {
        // A closed stdout (`| head`) cancels the stream like a disconnect.
        if out.write_all(&chunk).and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    Ok(())
}
