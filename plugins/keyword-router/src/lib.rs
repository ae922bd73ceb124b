//! `keyword-router`: picks the agent whose keywords the request mentions
//! most, with no model call. A follow-up that mentions none ("and when will
//! it arrive?") stays with the agent of the previous turn.
//!
//! Settings: `{"keywords": {"<agent>": ["word", …]}, "fallback": "<agent>"}`.
//! An agent without keywords is matched by the longer words of its
//! description. With no match and no earlier turn, `fallback` (else the first
//! agent) answers.

use std::collections::BTreeMap;

use serde::Deserialize;
use streamhost_guest::router::{AgentCard, Choice, RouteRequest, Router};
use streamhost_guest::{ErrorInfo, Role, error, history};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    keywords: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    fallback: Option<String>,
}

pub struct KeywordRouter;

impl Router for KeywordRouter {
    fn select(request: RouteRequest) -> Result<Choice, ErrorInfo> {
        let settings: Settings = serde_json::from_str(&streamhost_guest::settings())
            .map_err(|problem| error("invalid_config", format!("keyword-router settings: {problem}")))?;
        let text: String = request
            .messages
            .iter()
            .filter(|message| message.role == Role::User)
            .map(|message| message.content.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        choose(&settings, &request.agents, &text, history::last_agent())
    }
}

fn choose(
    settings: &Settings,
    agents: &[AgentCard],
    text: &str,
    last_agent: Option<String>,
) -> Result<Choice, ErrorInfo> {
    let words = words(text);
    let scored = agents.iter().map(|agent| {
        let keywords =
            settings.keywords.get(&agent.name).cloned().unwrap_or_else(|| description_words(&agent.description));
        let matched: Vec<String> = keywords.into_iter().filter(|keyword| mentions(&words, keyword)).collect();
        (agent, matched)
    });
    let (best, matched) = scored
        .clone()
        .max_by_key(|(agent, matched)| (matched.len(), std::cmp::Reverse(position(agents, agent))))
        .expect("a pipeline has agents");
    if !matched.is_empty() {
        let total: usize = scored.map(|(_, matched)| matched.len()).sum();
        return Ok(Choice {
            agent: best.name.clone(),
            confidence: matched.len() as f64 / total as f64,
            reason: format!("mentions {}", matched.join(", ")),
        });
    }
    if let Some(last) = last_agent.filter(|last| agents.iter().any(|agent| &agent.name == last)) {
        return Ok(Choice {
            reason: format!("no keyword; the conversation continues with {last}"),
            agent: last,
            confidence: 0.5,
        });
    }
    let fallback = settings.fallback.clone().unwrap_or_else(|| agents[0].name.clone());
    Ok(Choice { agent: fallback, confidence: 0.0, reason: "no keyword matched; the fallback agent".into() })
}

fn position(agents: &[AgentCard], agent: &AgentCard) -> usize {
    agents.iter().position(|card| card.name == agent.name).unwrap_or(usize::MAX)
}

/// The lower-cased words of `text`.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|word| !word.is_empty()).map(str::to_lowercase).collect()
}

/// Whether `words` holds `keyword` (its words in a row, any case; the last
/// with any ending: "refund" matches "refunds", "invoices" matches "invoice").
fn mentions(words: &[String], keyword: &str) -> bool {
    let wanted = self::words(keyword);
    let Some((last, rest)) = wanted.split_last() else { return false };
    let stem = stem(last);
    words.windows(wanted.len()).any(|window| window[..rest.len()] == *rest && window[rest.len()].starts_with(stem))
}

/// A word without its plural ending.
fn stem(word: &str) -> &str {
    let stripped = word.strip_suffix("es").or_else(|| word.strip_suffix('s')).unwrap_or(word);
    if stripped.chars().count() >= 3 { stripped } else { word }
}

fn description_words(description: &str) -> Vec<String> {
    words(description).into_iter().filter(|word| word.chars().count() >= 5).collect()
}

streamhost_guest::export_router!(KeywordRouter);

#[cfg(test)]
mod tests {
    use super::*;

    fn agents() -> Vec<AgentCard> {
        vec![
            AgentCard { name: "billing".into(), description: "Invoices, refunds and payments".into() },
            AgentCard { name: "tech".into(), description: "Crashes, errors and installation".into() },
        ]
    }

    fn settings(json: &str) -> Settings {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn picks_the_agent_mentioned_most() {
        let choice = choose(&Settings::default(), &agents(), "My invoice shows two refunds", None).unwrap();
        assert_eq!((choice.agent.as_str(), choice.confidence), ("billing", 1.0));
        assert_eq!(choice.reason, "mentions invoices, refunds");
        let choice =
            choose(&Settings::default(), &agents(), "The app crashes on installation, and my invoice", None).unwrap();
        assert_eq!(choice.agent, "tech");
    }

    #[test]
    fn configured_keywords_replace_the_description() {
        let settings = settings(r#"{"keywords":{"tech":["blue screen"]}}"#);
        assert_eq!(choose(&settings, &agents(), "I get a BLUE SCREEN", None).unwrap().agent, "tech");
        assert_eq!(choose(&settings, &agents(), "a blue sky", None).unwrap().agent, "billing");
    }

    #[test]
    fn a_follow_up_stays_with_the_last_agent_else_the_fallback() {
        let choice = choose(&Settings::default(), &agents(), "and when?", Some("tech".into())).unwrap();
        assert_eq!((choice.agent.as_str(), choice.confidence), ("tech", 0.5));
        assert_eq!(choose(&Settings::default(), &agents(), "and when?", Some("gone".into())).unwrap().agent, "billing");
        assert_eq!(choose(&settings(r#"{"fallback":"tech"}"#), &agents(), "hello", None).unwrap().agent, "tech");
    }
}
