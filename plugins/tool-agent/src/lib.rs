//! `tool-agent`: a model tool-use loop. The model gets the conversation and
//! the tools; when it asks for tools, the plugin runs them (reporting each as
//! a `status` event), sends the results back, and asks again, until the model
//! ends its turn. The model's text streams downstream as it arrives.
//!
//! Tools: `calculator` (`{"expression": "2 * (3 + 4)"}`) and `lookup_order`
//! (`{"orderId": "A1"}`, answered from the `orders` setting).
//! Settings: `{"maxRounds": 8, "orders": {"A1": "shipped on Monday"}}`.

mod calculator;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use streamhost_guest::agent::{Agent, AgentRequest, emit, emit_status, emit_text};
use streamhost_guest::model::{self, Content, ModelMessage, ModelRequest, ToolCall, ToolResult, ToolSpec};
use streamhost_guest::{ErrorInfo, Event, Role, Usage, error, history};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Settings {
    #[serde(default = "default_max_rounds")]
    max_rounds: u32,
    #[serde(default)]
    orders: BTreeMap<String, String>,
}

fn default_max_rounds() -> u32 {
    8
}

pub struct ToolAgent;

impl Agent for ToolAgent {
    fn handle(request: AgentRequest) -> Result<String, ErrorInfo> {
        let settings: Settings = serde_json::from_str(&streamhost_guest::settings())
            .map_err(|problem| error("invalid_config", format!("tool-agent settings: {problem}")))?;
        let mut messages = model::conversation(&history::messages(), &request.messages);
        let mut usage: Option<Usage> = None;
        for _ in 0..settings.max_rounds {
            let mut call = ModelRequest::new(messages.clone()).tools(tools());
            call.system = request.system.clone();
            let reply = model::call(&call, emit_text)?;
            usage = add(usage, reply.usage);
            if reply.tool_calls.is_empty() {
                // The turn's usage is every round's.
                if let Some(usage) = usage {
                    emit(Event::Usage(usage));
                }
                return Ok(reply.stop_reason);
            }
            let mut asked: Vec<Content> = Vec::new();
            if !reply.text.is_empty() {
                asked.push(Content::Text(reply.text.clone()));
            }
            asked.extend(reply.tool_calls.iter().cloned().map(Content::ToolCall));
            messages.push(ModelMessage { role: Role::Assistant, content: asked });
            let results = reply.tool_calls.iter().map(|call| Content::ToolResult(run(call, &settings))).collect();
            messages.push(ModelMessage { role: Role::User, content: results });
        }
        Err(error(
            "tool_loop_limit",
            format!("the model still asked for tools after {} rounds (setting `maxRounds`)", settings.max_rounds),
        ))
    }
}

/// The usage of the rounds so far and of one more; none while no round
/// reported any.
fn add(total: Option<Usage>, round: Option<Usage>) -> Option<Usage> {
    let (Some(total), Some(round)) = (total, round) else { return total.or(round) };
    Some(Usage {
        input_tokens: total.input_tokens + round.input_tokens,
        output_tokens: total.output_tokens + round.output_tokens,
        total_tokens: total.total_tokens + round.total_tokens,
        latency_ms: total.latency_ms + round.latency_ms,
        cache_read_input_tokens: total.cache_read_input_tokens + round.cache_read_input_tokens,
        cache_write_input_tokens: total.cache_write_input_tokens + round.cache_write_input_tokens,
    })
}

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "calculator".into(),
            description: "Evaluates an arithmetic expression with + - * / and parentheses.".into(),
            input_schema:
                json!({"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]})
                    .to_string(),
        },
        ToolSpec {
            name: "lookup_order".into(),
            description: "Looks up the status of an order by its id.".into(),
            input_schema:
                json!({"type": "object", "properties": {"orderId": {"type": "string"}}, "required": ["orderId"]})
                    .to_string(),
        },
    ]
}

/// Runs one tool call; a failure is a result the model reads, not an error
/// of the turn.
fn run(call: &ToolCall, settings: &Settings) -> ToolResult {
    emit_status(format!("running {}", call.name));
    let input: Value = serde_json::from_str(&call.input).unwrap_or(Value::Null);
    let outcome = match call.name.as_str() {
        "calculator" => match input["expression"].as_str() {
            Some(expression) => calculator::evaluate(expression).map(|value| value.to_string()),
            None => Err("`expression` is missing".into()),
        },
        "lookup_order" => match input["orderId"].as_str() {
            Some(id) => settings.orders.get(id).cloned().ok_or_else(|| format!("no order {id}")),
            None => Err("`orderId` is missing".into()),
        },
        other => Err(format!("there is no tool `{other}`")),
    };
    let is_error = outcome.is_err();
    ToolResult { id: call.id.clone(), content: outcome.unwrap_or_else(|problem| problem), is_error }
}

streamhost_guest::export_agent!(ToolAgent);

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, input: Value) -> ToolCall {
        ToolCall { id: "t1".into(), name: name.into(), input: input.to_string() }
    }

    #[test]
    fn runs_tools_and_reports_their_failures_to_the_model() {
        let settings: Settings = serde_json::from_str(r#"{"orders":{"A1":"shipped"}}"#).unwrap();
        assert_eq!(run(&call("calculator", json!({"expression": "2 * (3 + 4)"})), &settings).content, "14");
        assert_eq!(run(&call("lookup_order", json!({"orderId": "A1"})), &settings).content, "shipped");
        let missing = run(&call("lookup_order", json!({"orderId": "B2"})), &settings);
        assert_eq!((missing.content.as_str(), missing.is_error), ("no order B2", true));
        assert!(run(&call("weather", json!({})), &settings).is_error);
        assert_eq!(settings.max_rounds, 8);
    }
}
