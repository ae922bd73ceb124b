//! Golden tests (`streamhost test`): a fixture, replayed through a plugin or
//! a chain in the real host, and its output compared with an expected file.
//!
//! A fixture is JSON (`docs/fixtures.md` has the whole format):
//!
//! ```json
//! {
//!   "description": "what it shows",
//!   "request": { "prompt": "Hi", "config": { "redact": { "emails": true } } },
//!   "batches": [
//!     [ { "type": "metadata", "data": { "provider": "echo" } }, { "type": "text", "data": "Hel" } ],
//!     [ { "type": "text", "data": "lo" }, { "type": "end", "data": "end_turn" } ]
//!   ]
//! }
//! ```
//!
//! The first plugin's role says what runs:
//! - a **transform**: `batches` are the source, each batch one `push` of the
//!   first plugin, as recorded (`invoke --record`);
//! - a **router**: it chooses among the fixture's `agents` (built-in agents
//!   on the offline echo model) for `request`;
//! - an **agent**: it answers `request`, its model calls answered by the echo
//!   model (`request.model.script` scripts them);
//! - a **request filter**: it maps the fixture's `incoming` HTTP request;
//!   the output is the mapped request or the refusal, as JSON.
//!
//! The output is what a caller receives: the body as the chain's last
//! formatter wrote it (the host's NDJSON without one), or `status N` and the
//! error's JSON when the call is refused before its first byte.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine as _;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error_code::ErrorReply;
use crate::event::{ErrorInfo, Event, UsageJson};
use crate::pipeline::Pipeline;
use crate::pipeline::inbound::{self, Inbound, RouteSettings};
use crate::pipeline::standard_api::{self, StandardApi};
use crate::plugin_store::PluginName;
use crate::registry::PluginRole;
use crate::request::Request;

/// The name of the pipeline a test composes around a router, an agent or a
/// request filter.
const TEST_PIPELINE: &str = "golden-test";

/// A golden fixture; see the module documentation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Fixture {
    /// For people: what the fixture shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The chain it was recorded through, for people (`invoke --record`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// The request body, as a caller sends it; `{"prompt": ""}` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    /// A transform's source: events in the batches the first plugin gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batches: Option<Vec<Vec<FixtureEvent>>>,
    /// A router's agents to choose among: `[{"name", "description"}]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<Value>>,
    /// A request filter's input: the caller's HTTP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming: Option<Incoming>,
    /// Plugin settings as an operator sets them in a manifest's `config`
    /// (`{"seed001-auth": {"apiKeys": {…}}}`), for a router, an agent or a
    /// request filter, whose pipeline the test composes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Value>,
}

/// An HTTP request for a request filter: `{"method", "path", "query",
/// "headers": [[name, value]], "body"}`; `POST /` with no headers and an
/// empty body by default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incoming {
    /// `GET`, `POST`, ...
    #[serde(default)]
    pub method: Option<String>,
    /// The path below the pipeline's, from `/`.
    #[serde(default)]
    pub path: Option<String>,
    /// The query string, without `?`.
    #[serde(default)]
    pub query: Option<String>,
    /// Header names and values, in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    #[serde(default)]
    pub body: Option<String>,
}

/// An event in a fixture: the host's JSON shape of events
/// (`{"type":"text","data":"Hel"}`), with `frame` and `raw` bytes as text or
/// `{"base64": "…"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase", deny_unknown_fields)]
pub enum FixtureEvent {
    /// A piece of the answer's text.
    Text(String),
    /// Progress for people.
    Status(String),
    /// JSON facts about the stream.
    Metadata(Value),
    /// Token counts.
    Usage(UsageJson),
    /// The stop reason.
    End(String),
    /// A failure that ends the stream.
    Error {
        /// Its code.
        code: String,
        /// What happened.
        message: String,
    },
    /// A source's undecoded unit.
    Frame(Bytes),
    /// Bytes already encoded for the client.
    Raw(Bytes),
}

