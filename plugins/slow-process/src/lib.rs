//! `slow-process`: a long-running tool that reports its progress. It works
//! through its steps one at a time, sending a `status` event as each begins,
//! and ends with its result, a JSON object, as the answer's text. Formatted by
//! `ndjson-status`, a caller sees one status line per step as it happens, then
//! the result.
//!
//! Settings: `{"steps": ["Fetching data", "Analysing", "Writing the report"],
//! "stepMs": 400}`. The work here is simulated (a pause per step); the shape
//! is that of any tool with progress to report.
//!
//! Called as seed 004's `slow_process(message, steps)` tool, with its
//! arguments as the prompt (`{"message": "hello", "steps": 5}`, as
//! `seed004-tool` maps them), it does what that tool does: `Starting:
//! hello`, then `Step 1/5 complete...` to `Step 5/5 complete...`, and the
//! sentence `Processed 'hello' in 5 steps` as its result. The caller's
//! `steps` (1 to 100) wins over the configured ones.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use streamhost_guest::agent::{Agent, AgentRequest, emit_status, emit_text};
use streamhost_guest::{ErrorInfo, Role, error};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Settings {
    #[serde(default = "default_steps")]
    steps: Vec<String>,
    #[serde(default = "default_step_ms")]
    step_ms: u64,
}

fn default_steps() -> Vec<String> {
    ["Fetching the data", "Analysing it", "Writing the report"].map(String::from).to_vec()
}

fn default_step_ms() -> u64 {
    400
}

pub struct SlowProcess;

impl Agent for SlowProcess {
    fn handle(request: AgentRequest) -> Result<String, ErrorInfo> {
        let settings: Settings = serde_json::from_str(&streamhost_guest::settings())
            .map_err(|problem| error("invalid_config", format!("slow-process settings: {problem}")))?;
        let task = request
            .messages
            .iter()
            .rev()
            .find(|message| message.role == Role::User)
            .map(|message| message.content.clone())
            .unwrap_or_default();
        if let Some(call) = ToolCall::of(&task) {
            return call.run(settings.step_ms);
        }
        let total = settings.steps.len();
        for (index, step) in settings.steps.iter().enumerate() {
            emit_status(format!("{step} ({}/{total})", index + 1));
            // A pause in the host, not a busy loop: the plugin's CPU
            // deadline does not count it.
            std::thread::sleep(Duration::from_millis(settings.step_ms));
        }
        emit_text(&result(&task, &settings.steps));
        Ok("end_turn".into())
    }
}

/// Seed 004's tool call: its arguments, from a prompt that is their JSON.
#[derive(Debug, PartialEq, Deserialize)]
struct ToolCall {
    message: String,
    steps: u32,
}

/// The most steps a caller may ask for: each is a pause of `stepMs`.
const MAX_STEPS: u32 = 100;

impl ToolCall {
    /// The call `prompt` makes, where it is `{"message": …, "steps": …}`
    /// (other arguments aside).
    fn of(prompt: &str) -> Option<Self> {
        let call: Self = serde_json::from_str::<serde_json::Value>(prompt).ok().and_then(|args| {
            serde_json::from_value(json!({ "message": args.get("message")?, "steps": args.get("steps")? })).ok()
        })?;
        (1..=MAX_STEPS).contains(&call.steps).then_some(call)
    }

    /// Reports each step as the seed's tool does, and answers its sentence.
    fn run(&self, step_ms: u64) -> Result<String, ErrorInfo> {
        emit_status(format!("Starting: {}", self.message));
        for step in 1..=self.steps {
            std::thread::sleep(Duration::from_millis(step_ms));
            emit_status(format!("Step {step}/{} complete...", self.steps));
        }
        emit_text(&format!("Processed '{}' in {} steps", self.message, self.steps));
        Ok("end_turn".into())
    }
}

fn result(task: &str, steps: &[String]) -> String {
    json!({ "task": task, "steps": steps.len(), "status": "done" }).to_string()
}

streamhost_guest::export_agent!(SlowProcess);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_call_takes_the_callers_arguments() {
        let call = |prompt: &str| ToolCall::of(prompt);
        assert_eq!(call(r#"{"message":"hello","steps":5}"#), Some(ToolCall { message: "hello".into(), steps: 5 }));
        assert_eq!(
            call(r#"{"steps":2,"message":"hi","verbose":true}"#),
            Some(ToolCall { message: "hi".into(), steps: 2 })
        );
        for not_a_call in [
            "hello",
            r#"{"message":"hi"}"#,
            r#"{"message":"hi","steps":0}"#,
            r#"{"message":"hi","steps":101}"#,
            r#"{"message":1,"steps":2}"#,
            r#"{"message":"hi","steps":"2"}"#,
        ] {
            assert_eq!(call(not_a_call), None, "{not_a_call}");
        }
    }

    #[test]
    fn the_result_is_a_json_object() {
        let result: serde_json::Value = serde_json::from_str(&result("weekly report", &default_steps())).unwrap();
        assert_eq!(result, json!({ "task": "weekly report", "steps": 3, "status": "done" }));
    }
}
