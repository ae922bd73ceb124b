//! The local HTTP server: `POST /{plugin}[?then=a,b]` streams the pipeline's
//! output with chunked transfer encoding; `GET /healthz` reports on the host.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tracing::{info, warn};

use super::ErrorReply;
use crate::pipeline::Pipeline;

#[derive(Clone)]
struct App {
    pipeline: Arc<Pipeline>,
    max_body_bytes: usize,
}

#[derive(Deserialize)]
struct ChainQuery {
    then: Option<String>,
}

/// Serves until SIGINT or SIGTERM, then stops accepting and lets the
/// streams under way finish.
pub async fn serve(pipeline: Arc<Pipeline>, listen: SocketAddr, max_body_bytes: usize) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let address = listener.local_addr()?;
    // A stream is many small writes; with Nagle's algorithm each would wait
    // for the client's (possibly delayed, ~40 ms) ACK of the one before.
    let listener = listener.tap_io(|connection| {
        if let Err(error) = connection.set_nodelay(true) {
            warn!(%error, "could not set TCP_NODELAY");
        }
    });
    // Scripts and tests wait for this line on stdout.
    println!("streamhost listening on http://{address}");
    info!(%address, "serving");
    axum::serve(listener, router(pipeline, max_body_bytes)).with_graceful_shutdown(shutdown_signal()).await?;
    info!("stopped");
    Ok(())
}

pub fn router(pipeline: Arc<Pipeline>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/{plugin}", post(invoke).fallback(method_not_allowed))
        .fallback(not_found)
        .with_state(App { pipeline, max_body_bytes })
}

async fn invoke(State(app): State<App>, Path(plugin): Path<String>, Query(query): Query<ChainQuery>, headers: HeaderMap, body: Body) -> Response {
    let body = match read_body(&headers, body, app.max_body_bytes).await {
        Ok(body) => body,
        Err(reply) => return error_response(&reply),
    };
    match super::open(&app.pipeline, &plugin, query.then.as_deref(), &body).await {
        Ok(response) => {
            let content_type = HeaderValue::from_str(&response.content_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
            let body = Body::from_stream(response.body.map(Ok::<_, Infallible>));
            let headers = [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                // Asks proxies such as nginx not to buffer the stream.
                (header::HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no")),
            ];
            (headers, body).into_response()
        }
        Err(reply) => error_response(&reply),
    }
}

/// Reads the whole body, refusing more than `limit` bytes without reading
/// past the limit.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<bytes::Bytes, ErrorReply> {
    let too_large = || ErrorReply::body_too_large(limit);
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let error = error.into_inner();
        if error.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            too_large()
        } else {
            ErrorReply::new(400, "unreadable_body", format!("could not read the body: {error}"))
        }
    })
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

async fn method_not_allowed() -> Response {
    error_response(&ErrorReply::new(405, "method_not_allowed", "plugins are called with POST"))
}

async fn not_found() -> Response {
    error_response(&ErrorReply::new(404, "not_found", "no such route; call a plugin with POST /{plugin}"))
}

fn error_response(reply: &ErrorReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], reply.to_json()).into_response()
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler installs");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    info!("shutting down: no new requests; streams under way finish");
}
