//! AWS Lambda: the same binary as a custom runtime (`provided.al2023`). It
//! takes three kinds of event, each answered its own way:
//!
//! - a **Function URL** event (payload 2.0, the URL in `RESPONSE_STREAM`
//!   mode): the same call the local server makes, status and headers in
//!   the streaming prelude, the body as the pipeline produces it. `POST
//!   /runs/{pipeline}` answers `202` at once and has the run executed by an
//!   asynchronous invocation of this same function (Lambda's `Invoke`, type
//!   `Event`, on the ARN this invocation came in by);
//! - that asynchronous invocation, `{"streamhostRun": {"runId", "target",
//!   "query", "body", "chain"}}` (the request as the inbound plugin mapped
//!   it: no credentials travel): drives the run to its end, within this
//!   invocation's deadline;
//! - an **AppSync direct Lambda resolver** event in `Event` mode (seed 003:
//!   `{"arguments", "identity", "request", "info", …}`): starts a run of
//!   `--appsync-pipeline` with the field's `input` argument (else all its
//!   arguments) as the JSON body, and drives it to its end; its sinks send
//!   the chunks back to AppSync.
//!
//! Lambda's streaming protocol has no trailers: a failure after the first
//! byte is an error event in the stream's own format, as everywhere else.
//! A run lasts at most as long as one invocation (15 minutes at most).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use lambda_http::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use lambda_http::lambda_runtime::{self, FunctionResponse, LambdaEvent, MetadataPrelude, StreamResponse};
use lambda_http::request::LambdaRequest;
use lambda_http::{RequestExt, service_fn};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::playground::{self, PlaygroundSettings};
use super::runs::{self, RunReply};
use super::{InSpan, JsonAnswer};
use crate::error_code::ErrorCode;
use crate::error_code::ErrorReply;
use crate::pipeline::Pipeline;
use crate::pipeline::inbound::{Inbound, RouteSettings, prepare_mapped};
use crate::pipeline::standard_api::{self, StandardApi};
use crate::request_id::RequestId;
use crate::runs::{RunFailure, RunId, Runs};

type Body = BoxStream<'static, Result<Bytes, Infallible>>;
type Answer = FunctionResponse<Value, Body>;

/// The Lambda frontend's own settings.
#[derive(Debug, Clone, clap::Args)]
pub struct LambdaSettings {
    /// The pipeline an AppSync resolver's event starts a run of (default:
    /// --default-pipeline).
    #[arg(long, env = "STREAMHOST_APPSYNC_PIPELINE", value_name = "NAME")]
    pub appsync_pipeline: Option<crate::plugin_store::PluginName>,

    /// How requests find their pipeline.
    #[command(flatten)]
    pub routes: RouteSettings,

    /// The playground page (off on Lambda unless `--playground true`).
    #[command(flatten)]
    pub playground: PlaygroundSettings,
}

/// What the function holds between invocations.
struct Function {
    pipeline: Arc<Pipeline>,
    runs: Arc<Runs>,
    settings: LambdaSettings,
    lambda: aws_sdk_lambda::Client,
}

/// The payload of the asynchronous invocation that drives a run: the
/// request as the pipeline's inbound plugin mapped it (no headers, no
/// credentials: they stay in the Function URL's invocation).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunInvocation {
    run_id: RunId,
    /// The pipeline (or plugin) the run's path named; none for the default.
    target: Option<String>,
    query: String,
    /// The mapped JSON body, base64.
    body: String,
    /// The chain the inbound plugin picked.
    chain: Option<String>,
}

/// Serves invocations until Lambda stops the process.
pub async fn run(pipeline: Arc<Pipeline>, runs: Arc<Runs>, settings: LambdaSettings) -> anyhow::Result<()> {
    let lambda = aws_sdk_lambda::Client::new(&crate::aws::load().await);
    let function = Arc::new(Function { pipeline, runs, settings, lambda });
    let handler = service_fn(move |event: LambdaEvent<Value>| {
        let function = function.clone();
        async move { function.invoked(event).await }
    });
    lambda_runtime::run(handler).await.map_err(|error| anyhow::anyhow!(error))
}

