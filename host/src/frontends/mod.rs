//! Frontends adapt a transport to the pipeline and nothing else: they turn
//! what arrived (an HTTP request, a Lambda event, a command line) into an
//! [`Inbound`](crate::pipeline::inbound::Inbound), hand it to
//! [`pipeline::inbound`](crate::pipeline::inbound), and write out the
//! [`Reply`] or the [`ErrorReply`](crate::error_code::ErrorReply) that comes
//! back in their transport's way.

pub mod cli;
pub mod http;
pub mod lambda;
pub mod origin;
pub mod playground;
pub mod runs;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

use crate::error_code::ErrorReply;
use crate::pipeline::standard_api::StandardApi;

/// A response body polled inside its request's span: what the pipeline
/// logs while it streams carries the request id. (tracing's `Instrument`
/// covers futures, not streams.)
pub(super) struct InSpan {
    pub(super) body: futures::stream::BoxStream<'static, bytes::Bytes>,
    pub(super) span: tracing::Span,
}

impl futures::Stream for InSpan {
    type Item = bytes::Bytes;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let span = self.span.clone();
        let _entered = span.enter();
        futures::StreamExt::poll_next_unpin(&mut self.body, cx)
    }
}

/// The headers of a streamed answer, the same on every transport: its
/// content type (`application/octet-stream` where a formatter's is not a
/// valid header), `cache-control: no-cache`, and `x-accel-buffering: no`,
/// which asks proxies such as nginx not to buffer the stream.
pub(crate) fn stream_headers(content_type: &str) -> HeaderMap {
    let content_type =
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    HeaderMap::from_iter([
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no")),
    ])
}

/// What every answer's content may do in a browser: nothing. A plugin's
/// output is the caller's data, not a page of the host's: a formatter that
/// declares `text/html` (or a plugin's `raw` bytes that look like HTML)
/// must not run script on the origin that serves the playground and takes
/// uploads. The playground's page sets its own policy.
pub const SANDBOX_POLICY: &str = "sandbox; default-src 'none'; frame-ancestors 'none'";

/// Adds the headers every answer carries, on every transport, where the
/// answer has not set them: `x-content-type-options: nosniff` (a browser
/// takes the content type as declared, never guesses HTML) and
/// `content-security-policy` [`SANDBOX_POLICY`].
pub(crate) fn harden(headers: &mut HeaderMap) {
    headers.entry(HeaderName::from_static("x-content-type-options")).or_insert(HeaderValue::from_static("nosniff"));
    headers.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(SANDBOX_POLICY));
}

/// An answer that is not a stream, the same on every transport: its
/// status, its headers (`content-type: application/json` and the answer's
/// own, each value once) and its JSON body. `http.rs` and `lambda.rs` each
/// turn it into their transport's response.
pub(crate) struct JsonAnswer {
    /// The HTTP status.
    pub status: StatusCode,
    /// `content-type` and the answer's own headers; those that are not
    /// valid HTTP are left out (logged).
    pub headers: HeaderMap,
    /// The JSON body.
    pub body: String,
}

impl JsonAnswer {
    /// `body` with `status` and the `extra` headers (a refusal's
    /// `www-authenticate`, a run's `location`).
    pub(crate) fn new(status: u16, body: String, extra: &[(String, String)]) -> Self {
        let mut headers = HeaderMap::from_iter([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))]);
        for (name, value) in extra {
            match (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
                (Ok(name), Ok(value)) => {
                    headers.append(name, value);
                }
                _ => tracing::warn!(header = %crate::log_text::escaped(name), "a header is not valid HTTP; left out"),
            }
        }
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self { status, headers, body }
    }

    /// An error answered before the stream: logged once, as
    /// `{"error":{"code","message","requestId"}}` with its status and headers.
    pub(crate) fn error(reply: &ErrorReply) -> Self {
        reply.log();
        Self::new(reply.status, reply.to_json(), &reply.headers)
    }

    /// An error of a call to a standard API, in that API's shape
    /// ([`StandardApi::error_body`]): logged once, with its status and headers.
    pub(crate) fn api_error(api: StandardApi, reply: &ErrorReply) -> Self {
        reply.log();
        Self::new(reply.status, api.error_body(reply), &reply.headers)
    }
}
