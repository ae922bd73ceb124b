//! Frontends adapt a transport to the pipeline and nothing else: they build
//! a [`Request`](crate::request::Request), open the pipeline and write the
//! body out. Every frontend answers errors the same way, from here.

pub mod cli;
pub mod http;
pub mod lambda;
pub mod playground;
pub mod runs;

use std::sync::Arc;

use bytes::Bytes;
use clap::Args;
use serde_json::{Value, json};

use crate::conversation::Message;
use crate::error_code::{Code, ErrorCode};
use crate::manifest::{Manifest, ManifestError};
use crate::pipeline::{Pipeline, PipelineError, ResolveError, Response};
use crate::request::{Request, RequestError};
use crate::store::{PluginName, StoreError};
use crate::wit::{IncomingRequest, PipelineRequest, Refusal};

/// How requests find their pipeline: settings of every frontend.
#[derive(Debug, Clone, Args)]
pub struct RouteSettings {
    /// The pipeline (or plugin) that `POST /` runs: what a client that
    /// calls the bare URL gets. Without one, `POST /` is a 404.
    #[arg(long, env = "STREAMHOST_DEFAULT_PIPELINE", value_name = "NAME")]
    pub default_pipeline: Option<PluginName>,

    /// Serve only pipelines that have a manifest: no plugin called by its
    /// own name and no `?then=` chains, so callers run only what the
    /// operator composed. Default: on under Lambda, off elsewhere.
    #[arg(long, env = "STREAMHOST_NAMED_PIPELINES_ONLY", value_name = "BOOL")]
    pub named_pipelines_only: Option<bool>,

    /// The largest request body accepted, in bytes.
    #[arg(long, env = "STREAMHOST_MAX_BODY_BYTES", default_value_t = 1 << 20, value_name = "BYTES")]
    pub max_body_bytes: usize,
}

impl RouteSettings {
    /// The operator's own routes (the command line, `streamhost test`): any
    /// plugin or chain, a body of any size.
    pub const OPERATOR: RouteSettings =
        RouteSettings { default_pipeline: None, named_pipelines_only: Some(false), max_body_bytes: usize::MAX };

    /// Whether only pipelines with a manifest are served:
    /// `--named-pipelines-only`, else on only under Lambda.
    pub fn named_only(&self) -> bool {
        self.named_pipelines_only.unwrap_or_else(crate::config::on_lambda)
    }
}

/// A caller's request as a frontend received it, before any plugin.
#[derive(Debug, Clone, Default)]
pub struct Inbound {
    /// The HTTP method as sent (`POST`, `GET`, `DELETE`).
    pub method: String,
    /// The path's first segment: the pipeline or plugin to run; none for
    /// the bare URL (`POST /`).
    pub target: Option<String>,
    /// The rest of the path, from `/`.
    pub path: String,
    /// The query string without its `?`.
    pub query: String,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The whole body as sent.
    pub body: Bytes,
    /// On Lambda, the Function URL event's `requestContext` as JSON.
    pub request_context: Option<String>,
}

impl Inbound {
    /// Splits a request path into the target (percent-decoded, so that
    /// `..%2Fx` is checked as the name `../x` it spells) and the rest below
    /// it, as sent.
    pub fn split_path(path: &str) -> (Option<String>, String) {
        let path = path.trim_start_matches('/');
        let (target, rest) =
            path.split_once('/').map_or((path, "/".to_string()), |(target, rest)| (target, format!("/{rest}")));
        let target =
            (!target.is_empty()).then(|| percent_encoding::percent_decode_str(target).decode_utf8_lossy().into_owned());
        (target, rest)
    }