impl Function {
    async fn invoked(&self, event: LambdaEvent<Value>) -> Result<Answer, lambda_runtime::Error> {
        let LambdaEvent { payload, context } = event;
        let deadline = UNIX_EPOCH + Duration::from_millis(context.deadline);
        if let Some(run) = payload.get("streamhostRun") {
            let run: RunInvocation = serde_json::from_value(run.clone())?;
            let answer = self.drive(run, deadline).await;
            flush_metrics().await;
            return Ok(FunctionResponse::BufferedResponse(answer));
        }
        if is_appsync_event(&payload) {
            let answer = self.appsync(payload, deadline).await;
            flush_metrics().await;
            return Ok(FunctionResponse::BufferedResponse(answer?));
        }
        if payload.pointer("/requestContext/http").is_some() {
            let request: LambdaRequest = serde_json::from_value(payload)?;
            let request: lambda_http::Request = lambda_http::http::Request::from(request);
            let request_id = RequestId::from_given(&context.request_id);
            let answer = self.function_url(&request, &context.invoked_function_arn);
            let mut response = request_id.clone().scope(answer).await;
            if let Ok(id) = HeaderValue::from_str(request_id.as_str()) {
                response.metadata_prelude.headers.insert(HeaderName::from_static("x-request-id"), id);
            }
            // The metrics once the body has gone, before Lambda may freeze the process.
            let flushed = stream::once(flush_metrics()).filter_map(|()| async { None });
            response.stream = response.stream.chain(flushed).boxed();
            return Ok(FunctionResponse::StreamingResponse(response));
        }
        Err("streamhost takes Function URL events, AppSync resolver events and its own run invocations; this event is none of them".into())
    }

    async fn function_url(&self, request: &lambda_http::Request, function_arn: &str) -> StreamResponse<Body> {
        let inbound = inbound(request);
        // By the path as sent, as the local server routes: `/run%73` is not
        // the runs API.
        let path = request.uri().path();
        if path == format!("/{}", runs::PREFIX) || path.starts_with(&format!("/{}/", runs::PREFIX)) {
            return self.runs_call(inbound, function_arn).await;
        }
        if let Some(answer) = self.standard_api(request.method(), path, &inbound).await {
            return answer;
        }
        if self.settings.playground.enabled() && request.method() == lambda_http::http::Method::GET {
            match path {
                "/" => {
                    let mut headers = HeaderMap::new();
                    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
                    if let Ok(policy) = HeaderValue::from_str(&playground::PAGE_POLICY) {
                        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
                    }
                    let page = stream::iter([Bytes::from_static(playground::PAGE.as_bytes())]).boxed();
                    return streamed(StatusCode::OK, headers, page);
                }
                "/_catalog" => {
                    return match playground::catalog(&self.pipeline, &self.settings.playground).await {
                        Ok(catalog) => json_response(200, catalog.to_string()),
                        Err(reply) => error_response(&reply),
                    };
                }
                _ => {}
            }
        }
        match crate::pipeline::inbound::open(&self.pipeline, &self.settings.routes, inbound).await {
            Ok(response) => {
                // The runtime's span names the request id; the stream is polled in it.
                let body = InSpan { body: response.body, span: tracing::Span::current() }.boxed();
                streamed(StatusCode::OK, super::stream_headers(&response.content_type), body)
            }
            Err(reply) => error_response(&reply),
        }
    }

