//! {{name}}: a streamhost transform. It upper-cases the text of the stream
//! and passes every other event on as it came. Change `push` to make it
//! yours; `wit/plugin.wit` is the contract.

wit_bindgen::generate!({ path: "wit", world: "transform" });

use exports::streamhost::plugin::transformer::{Guest, GuestTransform, Transform};
use streamhost::plugin::types::{ErrorInfo, Event, StreamContext};

struct Plugin;

/// One stream's state: a transform is opened per stream. The bindings hand
/// out `&self`, so state that changes between pushes goes in a `RefCell`.
struct Upper;

impl Guest for Plugin {
    type Transform = Upper;
}

impl GuestTransform for Upper {
    /// Called once per stream, with the request's settings for this plugin
    /// in `streamhost::plugin::config::settings()` (JSON).
    fn open(_context: StreamContext) -> Result<Transform, ErrorInfo> {
        Ok(Transform::new(Upper))
    }

    /// `None`: not a formatter; the host (or a later plugin) encodes.
    fn content_type(&self) -> Option<String> {
        None
    }

    /// Each batch of events, as it comes; what it returns goes on.
    fn push(&self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
        Ok(events
            .into_iter()
            .map(|event| match event {
                Event::Text(text) => Event::Text(text.to_uppercase()),
                other => other,
            })
            .collect())
    }

    /// At the end of the stream: anything held back.
    fn finish(&self) -> Result<Vec<Event>, ErrorInfo> {
        Ok(Vec::new())
    }
}

export!(Plugin);
