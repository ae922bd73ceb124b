//! Router, agent and request-filter instances: one call each per request;
//! routers and agents with the turn's services (history, model calls, the
//! downstream) behind their imports.

use wasmtime::Store;

use super::PluginState;
use super::sandbox::{PluginError, Sandbox};
use super::turn_host::TurnHost;
use crate::wit::router::RouterPre;
use crate::wit::{
    AgentPre, AgentRequest, Choice, ErrorInfo, IncomingRequest, PipelineRequest, Refusal, RequestFilterPre,
    RouteRequest,
};

/// Asks a router plugin for its choice.
pub(super) async fn select(
    mut sandbox: Sandbox,
    pre: &RouterPre<PluginState>,
    request: &RouteRequest,
) -> Result<(Choice, Box<dyn TurnHost>), PluginError> {
    let choice = call(
        &mut sandbox,
        "select",
        async |store| pre.instantiate_async(store).await,
        async |bindings, store| bindings.streamhost_plugin_selector().call_select(store, request).await,
    )
    .await?;
    Ok((choice, take_turn(&mut sandbox)))
}

/// Runs an agent plugin's turn to its end; its output went downstream
/// through `emit` meanwhile. Returns the stop reason.
pub(super) async fn handle(
    mut sandbox: Sandbox,
    pre: &AgentPre<PluginState>,
    request: &AgentRequest,
) -> Result<(String, Box<dyn TurnHost>), PluginError> {
    let stop_reason = call(
        &mut sandbox,
        "handle",
        async |store| pre.instantiate_async(store).await,
        async |bindings, store| bindings.streamhost_plugin_handler().call_handle(store, request).await,
    )
    .await?;
    Ok((stop_reason, take_turn(&mut sandbox)))
}

/// Asks a request filter to map the caller's request, or refuse it.
pub(super) async fn filter(
    mut sandbox: Sandbox,
    pre: &RequestFilterPre<PluginState>,
    request: &IncomingRequest,
) -> Result<Result<PipelineRequest, Refusal>, PluginError> {
    call(
        &mut sandbox,
        "filter",
        async |store| pre.instantiate_async(store).await,
        // A refusal is the plugin's answer to the caller, not its failure.
        async |bindings, store| bindings.streamhost_plugin_filter().call_filter(store, request).await.map(Ok),
    )
    .await
}

/// The one shape of every role's call but a transform's (whose instance
/// lives for a stream): instantiate under the deadline armed as
/// `instantiate`, make the call under one armed as `name`, and take its
/// outcome (a trap, a limit or the plugin's own error is a
/// [`PluginError`], logged where it happened).
async fn call<B, T>(
    sandbox: &mut Sandbox,
    name: &'static str,
    instantiate: impl AsyncFnOnce(&mut Store<PluginState>) -> wasmtime::Result<B>,
    call: impl AsyncFnOnce(B, &mut Store<PluginState>) -> wasmtime::Result<Result<T, ErrorInfo>>,
) -> Result<T, PluginError> {
    sandbox.arm("instantiate");
    let bindings = match instantiate(&mut sandbox.store).await {
        Ok(bindings) => bindings,
        Err(error) => return Err(sandbox.failure(error)),
    };
    sandbox.arm(name);
    let result = call(bindings, &mut sandbox.store).await;
    sandbox.outcome(result)
}

/// The turn's services back from the store: what the plugin appended to the
/// history, what it sent downstream.
fn take_turn(sandbox: &mut Sandbox) -> Box<dyn TurnHost> {
    sandbox.store.data_mut().turn.take().expect("routers and agents run with a turn")
}
