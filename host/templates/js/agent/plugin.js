// {{name}}: a streamhost agent in JavaScript. It says it is thinking, asks
// the model with the conversation, and streams the answer downstream.
// Change `handle` to make it yours; wit/orchestration.wit is the contract.

import { emit } from "streamhost:plugin/emit@0.1.0";
import { start } from "streamhost:plugin/model@0.1.0";

function handle(request) {
  emit({ tag: "status", val: `${request.agent} is thinking` });
  const messages = request.messages.map((message) => ({
    role: message.role,
    content: [{ tag: "text", val: message.content }],
  }));
  const stream = start({ system: request.system, messages, tools: [], options: undefined });
  let stopReason = "end_turn";
  for (let event = stream.next(); event !== undefined; event = stream.next()) {
    if (event.tag === "text") emit({ tag: "text", val: event.val });
    else if (event.tag === "end") stopReason = event.val;
    else if (event.tag === "usage") emit({ tag: "usage", val: event.val });
  }
  return stopReason;
}

export const handler = { handle };
