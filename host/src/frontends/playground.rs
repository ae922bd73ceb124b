//! The playground: a page served from the binary (no CDN, no build step, so
//! it works offline) where a plugin author picks a plugin, a chain or a
//! pipeline, sends a prompt or a raw body and watches the stream arrive, as
//! raw bytes and as parsed events with their arrival times; starts a
//! detached run and follows it; and, in development, uploads a `.wasm` into
//! the plugin folder and runs it at once.
//!
//! Routes, under names no plugin can have (a plugin name starts with a
//! letter or a digit):
//! - `GET /`: the page (`playground.html`);
//! - `GET /_catalog`: the plugins and pipelines of the store, as JSON;
//! - `PUT /_plugins/{name}`: an upload, with `--playground-upload`.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use bytes::Bytes;
use clap::Args;
use serde_json::{Value, json};

use crate::error_code::ErrorCode;
use crate::error_code::ErrorReply;
use crate::pipeline::Pipeline;
use crate::plugin_store::{ObjectKind, PluginName, PluginStore};
use crate::registry::{self, PluginRole};
use crate::wit::StreamContext;

/// The page, as served.
pub const PAGE: &str = include_str!("playground.html");

/// The page's Content-Security-Policy: its own inline script (by its
/// sha256, so no other script runs) and style, calls to its own origin
/// only, and no framing.
pub static PAGE_POLICY: LazyLock<String> = LazyLock::new(|| {
    use base64::Engine;
    use sha2::Digest;
    let script =
        PAGE.split_once("<script>").and_then(|(_, rest)| rest.split_once("</script>")).map(|(script, _)| script);
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script.unwrap_or_default()));
    format!(
        "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
});

/// Each component's content type, by digest, as the catalog found it: a
/// component is opened once for it, not on every catalog request (one that
/// loops in `open` costs its time limit once).
static CONTENT_TYPES: LazyLock<Mutex<HashMap<String, Option<String>>>> = LazyLock::new(Mutex::default);

/// Names the host's own routes take, which an upload could never be called
/// by.
const RESERVED: [&str; 2] = ["healthz", "runs"];

/// The playground's settings.
#[derive(Debug, Clone, Args)]
pub struct PlaygroundSettings {
    /// Serve the playground page at `GET /` and its catalog at `GET /_catalog`. Default: on for `serve`, off on
    /// Lambda.
    #[arg(long, env = "STREAMHOST_PLAYGROUND", value_name = "BOOL")]
    pub playground: Option<bool>,

    /// Let the playground upload a `.wasm` into the plugin folder (`PUT /_plugins/{name}`), replacing a plugin of
    /// that name: for development on your own machine. Needs a folder of plugins, not S3.
    #[arg(
        long,
        env = "STREAMHOST_PLAYGROUND_UPLOAD",
        value_name = "BOOL",
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub playground_upload: bool,
}

impl PlaygroundSettings {
    /// Whether the page and the catalog are served: on unless turned off,
    /// except on Lambda, where only the setting turns them on.
    pub fn enabled(&self) -> bool {
        self.playground.unwrap_or_else(|| !crate::aws::on_lambda())
    }
}

/// The catalog the page lists: `{"store", "upload", "plugins": [...],
/// "pipelines": [...]}`. Each plugin is loaded (compiled, on a cold cache)
/// to say its role, digest and imports, and a transform is opened once with
/// no settings to say its content type (`null` when it will not open so).
/// A plugin or manifest that does not load is listed with its `error`.
pub async fn catalog(pipeline: &Pipeline, settings: &PlaygroundSettings) -> Result<Value, ErrorReply> {
    let store = pipeline.registry().store();
    let objects =
        store.list().await.map_err(|error| ErrorReply::new(ErrorCode::PluginStoreUnavailable, error.to_string()))?;
    let mut plugins = Vec::new();
    let mut pipelines = Vec::new();
    for (name, kind) in objects {
        match kind {
            ObjectKind::Component => plugins.push(describe_plugin(pipeline, &name).await),
            ObjectKind::Manifest => pipelines.push(describe_pipeline(pipeline, &name).await),
            ObjectKind::Precompiled => {}
        }
    }
    Ok(json!({
        "store": store.to_string(),
        "upload": uploads_allowed(store, settings),
        "plugins": plugins,
        "pipelines": pipelines,
    }))
}

async fn describe_plugin(pipeline: &Pipeline, name: &PluginName) -> Value {
    let registry = pipeline.registry();
    let plugin = match registry.load(name).await {
        Ok(plugin) => plugin,
        Err(error) => return json!({ "name": name, "error": { "code": error.code(), "message": error.to_string() } }),
    };
    let known = CONTENT_TYPES.lock().expect("not poisoned").get(plugin.digest.as_ref()).cloned();
    let content_type = match (known, plugin.role()) {
        (Some(known), _) => known,
        (None, PluginRole::Transform) => {
            let context = StreamContext { plugin: name.to_string(), user_id: None, session_id: None };
            let opened = registry.open(&plugin, &context, "{}".into()).await;
            let content_type = opened.ok().and_then(|instance| instance.content_type().map(str::to_string));
            CONTENT_TYPES.lock().expect("not poisoned").insert(plugin.digest.to_string(), content_type.clone());
            content_type
        }
        (None, _) => None,
    };
    json!({
        "name": name,
        "role": plugin.role().to_string(),
        "digest": plugin.digest.as_ref(),
        "imports": plugin.imports.as_ref(),
        "contentType": content_type,
    })
}

