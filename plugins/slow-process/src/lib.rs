//! `slow-process`: a long-running tool that reports its progress. It works
//! through its steps one at a time, sending a `status` event as each begins,
//! and ends with its result, a JSON object, as the answer's text. Formatted by
//! `ndjson-status`, a caller sees one status line per step as it happens, then
//! the result.
//!
//! Settings: `{"steps": ["Fetching data", "Analysing", "Writing the report"],
//! "stepMs": 400}`. The work here is simulated (a pause per step); the shape
//! is that of any tool with progress to report.

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

fn result(task: &str, steps: &[String]) -> String {
    json!({ "task": task, "steps": steps.len(), "status": "done" }).to_string()
}

streamhost_guest::export_agent!(SlowProcess);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_is_a_json_object() {
        let result: serde_json::Value = serde_json::from_str(&result("weekly report", &default_steps())).unwrap();
        assert_eq!(result, json!({ "task": "weekly report", "steps": 3, "status": "done" }));
    }
}
