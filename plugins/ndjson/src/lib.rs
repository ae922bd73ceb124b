//! `ndjson`: formats a stream as newline-delimited JSON in the multi-agent
//! orchestrator's schema, one object per line:
//!
//! ```text
//! {"type":"metadata","data":{"model":"echo"}}
//! {"type":"chunk","data":"Hel"}
//! {"type":"complete","data":{"stopReason":"end_turn","usage":{...}}}
//! ```
//!
//! `complete` is written when the stream finishes, so it carries the stop
//! reason and the usage that models report after the last text. A failed
//! stream ends with `{"type":"error","data":{"code":…,"message":…}}` instead.
//!
//! With the setting `{"metadata":"agent-squad"}` the metadata that opens the
//! stream (the router's choice, the model's name) is written as ONE line in
//! Agent Squad's shape, as its orchestrator's Lambda handler writes it:
//!
//! ```text
//! {"type":"metadata","data":{"agentId":"billing","agentName":"billing","userInput":"…","userId":"…","sessionId":"…","additionalParams":{…}}}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use streamhost_guest::json::{ErrorJson, UsageJson};
use streamhost_guest::{ErrorInfo, Event, StreamContext, Transform, Usage, error};

/// One output line; fields serialise in this order.
#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    data: T,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Complete {
    stop_reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageJson>,
}

#[derive(Serialize)]
struct Status {
    message: String,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    metadata: MetadataStyle,
}

/// How metadata events are written: the `metadata` setting.
#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
enum MetadataStyle {
    /// Each metadata event as a line of its own, as it came (the default).
    #[default]
    Each,
    /// The opening metadata merged into one line of Agent Squad's shape.
    AgentSquad,
}

/// Agent Squad's `AgentProcessingResult` metadata, gathered from the
/// metadata events that open a stream.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AgentSquadMetadata {
    agent_id: String,
    agent_name: String,
    user_input: String,
    user_id: String,
    session_id: String,
    additional_params: AdditionalParams,
}

/// What Agent Squad has no field for but a caller may want; only those
/// present are written.
#[derive(Serialize, Default)]
struct AdditionalParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    confidence: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<Value>,
}

impl AgentSquadMetadata {
    fn new(context: StreamContext) -> Self {
        Self {
            agent_id: String::new(),
            agent_name: String::new(),
            user_input: String::new(),
            user_id: context.user_id.unwrap_or_default(),
            session_id: context.session_id.unwrap_or_default(),
            additional_params: AdditionalParams::default(),
        }
    }

    /// Takes what it knows from one metadata object: the router's (`agent`,
    /// `confidence`, `reason`, `userInput`) or the model source's
    /// (`provider`, `model`). Anything else is left out.
    fn merge(&mut self, metadata: &str) {
        let Ok(mut metadata) = serde_json::from_str::<Map<String, Value>>(metadata) else { return };
        if let Some(Value::String(agent)) = metadata.remove("agent") {
            self.agent_id = agent_squad_id(&agent);
            self.agent_name = agent;
        }
        if let Some(Value::String(user_input)) = metadata.remove("userInput") {
            self.user_input = user_input;
        }
        let params = &mut self.additional_params;
        for (key, slot) in [
            ("confidence", &mut params.confidence),
            ("reason", &mut params.reason),
            ("provider", &mut params.provider),
            ("model", &mut params.model),
        ] {
            if let Some(value) = metadata.remove(key).filter(|value| !value.is_null()) {
                *slot = Some(value);
            }
        }
    }
}

/// An agent's id as Agent Squad derives it from the name
/// (`Agent.generateKeyFromName`): characters other than ASCII letters,
/// digits, white space and `-` removed, each run of white space turned into
/// `-`, lower-cased. `Health Agent` is `health-agent`.
fn agent_squad_id(name: &str) -> String {
    let mut id = String::with_capacity(name.len());
    let mut in_white_space = false;
    for c in name.chars() {
        if c.is_whitespace() {
            if !in_white_space {
                id.push('-');
            }
            in_white_space = true;
        } else if c.is_ascii_alphanumeric() || c == '-' {
            id.push(c.to_ascii_lowercase());
            in_white_space = false;
        }
        // Anything else is removed before white space is collapsed, so it
        // does not split a run of white space.
    }
    id
}

#[derive(Default)]
pub struct Ndjson {
    stop_reason: Option<String>,
    usage: Option<Usage>,
    failed: bool,
    /// In the `agent-squad` style, the opening metadata, held until the
    /// first other event (or the end) and then written as one line.
    opening_metadata: Option<AgentSquadMetadata>,
}