/// Bytes in a fixture: text when they are UTF-8, else `{"base64": "…"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Bytes {
    /// UTF-8 bytes, as text.
    Text(String),
    /// Any bytes.
    Base64 {
        /// Standard base64, with padding.
        base64: String,
    },
}

impl Bytes {
    fn of(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => Bytes::Text(text.to_string()),
            Err(_) => Bytes::Base64 { base64: base64::engine::general_purpose::STANDARD.encode(bytes) },
        }
    }

    fn to_vec(&self) -> anyhow::Result<Vec<u8>> {
        Ok(match self {
            Bytes::Text(text) => text.clone().into_bytes(),
            Bytes::Base64 { base64 } => {
                base64::engine::general_purpose::STANDARD.decode(base64).context("a fixture's base64 bytes")?
            }
        })
    }
}

impl FixtureEvent {
    /// The event as the host has it.
    pub fn to_event(&self) -> anyhow::Result<Event> {
        Ok(match self {
            FixtureEvent::Text(text) => Event::Text(text.clone()),
            FixtureEvent::Status(text) => Event::Status(text.clone()),
            FixtureEvent::Metadata(Value::String(text)) => Event::Metadata(text.clone()),
            FixtureEvent::Metadata(value) => Event::Metadata(value.to_string()),
            FixtureEvent::Usage(usage) => Event::Usage(usage.into()),
            FixtureEvent::End(reason) => Event::End(reason.clone()),
            FixtureEvent::Error { code, message } => {
                Event::Error(ErrorInfo { code: code.clone(), message: message.clone() })
            }
            FixtureEvent::Frame(bytes) => Event::Frame(bytes.to_vec()?),
            FixtureEvent::Raw(bytes) => Event::Raw(bytes.to_vec()?),
        })
    }

    /// The host's event as a fixture writes it.
    pub fn of(event: &Event) -> Self {
        match event {
            Event::Text(text) => FixtureEvent::Text(text.clone()),
            Event::Status(text) => FixtureEvent::Status(text.clone()),
            Event::Metadata(text) => {
                FixtureEvent::Metadata(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone())))
            }
            Event::Usage(usage) => FixtureEvent::Usage(usage.into()),
            Event::End(reason) => FixtureEvent::End(reason.clone()),
            Event::Error(error) => FixtureEvent::Error { code: error.code.clone(), message: error.message.clone() },
            Event::Frame(bytes) => FixtureEvent::Frame(Bytes::of(bytes)),
            Event::Raw(bytes) => FixtureEvent::Raw(Bytes::of(bytes)),
        }
    }
}

impl Fixture {
    /// Reads a fixture file.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a fixture", path.display()))
    }

    /// The file a fixture's expected output is kept in: `hello.json` ->
    /// `hello.expected`.
    pub fn expected_path(path: &Path) -> PathBuf {
        path.with_extension("expected")
    }

    fn body(&self) -> String {
        self.request.clone().unwrap_or_else(|| json!({ "prompt": "" })).to_string()
    }
}

/// What a caller receives from `chain` for `fixture`, in the real host:
/// see the module documentation. `chain[0]`'s role decides what runs.
pub async fn run(pipeline: &Pipeline, chain: &[PluginName], fixture: &Fixture) -> anyhow::Result<Vec<u8>> {
    let first = pipeline.registry().load(&chain[0]).await.map_err(|error| anyhow::anyhow!("{error}"))?;
    let outcome = match first.role() {
        PluginRole::Transform => replay(pipeline, chain, fixture).await?,
        PluginRole::RequestFilter => return filter(pipeline, &chain[0], fixture).await,
        PluginRole::Router | PluginRole::Agent => {
            let inbound = Inbound {
                method: "POST".into(),
                target: Some(TEST_PIPELINE.into()),
                path: "/".into(),
                body: fixture.body().into(),
                ..Inbound::default()
            };
            inbound::open(pipeline, &RouteSettings::OPERATOR, inbound).await
        }
    };
    Ok(match outcome {
        Ok(response) => response.body.flat_map(|chunk| futures::stream::iter(chunk.to_vec())).collect().await,
        Err(reply) => refused(&reply),
    })
}