async fn describe_pipeline(pipeline: &Pipeline, name: &PluginName) -> Value {
    match pipeline.manifest(name).await {
        Ok(Some(manifest)) => json!({
            "name": name,
            "description": manifest.description,
            "router": manifest.router,
            "agents": manifest.agents.iter().map(|agent| agent.name.as_str()).collect::<Vec<_>>(),
            "transforms": manifest.transforms,
            "inbound": manifest.inbound,
        }),
        Ok(None) => json!({ "name": name, "error": { "code": ErrorCode::UnknownPipeline, "message": "gone" } }),
        Err(error) => json!({ "name": name, "error": { "code": error.code(), "message": error.to_string() } }),
    }
}

fn uploads_allowed(store: &PluginStore, settings: &PlaygroundSettings) -> bool {
    settings.enabled() && settings.playground_upload && matches!(store, PluginStore::Folder(_))
}

/// Whether an upload named `name` may be taken, checked before its body is
/// read: uploads are on, the name is a plugin name that a request could
/// call (not a pipeline's, not a route's), no pin holds it, and nothing
/// the operator composed runs it (a named pipeline, `default_pipeline`).
pub async fn check_upload(
    pipeline: &Pipeline,
    settings: &PlaygroundSettings,
    default_pipeline: Option<&PluginName>,
    name: &str,
) -> Result<PluginName, ErrorReply> {
    let store = pipeline.registry().store();
    if !uploads_allowed(store, settings) {
        let message = match store {
            PluginStore::S3(_) => "this host's plugins come from S3, which `streamhost publish` writes",
            PluginStore::Folder(_) => "uploads are off; start `streamhost serve --playground-upload` to allow them",
        };
        return Err(ErrorReply::new(ErrorCode::UploadNotAllowed, message));
    }
    let name: PluginName =
        name.parse().map_err(|error| ErrorReply::new(ErrorCode::InvalidPluginName, format!("{error}")))?;
    let refuse = |why: String| Err(ErrorReply::new(ErrorCode::UploadNotAllowed, why));
    if RESERVED.contains(&name.as_str()) {
        return refuse(format!("`/{name}` is the host's own route; no plugin of that name could be called"));
    }
    if matches!(pipeline.manifest(&name).await, Ok(Some(_))) {
        return refuse(format!("`{name}` is a pipeline (its manifest answers at `/{name}`); choose another name"));
    }
    if let Some(pinned) = pipeline.registry().pinned(&name) {
        return refuse(format!("`{name}` is pinned (`--pin`) to sha256 {pinned}; the host would refuse any other"));
    }
    if default_pipeline == Some(&name) {
        return refuse(format!("`{name}` is this host's default pipeline (`POST /`); choose another name"));
    }
    if let Some(composed) = pipeline_running(pipeline, &name).await? {
        return refuse(format!(
            "pipeline `{composed}` runs `{name}`: an upload may not change what the operator composed; choose another name"
        ));
    }
    Ok(name)
}

/// The first named pipeline that runs `name` in any role (its inbound
/// plugin, a transform of any chain, its router, an agent), so that an
/// upload can never swap a guard (`seed001-auth`, `redact`) under a
/// pipeline. A manifest that cannot be read refuses the upload too: what
/// it runs cannot be known.
async fn pipeline_running(pipeline: &Pipeline, name: &PluginName) -> Result<Option<PluginName>, ErrorReply> {
    let objects = pipeline
        .registry()
        .store()
        .list()
        .await
        .map_err(|error| ErrorReply::new(ErrorCode::PluginStoreUnavailable, error.to_string()))?;
    for (pipeline_name, _) in objects.into_iter().filter(|(_, kind)| matches!(kind, ObjectKind::Manifest)) {
        let manifest = pipeline.manifest(&pipeline_name).await.map_err(|error| {
            let message = format!(
                "pipeline `{pipeline_name}` cannot be read, so an upload cannot be checked against it: {error}"
            );
            ErrorReply::new(ErrorCode::UploadNotAllowed, message)
        })?;
        if manifest.is_some_and(|manifest| manifest.plugins().any(|runs| runs == name)) {
            return Ok(Some(pipeline_name));
        }
    }
    Ok(None)
}

/// Takes an upload [`check_upload`] let through: checks `wasm` exactly as
/// the host will load it (which compiles it), then writes it as
/// `<name>.wasm`, so the next request runs it. Answers `{"name", "role",
/// "digest"}`.
pub async fn upload(pipeline: &Pipeline, name: PluginName, wasm: Bytes) -> Result<Value, ErrorReply> {
    let (engine, cache) = (pipeline.registry().engine().clone(), pipeline.registry().compile_cache().clone());
    let (checked_name, checked_wasm) = (name.clone(), wasm.clone());
    // Compiled once: the check keeps its result where the first request finds it.
    let checked = move || registry::inspect_into(&engine, &cache, &checked_name, &checked_wasm);
    let report = tokio::task::spawn_blocking(checked)
        .await
        .expect("the check does not panic")
        .map_err(|error| ErrorReply::new(ErrorCode::InvalidUpload, error.to_string()))?;
    pipeline
        .registry()
        .store()
        .put(&name, ObjectKind::Component, &wasm)
        .await
        .map_err(|error| ErrorReply::new(ErrorCode::PluginStoreError, error.to_string()))?;
    tracing::info!(plugin = %name, digest = %report.digest, role = %report.role, "plugin uploaded from the playground");
    Ok(json!({ "name": name, "role": report.role.to_string(), "digest": report.digest }))
}
