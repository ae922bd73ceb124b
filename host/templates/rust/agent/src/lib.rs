//! {{name}}: a streamhost agent. It says it is thinking, asks the model
//! with the conversation, and streams the answer downstream. Change
//! `handle` to make it yours (tools: `model-request.tools`);
//! `wit/orchestration.wit` is the contract.

wit_bindgen::generate!({ path: "wit", world: "agent" });

use exports::streamhost::plugin::handler::{AgentRequest, Guest};
use streamhost::plugin::emit::emit;
use streamhost::plugin::model::{Content, ModelEvent, ModelMessage, ModelRequest, start};
use streamhost::plugin::types::{ErrorInfo, Event};

struct Plugin;

impl Guest for Plugin {
    /// Returns the model's stop reason; its text went downstream with `emit`.
    fn handle(request: AgentRequest) -> Result<String, ErrorInfo> {
        emit(&Event::Status(format!("{} is thinking", request.agent)));
        let messages = request
            .messages
            .iter()
            .map(|message| ModelMessage { role: message.role, content: vec![Content::Text(message.content.clone())] })
            .collect();
        let stream = start(&ModelRequest { system: request.system.clone(), messages, tools: Vec::new(), options: None })?;
        let mut stop_reason = String::from("end_turn");
        while let Some(event) = stream.next()? {
            match event {
                ModelEvent::Text(text) => emit(&Event::Text(text)),
                ModelEvent::End(reason) => stop_reason = reason,
                ModelEvent::Usage(usage) => emit(&Event::Usage(usage)),
                ModelEvent::ToolCall(_) => {}
            }
        }
        Ok(stop_reason)
    }
}

export!(Plugin);
