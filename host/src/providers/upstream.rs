//! An upstream agent runtime that streams server-sent events of
//! ConverseStream-shaped JSON (Bedrock AgentCore, a Strands agent, ...).
//!
//! The host POSTs the request to `--upstream-url`, authenticated with a
//! bearer token or signed with SigV4, and sends every SSE event downstream
//! twice over: as a `frame` with its exact bytes (for `sse-passthrough`),
//! then decoded into text, reasoning, usage, end and error events (for every
//! other plugin). The upstream's address never reaches the caller: not in
//! metadata, not in an error message.
//!
//! A runtime that answers something other than SSE is read too, never
//! turned into an empty success (`body`): a JSON answer (what a
//! non-streaming entrypoint returns, `{"result":…}`) is decoded whole, JSON
//! lines one by one, plain text as it comes; any other content type is an
//! `upstream_unexpected_content` error event. A runtime's stream has no
//! terminator of its own, so a clean end of the body completes it; a broken
//! one ends it with `upstream_disconnected`; one that said nothing (no
//! event with data, no line or text that decodes to anything) ends with
//! `upstream_unexpected_content` ([`body::no_answer`]), never as an empty
//! success. Null is absent in every field, and so is an empty `stopReason`.
//!
//! An SSE event that is an error (`event: error`, or data that decodes to
//! one: `error`, `*Exception`, Lambda's `errorMessage`) ends the stream and
//! goes on as the error event alone, never as its own bytes: the formatter
//! writes it in its shape with the message scrubbed (`error::scrub`), where
//! the raw bytes could carry an ARN in any spelling.

use futures::{StreamExt, stream};
use serde_json::{Map, Value, json};
use tracing::warn;

use super::body::{self, BodyKind};
use super::error::{StreamErrorCode, end_at_error};
use super::settings::{ProviderSettings, UpstreamAuth};
use super::source::ModelSource;
use super::sse::{self, FrameError, SseFrame};
use super::{
    EventStream, ModelCall, ProviderError, ProviderKind, Started, UpstreamFailure, http_client, response_failure,
    send_failure,
};
use crate::aws::{SignError, Signer};
use crate::conversation::Role;
use crate::event::{Event, Usage};

/// How this source is named in errors and logs.
const SOURCE: &str = "the upstream";

/// The header AgentCore reads and answers the runtime session id in.
const SESSION_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-session-id";

pub struct Upstream {
    client: reqwest::Client,
    url: reqwest::Url,
    auth: Auth,
}

enum Auth {
    None,
    Bearer(String),
    Sigv4(Signer),
}

impl Upstream {
    pub async fn from_settings(settings: &ProviderSettings) -> anyhow::Result<Option<Self>> {
        let Some(url) = &settings.upstream_url else { return Ok(None) };
        let url = reqwest::Url::parse(url).map_err(|error| anyhow::anyhow!("--upstream-url is not a URL: {error}"))?;
        let auth = match settings.upstream_auth() {
            UpstreamAuth::None => Auth::None,
            UpstreamAuth::Bearer => {
                let token = settings
                    .upstream_token
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("--upstream-auth bearer needs --upstream-token"))?;
                Auth::Bearer(token)
            }
            UpstreamAuth::Sigv4 => Auth::Sigv4(Signer::new(
                &crate::aws::load().await,
                &settings.upstream_sigv4_service,
                None,
                "--upstream-auth sigv4",
            )?),
        };
        Ok(Some(Self { client: http_client()?, url, auth }))
    }

    /// The headers that authenticate `headers` and `body` to the upstream.
    async fn authorization(
        &self,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, UpstreamFailure> {
        match &self.auth {
            Auth::None => Ok(Vec::new()),
            Auth::Bearer(token) => Ok(vec![("authorization".into(), format!("Bearer {token}"))]),
            Auth::Sigv4(signer) => {
                signer.headers("POST", self.url.as_str(), headers, body).await.map_err(|error| match error {
                    SignError::NoCredentials(_) => {
                        warn!(%error, "no AWS credentials to sign the upstream call with");
                        UpstreamFailure::Unavailable("the host has no AWS credentials to sign with".into())
                    }
                    SignError::Invalid(_) => UpstreamFailure::Rejected(error.to_string()),
                })
            }
        }
    }
}

