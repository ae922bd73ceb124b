//! Counts what one plugin instance produces against its [`OutputLimits`].
//!
//! A plugin is charged for the output it adds, beyond what it was given: a
//! formatter writing a large batch of large events is not blamed for its
//! input's size, and a transform that holds events back and returns them
//! at `finish` is not blamed for returning them all at once. What a call
//! adds is bounded by the call limits; what the instance has added over the
//! stream, by the stream limits. An agent is given nothing: each `emit` is a
//! call, and all it emits is its stream.

use thiserror::Error;

use crate::engine::OutputLimits;
use crate::wit::Event;

/// Which output limit a plugin went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum OutputLimitExceeded {
    /// Bytes of event payload added in one call.
    #[error("more than {0} bytes beyond its input in one call (--plugin-call-output-bytes)")]
    CallBytes(usize),
    /// Events added in one call.
    #[error("more than {0} events beyond its input in one call (--plugin-call-output-events)")]
    CallEvents(usize),
    /// Bytes of event payload added over the stream.
    #[error("more than {0} bytes beyond its input in the stream (--plugin-stream-output-bytes)")]
    StreamBytes(usize),
    /// Events added over the stream.
    #[error("more than {0} events beyond its input in the stream (--plugin-stream-output-events)")]
    StreamEvents(usize),
}

/// What an instance has added so far.
#[derive(Debug)]
pub(super) struct OutputMeter {
    limits: OutputLimits,
    /// Output less input over the stream, in payload bytes: negative while
    /// the plugin holds back more than it has added.
    added_bytes: i64,
    /// Output less input over the stream, in events.
    added_events: i64,
}

impl OutputMeter {
    pub(super) fn new(limits: OutputLimits) -> Self {
        Self { limits, added_bytes: 0, added_events: 0 }
    }

    /// Counts one call: it was given `input` and produced `output`. The
    /// first limit it went over, if any.
    pub(super) fn count(&mut self, input: &[Event], output: &[Event]) -> Result<(), OutputLimitExceeded> {
        let limits = self.limits;
        let bytes = |events: &[Event]| events.iter().map(payload_bytes).sum::<usize>() as i64;
        let in_call = |total: &mut i64, added: i64| {
            // What was held back before the call may come out in it.
            let before = (*total).max(0);
            *total += added;
            *total - before
        };
        let call_bytes = in_call(&mut self.added_bytes, bytes(output) - bytes(input));
        let call_events = in_call(&mut self.added_events, output.len() as i64 - input.len() as i64);
        let over = |count: i64, limit: usize| count > i64::try_from(limit).unwrap_or(i64::MAX);
        if over(call_bytes, limits.call_bytes) {
            return Err(OutputLimitExceeded::CallBytes(limits.call_bytes));
        }
        if over(call_events, limits.call_events) {
            return Err(OutputLimitExceeded::CallEvents(limits.call_events));
        }
        if over(self.added_bytes, limits.stream_bytes) {
            return Err(OutputLimitExceeded::StreamBytes(limits.stream_bytes));
        }
        if over(self.added_events, limits.stream_events) {
            return Err(OutputLimitExceeded::StreamEvents(limits.stream_events));
        }
        Ok(())
    }
}

/// An event's payload in bytes: its text, JSON or bytes (a usage record
/// counts as its three numbers, 24 bytes).
fn payload_bytes(event: &Event) -> usize {
    match event {
        Event::Text(text) | Event::Status(text) | Event::Metadata(text) | Event::End(text) => text.len(),
        Event::Raw(bytes) | Event::Frame(bytes) => bytes.len(),
        Event::Usage(_) => 24,
        Event::Error(error) => error.code.len() + error.message.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> OutputLimits {
        OutputLimits { call_bytes: 10, call_events: 3, stream_bytes: 25, stream_events: 5 }
    }

    fn text(length: usize) -> Event {
        Event::Text("t".repeat(length))
    }

    #[test]
    fn each_call_limit_is_met_exactly_and_its_next_byte_or_event_is_refused() {
        let mut meter = OutputMeter::new(limits());
        assert_eq!(meter.count(&[], &[text(10)]), Ok(()));
        assert_eq!(meter.count(&[], &[text(11)]), Err(OutputLimitExceeded::CallBytes(10)));

        let mut meter = OutputMeter::new(limits());
        assert_eq!(meter.count(&[], &vec![text(0); 3]), Ok(()));
        assert_eq!(meter.count(&[], &vec![text(0); 4]), Err(OutputLimitExceeded::CallEvents(3)));
    }

    #[test]
    fn the_stream_limits_count_what_every_call_added() {
        let mut meter = OutputMeter::new(limits());
        assert_eq!(meter.count(&[], &[text(10)]), Ok(()));
        assert_eq!(meter.count(&[], &[text(10)]), Ok(()));
        assert_eq!(meter.count(&[], &[Event::Frame(vec![0; 6])]), Err(OutputLimitExceeded::StreamBytes(25)));

        let mut meter = OutputMeter::new(limits());
        for _ in 0..5 {
            assert_eq!(meter.count(&[], &[Event::Status("s".into())]), Ok(()));
        }
        assert_eq!(meter.count(&[], &[Event::End("e".into())]), Err(OutputLimitExceeded::StreamEvents(5)));
    }

    /// A formatter's output is about its input's size: only its overhead is
    /// its own.
    #[test]
    fn no_limit_is_a_limit_past_every_count() {
        let unlimited = OutputLimits {
            call_bytes: usize::MAX,
            call_events: usize::MAX,
            stream_bytes: usize::MAX,
            stream_events: usize::MAX,
        };
        assert_eq!(OutputMeter::new(unlimited).count(&[], &[text(1 << 20)]), Ok(()));
    }

    #[test]
    fn output_as_large_as_the_input_adds_nothing() {
        let mut meter = OutputMeter::new(limits());
        for _ in 0..100 {
            let batch = vec![text(1000); 64];
            assert_eq!(meter.count(&batch, &batch), Ok(()));
        }
    }

    /// A transform that holds everything back to the end may return it all
    /// from `finish`; returning more than it held is charged.
    #[test]
    fn what_was_held_back_may_come_out_later_but_no_more() {
        let mut meter = OutputMeter::new(limits());
        for _ in 0..10 {
            assert_eq!(meter.count(&[text(100)], &[]), Ok(()));
        }
        assert_eq!(meter.count(&[], &vec![text(100); 10]), Ok(()));
        assert_eq!(meter.count(&[], &[text(11)]), Err(OutputLimitExceeded::CallBytes(10)));
    }
}