    /// The standard APIs' routes (`pipeline::standard_api`), as `serve`
    /// answers them; `None` for any other path.
    async fn standard_api(
        &self,
        method: &lambda_http::http::Method,
        path: &str,
        inbound: &Inbound,
    ) -> Option<StreamResponse<Body>> {
        use lambda_http::http::Method;
        let listed = |found: Result<Value, ErrorReply>| match found {
            Ok(found) => json_response(200, found.to_string()),
            Err(reply) => json_answer(JsonAnswer::api_error(StandardApi::ChatCompletions, &reply)),
        };
        let not_allowed = |api: StandardApi, method: &str| {
            let reply = ErrorReply::new(ErrorCode::MethodNotAllowed, format!("`{path}` is called with {method}"));
            json_answer(JsonAnswer::api_error(api, &reply))
        };
        if let Some(api) = StandardApi::for_path(path) {
            if method != Method::POST {
                return Some(not_allowed(api, "POST"));
            }
            let call = Inbound { target: None, path: path.to_string(), ..inbound.clone() };
            return Some(match standard_api::open(&self.pipeline, &self.settings.routes, api, call).await {
                Ok(response) => {
                    let body = InSpan { body: response.body, span: tracing::Span::current() }.boxed();
                    streamed(StatusCode::OK, super::stream_headers(&response.content_type), body)
                }
                Err(reply) => json_answer(JsonAnswer::api_error(api, &reply)),
            });
        }
        if path.starts_with("/v1/responses/") {
            let reply = standard_api::kept_response_route(path);
            return Some(json_answer(JsonAnswer::api_error(StandardApi::Responses, &reply)));
        }
        let model = match path.strip_prefix("/v1/models") {
            Some("") => None,
            Some(rest) => Some(rest.strip_prefix('/')?),
            None => return None,
        };
        if method != Method::GET {
            return Some(not_allowed(StandardApi::ChatCompletions, "GET"));
        }
        Some(match model {
            None => listed(standard_api::models(&self.pipeline).await),
            Some(id) => listed(standard_api::model(&self.pipeline, id).await),
        })
    }

    /// The runs API; a new run goes to an asynchronous invocation.
    async fn runs_call(&self, inbound: Inbound, function_arn: &str) -> StreamResponse<Body> {
        let query = inbound.query.clone();
        let client = source_ip(&inbound);
        let inbound = Inbound { target: None, ..inbound };
        let reply = match runs::handle(&self.pipeline, &self.runs, &self.settings.routes, inbound, client).await {
            Ok(reply) => reply,
            Err(reply) => return error_response(&reply),
        };
        match reply {
            RunReply::Started { accepted, record, prepared } => {
                use base64::Engine;
                let invocation = RunInvocation {
                    run_id: record.id.clone(),
                    target: Some(record.pipeline.clone()).filter(|name| !name.is_empty()),
                    query,
                    body: base64::engine::general_purpose::STANDARD.encode(&prepared.mapped.body),
                    chain: prepared.mapped.chain.clone(),
                };
                let payload = json!({ "streamhostRun": invocation });
                let invoked = self.invoke_async(function_arn, payload).await;
                self.runs.release(&record.id);
                match invoked {
                    Ok(()) => run_response(*accepted),
                    Err(message) => {
                        warn!(run = %record.id, %message, "the run's invocation could not be started");
                        let error = RunFailure::new(ErrorCode::RunNotStarted, message.clone());
                        self.runs.abandon(*record, error).await;
                        error_response(&ErrorReply::new(
                            ErrorCode::RunNotStarted,
                            format!("the run could not be started: {message}"),
                        ))
                    }
                }
            }
            reply => run_response(reply),
        }
    }

