//! AWS Lambda: the same binary as a custom runtime (`provided.al2023`) behind
//! a Function URL in `RESPONSE_STREAM` mode. The Function URL event becomes
//! the same call the local server makes; status and content type go in the
//! streaming prelude, and the body streams as the pipeline produces it.
//!
//! Lambda's streaming protocol has no trailers: a failure after the first
//! byte is an error event in the stream's own format, as everywhere else.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use http_body::Frame;
use http_body_util::StreamBody;
use lambda_http::http::{self, HeaderValue, header};
use lambda_http::{RequestExt, service_fn};

use super::{ErrorReply, Inbound, RouteSettings};
use crate::pipeline::Pipeline;

type ResponseBody = StreamBody<BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;

/// Whether this process was started by Lambda.
pub fn is_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// Serves invocations until Lambda stops the process.
pub async fn run(pipeline: Arc<Pipeline>, routes: RouteSettings) -> anyhow::Result<()> {
    let routes = Arc::new(routes);
    let handler = service_fn(move |request: lambda_http::Request| {
        let (pipeline, routes) = (pipeline.clone(), routes.clone());
        async move { Ok::<_, Infallible>(respond(&pipeline, &routes, request).await) }
    });
    lambda_http::run_with_streaming_response(handler).await.map_err(|error| anyhow::anyhow!(error))
}

async fn respond(pipeline: &Pipeline, routes: &RouteSettings, request: lambda_http::Request) -> http::Response<ResponseBody> {
    match super::open(pipeline, routes, inbound(&request)).await {
        Ok(response) => {
            let content_type = HeaderValue::from_str(&response.content_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
            let body = response.body.map(|bytes| Ok(Frame::data(bytes))).boxed();
            http::Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, content_type)
                .header(header::CACHE_CONTROL, "no-cache")
                .body(StreamBody::new(body))
                .expect("a valid response")
        }
        Err(reply) => error_response(&reply),
    }
}

/// The Function URL event as the caller's request: the IAM caller's
/// identity, under `AWS_IAM`, is in its request context.
fn inbound(request: &lambda_http::Request) -> Inbound {
    let (target, path) = Inbound::split_path(request.uri().path());
    let headers = request.headers().iter().filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string())));
    Inbound {
        method: request.method().to_string(),
        target,
        path,
        query: request.uri().query().unwrap_or_default().to_string(),
        headers: headers.collect(),
        body: Bytes::copy_from_slice(request.body().as_ref()),
        request_context: serde_json::to_string(&request.request_context()).ok(),
    }
}

fn error_response(reply: &ErrorReply) -> http::Response<ResponseBody> {
    let body = stream::iter([Ok(Frame::data(Bytes::from(reply.to_json())))]).boxed();
    let mut builder = http::Response::builder().status(reply.status).header(header::CONTENT_TYPE, "application/json");
    // The streaming prelude carries one string per header, so the values of
    // a repeated header (two `www-authenticate` challenges) go as one
    // comma-separated value, as RFC 9110 allows.
    let mut joined: Vec<(&str, String)> = Vec::new();
    for (name, value) in &reply.headers {
        match joined.iter_mut().find(|(seen, _)| seen.eq_ignore_ascii_case(name)) {
            Some((_, values)) => *values = format!("{values}, {value}"),
            None => joined.push((name, value.clone())),
        }
    }
    for (name, value) in joined {
        builder = builder.header(name, value);
    }
    builder.body(StreamBody::new(body)).unwrap_or_else(|_| error_response(&ErrorReply::new(500, "invalid_refusal", "a refusal carried an invalid header")))
}
