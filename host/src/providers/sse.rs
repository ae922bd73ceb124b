//! Server-sent events from an HTTP body, keeping each event's bytes exactly
//! as they came, so that a pass-through plugin can forward them unchanged
//! (an SSE parsing crate gives the fields but not the bytes).

use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, stream};

/// One event: its bytes, blank line included, and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseFrame {
    pub raw: Bytes,
    /// The `data` lines joined with `\n`, if there were any.
    pub data: Option<String>,
}

/// Splits `body` into events. A body error ends the stream with that error;
/// bytes after the last blank line are not an event (as the SSE standard
/// says) and are dropped.
pub fn frames<E: Send + 'static>(body: impl Stream<Item = Result<Bytes, E>> + Send + 'static) -> BoxStream<'static, Result<SseFrame, E>> {
    let state = (body.boxed(), BytesMut::new(), false);
    stream::unfold(state, |(mut body, mut buffer, mut ended)| async move {
        loop {
            if let Some(end) = frame_end(&buffer, ended) {
                let raw = buffer.split_to(end).freeze();
                return Some((Ok(parse(raw)), (body, buffer, ended)));
            }
            if ended {
                return None;
            }
            match body.next().await {
                Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                Some(Err(error)) => return Some((Err(error), (body, BytesMut::new(), true))),
                None => ended = true,
            }
        }
    })
    .boxed()
}

/// Where the first complete event in `buffer` ends: after the first empty
/// line. A final `\r` may be the first half of `\r\n`, so it only counts
/// once the body has ended.
fn frame_end(buffer: &[u8], body_ended: bool) -> Option<usize> {
    let mut line_start = 0;
    let mut at = 0;
    while at < buffer.len() {
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
                at += 1;
                continue;
            }
        };
        if at == line_start {
            return Some(at + terminator);
        }
        at += terminator;
        line_start = at;
    }
    None
}

fn parse(raw: Bytes) -> SseFrame {
    let text = String::from_utf8_lossy(&raw);
    let mut data: Option<String> = None;
    for line in text.split(['\n', '\r']).filter(|line| !line.starts_with(':')) {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        if field == "data" {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => data = Some(value.to_string()),
            }
        }
    }
    SseFrame { raw, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn split(chunks: &[&'static str]) -> Vec<SseFrame> {
        let body = stream::iter(chunks.to_vec().into_iter().map(|chunk| Ok::<_, ()>(Bytes::from_static(chunk.as_bytes()))));
        frames(body).map(Result::unwrap).collect().await
    }

    #[tokio::test]
    async fn keeps_each_event_byte_for_byte_across_chunks() {
        let frames = split(&["data: {\"a\"", ":1}\n\nev", "ent: x\r\ndata: one\r\ndata: two\r", "\n\r\n: ping\n\ndata: tail"]).await;
        let raws: Vec<&[u8]> = frames.iter().map(|frame| &frame.raw[..]).collect();
        assert_eq!(raws, [&b"data: {\"a\":1}\n\n"[..], b"event: x\r\ndata: one\r\ndata: two\r\n\r\n", b": ping\n\n"]);
        let data: Vec<Option<&str>> = frames.iter().map(|frame| frame.data.as_deref()).collect();
        assert_eq!(data, [Some("{\"a\":1}"), Some("one\ntwo"), None]);
    }

    #[tokio::test]
    async fn a_lone_carriage_return_ends_a_line_once_the_body_has_ended() {
        let frames = split(&["data:x\r\r"]).await;
        assert_eq!(frames, [SseFrame { raw: Bytes::from_static(b"data:x\r\r"), data: Some("x".into()) }]);
    }
}
