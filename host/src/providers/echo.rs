//! `echo`: an offline model. It streams the prompt back (or a configured
//! text) token by token at a set pace, so streaming is visible with no
//! model, no network and no credentials. Its output is deterministic.
//!
//! A **script** (`model.script` in a request or manifest, else the file given
//! by `--echo-script`) makes it answer like a model in a demo or a test: the
//! first rule whose conditions hold gives the reply, a tool call, or both.
//!
//! ```json
//! [
//!   { "system": "classify", "user": ["refund", "invoice"], "reply": "{\"agent\":\"billing\",\"confidence\":0.9}" },
//!   { "afterTool": false, "user": ["report"], "toolUse": { "name": "slow_process", "input": { "steps": 3 } } },
//!   { "afterTool": true, "reply": "Done: {{toolResult}}" }
//! ]
//! ```
//!
//! With `model.frames` set to `agentcore-sse` it also plays an agent
//! runtime offline: before each event, the SSE event a Bedrock AgentCore
//! runtime streams for it (`data: {"event": {"contentBlockDelta": …}}`, in
//! the spacing of Python's `json.dumps`), as a `frame`, so that
//! `sse-passthrough` and the upstream's other plugins work with no upstream.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use futures::{StreamExt, stream};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::call::{ModelCall, tool_use_event};
use super::source::ModelSource;
use super::{EventStream, ProviderError, ProviderKind, Started, ToolChoice, ToolChoiceMode, UpstreamFailure};
use crate::conversation::{Content, Role, ToolCall};
use crate::event::{Event, Usage};

/// The offline `echo` model's settings.
#[derive(Debug, Clone, Args)]
pub struct EchoSettings {
    /// The echo provider's pause before each token.
    #[arg(long = "echo-delay-ms", env = "STREAMHOST_ECHO_DELAY_MS", default_value_t = 30, value_name = "MS")]
    pub delay_ms: u64,

    /// A fixed reply for the echo provider, instead of the prompt.
    #[arg(long = "echo-text", env = "STREAMHOST_ECHO_TEXT", value_name = "TEXT")]
    pub text: Option<String>,

    /// A JSON file of echo script rules (see docs/pipelines.md), for calls whose
    /// `model` gives no `script`.
    #[arg(long = "echo-script", env = "STREAMHOST_ECHO_SCRIPT", value_name = "FILE")]
    pub script: Option<PathBuf>,
}

/// One rule of an echo script. Every condition given must hold.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EchoRule {
    /// Text the system prompt contains (any case).
    #[serde(default)]
    system: Option<String>,
    /// Words of which the latest user text contains one (any case).
    #[serde(default)]
    user: Vec<String>,
    /// Whether the conversation ends with a tool's result.
    #[serde(default)]
    after_tool: Option<bool>,
    /// The reply; `{{user}}` stands for the latest user text, `{{firstUser}}`
    /// for the conversation's first (what a model with memory remembers),
    /// `{{toolResult}}` for the latest tool result.
    #[serde(default)]
    reply: Option<String>,
    /// A tool call to make after the reply.
    #[serde(default)]
    tool_use: Option<ScriptedToolUse>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedToolUse {
    name: String,
    #[serde(default)]
    input: Map<String, Value>,
}

/// The offline `echo` model: its pace, its fixed reply and its script.
pub struct EchoProvider {
    delay: Duration,
    text: Option<String>,
    script: Vec<EchoRule>,
}

impl EchoProvider {
    /// The echo model the settings describe; fails when the `--echo-script`
    /// file cannot be read or is not a JSON list of rules.
    pub fn new(settings: &EchoSettings) -> anyhow::Result<Self> {
        let script = match &settings.script {
            Some(path) => {
                let json = std::fs::read(path)
                    .map_err(|error| anyhow::anyhow!("--echo-script {}: {error}", path.display()))?;
                serde_json::from_slice(&json).map_err(|error| {
                    anyhow::anyhow!("--echo-script {}: not a list of rules: {error}", path.display())
                })?
            }
            None => Vec::new(),
        };
        Ok(Self { delay: Duration::from_millis(settings.delay_ms), text: settings.text.clone(), script })
    }