/// `POST` to the runtime's URL: the conversation and who is asking as JSON,
/// the session in its header.
impl ModelSource for Upstream {
    /// The JSON body, and the session id for the runtime's header.
    type Request = (Vec<u8>, Option<String>);
    const KIND: ProviderKind = ProviderKind::Upstream;

    /// What the upstream is sent: the conversation, and who is asking. An
    /// agent runtime picks its own model, so `model` is not sent.
    fn request(&self, call: &ModelCall, _model: Option<&str>) -> Result<Self::Request, ProviderError> {
        let messages = call.text_messages(ProviderKind::Upstream)?;
        let prompt =
            messages.iter().rev().find(|message| message.role == Role::User).map(|message| message.content.as_str());
        let mut body = json!({ "prompt": prompt, "messages": messages });
        let fields = [("system", &call.system), ("userId", &call.user_id), ("sessionId", &call.session_id)];
        for (key, value) in fields {
            if let Some(value) = value {
                body[key] = json!(value);
            }
        }
        Ok((body.to_string().into_bytes(), call.session_id.clone()))
    }

    async fn send(&self, (body, session_id): &Self::Request) -> Result<Started, UpstreamFailure> {
        let mut headers =
            vec![("content-type", "application/json".to_string()), ("accept", "text/event-stream".to_string())];
        if let Some(session_id) = session_id {
            headers.push((SESSION_HEADER, session_id.to_string()));
        }
        let authorization = self.authorization(&headers, body).await?;
        let all_headers = headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .chain(authorization.iter().map(|(name, value)| (name.as_str(), value.as_str())));
        let call = all_headers.fold(self.client.post(self.url.clone()), |call, (name, value)| call.header(name, value));
        let response = call.body(body.to_vec()).send().await.map_err(send_failure)?;
        let response = response_failure(response, SOURCE).await?;
        let mut metadata = Map::new();
        if let Some(session_id) = response.headers().get(SESSION_HEADER).and_then(|value| value.to_str().ok()) {
            metadata.insert("sessionId".into(), json!(session_id));
        }
        let events = match BodyKind::of(&response) {
            BodyKind::EventStream => events(sse::frames(response.bytes_stream())),
            BodyKind::Json => stream::once(json_answer(response)).flat_map(stream::iter).boxed(),
            BodyKind::JsonLines => json_lines(response),
            BodyKind::Text => text_answer(response),
            other => {
                let what = other.describe();
                stream::once(async move {
                    body::unexpected(SOURCE, &what, &body::whole(response, SOURCE).await.unwrap_or_default())
                })
                .boxed()
            }
        };
        Ok(Started { metadata, events })
    }
}

/// Every event goes on as a frame, whether or not it decodes to anything:
/// an SSE stream of the runtime's own shape is still content, for the
/// plugins that read frames (`sse-passthrough`, `sse-reframe-c`). Comments
/// and events without data are not: a stream of only those said nothing.
fn events(frames: futures::stream::BoxStream<'static, Result<SseFrame, FrameError<reqwest::Error>>>) -> EventStream {
    // (the frames, whether an event with data has come)
    stream::unfold(Some((frames, false)), |state| async move {
        let (mut frames, said) = state?;
        match frames.next().await {
            Some(Ok(frame)) => {
                let mut decoded = decode_frame(&frame);
                let said = said || frame.data.as_deref().is_some_and(|data| !data.trim().is_empty());
                // An error ends the stream, and goes on as the error event
                // alone: the formatter writes it in its own shape, with the
                // message scrubbed (`Providers::start`), never the
                // upstream's own bytes, where an ARN may hide in any form.
                if end_at_error(&mut decoded) {
                    return Some((decoded, None));
                }
                let events = std::iter::once(Event::Frame(frame.raw.to_vec())).chain(decoded).collect();
                Some((events, Some((frames, said))))
            }
            Some(Err(FrameError::Body(error))) => Some((vec![broken(error)], None)),
            Some(Err(FrameError::TooLarge)) => {
                let message = format!("the upstream sent an event larger than {} bytes", sse::MAX_EVENT_BYTES);
                Some((vec![StreamErrorCode::UnexpectedContent.event(message)], None))
            }
            None if said => None,
            None => Some((vec![body::no_answer(SOURCE, "no event that carries data")], None)),
        }
    })
    .flat_map(stream::iter)
    .boxed()
}