/// The manifest `streamhost test` composes for a router, an agent or a
/// request filter first in `chain`, the rest of `chain` its transforms;
/// `None` for a transform, which runs as a chain.
pub fn manifest_for(role: PluginRole, chain: &[PluginName], fixture: &Fixture) -> Option<Value> {
    let mut manifest = composed(role, chain, fixture)?;
    if let Some(settings) = &fixture.settings {
        manifest["config"] = settings.clone();
    }
    Some(manifest)
}

fn composed(role: PluginRole, chain: &[PluginName], fixture: &Fixture) -> Option<Value> {
    let transforms: Vec<&str> = chain[1..].iter().map(PluginName::as_str).collect();
    let model = json!({ "provider": "echo" });
    // The fixture's request may set what a test needs: each plugin's
    // settings, the system prompt, and the echo model's script.
    let mut may = vec!["system".to_string(), "model.*".into(), "model.script".into()];
    // (An inbound plugin's settings are the operator's, not a caller's.)
    let configurable = if role == PluginRole::RequestFilter { &chain[1..] } else { chain };
    may.extend(configurable.iter().map(|name| format!("config.{name}.*")));
    let callers = json!({ "may": may, "providers": ["echo"] });
    match role {
        PluginRole::Transform => None,
        PluginRole::Router => Some(json!({
            "router": chain[0].as_str(),
            "agents": fixture.agents.clone().unwrap_or_default(),
            "transforms": transforms,
            "model": model,
            "callers": callers,
        })),
        PluginRole::Agent => Some(json!({
            "agents": [{ "name": chain[0].as_str(), "description": "the agent under test", "plugin": chain[0].as_str() }],
            "transforms": transforms,
            "model": model,
            "callers": callers,
        })),
        PluginRole::RequestFilter => Some(json!({
            "inbound": chain[0].as_str(),
            "transforms": transforms,
            "model": model,
            "callers": callers,
        })),
    }
}

/// The pipeline name a composed manifest is written under.
pub fn test_pipeline() -> &'static str {
    TEST_PIPELINE
}

async fn replay(
    pipeline: &Pipeline,
    chain: &[PluginName],
    fixture: &Fixture,
) -> anyhow::Result<Result<crate::pipeline::Response, ErrorReply>> {
    let batches = fixture
        .batches
        .as_ref()
        .context("a transform's fixture needs `batches`: the source's events (record some with `invoke --record`)")?;
    let batches = batches
        .iter()
        .map(|batch| batch.iter().map(FixtureEvent::to_event).collect::<anyhow::Result<Vec<_>>>())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let request = match Request::from_json(chain.to_vec(), &[], fixture.body().as_bytes()) {
        Ok(request) => request,
        Err(error) => return Ok(Err(ErrorReply::from(&error))),
    };
    Ok(pipeline.open_replay(request, batches).await.map_err(|error| ErrorReply::from(&error)))
}