    /// The query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

/// What every frontend does with a call: finds the pipeline and maps the
/// caller's request ([`prepare`]), then opens the pipeline up to its first
/// bytes.
pub async fn open(pipeline: &Pipeline, routes: &RouteSettings, inbound: Inbound) -> Result<Response, ErrorReply> {
    let Prepared { request, manifest, .. } = prepare(pipeline, routes, inbound).await?;
    pipeline.open(request, manifest).await.map_err(|error| ErrorReply::from(&error))
}

/// A caller's request, found its pipeline and mapped, ready to open.
pub struct Prepared {
    /// The request to run: its chain, conversation, ids and settings.
    pub request: Request,
    /// The pipeline's manifest; none for a plugin called by its own name, or a
    /// `?then=` chain.
    pub manifest: Option<Arc<Manifest>>,
    /// The caller as the pipeline's inbound plugin identified them (its
    /// user id); none where the pipeline has no inbound plugin.
    pub caller: Option<String>,
    /// The request as the inbound plugin mapped it (or as sent, without
    /// one): what [`prepare_mapped`] takes.
    pub mapped: Mapped,
}

/// A request's JSON body after the pipeline's inbound plugin, and the
/// chain it picked.
pub struct Mapped {
    /// The request's JSON body: what the inbound plugin returned, as the host's
    /// JSON body, or the caller's body as sent.
    pub body: Bytes,
    /// The named chain the inbound plugin picked (its manifest's `chains`);
    /// none for the default chain, and always none without an inbound plugin.
    pub chain: Option<String>,
}

/// Finds the pipeline (or the plugin and its `then` chain), maps the
/// caller's request (its inbound plugin, or the JSON body) and holds it to
/// what callers may set. Every refusal is answered here, before any model
/// call.
pub async fn prepare(pipeline: &Pipeline, routes: &RouteSettings, inbound: Inbound) -> Result<Prepared, ErrorReply> {
    prepare_from(pipeline, routes, inbound, None).await
}

/// [`prepare`] for a request the pipeline's inbound plugin has already
/// mapped (`Prepared::mapped`, carried to the invocation that drives a
/// run): the same checks, without calling the plugin again, so the
/// caller's credentials need not travel.
pub async fn prepare_mapped(
    pipeline: &Pipeline,
    routes: &RouteSettings,
    inbound: Inbound,
    chain_name: Option<String>,
) -> Result<Prepared, ErrorReply> {
    prepare_from(pipeline, routes, inbound, Some(chain_name)).await
}

/// `mapped`: the inbound plugin's chain choice, where the body is already
/// its output.
async fn prepare_from(
    pipeline: &Pipeline,
    routes: &RouteSettings,
    inbound: Inbound,
    mapped: Option<Option<String>>,
) -> Result<Prepared, ErrorReply> {
    if inbound.body.len() > routes.max_body_bytes {
        return Err(ErrorReply::body_too_large(routes.max_body_bytes));
    }
    let target = match inbound.target.clone().or_else(|| routes.default_pipeline.as_ref().map(ToString::to_string)) {
        Some(target) => target,
        None => {
            return Err(ErrorReply::new(
                ErrorCode::NoDefaultPipeline,
                "this host has no default pipeline: call a pipeline with POST /{name}",
            ));
        }
    };
    let then = inbound.query_param("then");
    let found = pipeline.resolve(&target, then.as_deref()).await.map_err(|error| ErrorReply::from(&error))?;
    check_route(routes, &target, found.manifest.as_deref(), then.is_some(), &inbound.path)?;
    let manifest = found.manifest.clone();
    let filter = manifest.as_deref().and_then(|manifest| Some((manifest, manifest.inbound.as_ref()?)));
    let (body, chain_name) = match (filter, mapped) {
        (_, Some(chain)) => (inbound.body, chain),
        (Some((manifest, filter)), None) => filtered(pipeline, manifest, filter, inbound).await?,
        (None, None) => (inbound.body, None),
    };
    let request = found.request(chain_name.as_deref(), &body).map_err(|error| ErrorReply::from(&error))?;
    let caller = filter.and(request.user_id.clone());
    Ok(Prepared { request, manifest, caller, mapped: Mapped { body, chain: chain_name } })
}

/// Who is calling, as `pipeline`'s inbound plugin identifies them: the user
/// id it gives for `inbound` (a read of a detached run: `GET` or `DELETE`,
/// no body), or its refusal. `Ok(None)`: the pipeline has no inbound plugin,
/// or the plugin does not identify callers.
pub async fn identify(pipeline: &Pipeline, name: &PluginName, inbound: Inbound) -> Result<Option<String>, ErrorReply> {
    let manifest = pipeline.manifest(name).await.map_err(|error| ErrorReply::from(&error))?;
    let Some(filter) = manifest.as_ref().and_then(|manifest| manifest.inbound.clone()) else {
        return Ok(None);
    };
    let manifest = manifest.expect("a filter comes from a manifest");
    let outcome = run_filter(pipeline, &manifest, &filter, inbound).await?;
    match outcome {
        Ok(request) => Ok(request.user_id),
        Err(refusal) => Err(refused(&filter, refusal)),
    }
}

/// Refuses what this host's routes do not serve: ad-hoc plugins and chains
/// where only named pipelines are, and paths below a pipeline without an
/// inbound plugin to read them.
fn check_route(
    routes: &RouteSettings,
    target: &str,
    manifest: Option<&Manifest>,
    then: bool,
    path: &str,
) -> Result<(), ErrorReply> {
    if routes.named_only() && manifest.is_none() {
        let message = format!(
            "no pipeline is named `{target}`; this host serves only named pipelines, as their manifests compose them"
        );
        return Err(ErrorReply::new(ErrorCode::UnknownPipeline, message));
    }
    if routes.named_only() && then {
        let message = format!("`{target}` runs as its manifest composes it: this host serves no `?then=` chains");
        return Err(ErrorReply::new(ErrorCode::ChainNotAllowed, message));
    }
    if path != "/" && manifest.is_none_or(|manifest| manifest.inbound.is_none()) {
        return Err(ErrorReply::new(
            ErrorCode::NotFound,
            format!("`{target}` answers only at /{target}: it has no inbound plugin to read `{path}`"),
        ));
    }
    Ok(())
}

/// Runs the pipeline's inbound plugin: the host's request as a JSON body,
/// and the chain it picked; or the plugin's refusal.
async fn filtered(
    pipeline: &Pipeline,
    manifest: &Manifest,
    filter: &PluginName,
    inbound: Inbound,
) -> Result<(Bytes, Option<String>), ErrorReply> {
    match run_filter(pipeline, manifest, filter, inbound).await? {
        Ok(request) => {
            let chain = request.chain.clone();
            Ok((Bytes::from(request_body(filter, request)?), chain))
        }
        Err(refusal) => Err(refused(filter, refusal)),
    }
}

/// Calls the inbound plugin `filter` with its settings from `manifest`.
async fn run_filter(
    pipeline: &Pipeline,
    manifest: &Manifest,
    filter: &PluginName,
    inbound: Inbound,
) -> Result<Result<PipelineRequest, Refusal>, ErrorReply> {
    let settings = manifest.config.get(filter.as_str()).map_or_else(|| "{}".to_string(), Value::to_string);
    let incoming = IncomingRequest {
        method: inbound.method,
        path: inbound.path,
        query: inbound.query,
        headers: inbound.headers,
        body: inbound.body.to_vec(),
        request_context: inbound.request_context,
    };
    pipeline
        .registry()
        .filter(filter, settings, &incoming)
        .await
        .map_err(|error| ErrorReply::from(&PipelineError::from(error)))
}

/// A filter's request as the host's JSON body, so that it is read and
/// checked exactly as a caller's JSON body is.
fn request_body(filter: &PluginName, request: PipelineRequest) -> Result<Vec<u8>, ErrorReply> {
    let json_field = |field: &str, text: Option<String>| -> Result<Option<Value>, ErrorReply> {
        text.map(|text| serde_json::from_str(&text)).transpose().map_err(|error| {
            ErrorReply::new(
                ErrorCode::InvalidFilterResult,
                format!("plugin `{filter}` returned a `{field}` that is not JSON: {error}"),
            )
        })
    };
    let messages: Vec<Message> = request.messages.into_iter().map(Message::from).collect();
    let mut body = json!({ "messages": messages });
    let fields = [
        ("system", request.system.map(Value::String)),
        ("userId", request.user_id.map(Value::String)),
        ("sessionId", request.session_id.map(Value::String)),
        ("model", json_field("model", request.model)?),
        ("config", json_field("config", request.config)?),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            body[key] = value;
        }
    }
    Ok(body.to_string().into_bytes())
}