/// What an SSE event says: an `event: error` is an error whatever its
/// data (its `message`, or the data as text); a last event cut off before
/// its blank line, whose data is not whole, is the connection's break;
/// else its data decoded.
fn decode_frame(frame: &SseFrame) -> Vec<Event> {
    let data = frame.data.as_deref().unwrap_or_default();
    if frame.event.as_deref() == Some("error") {
        let message = serde_json::from_str::<Value>(data).map_or_else(|_| data.to_string(), |value| message_of(&value));
        return vec![StreamErrorCode::Other.event(message)];
    }
    let decoded = decode(data);
    let whole = frame.raw.ends_with(b"\n\n") || frame.raw.ends_with(b"\r\r") || frame.raw.ends_with(b"\r\n\r\n");
    if !whole && decoded.is_empty() && serde_json::from_str::<Value>(data).is_err() && !data.trim().is_empty() {
        return vec![StreamErrorCode::Disconnected.event("the upstream's stream ended in the middle of an event")];
    }
    decoded
}

/// A body that is not SSE as one SSE event of the upstream's own bytes
/// (`data:` per line), so that it reaches the plugins that read frames
/// (`sse-passthrough`) as the answer it is: every body the host reads is
/// carried as frames whatever its content type, and a frames-only
/// formatter never turns an answer into an empty success. An error's are
/// never carried: the error event says it, scrubbed.
fn as_frame(data: &str) -> Event {
    let mut frame = String::with_capacity(data.len() + 8);
    for line in data.trim_end_matches(['\r', '\n']).split('\n') {
        frame.push_str("data: ");
        frame.push_str(line.trim_end_matches('\r'));
        frame.push('\n');
    }
    frame.push('\n');
    Event::Frame(frame.into_bytes())
}

/// Whether an event is part of an answer: content, a stop or an error, not
/// usage or empty text.
fn says_something(event: &Event) -> bool {
    match event {
        Event::Text(text) => !text.is_empty(),
        Event::Usage(_) | Event::Status(_) => false,
        _ => true,
    }
}

fn broken(error: reqwest::Error) -> Event {
    warn!(error = %error.without_url(), "the upstream's stream broke");
    StreamErrorCode::Disconnected.event("the connection to the upstream broke before its stream ended")
}

/// A whole JSON answer, as one frame ([`as_frame`]) and decoded:
/// Converse-shaped events, or an answer's text under one of the keys
/// runtimes use (`{"result":"…"}`, `{"result":{"content": [{"text":"…"}]}}`),
/// else an explicit error.
async fn json_answer(response: reqwest::Response) -> Vec<Event> {
    let bytes = match body::whole(response, SOURCE).await {
        Ok(bytes) => bytes,
        Err(error) => return vec![error],
    };
    let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
        return vec![body::unexpected(SOURCE, "a body that is not JSON", &bytes)];
    };
    let events = decode_value(&value);
    // An error document is the source's refusal, answered before the
    // stream starts: nothing of an answer to carry.
    if events.iter().any(|event| matches!(event, Event::Error(_))) {
        return events;
    }
    let frame = as_frame(&String::from_utf8_lossy(&bytes));
    if events.iter().any(says_something) {
        return std::iter::once(frame).chain(events).collect();
    }
    match answer_text(&value, 0).filter(|text| !text.is_empty()) {
        Some(text) => vec![frame, Event::Text(text)],
        None => vec![body::unexpected(SOURCE, "JSON", &bytes)],
    }
}