    /// Invokes this function again, asynchronously: Lambda queues the event
    /// and answers `202` at once.
    async fn invoke_async(&self, function_arn: &str, payload: Value) -> Result<(), String> {
        let call = self
            .lambda
            .invoke()
            .function_name(function_arn)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload.to_string()));
        call.send().await.map(|_| ()).map_err(|error| aws_sdk_lambda::error::DisplayErrorContext(error).to_string())
    }

    /// Drives a run started by a Function URL call: its request is mapped
    /// again (the inbound plugin sees the same request) and run.
    async fn drive(&self, run: RunInvocation, deadline: SystemTime) -> Value {
        let id = run.run_id.clone();
        let record = match self.runs.get(&id).await {
            Ok(Some(record)) if !record.status.is_end() => record,
            Ok(_) => {
                warn!(run = %id, "asked to drive a run that is unknown or over; nothing to do");
                return json!({ "id": id, "status": "unknown" });
            }
            Err(error) => return json!({ "id": id, "error": error.to_string() }),
        };
        use base64::Engine;
        let body = base64::engine::general_purpose::STANDARD.decode(&run.body).unwrap_or_default();
        let inbound = Inbound {
            method: "POST".into(),
            target: run.target,
            path: "/".into(),
            query: run.query,
            body: Bytes::from(body),
            ..Inbound::default()
        };
        let target =
            inbound.target.clone().or_else(|| self.settings.routes.default_pipeline.as_ref().map(ToString::to_string));
        let same_pipeline = target.as_deref() == Some(record.pipeline.as_str());
        match prepare_mapped(&self.pipeline, &self.settings.routes, inbound, run.chain).await {
            // An owner is the caller the inbound plugin identified when the
            // run started; the request it mapped then names the same user.
            Ok(prepared)
                if same_pipeline
                    && record.owner.as_ref().is_none_or(|owner| prepared.caller.as_ref() == Some(owner)) =>
            {
                self.runs.execute(&self.pipeline, record, prepared.request, prepared.manifest, Some(deadline)).await
            }
            Ok(_) => {
                let message =
                    "the run's request maps to another pipeline or caller than the one that started it".to_string();
                self.runs.abandon(record, RunFailure::new(ErrorCode::RunNotStarted, message)).await
            }
            Err(reply) => self.runs.abandon(record, RunFailure { code: reply.code, message: reply.message }).await,
        }
        let status = self.runs.get(&id).await.ok().flatten().map(|record| record.status);
        json!({ "id": id, "status": status })
    }

    /// Seed 003's start: AppSync's resolver invoked this function in
    /// `Event` mode, so nobody waits for the answer; the run's sinks carry
    /// its chunks back to AppSync.
    async fn appsync(&self, event: Value, deadline: SystemTime) -> Result<Value, lambda_runtime::Error> {
        // The seed's own resolver sends `{"input": …}` alone; a direct
        // resolver, the field's `arguments` with their `input`.
        let arguments = event.get("arguments").unwrap_or(&event);
        let body = arguments.get("input").filter(|input| input.is_object()).unwrap_or(arguments);
        let headers = event.pointer("/request/headers").and_then(Value::as_object).into_iter().flatten();
        let target = self
            .settings
            .appsync_pipeline
            .as_ref()
            .or(self.settings.routes.default_pipeline.as_ref())
            .map(ToString::to_string);
        // `POST /runs/{pipeline}`, as a Function URL caller would start it.
        let inbound = Inbound {
            method: "POST".into(),
            path: format!("/{}", target.unwrap_or_default()),
            headers: headers
                .filter_map(|(name, value)| Some((name.to_ascii_lowercase(), value.as_str()?.to_string())))
                .collect(),
            body: Bytes::from(body.to_string()),
            request_context: Some(
                json!({ "appsync": { "identity": event["identity"], "info": event["info"] } }).to_string(),
            ),
            ..Inbound::default()
        };
        // The resolver's caller's address, where AppSync gives one (IAM and
        // Cognito identities).
        let client = event.pointer("/identity/sourceIp/0").and_then(Value::as_str).and_then(|ip| ip.parse().ok());
        let reply = runs::handle(&self.pipeline, &self.runs, &self.settings.routes, inbound, client)
            .await
            .map_err(|reply| reply.to_json())?;
        let RunReply::Started { record, prepared, .. } = reply else {
            unreachable!("a POST to the runs API starts a run or is refused");
        };
        info!(run = %record.id, field = %event["info"]["fieldName"], "an AppSync resolver started a run");
        let (id, conversation) = (record.id.clone(), record.conversation.clone());
        self.runs.execute(&self.pipeline, *record, prepared.request, prepared.manifest, Some(deadline)).await;
        let status = self.runs.get(&id).await?.map(|record| record.status);
        Ok(json!({ "conversationId": conversation, "runId": id, "status": status }))
    }
}