/// A filter's refusal as the caller's answer. A refusal must be a client
/// error; anything else is the plugin's mistake.
fn refused(filter: &PluginName, refusal: Refusal) -> ErrorReply {
    if !(400..500).contains(&refusal.status) {
        let message = format!(
            "plugin `{filter}` refused the request with status {}, which is not a client error (400-499)",
            refusal.status
        );
        return ErrorReply::new(ErrorCode::InvalidRefusal, message);
    }
    // The one status the table does not give: the inbound plugin chooses it.
    ErrorReply {
        status: refusal.status,
        code: refusal.error.code,
        message: refusal.error.message,
        headers: refusal.headers,
        logged: false,
    }
}

/// An error answered before the response starts:
/// `{"error":{"code":…,"message":…,"requestId":…}}` with an HTTP status and, for a
/// refusal, its headers (`www-authenticate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// The HTTP status: the table's for the host's codes, 422 for a plugin's
    /// own, an inbound plugin's own for its refusal.
    pub status: u16,
    /// The error's code: the host's (error_code.rs) or a plugin's.
    pub code: String,
    /// What went wrong, in words for the caller.
    pub message: String,
    /// Headers to send with it: an inbound plugin's refusal's
    /// (`www-authenticate`), or `retry-after` when runs are full; else none.
    pub headers: Vec<(String, String)>,
    /// Whether the failure behind it was logged where it happened (a
    /// plugin's, in its sandbox); [`ErrorReply::log`] logs the others.
    pub logged: bool,
}

