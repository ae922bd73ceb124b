//! `openai-responses-format`: (to be written) a formatter.

use streamhost_guest::{ErrorInfo, Event, StreamContext, Transform};

pub struct Plugin;

impl Transform for Plugin {
    fn open(_context: StreamContext, _settings: &str) -> Result<Self, ErrorInfo> {
        Ok(Self)
    }

    fn push(&mut self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
        Ok(events)
    }
}

streamhost_guest::export_transform!(Plugin);