/// The keys under which runtimes' non-streaming entrypoints return the
/// answer, nested or not.
const ANSWER_KEYS: [&str; 8] = ["result", "response", "output", "answer", "completion", "message", "content", "text"];

fn answer_text(value: &Value, depth: usize) -> Option<String> {
    if depth > 4 {
        return None;
    }
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Array(blocks) => {
            let texts: Vec<String> = blocks.iter().filter_map(|block| answer_text(block, depth + 1)).collect();
            (!texts.is_empty()).then(|| texts.concat())
        }
        Value::Object(object) => {
            ANSWER_KEYS.iter().find_map(|key| object.get(*key).and_then(|value| answer_text(value, depth + 1)))
        }
        _ => None,
    }
}

/// JSON lines, each decoded as an SSE event's data would be; a line longer
/// than an SSE event may be is an error, and so is a body none of whose
/// lines says anything.
fn json_lines(response: reqwest::Response) -> EventStream {
    // (body, buffer, bytes of the buffer already searched for a newline,
    // ended, whether a line has said something or an error was sent)
    let state = (response.bytes_stream(), Vec::new(), 0, false, false);
    let lines = stream::unfold(state, |(mut body, mut buffer, mut searched, mut ended, said)| async move {
        loop {
            if let Some(at) = buffer[searched..].iter().position(|byte| *byte == b'\n').map(|at| searched + at) {
                let line: Vec<u8> = buffer.drain(..=at).collect();
                let line = String::from_utf8_lossy(&line);
                let decoded = decode(&line);
                let said = said || decoded.iter().any(says_something);
                let events = match line.trim() {
                    _ if decoded.iter().any(|event| matches!(event, Event::Error(_))) => decoded,
                    "" => decoded,
                    data => std::iter::once(as_frame(data)).chain(decoded).collect(),
                };
                return Some((events, (body, buffer, 0, ended, said)));
            }
            searched = buffer.len();
            if ended {
                let nothing = vec![body::no_answer(SOURCE, "no line that holds an answer")];
                return (!said).then_some((nothing, (body, buffer, 0, true, true)));
            }
            if buffer.len() > sse::MAX_EVENT_BYTES {
                let message = format!("the upstream sent a JSON line longer than {} bytes", sse::MAX_EVENT_BYTES);
                return Some((
                    vec![StreamErrorCode::UnexpectedContent.event(message)],
                    (body, Vec::new(), 0, true, true),
                ));
            }
            match body.next().await {
                Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                Some(Err(error)) => return Some((vec![broken(error)], (body, Vec::new(), 0, true, true))),
                None => {
                    ended = true;
                    if !buffer.is_empty() {
                        buffer.push(b'\n');
                    }
                }
            }
        }
    });
    lines.flat_map(stream::iter).boxed()
}

/// Plain text, sent on as it comes, never splitting a character, and as a
/// frame ([`as_frame`]) per line once the line is whole, so that the frames
/// are the same however the body was cut; an empty body is an error.
fn text_answer(response: reqwest::Response) -> EventStream {
    let body =
        TextBody { body: Some(response.bytes_stream().boxed()), pending: Vec::new(), line: String::new(), said: false };
    stream::unfold(body, |mut body| async move { Some((body.next().await?, body)) }).flat_map(stream::iter).boxed()
}

/// A plain-text body being read.
struct TextBody {
    /// The body, until it ends or breaks.
    body: Option<futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>>,
    /// Bytes of a character cut between reads.
    pending: Vec<u8>,
    /// The line not yet whole, for its frame.
    line: String,
    /// Whether any text was sent.
    said: bool,
}

