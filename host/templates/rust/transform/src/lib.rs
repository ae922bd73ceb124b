//! {{name}}: a streamhost transform. It upper-cases the text of the stream,
//! passes every other event on as it came, and at the end adds a `metadata`
//! event: how many text events it upper-cased. Change `push` and `finish` to
//! make it yours; `wit/plugin.wit` is the contract.

wit_bindgen::generate!({ path: "wit", world: "transform" });

use std::cell::Cell;

use exports::streamhost::plugin::transformer::{Guest, GuestTransform, Transform};
use streamhost::plugin::types::{ErrorInfo, Event, StreamContext};

struct Plugin;

/// One stream's state: a transform is opened per stream. The bindings hand
/// out `&self`, so state that changes between pushes goes in a `Cell` (or a
/// `RefCell`).
struct Upper {
    /// The text events upper-cased so far.
    shouted: Cell<u32>,
}

impl Guest for Plugin {
    type Transform = Upper;
}

impl GuestTransform for Upper {
    /// Called once per stream, with the request's settings for this plugin
    /// in `streamhost::plugin::config::settings()` (JSON).
    fn open(_context: StreamContext) -> Result<Transform, ErrorInfo> {
        Ok(Transform::new(Upper { shouted: Cell::new(0) }))
    }

    /// `None`: not a formatter; the host (or a later plugin) encodes.
    fn content_type(&self) -> Option<String> {
        None
    }

    /// Each batch of events, as it comes; what it returns goes on. Text
    /// comes in pieces as the model makes them: a word can be split across
    /// two events, so keep what spans them (upper-casing needs none).
    fn push(&self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
        Ok(events
            .into_iter()
            .map(|event| match event {
                Event::Text(text) => {
                    self.shouted.set(self.shouted.get() + 1);
                    Event::Text(text.to_uppercase())
                }
                other => other,
            })
            .collect())
    }

    /// At the end of the stream: anything held back, and closing events.
    /// They go after all that `push` returned (in the fixture, after the
    /// model's `end` and `usage`), through the next plugin's `push`: a
    /// formatter such as ndjson writes them before its `complete` line.
    /// The other kinds: `Event::Status(message)`, `Event::Metadata(json)`,
    /// `Event::Usage(Usage { input_tokens, .. })`, `Event::Raw(bytes)`,
    /// `Event::End(stop_reason)`, `Event::Error(ErrorInfo { code, message })`.
    fn finish(&self) -> Result<Vec<Event>, ErrorInfo> {
        let facts = serde_json::json!({ "shouted": self.shouted.get() });
        Ok(vec![Event::Metadata(facts.to_string())])
    }
}

export!(Plugin);