/// A request filter's answer for the fixture's `incoming` request: the
/// request it mapped (`{"request": …, "chain": …}`) or its refusal. At a
/// standard API's path (`/v1/messages`), `filter` is that API's request
/// filter, and the request is as it mapped it, its formatter's settings in
/// `config`, before the pipeline's checks.
async fn filter(pipeline: &Pipeline, filter: &PluginName, fixture: &Fixture) -> anyhow::Result<Vec<u8>> {
    let incoming = fixture.incoming.clone().unwrap_or_default();
    let inbound = Inbound {
        method: incoming.method.unwrap_or_else(|| "POST".into()),
        target: Some(TEST_PIPELINE.into()),
        path: incoming.path.unwrap_or_else(|| "/".into()),
        query: incoming.query.unwrap_or_default(),
        headers: incoming.headers.into_iter().map(|(name, value)| (name.to_ascii_lowercase(), value)).collect(),
        body: incoming.body.unwrap_or_default().into(),
        request_context: None,
    };
    if StandardApi::for_path(&inbound.path).is_some() {
        return Ok(match standard_api::map(pipeline, filter, &inbound).await {
            Ok(request) => format!("{}\n", serde_json::to_string_pretty(&json!({ "request": request }))?).into_bytes(),
            Err(reply) => refused(&reply),
        });
    }
    Ok(match inbound::prepare(pipeline, &RouteSettings::OPERATOR, inbound).await {
        Ok(prepared) => {
            let request: Value = serde_json::from_slice(&prepared.mapped.body).unwrap_or(Value::Null);
            let mapped = json!({ "request": request, "chain": prepared.mapped.chain });
            format!("{}\n", serde_json::to_string_pretty(&mapped)?).into_bytes()
        }
        Err(reply) => refused(&reply),
    })
}

/// A refusal before the first byte, as the output: `status N`, the error's
/// JSON and any headers.
fn refused(reply: &ErrorReply) -> Vec<u8> {
    let mut out = format!("status {}\n{}\n", reply.status, reply.to_json());
    for (name, value) in &reply.headers {
        out.push_str(&format!("{name}: {value}\n"));
    }
    out.into_bytes()
}

/// The differences between `expected` and `actual`, line by line, as a
/// unified diff; `None` when they are the same.
pub fn diff(expected: &[u8], actual: &[u8], expected_name: &str) -> Option<String> {
    if expected == actual {
        return None;
    }
    let (expected, actual) = (String::from_utf8_lossy(expected), String::from_utf8_lossy(actual));
    if expected == actual {
        return Some(format!("{expected_name}: the output differs in bytes that are not UTF-8"));
    }
    let diff = similar::TextDiff::from_lines(expected.as_ref(), actual.as_ref());
    Some(diff.unified_diff().context_radius(2).header(expected_name, "actual").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_a_fixture_both_ways() {
        let events = [
            Event::Text("Hel".into()),
            Event::Metadata(r#"{"provider":"echo"}"#.into()),
            Event::Metadata("not json".into()),
            Event::Frame(vec![0xff, 0x00, b'a']),
            Event::Raw(b"data: x\n\n".to_vec()),
            Event::End("end_turn".into()),
            Event::Error(ErrorInfo { code: "c".into(), message: "m".into() }),
        ];
        for event in events {
            let written = serde_json::to_string(&FixtureEvent::of(&event)).unwrap();
            let read: FixtureEvent = serde_json::from_str(&written).unwrap();
            assert_eq!(read.to_event().unwrap(), event, "{written}");
        }
    }

    #[test]
    fn a_fixture_with_an_unknown_field_is_refused() {
        assert!(serde_json::from_str::<Fixture>(r#"{"batchs": []}"#).is_err());
        assert!(serde_json::from_str::<FixtureEvent>(r#"{"type": "txt", "data": "x"}"#).is_err());
        let misspelt = r#"{"type": "usage", "data": {"inputTokns": 1, "outputTokens": 1, "totalTokens": 2}}"#;
        assert!(serde_json::from_str::<FixtureEvent>(misspelt).is_err());
        assert!(
            serde_json::from_str::<FixtureEvent>(r#"{"type": "frame", "data": {"base64": "AA==", "x": 1}}"#).is_err()
        );
    }

    #[test]
    fn a_diff_names_the_lines_that_differ() {
        assert_eq!(diff(b"a\nb\n", b"a\nb\n", "x.expected"), None);
        let shown = diff(b"a\nb\n", b"a\nc\n", "x.expected").unwrap();
        assert!(shown.contains("-b\n") && shown.contains("+c\n"), "{shown}");
    }
}
