//! What a router's or an agent's imports reach during one turn, as a trait:
//! the registry links the WIT's `history`, `model` and `emit` to a
//! [`TurnHost`] (as wasmtime-wasi links its interfaces to a `WasiView`), and
//! the pipeline's orchestrator implements it (`pipeline::turn`). So the
//! registry knows the contract's types and nothing of model sources,
//! conversation stores or the stream downstream.

use std::any::Any;

use futures::future::BoxFuture;

use crate::wit::model_api::{ModelEvent, ModelRequest};
use crate::wit::{ErrorInfo, Event, Message};

/// One turn's services, behind a router's or an agent's imports. Every
/// method is one import; the time an async one waits is the host's, not the
/// plugin's (the registry leaves it out of the plugin's deadline).
pub trait TurnHost: Any + Send {
    /// `history.messages`: the earlier turns' messages, oldest first.
    fn messages(&self) -> Vec<Message>;

    /// `history.last-agent`: the agent that answered the last turn.
    fn last_agent(&self) -> Option<String>;

    /// `history.append`: a message for this turn's record.
    fn append(&mut self, message: Message);

    /// `model.start`: starts a model call, up to its first event. An error
    /// is the plugin's to handle (`model_call_limit`, a source's failure).
    fn start_model(&mut self, request: ModelRequest) -> BoxFuture<'_, Result<Box<dyn ModelStream>, ErrorInfo>>;

    /// `emit`: sends an agent's event downstream, waiting while the client
    /// is behind.
    fn emit(&mut self, event: Event) -> BoxFuture<'_, ()>;
}

/// A model's answer as a plugin reads it (`model-stream`).
pub trait ModelStream: Send {
    /// `model-stream.next`: the next event, `None` after the last; an error
    /// event of the source is `Err`.
    fn next(&mut self) -> BoxFuture<'_, Result<Option<ModelEvent>, ErrorInfo>>;
}

/// The `model-stream` resource in a plugin's table.
pub struct ModelStreamState(pub(super) Box<dyn ModelStream>);

/// Takes back the concrete turn given to a router or an agent, after its
/// call.
pub(super) fn take_back<T: TurnHost>(turn: Box<dyn TurnHost>) -> T {
    let turn: Box<dyn Any + Send> = turn;
    *turn.downcast::<T>().expect("the turn taken back is the turn given")
}
