//! Linking: a compiled component's world checked (its role, known by what
//! it exports; the imports its role may have) and linked into an
//! `InstancePre` with the host's interfaces and WASI, ready to instantiate.

use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker};

use super::load::LoadError;
use super::sandbox::PluginState;
use crate::plugin_store::PluginName;
use crate::wit::router::RouterPre;
use crate::wit::{
    self, AgentPre, FILTER_INTERFACE, HANDLER_INTERFACE, RequestFilterPre, SELECTOR_INTERFACE, TRANSFORMER_INTERFACE,
    TransformPre,
};

/// A plugin's role: the world it was built for, known by what it exports.
/// The one list of roles: linking, calling, the catalog, golden tests and
/// `streamhost new --role` all take it (`docs/design/010-layers-and-roles.md`
/// lists what a new role touches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PluginRole {
    /// Exports `transformer` (the `transform` world): filters, rewrites or formats a stream of events.
    Transform,
    /// Exports `selector` (the `router` world): picks the agent for each request.
    Router,
    /// Exports `handler` (the `agent` world): answers a request, streaming.
    Agent,
    /// Exports `filter` (the `request-filter` world): maps the caller's request to the host's, or refuses it.
    RequestFilter,
}

impl PluginRole {
    /// The interface the role's world exports, without its package
    /// (`transformer`): what Python and JavaScript name their module or
    /// export after.
    pub fn interface(self) -> &'static str {
        match self {
            PluginRole::Transform => "transformer",
            PluginRole::Router => "selector",
            PluginRole::Agent => "handler",
            PluginRole::RequestFilter => "filter",
        }
    }
}

impl std::fmt::Display for PluginRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginRole::Transform => "transform",
            PluginRole::Router => "router",
            PluginRole::Agent => "agent",
            PluginRole::RequestFilter => "request-filter",
        })
    }
}

/// A component linked for its role, ready to instantiate.
#[derive(Clone)]
pub(super) enum Linked {
    Transform(TransformPre<PluginState>),
    Router(RouterPre<PluginState>),
    Agent(AgentPre<PluginState>),
    RequestFilter(RequestFilterPre<PluginState>),
}

/// A loaded plugin, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    /// Its name in the store.
    pub name: PluginName,
    /// The sha256 of the component, in hex.
    pub digest: Arc<str>,
    /// What the component imports, as the component model names them
    /// (`streamhost:plugin/log@0.1.0`, `wasi:io/streams@0.2.6`).
    pub imports: Arc<[String]>,
    pub(super) linked: Linked,
}

impl Plugin {
    /// Checks `component`'s world and links it for its role (see [`link`]).
    pub(super) fn new(
        engine: &Engine,
        linker: &Linker<PluginState>,
        name: &PluginName,
        digest: String,
        component: &Component,
    ) -> Result<Self, LoadError> {
        let linked = link(engine, linker, name, component)?;
        let imports = component.component_type().imports(engine).map(|(import, _)| import.to_string()).collect();
        Ok(Self { name: name.clone(), digest: digest.into(), imports, linked })
    }

    /// The role it was linked for, known by what its component exports.
    pub fn role(&self) -> PluginRole {
        match self.linked {
            Linked::Transform(_) => PluginRole::Transform,
            Linked::Router(_) => PluginRole::Router,
            Linked::Agent(_) => PluginRole::Agent,
            Linked::RequestFilter(_) => PluginRole::RequestFilter,
        }
    }

    pub(super) fn wrong_role(&self, expected: PluginRole) -> LoadError {
        LoadError::WrongRole { name: self.name.clone(), expected, actual: self.role() }
    }
}

/// What every plugin instance may import: the host's interfaces and WASI.
pub(super) fn linker(engine: &Engine) -> wasmtime::Result<Linker<PluginState>> {
    let mut linker = Linker::new(engine);
    // A wasip2 guest imports wasi:cli and wasi:io even when it does no I/O;
    // each instance gets a WASI context with nothing in it.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wit::Agent::add_to_linker::<_, HasSelf<_>>(&mut linker, |state: &mut PluginState| state)?;
    Ok(linker)
}

/// Checks the component's world and links it for its role, ready to
/// instantiate.
fn link(
    engine: &Engine,
    linker: &Linker<PluginState>,
    name: &PluginName,
    component: &Component,
) -> Result<Linked, LoadError> {
    let role = role_of(engine, name, component)?;
    let mismatched = |error: wasmtime::Error| LoadError::WrongWorld {
        name: name.clone(),
        exports: format!("a mismatched interface ({error:#})"),
    };
    let pre = linker.instantiate_pre(component).map_err(|error| {
        let message = format!("{error:#}");
        LoadError::Imports {
            name: name.clone(),
            import: missing_import(&message).unwrap_or("an interface").to_string(),
            message,
        }
    })?;
    Ok(match role {
        PluginRole::Transform => {
            refuse_turn_imports(engine, name, role, component)?;
            Linked::Transform(TransformPre::new(pre).map_err(mismatched)?)
        }
        PluginRole::Router => Linked::Router(RouterPre::new(pre).map_err(mismatched)?),
        PluginRole::Agent => Linked::Agent(AgentPre::new(pre).map_err(mismatched)?),
        PluginRole::RequestFilter => {
            refuse_turn_imports(engine, name, role, component)?;
            Linked::RequestFilter(RequestFilterPre::new(pre).map_err(mismatched)?)
        }
    })
}

/// Transforms and request filters run with no turn: `history`, `model` and
/// `emit` are for routers and agents.
fn refuse_turn_imports(
    engine: &Engine,
    name: &PluginName,
    role: PluginRole,
    component: &Component,
) -> Result<(), LoadError> {
    const TURN_IMPORTS: [&str; 3] =
        ["streamhost:plugin/history@0.1.0", "streamhost:plugin/model@0.1.0", "streamhost:plugin/emit@0.1.0"];
    let ty = component.component_type();
    match ty.imports(engine).map(|(import, _)| import).find(|import| TURN_IMPORTS.contains(import)) {
        Some(import) => Err(LoadError::TurnImport { name: name.clone(), role, import: import.to_string() }),
        None => Ok(()),
    }
}

/// The import wasmtime names, between backticks, in "component imports
/// instance `acme:vault/secrets`, but a matching implementation was not
/// found in the linker".
fn missing_import(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once('`')?;
    rest.split_once('`').map(|(import, _)| import)
}

fn role_of(engine: &Engine, name: &PluginName, component: &Component) -> Result<PluginRole, LoadError> {
    let ty = component.component_type();
    let exports: Vec<&str> = ty.exports(engine).map(|(export, _)| export).collect();
    let roles = [
        (TRANSFORMER_INTERFACE, PluginRole::Transform),
        (SELECTOR_INTERFACE, PluginRole::Router),
        (HANDLER_INTERFACE, PluginRole::Agent),
        (FILTER_INTERFACE, PluginRole::RequestFilter),
    ];
    if let Some((_, role)) = roles.iter().find(|(interface, _)| exports.contains(interface)) {
        return Ok(*role);
    }
    let exports = if exports.is_empty() { "nothing".into() } else { format!("`{}`", exports.join("`, `")) };
    Err(LoadError::WrongWorld { name: name.clone(), exports })
}
