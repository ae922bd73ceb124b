//! The inbound step, the first of every call: finds the pipeline (or the
//! plugin and its `?then=` chain) a caller named, runs the pipeline's
//! inbound plugin on the raw request (method, path, headers, body) to map
//! it or refuse it, and holds the result to what callers may set. Every
//! frontend hands its [`Inbound`] here; every refusal is answered here,
//! before any model call.

use std::sync::Arc;

use bytes::Bytes;
use clap::Args;
use serde_json::{Value, json};

use super::{Inference, Pipeline, Response, Target};
use crate::error_code::{ErrorCode, ErrorReply};
use crate::manifest::Manifest;
use crate::plugin_store::{PluginName, StoreError};
use crate::registry::LoadError;
use crate::request::Request;
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
        self.named_pipelines_only.unwrap_or_else(crate::aws::on_lambda)
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
    let chain = found.chain.clone();
    if let Err(reply) = check_route(routes, &target, found.manifest.as_deref(), then.is_some(), &inbound.path) {
        return Err(missing_target(pipeline, routes, &found, reply).await);
    }
    let manifest = found.manifest.clone();
    let filter = manifest.as_deref().and_then(|manifest| Some((manifest, manifest.inbound.as_ref()?)));
    let (body, chain_name) = match (filter, mapped) {
        (_, Some(chain)) => (inbound.body, chain),
        (Some((manifest, filter)), None) => filtered(pipeline, manifest, filter, inbound).await?,
        (None, None) => (inbound.body, None),
    };
    let as_found = Target { chain, manifest: manifest.clone() };
    let request = match found.request(chain_name.as_deref(), &body, Inference::Refused) {
        Ok(request) => request,
        Err(error) => return Err(missing_target(pipeline, routes, &as_found, ErrorReply::from(&error)).await),
    };
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

/// A call to a name that does not exist is told so, whatever else is wrong
/// with it (its body, its path): `reply` unless `target` is plugins served
/// by name and one of them is not in the store. Looked for only once the
/// call has failed, so it costs nothing on the way to a stream, and never
/// where only named pipelines are served (a caller's name must not make
/// the host load a plugin).
async fn missing_target(pipeline: &Pipeline, routes: &RouteSettings, target: &Target, reply: ErrorReply) -> ErrorReply {
    if target.manifest.is_some() || routes.named_only() {
        return reply;
    }
    for name in &target.chain {
        if let Err(LoadError::Store(missing @ StoreError::NotFound(_))) = pipeline.registry().load(name).await {
            return ErrorReply::from(&missing);
        }
    }
    reply
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
pub(super) async fn run_filter(
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
    pipeline.registry().filter(filter, settings, &incoming).await.map_err(|error| ErrorReply::from(&error))
}

/// A filter's request as the host's JSON body, so that it is read and
/// checked exactly as a caller's JSON body is.
pub(super) fn request_body(filter: &PluginName, request: PipelineRequest) -> Result<Vec<u8>, ErrorReply> {
    let json_field = |field: &str, text: Option<String>| -> Result<Option<Value>, ErrorReply> {
        text.map(|text| serde_json::from_str(&text)).transpose().map_err(|error| {
            ErrorReply::new(
                ErrorCode::InvalidFilterResult,
                format!("plugin `{filter}` returned a `{field}` that is not JSON: {error}"),
            )
        })
    };
    let malformed = |error: crate::event::ErrorInfo| {
        ErrorReply::new(ErrorCode::InvalidFilterResult, format!("plugin `{filter}` returned {}", error.message))
    };
    let messages = request.messages.into_iter().map(super::turn::model_message).collect::<Result<Vec<_>, _>>();
    let tools = request.tools.into_iter().map(super::turn::tool_spec).collect::<Result<Vec<_>, _>>();
    let mut body = json!({ "messages": messages.map_err(malformed)? });
    let tools = tools.map_err(malformed)?;
    if !tools.is_empty() {
        body["tools"] = json!(tools);
    }
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
pub(super) fn refused(filter: &PluginName, refusal: Refusal) -> ErrorReply {
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
        headers: refusal_headers(filter, refusal.headers),
        logged: false,
    }
}

/// The headers a refusal may carry: what tells a client how to
/// authenticate or when to come back (`www-authenticate`, `retry-after`,
/// rate limits). Any other (`content-type`, `set-cookie`, a CSP, CORS) is
/// the host's to set, and is left out, with a log line.
fn refusal_headers(filter: &PluginName, headers: Vec<(String, String)>) -> Vec<(String, String)> {
    let allowed = |name: &str| {
        let name = name.to_ascii_lowercase();
        matches!(name.as_str(), "www-authenticate" | "proxy-authenticate" | "retry-after")
            || name.starts_with("ratelimit")
            || name.starts_with("x-ratelimit-")
    };
    let (kept, dropped): (Vec<_>, Vec<_>) = headers.into_iter().partition(|(name, _)| allowed(name));
    for (name, _) in &dropped {
        tracing::warn!(plugin = %filter, header = %crate::log_text::escaped(name), "a refusal's header is the host's to set; left out");
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wit::ErrorInfo;

    fn name() -> PluginName {
        "router".parse().unwrap()
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
        let mut spoofing = refusal(429);
        spoofing.headers.extend(
            [
                ("Retry-After", "2"),
                ("content-type", "text/html"),
                ("set-cookie", "a=b"),
                ("content-security-policy", "x"),
            ]
            .map(|(name, value)| (name.to_string(), value.to_string())),
        );
        let names: Vec<String> = refused(&name(), spoofing).headers.into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["www-authenticate", "Retry-After"], "only what tells a client how to come back");
        let wrong = refused(&name(), refusal(200));
        assert_eq!((wrong.status, wrong.code.as_str()), (500, "invalid_refusal"));
    }
}
