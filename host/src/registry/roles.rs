//! Router, agent and request-filter instances: one call each per request;
//! routers and agents with the turn's services (history, model calls, the
//! downstream) behind their imports.

use super::sandbox::{PluginError, Sandbox};
use super::turn_host::TurnHost;
use crate::wit::router::RouterPre;
use crate::wit::{
    AgentPre, AgentRequest, Choice, IncomingRequest, PipelineRequest, Refusal, RequestFilterPre, RouteRequest,
};

/// Asks a router plugin for its choice.
pub(super) async fn select(
    mut sandbox: Sandbox,
    pre: &RouterPre<super::PluginState>,
    request: &RouteRequest,
) -> Result<(Choice, Box<dyn TurnHost>), PluginError> {
    sandbox.arm("instantiate");
    let bindings = match pre.instantiate_async(&mut sandbox.store).await {
        Ok(bindings) => bindings,
        Err(error) => return Err(sandbox.failure(error)),
    };
    sandbox.arm("select");
    let result = bindings.streamhost_plugin_selector().call_select(&mut sandbox.store, request).await;
    let choice = sandbox.outcome(result)?;
    Ok((choice, take_turn(&mut sandbox)))
}

/// Runs an agent plugin's turn to its end; its output went downstream
/// through `emit` meanwhile. Returns the stop reason.
pub(super) async fn handle(
    mut sandbox: Sandbox,
    pre: &AgentPre<super::PluginState>,
    request: &AgentRequest,
) -> Result<(String, Box<dyn TurnHost>), PluginError> {
    sandbox.arm("instantiate");
    let bindings = match pre.instantiate_async(&mut sandbox.store).await {
        Ok(bindings) => bindings,
        Err(error) => return Err(sandbox.failure(error)),
    };
    sandbox.arm("handle");
    let result = bindings.streamhost_plugin_handler().call_handle(&mut sandbox.store, request).await;
    let stop_reason = sandbox.outcome(result)?;
    Ok((stop_reason, take_turn(&mut sandbox)))
}

/// Asks a request filter to map the caller's request, or refuse it.
pub(super) async fn filter(
    mut sandbox: Sandbox,
    pre: &RequestFilterPre<super::PluginState>,
    request: &IncomingRequest,
) -> Result<Result<PipelineRequest, Refusal>, PluginError> {
    sandbox.arm("instantiate");
    let bindings = match pre.instantiate_async(&mut sandbox.store).await {
        Ok(bindings) => bindings,
        Err(error) => return Err(sandbox.failure(error)),
    };
    sandbox.arm("filter");
    let result = bindings.streamhost_plugin_filter().call_filter(&mut sandbox.store, request).await;
    sandbox.outcome(result.map(Ok))
}

/// The turn's services back from the store: what the plugin appended to the
/// history, what it sent downstream.
fn take_turn(sandbox: &mut Sandbox) -> Box<dyn TurnHost> {
    sandbox.store.data_mut().turn.take().expect("routers and agents run with a turn")
}
