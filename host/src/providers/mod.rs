//! Model sources: where the events of a stream come from. Each provider
//! turns a request into a stream of events; dropping the stream cancels the
//! work behind it.

mod echo;

use futures::stream::BoxStream;

pub use echo::{EchoProvider, EchoSettings, tokenize};

use crate::event::Event;
use crate::request::Request;

pub type EventStream = BoxStream<'static, Event>;

/// The providers the host supports.
pub enum Provider {
    Echo(EchoProvider),
}

impl Provider {
    pub fn start(&self, request: &Request) -> EventStream {
        match self {
            Provider::Echo(echo) => echo.start(request),
        }
    }
}
