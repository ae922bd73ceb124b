//! The field's standard APIs, `/v1/...`: OpenAI Chat Completions and
//! Responses, Anthropic Messages, and OpenAI's model list. A call runs a
//! pipeline as any other does; what is particular to the API (reading its
//! body, writing its stream) is two plugins of its own, a request filter
//! and a formatter, so an operator can fork them. The host only routes:
//!
//! 1. the body's `model` names the pipeline (or, where plugins are served
//!    by name, a `?then=`-style chain, `"redact,ndjson"`);
//! 2. the pipeline's own inbound plugin, if it has one, is asked who the
//!    caller is (its refusal is the answer), as for a read of a run;
//! 3. the API's request filter maps the body, held to the pipeline's
//!    `callers` (inference settings it does not open are set aside);
//! 4. the pipeline runs with the API's formatter in place of its own.
//!
//! State is the host's too: a Responses call's `previous_response_id` and
//! `store` are read here ([`responses_state`](super::responses_state)).
//!
//! Errors before the first byte are answered here in the API's shape
//! ([`StandardApi::error_body`]); after it, the formatter writes them in the
//! stream. `docs/standard-apis.md` is the contract with the plugins.

use serde_json::{Map, Value, json};

use super::inbound::{Inbound, RouteSettings, refused, request_body, run_filter};
use super::{Inference, Pipeline, PipelineError, ResolveError, Response, Target, responses_state};
use crate::error_code::{Code, ErrorCode, ErrorReply};
use crate::manifest::Manifest;
use crate::plugin_store::{ObjectKind, PluginName};
use crate::registry::{PluginError, PluginRole, RoleError};
use crate::request::RequestError;
use crate::request_id::RequestId;
use crate::wit::IncomingRequest;

/// One of the standard APIs streamhost answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandardApi {
    /// OpenAI Chat Completions, `POST /v1/chat/completions`.
    ChatCompletions,
    /// OpenAI Responses, `POST /v1/responses`.
    Responses,
    /// Anthropic Messages, `POST /v1/messages`.
    Messages,
}

