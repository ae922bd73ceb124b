// {{name}}: a streamhost router in JavaScript. It picks the agent whose
// name the last message mentions, else the pipeline's first agent. Change
// `select` to make it yours; wit/orchestration.wit is the contract.

function select(request) {
  const last = (request.messages.at(-1)?.content ?? "").toLowerCase();
  const named = request.agents.find((agent) => last.includes(agent.name.toLowerCase()));
  if (named) {
    return { agent: named.name, confidence: 1.0, reason: "the message names it" };
  }
  if (request.agents.length === 0) {
    const error = new Error("the pipeline has no agents to choose from");
    error.payload = { code: "no_agents", message: error.message };
    throw error;
  }
  return { agent: request.agents[0].name, confidence: 0.5, reason: "the first agent, by default" };
}

export const selector = { select };