impl Transform for Ndjson {
    fn open(context: StreamContext, settings: &str) -> Result<Self, ErrorInfo> {
        let settings: Settings = serde_json::from_str(settings)
            .map_err(|problem| error("invalid_config", format!("ndjson settings: {problem}")))?;
        let opening_metadata = match settings.metadata {
            MetadataStyle::Each => None,
            MetadataStyle::AgentSquad => Some(AgentSquadMetadata::new(context)),
        };
        Ok(Self { opening_metadata, ..Self::default() })
    }

    fn content_type(&self) -> Option<String> {
        Some("application/x-ndjson".into())
    }

    fn push(&mut self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            if let (Some(opening), Event::Metadata(metadata)) = (&mut self.opening_metadata, &event) {
                opening.merge(metadata);
                continue;
            }
            out.extend(self.opening_metadata_line());
            out.extend(self.format(event));
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<Event>, ErrorInfo> {
        // A stream of metadata alone still gets its line.
        let mut out: Vec<Event> = self.opening_metadata_line().into_iter().collect();
        if !self.failed {
            let complete = Complete {
                stop_reason: self.stop_reason.take().unwrap_or_else(|| "end_turn".into()),
                usage: self.usage.take().as_ref().map(UsageJson::from),
            };
            out.push(line("complete", complete));
        }
        Ok(out)
    }
}

impl Ndjson {
    /// The held opening metadata's line, once: later metadata is written as
    /// it comes.
    fn opening_metadata_line(&mut self) -> Option<Event> {
        self.opening_metadata.take().map(|metadata| line("metadata", metadata))
    }

    fn format(&mut self, event: Event) -> Option<Event> {
        match event {
            Event::Metadata(json) => Some(line("metadata", as_json(json))),
            Event::Text(text) => Some(line("chunk", text)),
            Event::Status(message) => Some(line("status", Status { message })),
            Event::Usage(usage) => {
                self.usage = Some(usage);
                None
            }
            Event::End(reason) => {
                self.stop_reason = Some(reason);
                None
            }
            Event::Error(error) => {
                self.failed = true;
                Some(line("error", ErrorJson::from(&error)))
            }
            raw @ Event::Raw(_) => Some(raw),
            Event::Frame(_) => None,
        }
    }
}

/// Metadata is JSON by contract and is embedded as it came; anything else is
/// kept as a string rather than dropped.
fn as_json(json: String) -> Box<RawValue> {
    RawValue::from_string(json.clone())
        .or_else(|_| serde_json::value::to_raw_value(&json))
        .expect("a string serialises")
}

fn line(kind: &str, data: impl Serialize) -> Event {
    let mut bytes = serde_json::to_vec(&Line { kind, data }).expect("plain data serialises");
    bytes.push(b'\n');
    Event::Raw(bytes)
}

streamhost_guest::export_transform!(Ndjson);

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> StreamContext {
        StreamContext { plugin: "ndjson".into(), user_id: None, session_id: None }
    }

    fn text_of(events: Vec<Event>) -> String {
        events
            .into_iter()
            .map(|event| match event {
                Event::Raw(bytes) => String::from_utf8(bytes).unwrap(),
                other => panic!("a formatter returns raw bytes, not {other:?}"),
            })
            .collect()
    }