impl TextBody {
    /// The events of the next read, or none once the body has ended.
    async fn next(&mut self) -> Option<Vec<Event>> {
        loop {
            match self.body.as_mut()?.next().await {
                Some(Ok(chunk)) => {
                    self.pending.extend_from_slice(&chunk);
                    let whole = match std::str::from_utf8(&self.pending) {
                        // A character cut at the end waits for its other bytes.
                        Err(error) if error.error_len().is_none() => error.valid_up_to(),
                        _ => self.pending.len(),
                    };
                    if whole > 0 {
                        let ready: Vec<u8> = self.pending.drain(..whole).collect();
                        return Some(self.text(String::from_utf8_lossy(&ready).into_owned()));
                    }
                }
                Some(Err(error)) => {
                    self.body = None;
                    return Some(vec![broken(error)]);
                }
                None => {
                    self.body = None;
                    return Some(self.end()).filter(|events| !events.is_empty());
                }
            }
        }
    }

    /// `text` as a text event, and a frame for each line it completes.
    fn text(&mut self, text: String) -> Vec<Event> {
        self.said = true;
        self.line.push_str(&text);
        let mut events = vec![Event::Text(text)];
        while let Some(end) = self.line.find('\n') {
            let line: String = self.line.drain(..=end).collect();
            events.push(as_frame(&line));
        }
        events
    }

    /// What is left at the end: the last bytes, the last line's frame, or
    /// the error of a body that said nothing.
    fn end(&mut self) -> Vec<Event> {
        let rest = String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned();
        let mut events = if rest.is_empty() { Vec::new() } else { self.text(rest) };
        if !self.line.is_empty() {
            events.push(as_frame(&std::mem::take(&mut self.line)));
        }
        if !self.said {
            events.push(body::no_answer(SOURCE, "an empty body"));
        }
        events
    }
}

/// One event's data: ConverseStream-shaped JSON, bare or inside `"event"`,
/// a JSON string of text, or an error object.
fn decode(data: &str) -> Vec<Event> {
    match serde_json::from_str::<Value>(data) {
        Ok(value) => decode_value(&value),
        Err(_) => Vec::new(),
    }
}

fn decode_value(value: &Value) -> Vec<Event> {
    let value = present(value.get("event")).unwrap_or(value);
    if let Some(text) = value.as_str() {
        return vec![Event::Text(text.to_string())];
    }
    let Some(object) = value.as_object() else { return Vec::new() };
    let mut events = Vec::new();
    for (key, body) in object.iter().filter(|(_, body)| !body.is_null()) {
        match key.as_str() {
            "contentBlockDelta" => events.extend(content_delta(body)),
            "messageStop" => {
                let reason = string_at(body, "/stopReason").filter(|reason| !reason.is_empty());
                events.push(Event::End(reason.unwrap_or("end_turn").to_string()))
            }
            "metadata" => events.extend(usage(body).map(Event::Usage)),
            "error" => events.push(StreamErrorCode::Other.event(message_of(body))),
            // Lambda's error shape: `{"errorMessage", "errorType"}`.
            "errorMessage" => {
                let kind = object.get("errorType").and_then(Value::as_str);
                let code = kind.map_or(StreamErrorCode::Other, |kind| StreamErrorCode::from_aws(Some(kind)));
                events.push(code.event(message_of(body)));
            }
            exception if exception.ends_with("Exception") => {
                events.push(StreamErrorCode::from_aws(Some(exception)).event(message_of(body)))
            }
            _ => {}
        }
    }
    events
}

/// `null` is absent.
fn present(value: Option<&Value>) -> Option<&Value> {
    value.filter(|value| !value.is_null())
}

fn string_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn content_delta(body: &Value) -> Option<Event> {
    if let Some(text) = string_at(body, "/delta/text") {
        return Some(Event::Text(text.to_string()));
    }
    let reasoning = string_at(body, "/delta/reasoningContent/text")?;
    Some(Event::Metadata(json!({ "reasoning": { "text": reasoning } }).to_string()))
}

