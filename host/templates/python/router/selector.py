"""{{name}}: a streamhost router in Python. It picks the agent whose name
the last message mentions, else the pipeline's first agent. Change `select`
to make it yours; wit/orchestration.wit is the contract."""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import selector
from wit_world.imports import types


class Selector(exports.Selector):
    def select(self, request):
        last = request.messages[-1].content.lower() if request.messages else ""
        for agent in request.agents:
            if agent.name.lower() in last:
                return selector.Choice(agent.name, 1.0, "the message names it")
        if not request.agents:
            raise Err(types.ErrorInfo("no_agents", "the pipeline has no agents to choose from"))
        return selector.Choice(request.agents[0].name, 0.5, "the first agent, by default")
