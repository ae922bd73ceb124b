//! `llm-router`: asks the model which agent should answer, as the
//! multi-agent orchestrator's classifier does: the agents' descriptions and
//! the conversation so far go in the system prompt, the request is the user
//! message, and the model answers `{"agent":…,"confidence":…,"reason":…}`.
//!
//! Models do not always answer as asked, so the answer is read leniently:
//! the first JSON object in the text (fenced or not, keys `agent`,
//! `selectedAgent` or `name`; a confidence as a number or a string), else the
//! first agent the text names. Settings: `{"fallback": "<agent>"}` for an
//! answer that names none (otherwise that is an error), and `model` (model
//! options for the classification call, e.g. a smaller model).

use serde::Deserialize;
use serde_json::{Map, Value};
use streamhost_guest::model::{self, ModelMessage, ModelRequest};
use streamhost_guest::router::{AgentCard, Choice, RouteRequest, Router};
use streamhost_guest::{ErrorInfo, Message, Role, error, history};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    fallback: Option<String>,
    #[serde(default)]
    model: Option<Map<String, Value>>,
}

pub struct LlmRouter;

impl Router for LlmRouter {
    fn select(request: RouteRequest) -> Result<Choice, ErrorInfo> {
        let settings: Settings = serde_json::from_str(&streamhost_guest::settings())
            .map_err(|problem| error("invalid_config", format!("llm-router settings: {problem}")))?;
        let question = request
            .messages
            .iter()
            .filter(|message| message.role == Role::User)
            .map(|message| message.content.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let mut call =
            ModelRequest::new(vec![ModelMessage::user(question)]).system(prompt(&request.agents, &history::messages()));
        if let Some(options) = &settings.model {
            call = call.options(Value::Object(options.clone()).to_string());
        }
        let reply = model::call(&call, |_| {})?;
        // The decision is the JSON outside the model's reasoning, which may
        // weigh (and write out) other choices first.
        match parse_choice(&reply.answer(), &request.agents) {
            Some(choice) => Ok(choice),
            None => match settings.fallback {
                Some(agent) => {
                    Ok(Choice { agent, confidence: 0.0, reason: "the model named no agent; the fallback agent".into() })
                }
                None => {
                    Err(error("unrecognized_choice", format!("the model's answer names no agent: {:.200}", reply.text)))
                }
            },
        }
    }
}

/// The classifier's instructions: the agents, the conversation, the answer's
/// shape.
fn prompt(agents: &[AgentCard], history: &[Message]) -> String {
    let mut prompt = String::from(
        "You are a router. Choose the agent best suited to answer the user's latest message, \
         taking the conversation so far into account: a follow-up usually stays with the same agent.\n\nAgents:\n",
    );
    for agent in agents {
        prompt.push_str(&format!("- {}: {}\n", agent.name, agent.description));
    }
    if !history.is_empty() {
        prompt.push_str("\nConversation so far:\n");
        for message in history {
            let who = if message.role == Role::User { "user" } else { "assistant" };
            prompt.push_str(&format!("{who}: {}\n", message.content));
        }
    }
    prompt.push_str(
        "\nAnswer with one JSON object and nothing else: \
         {\"agent\": \"<agent name>\", \"confidence\": <0 to 1>, \"reason\": \"<why, in a few words>\"}",
    );
    prompt
}

#[derive(Deserialize)]
struct Answer {
    #[serde(alias = "selectedAgent", alias = "selected_agent", alias = "name")]
    agent: String,
    #[serde(default)]
    confidence: Option<Value>,
    #[serde(default, alias = "rationale", alias = "reasoning")]
    reason: Option<String>,
}

/// The choice in a model's answer: its first JSON object, else the first
/// agent it names. An agent named in JSON but not among `agents` is kept as
/// named (the host then reports it), unless only its case differs.
fn parse_choice(text: &str, agents: &[AgentCard]) -> Option<Choice> {
    if let Some(answer) = first_answer(text) {
        let agent = agents
            .iter()
            .find(|card| card.name.eq_ignore_ascii_case(answer.agent.trim()))
            .map_or(answer.agent.trim().to_string(), |card| card.name.clone());
        let confidence = match answer.confidence {
            Some(Value::Number(number)) => number.as_f64(),
            Some(Value::String(text)) => text
                .trim()
                .trim_end_matches('%')
                .parse::<f64>()
                .ok()
                .map(|value| if value > 1.0 { value / 100.0 } else { value }),
            _ => None,
        };
        return Some(Choice {
            agent,
            confidence: confidence.unwrap_or(0.5).clamp(0.0, 1.0),
            reason: answer.reason.unwrap_or_default(),
        });
    }
    let lower = text.to_lowercase();
    let named = agents
        .iter()
        .filter_map(|card| find_word(&lower, &card.name.to_lowercase()).map(|at| (at, card)))
        .min_by_key(|(at, _)| *at);
    named.map(|(_, card)| Choice {
        agent: card.name.clone(),
        confidence: 0.5,
        reason: text.trim().chars().take(200).collect(),
    })
}

fn first_answer(text: &str) -> Option<Answer> {
    text.match_indices('{')
        .find_map(|(at, _)| serde_json::Deserializer::from_str(&text[at..]).into_iter::<Answer>().next()?.ok())
}

/// Where `word` stands in `text` as a word of its own.
fn find_word(text: &str, word: &str) -> Option<usize> {
    text.match_indices(word).map(|(at, _)| at).find(|&at| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

streamhost_guest::export_router!(LlmRouter);

#[cfg(test)]
mod tests {
    use super::*;

    fn agents() -> Vec<AgentCard> {
        vec![
            AgentCard { name: "billing".into(), description: "Invoices".into() },
            AgentCard { name: "tech".into(), description: "Crashes".into() },
        ]
    }

    fn parsed(text: &str) -> Option<(String, f64, String)> {
        parse_choice(text, &agents()).map(|choice| (choice.agent, choice.confidence, choice.reason))
    }

    #[test]
    fn reads_the_json_answer_wherever_it_is() {
        assert_eq!(
            parsed(r#"{"agent":"tech","confidence":0.8,"reason":"a crash"}"#),
            Some(("tech".into(), 0.8, "a crash".into()))
        );
        let fenced = "Sure! Here you go:\n```json\n{ \"selectedAgent\": \"Billing\", \"confidence\": \"90%\" }\n```";
        assert_eq!(parsed(fenced), Some(("billing".into(), 0.9, String::new())));
        assert_eq!(parsed(r#"{not json} then {"name":"tech"}"#).unwrap().0, "tech");
    }

    #[test]
    fn the_decision_is_read_outside_the_reasoning() {
        let reply = model::Reply {
            text: r#"<think>It could be {"agent":"tech"}, but no.</think>{"agent":"billing","confidence":0.9}"#.into(),
            ..Default::default()
        };
        assert_eq!(parsed(&reply.answer()).unwrap().0, "billing");
    }

    #[test]
    fn falls_back_to_a_named_agent_and_keeps_unknown_names() {
        assert_eq!(parsed("I would send this to tech, not billing.").unwrap().0, "tech");
        assert_eq!(parsed("technically, nobody").map(|choice| choice.0), None);
        assert_eq!(parsed(r#"{"agent":"astrology"}"#).unwrap().0, "astrology");
    }

    #[test]
    fn the_prompt_lists_agents_and_the_conversation() {
        let prompt = prompt(&agents(), &[Message::user("my invoice"), Message::assistant("Let me check.")]);
        assert!(prompt.contains("- billing: Invoices\n- tech: Crashes\n"));
        assert!(prompt.contains("user: my invoice\nassistant: Let me check.\n"));
    }
}
