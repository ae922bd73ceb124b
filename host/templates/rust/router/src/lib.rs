//! {{name}}: a streamhost router. It picks the agent whose name the last
//! message mentions, else the pipeline's first agent. Change `select` to
//! make it yours (it may also call a model: `streamhost::plugin::model`);
//! `wit/orchestration.wit` is the contract.

wit_bindgen::generate!({ path: "wit", world: "router" });

use exports::streamhost::plugin::selector::{Choice, Guest, RouteRequest};
use streamhost::plugin::types::ErrorInfo;

struct Plugin;

impl Guest for Plugin {
    fn select(request: RouteRequest) -> Result<Choice, ErrorInfo> {
        let last = request.messages.last().map(|message| message.content.to_lowercase()).unwrap_or_default();
        if let Some(agent) = request.agents.iter().find(|agent| last.contains(&agent.name.to_lowercase())) {
            return Ok(Choice { agent: agent.name.clone(), confidence: 1.0, reason: "the message names it".into() });
        }
        let first = request.agents.first().ok_or_else(|| ErrorInfo {
            code: "no_agents".into(),
            message: "the pipeline has no agents to choose from".into(),
        })?;
        Ok(Choice { agent: first.name.clone(), confidence: 0.5, reason: "the first agent, by default".into() })
    }
}

export!(Plugin);
