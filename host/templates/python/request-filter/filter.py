"""{{name}}: a streamhost request filter in Python. It takes a caller's
{"question": "…"} and maps it to the host's request, or refuses a body
without one. Change `filter` to make it yours; wit/inbound.wit is the
contract."""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import filter as api
from wit_world.imports import types


class Filter(exports.Filter):
    def filter(self, request):
        try:
            question = json.loads(bytes(request.body) or b"{}").get("question")
        except (ValueError, AttributeError):
            question = None
        if not isinstance(question, str):
            error = types.ErrorInfo("missing_question", 'send {"question": "…"}')
            raise Err(api.Refusal(400, error, []))
        return api.PipelineRequest(
            messages=[types.ModelMessage(types.Role.USER, [types.Content_Text(question)])],
            system=None,
            user_id=None,
            session_id=None,
            model=None,
            tools=[],
            config=None,
            chain=None,
        )