    #[test]
    fn formats_a_whole_stream_in_the_orchestrator_schema() {
        let mut ndjson = Ndjson::open(context(), "{}").unwrap();
        let usage = Usage {
            input_tokens: 1,
            output_tokens: 2,
            total_tokens: 3,
            latency_ms: 4,
            cache_read_input_tokens: 0,
            cache_write_input_tokens: 0,
        };
        let mut out = ndjson
            .push(vec![
                Event::Metadata(r#"{"model":"m"}"#.into()),
                Event::Text("Hi \"you\"\n".into()),
                Event::End("max_tokens".into()),
                Event::Usage(usage),
            ])
            .unwrap();
        out.extend(ndjson.finish().unwrap());
        assert_eq!(
            text_of(out),
            concat!(
                "{\"type\":\"metadata\",\"data\":{\"model\":\"m\"}}\n",
                "{\"type\":\"chunk\",\"data\":\"Hi \\\"you\\\"\\n\"}\n",
                "{\"type\":\"complete\",\"data\":{\"stopReason\":\"max_tokens\",\"usage\":",
                "{\"inputTokens\":1,\"outputTokens\":2,\"totalTokens\":3,\"latencyMs\":4}}}\n",
            )
        );
    }

    #[test]
    fn an_error_replaces_the_complete_line() {
        let mut ndjson = Ndjson::open(context(), "{}").unwrap();
        let out = ndjson.push(vec![Event::Error(streamhost_guest::error("throttled", "slow down"))]).unwrap();
        assert_eq!(text_of(out), "{\"type\":\"error\",\"data\":{\"code\":\"throttled\",\"message\":\"slow down\"}}\n");
        assert!(ndjson.finish().unwrap().is_empty());
    }

    const AGENT_SQUAD: &str = r#"{"metadata":"agent-squad"}"#;

    fn caller() -> StreamContext {
        StreamContext {
            plugin: "ndjson".into(),
            user_id: Some("user123".into()),
            session_id: Some("session456".into()),
        }
    }

    #[test]
    fn agent_squad_style_merges_the_opening_metadata_into_one_line() {
        let mut ndjson = Ndjson::open(caller(), AGENT_SQUAD).unwrap();
        let router = r#"{"agent":"Health Agent","confidence":1.0,"reason":"keyword","userInput":"Am I ok?"}"#;
        // Metadata split across batches is still held.
        assert!(ndjson.push(vec![Event::Metadata(router.into())]).unwrap().is_empty());
        let mut out = ndjson
            .push(vec![
                Event::Metadata(r#"{"provider":"echo","model":"echo"}"#.into()),
                Event::Text("Yes".into()),
                Event::Metadata(r#"{"toolUse":{"name":"t"}}"#.into()),
                Event::End("end_turn".into()),
            ])
            .unwrap();
        out.extend(ndjson.finish().unwrap());
        assert_eq!(
            text_of(out),
            concat!(
                r#"{"type":"metadata","data":{"agentId":"health-agent","agentName":"Health Agent","userInput":"Am I ok?","#,
                r#""userId":"user123","sessionId":"session456","#,
                r#""additionalParams":{"confidence":1.0,"reason":"keyword","provider":"echo","model":"echo"}}}"#,
                "\n",
                r#"{"type":"chunk","data":"Yes"}"#,
                "\n",
                r#"{"type":"metadata","data":{"toolUse":{"name":"t"}}}"#,
                "\n",
                r#"{"type":"complete","data":{"stopReason":"end_turn"}}"#,
                "\n",
            )
        );
    }

    #[test]
    fn agent_squad_style_writes_its_line_even_without_metadata() {
        let mut ndjson = Ndjson::open(context(), AGENT_SQUAD).unwrap();
        let mut out = ndjson.push(vec![Event::Error(streamhost_guest::error("throttled", "slow down"))]).unwrap();
        out.extend(ndjson.finish().unwrap());
        assert_eq!(
            text_of(out),
            concat!(
                r#"{"type":"metadata","data":{"agentId":"","agentName":"","userInput":"","userId":"","sessionId":"","additionalParams":{}}}"#,
                "\n",
                r#"{"type":"error","data":{"code":"throttled","message":"slow down"}}"#,
                "\n",
            )
        );
        let mut only_metadata = Ndjson::open(context(), AGENT_SQUAD).unwrap();
        only_metadata.push(vec![Event::Metadata(r#"{"agent":"tech"}"#.into())]).unwrap();
        let out = text_of(only_metadata.finish().unwrap());
        assert!(out.starts_with(r#"{"type":"metadata","data":{"agentId":"tech","agentName":"tech","#), "{out}");
        assert!(out.ends_with("{\"type\":\"complete\",\"data\":{\"stopReason\":\"end_turn\"}}\n"), "{out}");
    }

    #[test]
    fn agent_ids_follow_agent_squad() {
        assert_eq!(agent_squad_id("Health Agent"), "health-agent");
        assert_eq!(agent_squad_id("Tech  Support (EU)"), "tech-support-eu");
        assert_eq!(agent_squad_id("a ! b-C"), "a-b-c");
    }

    #[test]
    fn settings_are_checked() {
        assert!(Ndjson::open(context(), r#"{"metadata":"each"}"#).is_ok());
        for settings in [r#"{"metadata":"squad"}"#, r#"{"layout":"agent-squad"}"#] {
            let Err(error) = Ndjson::open(context(), settings) else { panic!("{settings} was accepted") };
            assert_eq!(error.code, "invalid_config");
        }
    }
}
