"""{{name}}: a streamhost transform in Python. It upper-cases the text of
the stream, passes every other event on as it came, and at the end adds a
metadata event: how many text events it upper-cased. Change `push` and
`finish` to make it yours; wit/plugin.wit is the contract."""

import json

from wit_world.exports import transformer
from wit_world.imports import types


class Transform(transformer.Transform):
    @classmethod
    def open(cls, context):
        # The request's settings for this plugin: wit_world.imports.config.settings() (JSON).
        return cls()

    def __init__(self):
        self.shouted = 0  # the text events upper-cased so far

    def content_type(self):
        # None: not a formatter; the host (or a later plugin) encodes.
        return None

    # Text comes in pieces as the model makes them: a word can be split
    # across two events, so keep what spans them (upper-casing needs none).
    def push(self, events):
        out = []
        for event in events:
            if isinstance(event, types.Event_Text):
                self.shouted += 1
                event = types.Event_Text(event.value.upper())
            out.append(event)
        return out

    def finish(self):
        # At the end: anything held back, and closing events. They go after all
        # that push returned (in the fixture, after the model's end and usage),
        # through the next plugin's push: a formatter such as ndjson writes them
        # before its complete line. The other kinds: types.Event_Status(message),
        # Event_Metadata(json_text), Event_Usage(types.Usage(...)), Event_Raw(bytes),
        # Event_End(stop_reason), Event_Error(types.ErrorInfo(code, message)).
        return [types.Event_Metadata(json.dumps({"shouted": self.shouted}, separators=(",", ":")))]
