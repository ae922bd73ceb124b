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

use super::ErrorReply;
use crate::pipeline::Pipeline;

type ResponseBody = StreamBody<BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;

/// Whether this process was started by Lambda.
pub fn is_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// Serves invocations until Lambda stops the process.
pub async fn run(pipeline: Arc<Pipeline>, max_body_bytes: usize) -> anyhow::Result<()> {
    let handler = service_fn(move |request: lambda_http::Request| {
        let pipeline = pipeline.clone();
        async move { Ok::<_, Infallible>(respond(&pipeline, request, max_body_bytes).await) }
    });
    lambda_http::run_with_streaming_response(handler).await.map_err(|error| anyhow::anyhow!(error))
}

async fn respond(pipeline: &Pipeline, request: lambda_http::Request, max_body_bytes: usize) -> http::Response<ResponseBody> {
    let plugin = request.uri().path().trim_start_matches('/').to_string();
    let then = request.query_string_parameters_ref().and_then(|query| query.first("then")).map(str::to_string);
    let body: &[u8] = request.body().as_ref();
    if body.len() > max_body_bytes {
        return error_response(&ErrorReply::body_too_large(max_body_bytes));
    }
    match super::open(pipeline, &plugin, then.as_deref(), body).await {
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

fn error_response(reply: &ErrorReply) -> http::Response<ResponseBody> {
    let body = stream::iter([Ok(Frame::data(Bytes::from(reply.to_json())))]).boxed();
    http::Response::builder()
        .status(reply.status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(StreamBody::new(body))
        .expect("a valid response")
}