fn usage(metadata: &Value) -> Option<Usage> {
    let usage = present(metadata.get("usage"))?;
    let count = |key: &str| usage.get(key).and_then(body::token_count).unwrap_or(0);
    let latency_ms = metadata.pointer("/metrics/latencyMs").and_then(body::token_count).unwrap_or(0);
    Some(Usage {
        input_tokens: count("inputTokens"),
        output_tokens: count("outputTokens"),
        total_tokens: count("totalTokens"),
        latency_ms,
        cache_read_input_tokens: count("cacheReadInputTokens"),
        cache_write_input_tokens: count("cacheWriteInputTokens"),
    })
}

fn message_of(body: &Value) -> String {
    match body {
        Value::String(message) => message.clone(),
        other => string_at(other, "/message").map_or_else(|| other.to_string(), str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_converse_shaped_events() {
        assert_eq!(
            decode(r#"{"event":{"contentBlockDelta":{"delta":{"text":"Hi"},"contentBlockIndex":0}}}"#),
            [Event::Text("Hi".into())]
        );
        assert_eq!(decode(r#""plain""#), [Event::Text("plain".into())]);
        assert_eq!(decode(r#"{"messageStop":{"stopReason":"max_tokens"}}"#), [Event::End("max_tokens".into())]);
        let usage = decode(
            r#"{"metadata":{"usage":{"inputTokens":3,"outputTokens":5,"totalTokens":8},"metrics":{"latencyMs":42}}}"#,
        );
        assert!(matches!(
            &usage[..],
            [Event::Usage(Usage { input_tokens: 3, output_tokens: 5, total_tokens: 8, latency_ms: 42, .. })]
        ));
        let throttled = decode(r#"{"throttlingException":{"message":"slow down"}}"#);
        assert!(
            matches!(&throttled[..], [Event::Error(error)] if error.code == "throttled" && error.message == "slow down")
        );
        assert!(decode("not json").is_empty());
    }

    #[test]
    fn an_error_is_the_error_event_alone_in_every_shape_a_runtime_sends_it() {
        let frame = |raw: &str, event: Option<&str>, data: &str| SseFrame {
            raw: bytes::Bytes::copy_from_slice(raw.as_bytes()),
            data: Some(data.to_string()),
            event: event.map(str::to_string),
            id: None,
        };
        let arn = "User: arn:aws:sts::123456789012:assumed-role/R/x is not authorized";
        let codes = |events: Vec<Event>| -> Vec<String> {
            events
                .into_iter()
                .map(|event| match event {
                    Event::Error(error) => format!("{}: {}", error.code, error.message),
                    other => format!("{other:?}"),
                })
                .collect()
        };
        // `event: error` with text, or with a JSON object's message.
        assert_eq!(codes(decode_frame(&frame("", Some("error"), arn))), [format!("upstream_error: {arn}")]);
        let object = format!(r#"{{"message":"{arn}"}}"#);
        assert_eq!(codes(decode_frame(&frame("", Some("error"), &object))), [format!("upstream_error: {arn}")]);
        // Lambda's error shape.
        let lambda = format!(r#"{{"errorMessage":"{arn}","errorType":"AccessDeniedException"}}"#);
        let lambda_error = decode(&lambda);
        assert!(matches!(&lambda_error[..], [Event::Error(error)] if error.message == arn), "{lambda_error:?}");
        // A last event cut before its blank line, whose data is not whole.
        let cut = frame(r#"data: {"event":{"contentBlockDelta":"cut"#, None, r#"{"event":{"contentBlockDelta":"cut"#);
        assert_eq!(
            codes(decode_frame(&cut)),
            ["upstream_disconnected: the upstream's stream ended in the middle of an event"]
        );
        // Strands' `{"data": …}` repeats the text of the event beside it: not read twice.
        assert!(decode(r#"{"data":"hello","delta":{"text":"hello"}}"#).is_empty());
    }

    #[test]
    fn an_empty_stop_reason_is_absent() {
        assert_eq!(decode(r#"{"messageStop":{"stopReason":""}}"#), [Event::End("end_turn".into())]);
        assert_eq!(decode(r#"{"messageStop":{"stopReason":null}}"#), [Event::End("end_turn".into())]);
    }
}
