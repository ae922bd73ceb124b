//! The local HTTP server: `POST /{pipeline}[/…]` (and `POST /` for the
//! default pipeline, `POST /{plugin}[?then=a,b]` unless only named
//! pipelines are served) streams the pipeline's output with chunked transfer
//! encoding; `/runs…` is the runs API (`super::runs`); `GET /healthz`
//! reports on the host, `GET /metrics` gives its metrics (Prometheus). Browsers may call it from
//! the origins `--cors-origins` names (tower-http's CORS layer answers their
//! preflight requests).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use clap::Args;
use futures::StreamExt;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;
use tracing::{info, warn};

use super::origin::OriginPolicy;
use super::playground::{self, PlaygroundSettings};
use super::runs::{self, RunReply};
use super::{InSpan, JsonAnswer};
use crate::error_code::ErrorCode;
use crate::error_code::ErrorReply;
use crate::pipeline::Pipeline;
use crate::pipeline::inbound::{self, Inbound, RouteSettings};
use crate::pipeline::standard_api::{self, StandardApi};
use crate::request_id::RequestId;
use crate::runs::Runs;

/// The HTTP server's own settings.
#[derive(Debug, Clone, Args)]
pub struct HttpSettings {
    /// The address to listen on.
    #[arg(long, env = "STREAMHOST_LISTEN", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,

    /// Origins whose pages may call the server from a browser
    /// (`https://app.example.com`, or `*` for any), comma-separated. Default:
    /// none, so browsers refuse cross-origin calls.
    #[arg(long, env = "STREAMHOST_CORS_ORIGINS", value_delimiter = ',', value_name = "ORIGINS")]
    pub cors_origins: Vec<String>,

    /// Host names the server answers besides loopback ones, comma-separated
    /// (`*` for any). Default: bound to a loopback address, it answers only
    /// `localhost`, `*.localhost`, `127.0.0.1` and `[::1]`, so a web page
    /// cannot reach it through DNS rebinding; bound to another address, any
    /// name.
    #[arg(long, env = "STREAMHOST_ALLOWED_HOSTS", value_delimiter = ',', value_name = "HOSTS")]
    pub allowed_hosts: Vec<String>,

    /// How requests find their pipeline.
    #[command(flatten)]
    pub routes: RouteSettings,

    /// The playground page.
    #[command(flatten)]
    pub playground: PlaygroundSettings,

    /// How long a client may take to send a request's headers, in ms. The
    /// clock also runs while a kept-alive connection waits for its next
    /// request, so this is the idle keep-alive timeout too.
    #[arg(long, env = "STREAMHOST_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000, value_name = "MS")]
    pub header_read_timeout_ms: u64,

    /// How long a client may take to send a request's body, in ms: past it,
    /// `408 body_timeout`.
    #[arg(long, env = "STREAMHOST_BODY_READ_TIMEOUT_MS", default_value_t = 30_000, value_name = "MS")]
    pub body_read_timeout_ms: u64,

    /// The most client connections open at once; more wait to be accepted
    /// until one closes, so slow or idle clients cannot use up the process's
    /// file descriptors.
    #[arg(long, env = "STREAMHOST_MAX_CONNECTIONS", default_value_t = 4096, value_name = "N")]
    pub max_connections: usize,

    /// How long one write to a client may wait, in ms: a client that stops
    /// reading a stream for longer is disconnected, which cancels the
    /// stream and frees its plugin instances and its connection slot.
    #[arg(long, env = "STREAMHOST_WRITE_TIMEOUT_MS", default_value_t = 30_000, value_name = "MS")]
    pub write_timeout_ms: u64,
}

#[derive(Clone)]
struct App {
    pipeline: Arc<Pipeline>,
    runs: Arc<Runs>,
    routes: Arc<RouteSettings>,
    playground: Arc<PlaygroundSettings>,
    body_read_timeout: Duration,
}

/// The largest plugin the playground takes: componentize-py's components of
/// a few lines of Python are about 40 MB.
const MAX_UPLOAD_BYTES: usize = 128 << 20;