impl ErrorReply {
    /// An error of the host's own: its status is the table's
    /// ([`ErrorCode::status`]).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::coded(code.into(), message)
    }

    /// An error with a host's or a plugin's code ([`Code::status`]).
    pub fn coded(code: Code<'_>, message: impl Into<String>) -> Self {
        Self {
            status: code.status(),
            code: code.as_str().to_string(),
            message: message.into(),
            headers: Vec::new(),
            logged: false,
        }
    }

    /// The refusal of a body larger than `limit` bytes (`--max-body-bytes`).
    pub fn body_too_large(limit: usize) -> Self {
        ErrorReply::new(ErrorCode::BodyTooLarge, format!("the body is larger than the {limit}-byte limit"))
    }

    /// The response body: `{"error":{"code":…,"message":…,"requestId":…}}`,
    /// the request id when the call has one ([`RequestId::scope`]).
    pub fn to_json(&self) -> String {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(id) = RequestId::current() {
            error["requestId"] = json!(id.as_str());
        }
        json!({ "error": error }).to_string()
    }

    /// Logs the refusal once, unless its failure was logged already: a
    /// server error at `warn`, a client's at `info`.
    pub fn log(&self) {
        if self.logged {
            return;
        }
        let (status, code) = (self.status, self.code.as_str());
        let error = crate::log_text::escaped(&self.message);
        let error = error.as_ref();
        match status {
            500.. => tracing::warn!(status, code, error, "request failed"),
            _ => tracing::info!(status, code, error, "request refused"),
        }
    }
}

/// The id of the call being answered: 128 random bits in hex on `serve`,
/// Lambda's own request id on Lambda. It is in the call's log lines (its
/// span), its `x-request-id` header and its error body.
#[derive(Debug, Clone)]
pub struct RequestId(Arc<str>);

tokio::task_local! {
    static REQUEST_ID: RequestId;
}

impl RequestId {
    /// A new random id.
    pub fn new() -> Self {
        Self(format!("{:032x}", fastrand::u128(..)).into())
    }

    /// The id as given (Lambda's `aws_request_id`).
    pub fn from_given(id: &str) -> Self {
        Self(id.into())
    }

    /// The id, as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Runs `call` with this as its id: error bodies made within carry it.
    pub async fn scope<F: std::future::Future>(self, call: F) -> F::Output {
        REQUEST_ID.scope(self, call).await
    }