/// Whose error shape an API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorShape {
    /// `{"error": {"message", "type", "param", "code"}}`.
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}, "request_id"}`.
    Anthropic,
}

impl StandardApi {
    /// Every API, with its route.
    pub const ALL: [StandardApi; 3] = [StandardApi::ChatCompletions, StandardApi::Responses, StandardApi::Messages];

    /// The path it is called at.
    pub const fn path(self) -> &'static str {
        match self {
            StandardApi::ChatCompletions => "/v1/chat/completions",
            StandardApi::Responses => "/v1/responses",
            StandardApi::Messages => "/v1/messages",
        }
    }

    /// The API called at `path`, if any.
    pub fn for_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|api| api.path() == path)
    }

    /// The request filter that maps its body.
    pub fn request_filter(self) -> PluginName {
        let name = match self {
            StandardApi::ChatCompletions => "openai-chat-request",
            StandardApi::Responses => "openai-responses-request",
            StandardApi::Messages => "anthropic-messages-request",
        };
        name.parse().expect("a valid plugin name")
    }

    /// The formatter that writes its answer.
    pub fn formatter(self) -> PluginName {
        let name = match self {
            StandardApi::ChatCompletions => "openai-chat-format",
            StandardApi::Responses => "openai-responses-format",
            StandardApi::Messages => "anthropic-messages-format",
        };
        name.parse().expect("a valid plugin name")
    }

    fn error_shape(self) -> ErrorShape {
        match self {
            StandardApi::ChatCompletions | StandardApi::Responses => ErrorShape::OpenAi,
            StandardApi::Messages => ErrorShape::Anthropic,
        }
    }

    /// `reply` as this API's error JSON, which its SDKs read (they raise by
    /// the status: `NotFoundError` for a 404). The host's code is kept
    /// (OpenAI's `code`; Anthropic's shape has none, its message names it).
    pub fn error_body(self, reply: &ErrorReply) -> String {
        let request_id = RequestId::current().map(|id| id.as_str().to_string());
        match self.error_shape() {
            ErrorShape::OpenAi => json!({
                "error": {
                    "message": reply.message,
                    "type": openai_error_type(reply.status),
                    "param": Value::Null,
                    "code": reply.code,
                },
            }),
            ErrorShape::Anthropic => json!({
                "type": "error",
                "error": {
                    "type": anthropic_error_type(reply.status),
                    "message": format!("{}: {}", reply.code, reply.message),
                },
                "request_id": request_id,
            }),
        }
        .to_string()
    }
}

/// OpenAI's error `type` for a status, as its API sends them.
fn openai_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..500 => "invalid_request_error",
        _ => "server_error",
    }
}

/// Anthropic's error `type` for a status (its "Errors" page).
fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        400..500 => "invalid_request_error",
        _ => "api_error",
    }
}

/// What the Responses API's routes under `/v1/responses/` (retrieve,
/// delete, cancel, input items) answer, in its error shape: `405`, since
/// streamhost keeps a response only for `previous_response_id`.
pub fn kept_response_route(path: &str) -> ErrorReply {
    ErrorReply::new(
        ErrorCode::MethodNotAllowed,
        format!(
            "`{path}`: streamhost keeps a response only to continue it (`previous_response_id`); it does not \
             retrieve, delete or cancel one"
        ),
    )
}

/// The fields the host reads of a standard API's body: `model`, and
/// Responses' state.
struct Named {
    model: Option<Value>,
    /// Responses: the response whose conversation this call continues.
    previous_response_id: Option<Value>,
    /// Responses: whether the answer is kept (the API's default: yes).
    store: Option<Value>,
}

/// What a Responses call asks of its state (none for the other APIs, which
/// are stateless).
#[derive(Default)]
struct State {
    previous_response_id: Option<String>,
    store: bool,
}

/// Runs a call to `api`, up to its first bytes; every refusal before them
/// as an [`ErrorReply`] (which the frontend writes with
/// [`StandardApi::error_body`]).
pub async fn open(
    pipeline: &Pipeline,
    routes: &RouteSettings,
    api: StandardApi,
    inbound: Inbound,
) -> Result<Response, ErrorReply> {
    if inbound.body.len() > routes.max_body_bytes {
        return Err(ErrorReply::body_too_large(routes.max_body_bytes));
    }
    let named = named(&inbound.body)?;
    let model = model_of(&named)?;
    let target = find(pipeline, routes, &model).await?;
    let caller = match target.manifest.as_deref() {
        Some(manifest) => identify(pipeline, &model, manifest, &inbound).await?,
        None => None,
    };
    let mut body = map(pipeline, &api.request_filter(), &inbound).await?;
    let formatter = api.formatter();
    let formatter_settings = take_settings(&mut body, &formatter);
    // `find` has loaded every plugin the model names: a failure from here
    // on is the pipeline's, not a name's.
    let manifest = target.manifest.clone();
    let mut request = target
        .request(None, body.to_string().as_bytes(), Inference::SetAsideClosed)
        .map_err(|error| ErrorReply::from(&error))?;
    if api == StandardApi::Responses {
        keep_state(pipeline, &model, &state_of(&named)?, caller.as_deref(), &mut request).await?;
    }
    if caller.is_some() {
        request.user_id = caller;
    }
    request.config.insert(formatter.to_string(), Value::Object(formatter_settings));
    request.formatter = Some(formatter.clone());
    pipeline.open(request, manifest).await.map_err(|error| {
        let reply = relayed(&formatter, &error).unwrap_or_else(|| ErrorReply::from(&error));
        naming_the_model(&model, reply)
    })
}

/// The API's formatter failing before the first byte relays the stream's
/// error (a `stream: false` answer whose model failed): answered as that
/// error, with its code's status (`502 upstream_error`), not as the
/// formatter's refusal (`422`). A code that is not the host's is the
/// source's or a plugin's own failure: `502`.
fn relayed(formatter: &PluginName, error: &PipelineError) -> Option<ErrorReply> {
    let PipelineError::Role(RoleError::Plugin(PluginError::Refused { name, error })) = error else { return None };
    if name != formatter {
        return None;
    }
    let status = ErrorCode::ALL.iter().find(|code| code.as_str() == error.code).map_or(502, |code| code.status());
    Some(ErrorReply { status, ..ErrorReply::coded(Code::Plugin(&error.code), error.message.clone()) })
}

/// A model that names a plugin the store does not have is a model this
/// host does not serve: said in those words, with where to look.
fn naming_the_model(model: &str, mut reply: ErrorReply) -> ErrorReply {
    if reply.code == ErrorCode::UnknownPlugin.as_str() {
        reply.message =
            format!("the model `{model}` is not served ({}); `GET /v1/models` lists the pipelines", reply.message);
    }
    reply
}

/// The host's request as `request_filter` maps `inbound` (the JSON body a
/// caller would send, the formatter's settings in its `config`), or its
/// refusal.
pub async fn map(pipeline: &Pipeline, request_filter: &PluginName, inbound: &Inbound) -> Result<Value, ErrorReply> {
    let mapped = match pipeline.registry().filter(request_filter, "{}".into(), &incoming(inbound)).await {
        Ok(Ok(mapped)) => mapped,
        Ok(Err(refusal)) => return Err(refused(request_filter, refusal)),
        Err(error) => return Err(ErrorReply::from(&error)),
    };
    // A body the host wrote can still be one it cannot read back: a tool
    // call's arguments, nested within serde_json's limit in the caller's
    // body, sit a few levels deeper in the host's.
    serde_json::from_slice(&request_body(request_filter, mapped)?).map_err(|error| {
        ErrorReply::new(ErrorCode::InvalidRequest, format!("the conversation nests too deeply to be carried: {error}"))
    })
}

/// The body's fields the host reads: `400` for a body that is not a JSON
/// object.
fn named(body: &[u8]) -> Result<Named, ErrorReply> {
    let object: Map<String, Value> = serde_json::from_slice(body).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => {
            ErrorReply::new(ErrorCode::InvalidRequest, "the body must be a JSON object, with the call's `model`")
        }
        _ => ErrorReply::new(ErrorCode::MalformedJson, format!("the body is not valid JSON: {error}")),
    })?;
    let field = |name: &str| object.get(name).cloned();
    Ok(Named { model: field("model"), previous_response_id: field("previous_response_id"), store: field("store") })
}

/// A Responses call's state fields; `400` for one of the wrong type.
fn state_of(named: &Named) -> Result<State, ErrorReply> {
    let invalid =
        |field: &str, shape: &str| ErrorReply::new(ErrorCode::InvalidRequest, format!("`{field}` must be {shape}"));
    let previous_response_id = match &named.previous_response_id {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
        Some(_) => return Err(invalid("previous_response_id", "the id of a response, such as `resp_…`")),
    };
    let store = match &named.store {
        None | Some(Value::Null) => true,
        Some(Value::Bool(store)) => *store,
        Some(_) => return Err(invalid("store", "true or false")),
    };
    Ok(State { previous_response_id, store })
}

/// Puts the conversation `state.previous_response_id` ended (on the pipeline
/// `model` names) before the call's own input, and asks for the answer to be
/// kept (unless `store` is false) under the response id the formatter gives it.
async fn keep_state(
    pipeline: &Pipeline,
    model: &str,
    state: &State,
    caller: Option<&str>,
    request: &mut crate::request::Request,
) -> Result<(), ErrorReply> {
    if let Some(previous) = &state.previous_response_id {
        let mut conversation = responses_state::conversation(pipeline.history(), model, caller, previous).await?;
        conversation.append(&mut request.messages);
        request.messages = conversation;
    }
    // The formatter's ids are made from the request id (`take_settings`).
    if let (true, Some(request_id)) = (state.store, RequestId::current()) {
        let response_id = responses_state::response_id(request_id.as_str());
        request.keep_response = Some(responses_state::key(model, caller, &response_id));
    }
    Ok(())
}

/// The pipeline `model` names: `400` without one.
fn model_of(named: &Named) -> Result<String, ErrorReply> {
    match &named.model {
        Some(Value::String(model)) if !model.trim().is_empty() => Ok(model.clone()),
        _ => Err(ErrorReply::new(
            ErrorCode::InvalidRequest,
            "`model` is required: the name of a pipeline (`GET /v1/models` lists them)",
        )),
    }
}

/// The pipeline, or where plugins are served by name the chain, that
/// `model` names.
async fn find(pipeline: &Pipeline, routes: &RouteSettings, model: &str) -> Result<Target, ErrorReply> {
    let (first, then) = model.split_once(',').map_or((model, None), |(first, then)| (first, Some(then)));
    let found = match pipeline.resolve(first, then).await {
        Ok(found) => found,
        // A name no plugin or pipeline could have serves nothing: a 404.
        Err(ResolveError::Request(RequestError::InvalidName(invalid))) => {
            let message =
                format!("the model `{model}` is not served: {invalid} (`GET /v1/models` lists the pipelines)");
            return Err(ErrorReply::new(ErrorCode::UnknownPipeline, message));
        }
        Err(error) => return Err(ErrorReply::from(&error)),
    };
    if found.manifest.is_none() && routes.named_only() {
        let message =
            format!("the model `{model}` is not served: no pipeline has that name (`GET /v1/models` lists them)");
        return Err(ErrorReply::new(ErrorCode::UnknownPipeline, message));
    }
    if found.manifest.is_some() && then.is_some() && routes.named_only() {
        let message = format!("`{first}` runs as its manifest composes it: this host serves no chains");
        return Err(ErrorReply::new(ErrorCode::ChainNotAllowed, message));
    }
    // A model that names no plugin, or one that is no transform, is told so
    // before its body is read (a pipeline's own name is its manifest).
    let named_plugins = if found.manifest.is_some() { &found.chain[1..] } else { &found.chain[..] };
    for name in named_plugins {
        let plugin = match pipeline.registry().load(name).await {
            Ok(plugin) => plugin,
            Err(error) => return Err(naming_the_model(model, ErrorReply::from(&error))),
        };
        // The caller's choice of names, not the host's fault: a 400.
        if plugin.role() != PluginRole::Transform {
            let message = format!(
                "the model `{model}` names `{name}`, a {} plugin: a model is a pipeline, or a chain of transforms",
                plugin.role()
            );
            return Err(ErrorReply::new(ErrorCode::InvalidRequest, message));
        }
    }
    Ok(found)
}

/// Who the caller is, as the pipeline's inbound plugin says (none without
/// one, or where it does not identify callers); its refusal is the answer.
/// A refusal that is not about the caller (a 400, a 415: the plugin read
/// the API's body as its own client's) says that the pipeline is not served
/// through the standard APIs.
async fn identify(
    pipeline: &Pipeline,
    model: &str,
    manifest: &Manifest,
    inbound: &Inbound,
) -> Result<Option<String>, ErrorReply> {
    let Some(filter) = &manifest.inbound else { return Ok(None) };
    let not_for_apis = |what: String| {
        format!(
            "the pipeline `{model}` is not served through the standard APIs: its inbound plugin `{filter}` reads \
             its own client's body, and {what}"
        )
    };
    match run_filter(pipeline, manifest, filter, inbound.clone()).await? {
        // Asked only who the caller is, a filter written for the APIs says
        // that and nothing more; one that mapped the body as its own
        // client's (with a conversation) was not written for them.
        Ok(request) if request.messages.is_empty() => Ok(request.user_id),
        Ok(_) => Err(ErrorReply::new(ErrorCode::InvalidRequest, not_for_apis("mapped this call's body".into()))),
        Err(refusal) => {
            let mut reply = refused(filter, refusal);
            if !matches!(reply.status, 401 | 403 | 407 | 429) {
                reply.message = not_for_apis(format!("refused this call ({})", reply.message));
            }
            Err(reply)
        }
    }
}

fn incoming(inbound: &Inbound) -> IncomingRequest {
    IncomingRequest {
        method: inbound.method.clone(),
        path: inbound.path.clone(),
        query: inbound.query.clone(),
        headers: inbound.headers.clone(),
        body: inbound.body.to_vec(),
        request_context: inbound.request_context.clone(),
    }
}

/// Takes the formatter's settings out of the request filter's `config`
/// (they are the API's, not the caller's: the pipeline's `callers` does not
/// govern them), with the call's request id as `id`: the host's, whatever
/// the filter set, since a kept response is found by the id made from it.
fn take_settings(body: &mut Value, formatter: &PluginName) -> Map<String, Value> {
    let settings = body
        .get_mut("config")
        .and_then(Value::as_object_mut)
        .and_then(|config| config.remove(formatter.as_str()))
        .and_then(|settings| match settings {
            Value::Object(settings) => Some(settings),
            _ => None,
        });
    if body.get("config").and_then(Value::as_object).is_some_and(Map::is_empty) {
        body.as_object_mut().expect("an object").remove("config");
    }
    let mut settings = settings.unwrap_or_default();
    if let Some(id) = RequestId::current() {
        settings.insert("id".into(), Value::from(id.as_str()));
    }
    settings
}

/// `GET /v1/models`: the pipelines a caller may name, in OpenAI's list
/// shape `{"object": "list", "data": [{"id", "object": "model", "created",
/// "owned_by"}]}` and Anthropic's (`has_more`, `first_id`, `last_id`; each
/// model's `type`, `display_name`, `created_at`).
pub async fn models(pipeline: &Pipeline) -> Result<Value, ErrorReply> {
    let names = pipeline_names(pipeline).await?;
    let (first, last) = (names.first(), names.last());
    let data: Vec<Value> = names.iter().map(model_object).collect();
    Ok(json!({ "object": "list", "data": data, "has_more": false, "first_id": first, "last_id": last }))
}

/// `GET /v1/models/{id}`: one of [`models`], or `404 unknown_pipeline`.
pub async fn model(pipeline: &Pipeline, id: &str) -> Result<Value, ErrorReply> {
    let names = pipeline_names(pipeline).await?;
    match names.iter().find(|name| name.as_str() == id) {
        Some(name) => Ok(model_object(name)),
        None => Err(ErrorReply::new(
            ErrorCode::UnknownPipeline,
            format!("the model `{id}` is not served: no pipeline has that name (`GET /v1/models` lists them)"),
        )),
    }
}

/// A pipeline as a model of both lists: OpenAI's (`object`, `created`,
/// `owned_by`) and Anthropic's (`type`, `display_name`, `created_at`), so
/// either SDK reads it whole.
fn model_object(name: &PluginName) -> Value {
    json!({
        "id": name,
        "object": "model",
        "created": 0,
        "owned_by": "streamhost",
        "type": "model",
        "display_name": name,
        "created_at": "1970-01-01T00:00:00Z",
    })
}

async fn pipeline_names(pipeline: &Pipeline) -> Result<Vec<PluginName>, ErrorReply> {
    let objects = pipeline
        .registry()
        .store()
        .list()
        .await
        .map_err(|error| ErrorReply::new(ErrorCode::PluginStoreUnavailable, error.to_string()))?;
    Ok(objects.into_iter().filter(|(_, kind)| *kind == ObjectKind::Manifest).map(|(name, _)| name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_api_is_found_by_its_path_only() {
        for api in StandardApi::ALL {
            assert_eq!(StandardApi::for_path(api.path()), Some(api));
        }
        assert_eq!(StandardApi::for_path("/v1/chat/completions/"), None);
        assert_eq!(StandardApi::for_path("/v1/models"), None);
    }

    #[test]
    fn errors_take_each_apis_shape() {
        let reply = ErrorReply::new(ErrorCode::UnknownPipeline, "no pipeline is named `x`");
        let openai: Value = serde_json::from_str(&StandardApi::ChatCompletions.error_body(&reply)).unwrap();
        assert_eq!(
            openai,
            json!({"error": {"message": "no pipeline is named `x`", "type": "not_found_error", "param": null, "code": "unknown_pipeline"}})
        );
        let anthropic: Value = serde_json::from_str(&StandardApi::Messages.error_body(&reply)).unwrap();
        assert_eq!(
            anthropic,
            json!({"type": "error", "error": {"type": "not_found_error", "message": "unknown_pipeline: no pipeline is named `x`"}, "request_id": null})
        );
    }

    fn model_named(body: &[u8]) -> Result<String, ErrorReply> {
        model_of(&named(body)?)
    }

    #[test]
    fn the_model_is_required_and_a_string() {
        assert_eq!(model_named(br#"{"model":"support","messages":[]}"#).unwrap(), "support");
        for body in [&br#"{"messages":[]}"#[..], br#"{"model":7}"#, br#"{"model":" "}"#] {
            assert_eq!(model_named(body).unwrap_err().code, "invalid_request");
        }
        assert_eq!(model_named(b"{").unwrap_err().code, "malformed_json");
    }

    #[test]
    fn responses_state_is_read_with_the_apis_defaults_and_types() {
        let state = |body: &str| state_of(&named(body.as_bytes()).unwrap());
        let kept = state(r#"{"model":"m"}"#).unwrap();
        assert_eq!((kept.previous_response_id, kept.store), (None, true));
        let continued = state(r#"{"model":"m","previous_response_id":"resp_1","store":false}"#).unwrap();
        assert_eq!((continued.previous_response_id.as_deref(), continued.store), (Some("resp_1"), false));
        let nulls = state(r#"{"model":"m","previous_response_id":null,"store":null}"#).unwrap();
        assert_eq!((nulls.previous_response_id, nulls.store), (None, true));
        for (body, says) in [
            (r#"{"previous_response_id":7}"#, "`previous_response_id` must be the id of a response"),
            (r#"{"previous_response_id":""}"#, "`previous_response_id` must be"),
            (r#"{"store":"no"}"#, "`store` must be true or false"),
        ] {
            let error = state(body).err().unwrap();
            assert!(error.status == 400 && error.message.starts_with(says), "{body}: {}", error.message);
        }
    }

    #[test]
    fn the_formatters_settings_leave_the_callers_config() {
        let formatter: PluginName = "openai-chat-format".parse().unwrap();
        let mut body = json!({"messages": [], "config": {"openai-chat-format": {"stream": true}}});
        let settings = take_settings(&mut body, &formatter);
        assert_eq!(Value::Object(settings), json!({"stream": true}));
        assert_eq!(body, json!({"messages": []}));
        let mut body = json!({"messages": [], "config": {"redact": {}}});
        assert!(take_settings(&mut body, &formatter).is_empty());
        assert_eq!(body, json!({"messages": [], "config": {"redact": {}}}));
    }
}
