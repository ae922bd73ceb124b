//! Server-sent events from an HTTP body, parsed by the WHATWG HTML
//! standard's rules ("Interpreting an event stream"), keeping each event's
//! bytes exactly as they came so that a pass-through plugin can forward them
//! unchanged.
//!
//! Why not a crate: the well-kept SSE parsers (`eventsource-stream`,
//! `sse-stream`) give an event's fields but not its bytes, and the upstream
//! source must forward those bytes as they were. The conformance corpus
//! (`tests/corpus/sse/`) and the tests below hold this parser to the spec.
//!
//! The rules: a line ends at LF, CRLF or a lone CR; an empty line ends an
//! event; a line starting with `:` is a comment; `field: value` loses one
//! leading space of its value; a line without a colon is a field with an
//! empty value; `data` lines are joined with LF; one UTF-8 byte order mark at
//! the start of the stream is ignored. One deviation, for LLM servers that
//! omit the last blank line: when the body ends cleanly, what follows the
//! last blank line is still an event (the spec drops it, losing the last
//! chunk).

use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, stream};

const BYTE_ORDER_MARK: &str = "\u{feff}";

/// One event: its bytes, blank line included, and its fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseFrame {
    pub raw: Bytes,
    /// The `data` lines joined with `\n`, if there were any.
    pub data: Option<String>,
    /// The `event` field (the event type), if given.
    pub event: Option<String>,
    /// The `id` field, if given.
    pub id: Option<String>,
}

/// The largest event the host reads: a server that sends more without a
/// blank line is not sending server-sent events.
pub const MAX_EVENT_BYTES: usize = 16 << 20;

/// Why the events stopped before the body's end.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError<E> {
    /// The body broke.
    Body(E),
    /// An event ran past `MAX_EVENT_BYTES`.
    TooLarge,
}

/// Splits `body` into events. A body error ends the stream with that error;
/// see the module documentation for the bytes after the last blank line.
pub fn frames<E: Send + 'static>(
    body: impl Stream<Item = Result<Bytes, E>> + Send + 'static,
) -> BoxStream<'static, Result<SseFrame, FrameError<E>>> {
    let state = (body.boxed(), Splitter::default(), false, true);
    stream::unfold(state, |(mut body, mut splitter, mut ended, mut first)| async move {
        loop {
            if let Some(raw) = splitter.next_event(ended) {
                let frame = parse(raw, std::mem::take(&mut first));
                return Some((Ok(frame), (body, splitter, ended, first)));
            }
            if ended {
                return None;
            }
            if splitter.buffer.len() > MAX_EVENT_BYTES {
                return Some((Err(FrameError::TooLarge), (body, Splitter::default(), true, first)));
            }
            match body.next().await {
                Some(Ok(chunk)) => splitter.buffer.extend_from_slice(&chunk),
                Some(Err(error)) => {
                    return Some((Err(FrameError::Body(error)), (body, Splitter::default(), true, first)));
                }
                None => ended = true,
            }
        }
    })
    .boxed()
}

/// The bytes read so far, and how far they have been searched for an
/// event's end, so that each byte is looked at once however the reads cut
/// a long event.
#[derive(Default)]
struct Splitter {
    buffer: BytesMut,
    /// Where the line being searched starts.
    line_start: usize,
    /// The first byte not yet searched.
    at: usize,
}

impl Splitter {
    /// The next whole event, if the buffer holds one: up to the first empty
    /// line, or, once the body has ended, whatever is left.
    fn next_event(&mut self, body_ended: bool) -> Option<Bytes> {
        let end = self
            .event_end(body_ended)
            .or_else(|| (body_ended && !self.buffer.is_empty()).then_some(self.buffer.len()))?;
        (self.line_start, self.at) = (0, 0);
        Some(self.buffer.split_to(end).freeze())
    }

    /// Where the first event ends: after its first empty line. A final `\r`
    /// may be the first half of `\r\n`, so it waits for the next byte (or
    /// the body's end): with CR-only line ends an event leaves one byte late,
    /// which keeps every CRLF event whole however the reads cut it.
    fn event_end(&mut self, body_ended: bool) -> Option<usize> {
        let buffer = &self.buffer;
        while self.at < buffer.len() {
            let at = self.at;
            let terminator = match buffer[at] {
                b'\n' => 1,
                b'\r' if at + 1 < buffer.len() => {
                    if buffer[at + 1] == b'\n' {
                        2
                    } else {
                        1
                    }
                }
                b'\r' if body_ended => 1,
                b'\r' => return None,
                _ => {
                    self.at += 1;
                    continue;
                }
            };
            if at == self.line_start {
                return Some(at + terminator);
            }
            self.at += terminator;
            self.line_start = self.at;
        }
        None
    }
}