/// Serves until SIGINT or SIGTERM, then stops accepting and lets the
/// streams under way finish.
///
/// Connections are served by hyper directly rather than `axum::serve`,
/// which has no header read timeout and no bound on connections: a client
/// that sends half a request header would otherwise hold its connection
/// forever.
pub async fn serve(pipeline: Arc<Pipeline>, runs: Arc<Runs>, settings: HttpSettings) -> anyhow::Result<()> {
    let listen = settings.listen;
    let listener = TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let address = listener.local_addr()?;
    if !address.ip().is_loopback() && settings.allowed_hosts.is_empty() {
        warn!(
            %address,
            "not bound to loopback and no --allowed-hosts: any Host is answered, so a web page can reach this server \
             through DNS rebinding; name the host names it serves with --allowed-hosts"
        );
    }
    if !settings.routes.named_only() {
        warn!(
            "serving plugins by name and ?then= chains too: any caller can run any plugin on this host's model sources, \
             around the pipelines' inbound plugins and `callers`; start with --named-pipelines-only true to serve only pipelines"
        );
    }
    // Scripts and tests wait for this line on stdout.
    println!("streamhost listening on http://{address}");
    info!(%address, "serving");
    if settings.playground.enabled() {
        info!(url = %format!("http://{address}/"), upload = settings.playground.playground_upload, "playground");
    }
    let connections = Connections {
        header_read_timeout: Duration::from_millis(settings.header_read_timeout_ms),
        write_timeout: Duration::from_millis(settings.write_timeout_ms),
        slots: Arc::new(Semaphore::new(settings.max_connections)),
    };
    let app = App {
        pipeline,
        runs,
        routes: Arc::new(settings.routes),
        playground: Arc::new(settings.playground),
        body_read_timeout: Duration::from_millis(settings.body_read_timeout_ms),
    };
    let origins = OriginPolicy::new(Some(address), &settings.allowed_hosts, &settings.cors_origins);
    let app = router(app, origins, &settings.cors_origins)?;
    accept(listener, app, connections).await;
    info!("stopped");
    Ok(())
}

/// What bounds the server's client connections.
struct Connections {
    header_read_timeout: Duration,
    /// `--write-timeout-ms`.
    write_timeout: Duration,
    /// One permit per open connection (`--max-connections`).
    slots: Arc<Semaphore>,
}

/// Accepts connections while a slot is free, each served on a task of its
/// own, until the shutdown signal; then waits for the connections under way
/// to finish their responses.
async fn accept(listener: TcpListener, app: Router, connections: Connections) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        let slot = tokio::select! {
            slot = connections.slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait, then go on.
                    warn!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // A stream is many small writes; with Nagle's algorithm each would
        // wait for the client's (possibly delayed, ~40 ms) ACK of the one before.
        if let Err(error) = stream.set_nodelay(true) {
            warn!(%error, "could not set TCP_NODELAY");
        }
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(connections.header_read_timeout);
        let router = hyper_util::service::TowerToHyperService::new(app.clone());
        // Each request carries its connection's peer, which the runs API
        // counts a caller's share by (`runs_call`).
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            hyper::service::Service::call(&router, request)
        });
        // A write that waits longer than this fails, which closes the connection.
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(connections.write_timeout));
        let stream = hyper_util::rt::TokioIo::new(Box::pin(stream));
        let connection = graceful.watch(http.serve_connection(stream, service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection closed");
            }
            drop(slot);
        });
    }
    graceful.shutdown().await;
}

fn router(app_state: App, origins: OriginPolicy, cors_origins: &[String]) -> anyhow::Result<Router> {
    let app = Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics).post(invoke))
        .route("/runs", any(runs_call))
        .route("/runs/", any(runs_call))
        .route("/runs/{*rest}", any(runs_call))
        .route("/_catalog", get(catalog).fallback(method_not_allowed))
        .route("/v1/chat/completions", post(standard_api_call).fallback(standard_api_method))
        .route("/v1/responses", post(standard_api_call).fallback(standard_api_method))
        .route("/v1/responses/{*rest}", any(kept_response))
        .route("/v1/messages", post(standard_api_call).fallback(standard_api_method))
        .route("/v1/models", get(models).fallback(standard_api_method))
        .route("/v1/models/{id}", get(model).fallback(standard_api_method))
        .route("/_plugins/{name}", put(upload).fallback(method_not_allowed))
        .route("/", post(invoke).get(page).fallback(method_not_allowed))
        // Browsers ask for it on every page load; none is served.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/{target}", post(invoke).fallback(method_not_allowed))
        .route("/{target}/", post(invoke).fallback(method_not_allowed))
        .route("/{target}/{*rest}", post(invoke).fallback(method_not_allowed))
        .fallback(not_found);
    // CORS inside the host and origin check: a preflight from a name or a
    // page that may not call is refused too, not answered.
    let app = match cors(cors_origins)? {
        Some(cors) => app.layer(cors),
        None => app,
    };
    Ok(app
        .layer(axum::middleware::from_fn_with_state(Arc::new(origins), check_origin))
        .layer(axum::middleware::map_response(hardened))
        .layer(axum::middleware::from_fn(with_request_id))
        .with_state(app_state))
}