    /// The scripted answer to `call`, at the configured pace.
    pub fn start(&self, call: &ModelCall) -> EventStream {
        let script = call.options.script.as_deref().unwrap_or(&self.script);
        let (reply, tool_use) = match script.iter().find(|rule| rule.matches(call)) {
            Some(rule) => {
                (rule.reply.as_deref().map(|reply| fill(reply, call)).unwrap_or_default(), rule.tool_use.as_ref())
            }
            None => (self.text.clone().or_else(|| latest_user_text(call)).unwrap_or_default(), None),
        };
        // Told not to call a tool, it calls none (a script's call included).
        let told_none = call.options.tool_choice == Some(ToolChoice::Mode(ToolChoiceMode::None));
        let tool_use = tool_use.filter(|_| !told_none).map(|tool_use| ToolCall {
            id: format!("tooluse_{}", tool_results(call).count() + 1),
            name: tool_use.name.clone(),
            input: Value::Object(tool_use.input.clone()),
        });
        let tokens = tokenize(&reply);
        let usage = self.usage(call, tokens.len() as u32);
        let delay = self.delay;
        let body = stream::iter(tokens).then(move |token| async move {
            if delay.is_zero() {
                // Like a model, one token at a time: at no pace at all, each
                // token still waits its turn on the executor instead of the
                // whole answer arriving as one burst, which no real source
                // sends (and which outruns readers that parse each network
                // read as whole lines, as seed 000's does).
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(delay).await;
            }
            Event::Text(token)
        });
        let stop_reason = if tool_use.is_some() { "tool_use" } else { "end_turn" };
        // The stop, then the usage: the order Bedrock and OpenAI-compatible
        // servers send them in.
        let tail = tool_use
            .iter()
            .map(tool_use_event)
            .chain([Event::End(stop_reason.into()), Event::Usage(usage)])
            .collect::<Vec<_>>();
        let events = body.chain(stream::iter(tail)).boxed();
        match call.options.frames {
            Some(EchoFrames::AgentcoreSse) => with_agentcore_frames(events),
            None => events,
        }
    }

    fn usage(&self, call: &ModelCall, output_tokens: u32) -> Usage {
        let prompt = call
            .system
            .iter()
            .cloned()
            .chain(call.messages.iter().flat_map(|turn| turn.content.iter().map(block_text)));
        let input_tokens = prompt.map(|text| tokenize(&text).len()).sum::<usize>() as u32;
        Usage {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens + output_tokens,
            // Simulated, like the rest: what the configured pace implies.
            latency_ms: (self.delay.as_millis() as u32).saturating_mul(output_tokens),
            cache_read_input_tokens: 0,
            cache_write_input_tokens: 0,
        }
    }
}

/// The offline model: its request is the call itself, and every attempt
/// plays the same scripted answer.
impl ModelSource for EchoProvider {
    type Request = ModelCall;
    const KIND: ProviderKind = ProviderKind::Echo;
    const RETRIED: bool = false;

    fn request(&self, call: &ModelCall, _model: Option<&str>) -> Result<ModelCall, ProviderError> {
        Ok(call.clone())
    }

    async fn send(&self, call: &ModelCall) -> Result<Started, UpstreamFailure> {
        let mut started = Started::new(self.start(call));
        // Playing a runtime, it names the session as the runtime does.
        if call.options.frames.is_some() {
            started.metadata.insert("sessionId".into(), json!(runtime_session_id(call)));
        }
        Ok(started)
    }
}

/// Wire formats the echo model can also speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EchoFrames {
    /// A Bedrock AgentCore runtime's SSE (what `--upstream-url` reads).
    AgentcoreSse,
}