    /// The id of the call running this, if it has one.
    pub fn current() -> Option<Self> {
        REQUEST_ID.try_with(Clone::clone).ok()
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

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

impl From<&RequestError> for ErrorReply {
    fn from(error: &RequestError) -> Self {
        ErrorReply::new(error.code(), error.to_string())
    }
}

impl From<&StoreError> for ErrorReply {
    fn from(error: &StoreError) -> Self {
        ErrorReply::new(error.code(), error.to_string())
    }
}

impl From<&ResolveError> for ErrorReply {
    fn from(error: &ResolveError) -> Self {
        ErrorReply::new(error.code(), error.to_string())
    }
}

impl From<&ManifestError> for ErrorReply {
    fn from(error: &ManifestError) -> Self {
        ErrorReply::new(error.code(), error.to_string())
    }
}

impl From<&PipelineError> for ErrorReply {
    fn from(error: &PipelineError) -> Self {
        let logged = matches!(error, PipelineError::Plugin(_));
        ErrorReply { logged, ..ErrorReply::coded(error.code(), error.to_string()) }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::providers::{ProviderError, UpstreamFailure};
    use crate::registry::{LoadError, PluginError};
    use crate::wit::ErrorInfo;

    fn name() -> PluginName {
        "router".parse().unwrap()
    }

    fn reply(error: impl Into<PipelineError>) -> (u16, String) {
        let reply = ErrorReply::from(&error.into());
        (reply.status, reply.code)
    }

    /// Each layer's errors, mapped by the one table: the same failure has
    /// the same code and status whichever role the plugin has.
    #[test]
    fn every_layers_error_takes_the_tables_code_and_status() {
        let mismatch = LoadError::DigestMismatch { name: name(), expected: "a".into(), actual: "b".into() };
        assert_eq!(reply(mismatch), (500, "digest_mismatch".into()));
        let unavailable = StoreError::Unavailable { name: name(), message: "down".into() };
        assert_eq!(reply(LoadError::Store(unavailable)), (503, "plugin_store_unavailable".into()));
        assert_eq!(reply(LoadError::NotWasm(name())), (500, "invalid_plugin".into()));
        let refused =
            PluginError::Refused { name: name(), error: ErrorInfo { code: "bad_setting".into(), message: "m".into() } };
        assert_eq!(reply(refused), (422, "bad_setting".into()));
        assert_eq!(reply(PluginError::Overloaded { limit: 1 }), (503, "overloaded".into()));
        let timeout = PluginError::Timeout { name: name(), limit: Duration::from_secs(1) };
        assert_eq!(reply(timeout), (500, "plugin_timeout".into()));
        let throttled = ProviderError::Upstream { failure: UpstreamFailure::Throttled("slow".into()), attempts: 3 };
        assert_eq!(reply(throttled), (429, "upstream_throttled".into()));
        let timed_out =
            ProviderError::Upstream { failure: UpstreamFailure::Timeout(Duration::from_secs(1)), attempts: 1 };
        assert_eq!(reply(timed_out), (504, "upstream_timeout".into()));
        let unknown_chain = ErrorReply::from(&ResolveError::UnknownChain("fast".into()));
        assert_eq!((unknown_chain.status, unknown_chain.code.as_str()), (400, "unknown_chain"));
    }

    /// An inbound plugin's refusal keeps its own status, code and headers;
    /// one that is not a client error is the plugin's mistake.
    #[test]
    fn an_inbound_refusal_keeps_its_status_unless_it_is_not_a_client_error() {
        let refusal = |status| Refusal {
            status,
            error: ErrorInfo { code: "unauthorized".into(), message: "who are you?".into() },
            headers: vec![("www-authenticate".into(), "Bearer".into())],
        };
        let kept = refused(&name(), refusal(401));
        assert_eq!((kept.status, kept.code.as_str(), kept.headers.len()), (401, "unauthorized", 1));
        let wrong = refused(&name(), refusal(200));
        assert_eq!((wrong.status, wrong.code.as_str()), (500, "invalid_refusal"));
    }
}