/// What browsers on `origins` may do: call a pipeline with `POST` and any
/// headers, and read the response's. Preflight answers are cached an hour.
fn cors(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        let origins =
            origins.iter().map(|origin| HeaderValue::from_str(origin.trim_end_matches('/')).context("--cors-origins"));
        AllowOrigin::list(origins.collect::<anyhow::Result<Vec<_>>>()?)
    };
    let layer = CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::POST, Method::GET, Method::DELETE])
        // Echoes the headers asked for: browsers never count `authorization`
        // under `*`, and callers send API keys and Basic credentials.
        .allow_headers(tower_http::cors::AllowHeaders::mirror_request())
        .expose_headers(tower_http::cors::Any)
        .max_age(std::time::Duration::from_secs(3600));
    Ok(Some(layer))
}

/// Runs every call under a request id of its own: in every log line of the
/// call (its stream's too, see `InSpan`), in the `x-request-id` response
/// header and in an error body's `requestId`, so an operator finds what a
/// caller reports.
async fn with_request_id(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let request_id = RequestId::new();
    let span = tracing::info_span!("request", id = %request_id);
    let mut response = request_id.clone().scope(next.run(request).instrument(span)).await;
    response.headers_mut().insert(
        HeaderName::from_static("x-request-id"),
        HeaderValue::from_str(request_id.as_str()).expect("hex is a valid header"),
    );
    response
}

/// Refuses a request addressed to a name this server does not answer, or
/// sent by a page of an origin that may not call it (`super::origin`),
/// before anything else is done with it.
async fn check_origin(
    State(origins): State<Arc<OriginPolicy>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match origins.check(request.uri().authority().map(|authority| authority.as_str()), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(reply) => refused_unread(&reply),
    }
}

/// Every answer's content is sandboxed in a browser (`super::harden`).
async fn hardened(mut response: Response) -> Response {
    super::harden(response.headers_mut());
    response
}

async fn invoke(State(app): State<App>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    answer(app, method, uri, headers, body, tracing::Span::current()).await
}

async fn answer(app: App, method: Method, uri: Uri, headers: HeaderMap, body: Body, span: tracing::Span) -> Response {
    let body = match read_body(&headers, body, app.routes.max_body_bytes, app.body_read_timeout).await {
        Ok(body) => body,
        Err(reply) => return refused_unread(&reply),
    };
    let (target, path) = Inbound::split_path(uri.path());
    let inbound = Inbound { method: method.to_string(), target, path, ..inbound_of(&uri, &headers, body) };
    match inbound::open(&app.pipeline, &app.routes, inbound).await {
        Ok(response) => streamed(response, span),
        Err(reply) => error_response(&reply),
    }
}

/// A pipeline's answer, polled in the request's `span`.
fn streamed(response: crate::pipeline::Response, span: tracing::Span) -> Response {
    let body = Body::from_stream(InSpan { body: response.body, span }.map(Ok::<_, Infallible>));
    (super::stream_headers(&response.content_type), body).into_response()
}

/// `POST /v1/chat/completions`, `/v1/responses`, `/v1/messages`: a
/// standard API (`pipeline::standard_api`), its errors in its own shape.
async fn standard_api_call(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let api = StandardApi::for_path(uri.path()).expect("routed by its path");
    let body = match read_body(&headers, body, app.routes.max_body_bytes, app.body_read_timeout).await {
        Ok(body) => body,
        Err(reply) => return closing(json_answer(JsonAnswer::api_error(api, &reply))),
    };
    let inbound = Inbound {
        method: method.to_string(),
        target: None,
        path: uri.path().to_string(),
        ..inbound_of(&uri, &headers, body)
    };
    match standard_api::open(&app.pipeline, &app.routes, api, inbound).await {
        Ok(response) => streamed(response, tracing::Span::current()),
        Err(reply) => json_answer(JsonAnswer::api_error(api, &reply)),
    }
}