/// Each event preceded by the AgentCore SSE events that carry it.
fn with_agentcore_frames(events: EventStream) -> EventStream {
    let frame = |json: String| Event::Frame(format!("data: {{\"event\": {json}}}\n\n").into_bytes());
    let start = frame(r#"{"messageStart": {"role": "assistant"}}"#.to_string());
    let framed = events.flat_map(move |event| {
        let quoted = |text: &str| serde_json::to_string(text).expect("a string serialises");
        let carriers = match &event {
            Event::Text(text) => vec![format!(r#"{{"contentBlockDelta": {{"delta": {{"text": {}}}, "contentBlockIndex": 0}}}}"#, quoted(text))],
            Event::End(reason) => vec![
                r#"{"contentBlockStop": {"contentBlockIndex": 0}}"#.to_string(),
                format!(r#"{{"messageStop": {{"stopReason": {}}}}}"#, quoted(reason)),
            ],
            Event::Usage(usage) => vec![format!(
                r#"{{"metadata": {{"usage": {{"inputTokens": {}, "outputTokens": {}, "totalTokens": {}}}, "metrics": {{"latencyMs": {}}}}}}}"#,
                usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.latency_ms
            )],
            _ => Vec::new(),
        };
        stream::iter(carriers.into_iter().map(frame).chain([event]))
    });
    stream::iter([start]).chain(framed).boxed()
}

/// The runtime session an agent runtime names in its answer: the caller's,
/// or a new one, as AgentCore makes when the request has none.
fn runtime_session_id(call: &ModelCall) -> String {
    call.session_id.clone().unwrap_or_else(|| format!("{:032x}-echo", fastrand::u128(..)))
}

impl EchoRule {
    fn matches(&self, call: &ModelCall) -> bool {
        let contains = |text: &str, part: &str| text.to_lowercase().contains(&part.to_lowercase());
        let system =
            self.system.as_ref().is_none_or(|part| call.system.as_deref().is_some_and(|system| contains(system, part)));
        let latest = latest_user_text(call).unwrap_or_default();
        let user = self.user.is_empty() || self.user.iter().any(|word| contains(&latest, word));
        let after_tool = self.after_tool.is_none_or(|expected| ends_with_tool_result(call) == expected);
        system && user && after_tool
    }
}

fn block_text(block: &Content) -> String {
    match block {
        Content::Text(text) => text.clone(),
        Content::ToolCall(call) => call.input.to_string(),
        Content::ToolResult { content, .. } => content.clone(),
        Content::Reasoning { .. } | Content::RedactedReasoning(_) => String::new(),
    }
}

/// The latest user message's text (tool results are not text).
fn latest_user_text(call: &ModelCall) -> Option<String> {
    user_texts(call).next_back()
}

/// The text of each user message that has some, oldest first.
fn user_texts(call: &ModelCall) -> impl DoubleEndedIterator<Item = String> + '_ {
    call.messages.iter().filter(|turn| turn.role == Role::User).filter_map(|turn| {
        let texts: Vec<&str> = turn
            .content
            .iter()
            .filter_map(|block| match block {
                Content::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect();
        (!texts.is_empty()).then(|| texts.concat())
    })
}

fn tool_results(call: &ModelCall) -> impl Iterator<Item = &str> {
    call.messages.iter().flat_map(|turn| &turn.content).filter_map(|block| match block {
        Content::ToolResult { content, .. } => Some(content.as_str()),
        _ => None,
    })
}

fn ends_with_tool_result(call: &ModelCall) -> bool {
    call.messages
        .last()
        .is_some_and(|turn| turn.content.iter().any(|block| matches!(block, Content::ToolResult { .. })))
}

fn fill(reply: &str, call: &ModelCall) -> String {
    reply
        .replace("{{user}}", &latest_user_text(call).unwrap_or_default())
        .replace("{{firstUser}}", &user_texts(call).next().unwrap_or_default())
        .replace("{{toolResult}}", tool_results(call).last().unwrap_or_default())
}

/// Splits text the way a model's tokens fall: each token is optional
/// leading white space and at most four other characters, so words, e-mail
/// addresses and numbers arrive in pieces, as they do from real models.
pub fn tokenize(text: &str) -> Vec<String> {
    const MAX_TOKEN_CHARS: usize = 4;
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut visible = 0;
    for c in text.chars() {
        let starts_new = if c.is_whitespace() { visible > 0 } else { visible == MAX_TOKEN_CHARS };
        if starts_new {
            tokens.push(std::mem::take(&mut current));
            visible = 0;
        }
        current.push(c);
        if !c.is_whitespace() {
            visible += 1;
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_no_pace_it_still_streams_one_token_at_a_time() {
        let echo =
            EchoProvider::new(&EchoSettings { delay_ms: 0, text: Some("one two three".into()), script: None }).unwrap();
        let mut events =
            echo.start(&call(None, vec![ModelMessage { role: Role::User, content: vec![Content::Text("x".into())] }]));
        assert_eq!(events.next().await, Some(Event::Text("one".into())));
        assert!(futures::poll!(events.next()).is_pending(), "the next token waits its turn: no burst");
        assert_eq!(events.next().await, Some(Event::Text(" two".into())));
    }
    use crate::conversation::ModelMessage;
    use crate::providers::ModelOptions;

    #[test]
    fn tokens_put_back_together_are_the_text() {
        let text = "Hello there,  bob@example.com\n4111 1111";
        let tokens = tokenize(text);
        assert_eq!(tokens.concat(), text);
        assert_eq!(tokens[..4], ["Hell", "o", " ther", "e,"]);
        assert!(tokens.iter().all(|token| token.trim().chars().count() <= 4));
    }

    #[test]
    fn empty_text_has_no_tokens() {
        assert!(tokenize("").is_empty());
    }

    fn call(system: Option<&str>, messages: Vec<ModelMessage>) -> ModelCall {
        ModelCall {
            system: system.map(Into::into),
            messages,
            tools: Vec::new(),
            options: ModelOptions::default(),
            user_id: None,
            session_id: None,
        }
    }

    fn rules(json: &str) -> Vec<EchoRule> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_first_matching_rule_answers() {
        let script = rules(
            r#"[{"system":"CLASSIFY","user":["refund","invoice"],"reply":"billing"},
                {"afterTool":true,"reply":"got {{toolResult}}"},
                {"user":["report"],"toolUse":{"name":"run","input":{"n":1}}}]"#,
        );
        let user = |text: &str| ModelMessage { role: Role::User, content: vec![Content::Text(text.into())] };
        let chosen = |call: &ModelCall| script.iter().position(|rule| rule.matches(call));
        assert_eq!(chosen(&call(Some("Please classify this"), vec![user("An INVOICE is wrong")])), Some(0));
        assert_eq!(chosen(&call(None, vec![user("An invoice is wrong")])), None);
        assert_eq!(chosen(&call(None, vec![user("the weekly report")])), Some(2));
        let result = ModelMessage {
            role: Role::User,
            content: vec![Content::ToolResult { id: "t".into(), content: "42 rows".into(), is_error: false }],
        };
        let after = call(None, vec![user("the weekly report"), result]);
        assert_eq!(chosen(&after), Some(1));
        assert_eq!(fill("got {{toolResult}} for {{user}}", &after), "got 42 rows for the weekly report");
        assert_eq!(fill("first: {{firstUser}}", &after), "first: the weekly report");
    }
}
