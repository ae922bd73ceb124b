//! A transform plugin instance serving one stream.

use wasmtime::component::ResourceAny;

use super::sandbox::{PluginError, Sandbox};
use crate::plugin_store::PluginName;
use crate::wit::transform::{Transform, TransformPre};
use crate::wit::{Event, StreamContext};

/// An instance of a transform plugin, with one `transform` resource open in it: the state of one stream.
pub struct TransformInstance {
    sandbox: Sandbox,
    bindings: Transform,
    handle: ResourceAny,
    content_type: Option<String>,
}

impl TransformInstance {
    /// Instantiates the plugin and opens a stream in it (see `Registry::open`).
    pub(super) async fn open(
        mut sandbox: Sandbox,
        pre: &TransformPre<super::PluginState>,
        context: &StreamContext,
    ) -> Result<Self, PluginError> {
        sandbox.arm("instantiate");
        let bindings = match pre.instantiate_async(&mut sandbox.store).await {
            Ok(bindings) => bindings,
            Err(error) => return Err(sandbox.failure(error)),
        };
        let transform = bindings.streamhost_plugin_transformer().transform();
        sandbox.arm("open");
        let result = transform.call_open(&mut sandbox.store, context).await;
        let handle = sandbox.outcome(result)?;
        sandbox.arm("content-type");
        let content_type = match transform.call_content_type(&mut sandbox.store, handle).await {
            Ok(content_type) => content_type,
            Err(error) => return Err(sandbox.failure(error)),
        };
        Ok(Self { sandbox, bindings, handle, content_type })
    }

    /// The plugin's name in the store.
    pub fn name(&self) -> &PluginName {
        &self.sandbox.name
    }

    /// The media type the plugin produces, if it is a formatter.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// Passes the next batch of events to the plugin's `push` and returns the events to send downstream. An
    /// empty batch is a tick: the source has been silent for the manifest's `idleMs`.
    pub async fn push(&mut self, events: &[Event]) -> Result<Vec<Event>, PluginError> {
        self.sandbox.arm("push");
        let transform = self.bindings.streamhost_plugin_transformer().transform();
        let result = transform.call_push(&mut self.sandbox.store, self.handle, events).await;
        self.sandbox.output(events, result)
    }

    /// Tells the plugin the stream has ended (`finish`) and returns the events it still held back.
    pub async fn finish(&mut self) -> Result<Vec<Event>, PluginError> {
        self.sandbox.arm("finish");
        let transform = self.bindings.streamhost_plugin_transformer().transform();
        let result = transform.call_finish(&mut self.sandbox.store, self.handle).await;
        self.sandbox.output(&[], result)
    }
}