/// A `/v1/...` route called with the wrong method: `405` in the API's shape.
async fn standard_api_method(uri: Uri) -> Response {
    let (api, method) = match StandardApi::for_path(uri.path()) {
        Some(api) => (api, "POST"),
        None => (StandardApi::ChatCompletions, "GET"),
    };
    let reply = ErrorReply::new(ErrorCode::MethodNotAllowed, format!("`{}` is called with {method}", uri.path()));
    json_answer(JsonAnswer::api_error(api, &reply))
}

/// `/v1/responses/{id}…`: see [`standard_api::kept_response_route`].
async fn kept_response(uri: Uri) -> Response {
    json_answer(JsonAnswer::api_error(StandardApi::Responses, &standard_api::kept_response_route(uri.path())))
}

/// `GET /v1/models`: the pipelines a standard API's `model` may name.
async fn models(State(app): State<App>) -> Response {
    match standard_api::models(&app.pipeline).await {
        Ok(list) => json_response(StatusCode::OK, &list),
        Err(reply) => json_answer(JsonAnswer::api_error(StandardApi::ChatCompletions, &reply)),
    }
}

/// `GET /v1/models/{id}`: one of them.
async fn model(State(app): State<App>, Path(id): Path<String>) -> Response {
    match standard_api::model(&app.pipeline, &id).await {
        Ok(model) => json_response(StatusCode::OK, &model),
        Err(reply) => json_answer(JsonAnswer::api_error(StandardApi::ChatCompletions, &reply)),
    }
}

/// `/runs…`: the runs API (`super::runs`), for the caller at `peer`. A new
/// run is executed on this host, in a task of its own that outlives the
/// request.
async fn runs_call(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_body(&headers, body, app.routes.max_body_bytes, app.body_read_timeout).await {
        Ok(body) => body,
        Err(reply) => return refused_unread(&reply),
    };
    let rest = uri.path().strip_prefix("/runs").unwrap_or_default();
    let inbound = Inbound {
        method: method.to_string(),
        target: None,
        path: if rest.is_empty() { "/".into() } else { rest.to_string() },
        ..inbound_of(&uri, &headers, body)
    };
    match runs::handle(&app.pipeline, &app.runs, &app.routes, inbound, Some(peer.ip())).await {
        Ok(RunReply::Started { accepted, record, prepared }) => {
            let (pipeline, runs) = (app.pipeline.clone(), app.runs.clone());
            // Its log lines name the run, and the request that started it.
            let span = tracing::info_span!("run", id = %record.id);
            let run = async move { runs.execute(&pipeline, *record, prepared.request, prepared.manifest, None).await };
            tokio::spawn(run.instrument(span));
            run_response(*accepted)
        }
        Ok(reply) => run_response(reply),
        Err(reply) => error_response(&reply),
    }
}

fn run_response(reply: RunReply) -> Response {
    match reply {
        RunReply::Json { status, body, headers } => json_answer(JsonAnswer::new(status, body, &headers)),
        RunReply::Events(events) => {
            (super::stream_headers("text/event-stream"), Body::from_stream(events.map(Ok::<_, Infallible>)))
                .into_response()
        }
        RunReply::NoContent => StatusCode::NO_CONTENT.into_response(),
        RunReply::Started { accepted, .. } => run_response(*accepted),
    }
}

/// The parts of a caller's request every route reads alike: query,
/// headers (those that are text), body.
fn inbound_of(uri: &Uri, headers: &HeaderMap, body: bytes::Bytes) -> Inbound {
    let header_pairs =
        headers.iter().filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string())));
    Inbound {
        query: uri.query().unwrap_or_default().to_string(),
        headers: header_pairs.collect(),
        body,
        ..Inbound::default()
    }
}