/// An AppSync resolver's payload: a direct Lambda resolver's context
/// (`arguments` and `info.fieldName`), or seed 003's own resolver's `{"input":
/// {…}}` and nothing else.
fn is_appsync_event(payload: &Value) -> bool {
    let direct = payload.pointer("/info/fieldName").is_some() && payload.get("arguments").is_some();
    let seed = payload
        .as_object()
        .is_some_and(|fields| fields.len() == 1 && fields.get("input").is_some_and(Value::is_object));
    direct || seed
}

/// The Function URL event as the caller's request: the IAM caller's
/// identity, under `AWS_IAM`, is in its request context.
fn inbound(request: &lambda_http::Request) -> Inbound {
    let (target, path) = Inbound::split_path(request.uri().path());
    let headers = request
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string())));
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

/// The address a Function URL call came from: its request context's
/// `http.sourceIp`.
fn source_ip(inbound: &Inbound) -> Option<std::net::IpAddr> {
    let context: Value = serde_json::from_str(inbound.request_context.as_deref()?).ok()?;
    context.pointer("/http/sourceIp")?.as_str()?.parse().ok()
}

/// Every answer of the function, with the headers every answer carries
/// (`super::harden`).
fn streamed(status: StatusCode, mut headers: HeaderMap, body: BoxStream<'static, Bytes>) -> StreamResponse<Body> {
    super::harden(&mut headers);
    StreamResponse {
        metadata_prelude: MetadataPrelude { status_code: status, headers, cookies: Vec::new() },
        stream: body.map(Ok).boxed(),
    }
}

fn run_response(reply: RunReply) -> StreamResponse<Body> {
    match reply {
        RunReply::Json { status, body, headers } => json_answer(JsonAnswer::new(status, body, &headers)),
        RunReply::Events(events) => streamed(StatusCode::OK, super::stream_headers("text/event-stream"), events),
        RunReply::NoContent => streamed(StatusCode::NO_CONTENT, HeaderMap::new(), stream::empty().boxed()),
        RunReply::Started { accepted, .. } => run_response(*accepted),
    }
}

/// Writes the metrics (EMF lines, OTLP) now, off the async workers.
async fn flush_metrics() {
    let _ = tokio::task::spawn_blocking(crate::telemetry::flush).await;
}

fn json_response(status: u16, body: String) -> StreamResponse<Body> {
    json_answer(JsonAnswer::new(status, body, &[]))
}

fn error_response(reply: &ErrorReply) -> StreamResponse<Body> {
    json_answer(JsonAnswer::error(reply))
}

fn json_answer(JsonAnswer { status, headers, body }: JsonAnswer) -> StreamResponse<Body> {
    streamed(status, joined(&headers), stream::iter([Bytes::from(body)]).boxed())
}

/// The streaming prelude carries one string per header, so the values of a
/// repeated header (two `www-authenticate` challenges) go as one
/// comma-separated value, as RFC 9110 allows.
fn joined(headers: &HeaderMap) -> HeaderMap {
    let mut joined = HeaderMap::new();
    for name in headers.keys() {
        let values: Vec<&str> = headers.get_all(name).iter().filter_map(|value| value.to_str().ok()).collect();
        if let Ok(value) = HeaderValue::from_str(&values.join(", ")) {
            joined.insert(name.clone(), value);
        }
    }
    joined
}
