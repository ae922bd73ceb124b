//! The transform role: a resource per stream that takes batches of events.

use std::cell::RefCell;

use crate::bindings::transform::exports::streamhost::plugin::transformer as exports;
use crate::{ErrorInfo, Event, StreamContext};

/// A stream transform. The host opens one per stream, pushes batches of
/// events in order, then calls `finish` once.
pub trait Transform: Sized + 'static {
    /// Starts a stream. `settings` is the plugin's JSON settings object; an
    /// error here reaches the caller before the response starts.
    fn open(context: StreamContext, settings: &str) -> Result<Self, ErrorInfo>;

    /// Takes the next batch of events and returns what goes downstream.
    fn push(&mut self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo>;

    /// The stream has ended: returns whatever is still held back.
    fn finish(&mut self) -> Result<Vec<Event>, ErrorInfo> {
        Ok(Vec::new())
    }

    /// The media type of the bytes a formatter produces; `None` for filters.
    fn content_type(&self) -> Option<String> {
        None
    }
}

/// Adapts a [`Transform`] to the resource the WIT exports: the component
/// model hands resources out by shared reference, the trait wants `&mut`.
#[doc(hidden)]
pub struct TransformResource<T>(RefCell<T>);

impl<T: Transform> exports::GuestTransform for TransformResource<T> {
    fn open(context: StreamContext) -> Result<exports::Transform, ErrorInfo> {
        let transform = T::open(context, &crate::settings())?;
        Ok(exports::Transform::new(TransformResource(RefCell::new(transform))))
    }

    fn content_type(&self) -> Option<String> {
        self.0.borrow().content_type()
    }

    fn push(&self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
        self.0.borrow_mut().push(events)
    }

    fn finish(&self) -> Result<Vec<Event>, ErrorInfo> {
        self.0.borrow_mut().finish()
    }
}

/// Exports a [`Transform`] as this component's `transformer` interface.
///
/// Expands to nothing outside wasm32, so the crate still builds natively.
#[macro_export]
macro_rules! export_transform {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct Exports;
            impl $crate::bindings::transform::exports::streamhost::plugin::transformer::Guest for Exports {
                type Transform = $crate::TransformResource<$plugin>;
            }
    $crate::bindings::transform::export_transform_world!(Exports with_types_in $crate::bindings::transform);
        };
    };
}