/// The fields of one event's bytes; `stream_start` says whether a byte order
/// mark may lead them.
fn parse(raw: Bytes, stream_start: bool) -> SseFrame {
    let text = String::from_utf8_lossy(&raw);
    let text = if stream_start { text.strip_prefix(BYTE_ORDER_MARK).unwrap_or(&text) } else { &text };
    let mut frame = SseFrame::default();
    for line in lines(text).filter(|line| !line.starts_with(':')) {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => match &mut frame.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => frame.data = Some(value.to_string()),
            },
            "event" => frame.event = Some(value.to_string()),
            // The spec ignores an id that contains NULL.
            "id" if !value.contains('\0') => frame.id = Some(value.to_string()),
            // `retry` and unknown fields: the host reconnects to no one.
            _ => {}
        }
    }
    frame.raw = raw;
    frame
}

/// The lines of one event, without their ends (LF, CRLF or CR).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    text.split('\n')
        .flat_map(|line| line.strip_suffix('\r').unwrap_or(line).split('\r'))
        .filter(|line| !line.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn split(chunks: &[&str]) -> Vec<SseFrame> {
        let chunks: Vec<Bytes> = chunks.iter().map(|chunk| Bytes::copy_from_slice(chunk.as_bytes())).collect();
        let body = stream::iter(chunks.into_iter().map(Ok::<_, ()>));
        frames(body).map(Result::unwrap).collect().await
    }

    /// The stream cut into single bytes gives the same events as whole.
    async fn same_at_every_byte(stream: &str) -> Vec<SseFrame> {
        let whole = split(&[stream]).await;
        let bytes: Vec<Bytes> = stream.bytes().map(|byte| Bytes::copy_from_slice(&[byte])).collect();
        let cut: Vec<SseFrame> =
            frames(stream::iter(bytes.into_iter().map(Ok::<_, ()>))).map(Result::unwrap).collect().await;
        assert_eq!(cut, whole, "the same events, cut into single bytes");
        whole
    }

    fn datas(frames: &[SseFrame]) -> Vec<Option<&str>> {
        frames.iter().map(|frame| frame.data.as_deref()).collect()
    }

    #[tokio::test]
    async fn keeps_each_event_byte_for_byte_across_chunks() {
        let frames =
            split(&["data: {\"a\"", ":1}\n\nev", "ent: x\r\ndata: one\r\ndata: two\r", "\n\r\n: ping\n\ndata: tail"])
                .await;
        let raws: Vec<&[u8]> = frames.iter().map(|frame| &frame.raw[..]).collect();
        assert_eq!(
            raws,
            [&b"data: {\"a\":1}\n\n"[..], b"event: x\r\ndata: one\r\ndata: two\r\n\r\n", b": ping\n\n", b"data: tail"]
        );
        assert_eq!(datas(&frames), [Some("{\"a\":1}"), Some("one\ntwo"), None, Some("tail")]);
        assert_eq!(frames[1].event.as_deref(), Some("x"));
    }

    #[tokio::test]
    async fn a_lone_carriage_return_ends_a_line_once_the_body_has_ended() {
        let frames = split(&["data:x\r\r"]).await;
        assert_eq!(datas(&frames), [Some("x")]);
        assert_eq!(frames[0].raw, Bytes::from_static(b"data:x\r\r"));
    }

    #[tokio::test]
    async fn follows_the_whatwg_field_rules() {
        let stream = "\u{feff}data:no space\n\ndata:  two spaces\n\ndata\ndata\n\nid: 7\nretry: 10\nevent: e\ndata: a\rdata: b\r\r: only a comment\n\n";
        let frames = same_at_every_byte(stream).await;
        assert_eq!(datas(&frames), [Some("no space"), Some(" two spaces"), Some("\n"), Some("a\nb"), None]);
        assert_eq!((frames[3].id.as_deref(), frames[3].event.as_deref()), (Some("7"), Some("e")));
        let joined: Vec<u8> = frames.iter().flat_map(|frame| frame.raw.to_vec()).collect();
        assert_eq!(joined, stream.as_bytes(), "every byte is forwarded, the byte order mark too");
    }

    #[tokio::test]
    async fn a_byte_order_mark_counts_only_at_the_start() {
        let frames = split(&["data: a\n\n\u{feff}data: b\n\n"]).await;
        assert_eq!(datas(&frames), [Some("a"), None]);
    }

    #[tokio::test]
    async fn a_broken_body_is_an_error_after_the_complete_events() {
        let body = stream::iter([Ok(Bytes::from_static(b"data: a\n\ndata: cut")), Err("reset")]);
        let frames: Vec<Result<SseFrame, FrameError<&str>>> = frames(body).collect().await;
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].as_ref().unwrap().data.as_deref(), Some("a"));
        assert_eq!(frames[1], Err(FrameError::Body("reset")));
    }

    #[tokio::test]
    async fn an_event_without_end_is_refused_past_the_limit() {
        let piece = Bytes::from(vec![b'x'; 1 << 20]);
        let body = stream::iter(
            std::iter::once(Ok::<_, ()>(Bytes::from_static(b"data: "))).chain(std::iter::repeat_n(Ok(piece), 20)),
        );
        let frames: Vec<Result<SseFrame, FrameError<()>>> = frames(body).collect().await;
        assert_eq!(frames, [Err(FrameError::TooLarge)]);
    }
}