/// Reads the whole body, refusing more than `limit` bytes without reading
/// past the limit.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<bytes::Bytes, ErrorReply> {
    let too_large = || ErrorReply::body_too_large(limit);
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await.map_err(|_| {
        let message = format!("the body did not arrive within {} ms (--body-read-timeout-ms)", timeout.as_millis());
        ErrorReply::new(ErrorCode::BodyTimeout, message)
    })?;
    read.map_err(|error| {
        let error = error.into_inner();
        if error.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            too_large()
        } else {
            ErrorReply::new(ErrorCode::UnreadableBody, format!("could not read the body: {error}"))
        }
    })
}

/// `GET /metrics`: the host's metrics in Prometheus' text format
/// (`telemetry`). `POST /metrics` is still a plugin's.
async fn metrics() -> Response {
    let content_type = [(header::CONTENT_TYPE, crate::telemetry::PROMETHEUS_CONTENT_TYPE)];
    (content_type, crate::telemetry::prometheus_text()).into_response()
}

async fn health(State(app): State<App>) -> Response {
    let stats = &app.pipeline.registry().stats;
    let body = json!({
        "status": "ok",
        "activeStreams": app.pipeline.active_streams(),
        "plugins": {
            "compiled": stats.compiled.load(Ordering::Relaxed),
            "cacheHits": stats.cache_hits.load(Ordering::Relaxed),
            "precompiled": stats.precompiled.load(Ordering::Relaxed),
        },
    });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// `GET /`: the playground page, when it is served.
async fn page(State(app): State<App>) -> Response {
    if !app.playground.enabled() {
        return method_not_allowed().await;
    }
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CONTENT_SECURITY_POLICY, playground::PAGE_POLICY.as_str()),
    ];
    (headers, playground::PAGE).into_response()
}

/// `GET /_catalog`: the playground's list of plugins and pipelines.
async fn catalog(State(app): State<App>) -> Response {
    if !app.playground.enabled() {
        return not_found().await;
    }
    match playground::catalog(&app.pipeline, &app.playground).await {
        Ok(catalog) => json_response(StatusCode::OK, &catalog),
        Err(reply) => error_response(&reply),
    }
}

/// `PUT /_plugins/{name}`: a playground upload. Whether it may be taken is
/// decided before its body is read.
async fn upload(State(app): State<App>, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let raw_name = uri.path().strip_prefix("/_plugins/").unwrap_or_default();
    let name = percent_encoding::percent_decode_str(raw_name).decode_utf8_lossy();
    let default_pipeline = app.routes.default_pipeline.as_ref();
    let checked = playground::check_upload(&app.pipeline, &app.playground, default_pipeline, &name).await;
    let name = match checked {
        Ok(name) => name,
        Err(reply) => return refused_unread(&reply),
    };
    let wasm = match read_body(&headers, body, MAX_UPLOAD_BYTES, app.body_read_timeout).await {
        Ok(wasm) => wasm,
        Err(reply) => return refused_unread(&reply),
    };
    // Again, now that the body is here: a manifest written while it
    // arrived may run this name by now.
    let name = match playground::check_upload(&app.pipeline, &app.playground, default_pipeline, name.as_str()).await {
        Ok(name) => name,
        Err(reply) => return error_response(&reply),
    };
    match playground::upload(&app.pipeline, name, wasm).await {
        Ok(uploaded) => json_response(StatusCode::CREATED, &uploaded),
        Err(reply) => error_response(&reply),
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    json_answer(JsonAnswer::new(status.as_u16(), body.to_string(), &[]))
}

fn json_answer(JsonAnswer { status, headers, body }: JsonAnswer) -> Response {
    (status, headers, body).into_response()
}

async fn method_not_allowed() -> Response {
    error_response(&ErrorReply::new(ErrorCode::MethodNotAllowed, "plugins are called with POST"))
}

async fn not_found() -> Response {
    error_response(&ErrorReply::new(ErrorCode::NotFound, "no such route; call a pipeline with POST /{name}"))
}

fn error_response(reply: &ErrorReply) -> Response {
    json_answer(JsonAnswer::error(reply))
}

/// An answer given before the request's body was read whole. hyper will
/// not reuse the connection, so the answer says so (`connection: close`):
/// a client must not send its next request on it.
fn refused_unread(reply: &ErrorReply) -> Response {
    closing(error_response(reply))
}

/// `response` with `connection: close` (see [`refused_unread`]).
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    info!("shutting down: no new requests; streams under way finish");
}
