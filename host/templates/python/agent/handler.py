"""{{name}}: a streamhost agent in Python. It says it is thinking, asks the
model with the conversation, and streams the answer downstream. Change
`handle` to make it yours; wit/orchestration.wit is the contract."""

from wit_world import exports
from wit_world.imports import emit, model, types


class Handler(exports.Handler):
    def handle(self, request):
        emit.emit(types.Event_Status(f"{request.agent} is thinking"))
        messages = [types.ModelMessage(message.role, [types.Content_Text(message.content)]) for message in request.messages]
        stream = model.start(model.ModelRequest(request.system, messages, [], None))
        stop_reason = "end_turn"
        while (event := stream.next()) is not None:
            if isinstance(event, model.ModelEvent_Text):
                emit.emit(types.Event_Text(event.value))
            elif isinstance(event, model.ModelEvent_End):
                stop_reason = event.value
            elif isinstance(event, model.ModelEvent_Usage):
                emit.emit(types.Event_Usage(event.value))
        return stop_reason
