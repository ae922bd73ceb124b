"""{{name}}: a streamhost transform in Python. It upper-cases the text of
the stream and passes every other event on as it came. Change `push` to
make it yours; wit/plugin.wit is the contract."""

from wit_world.exports import transformer
from wit_world.imports import types


class Transform(transformer.Transform):
    @classmethod
    def open(cls, context):
        # The request's settings for this plugin: wit_world.imports.config.settings() (JSON).
        return cls()

    def content_type(self):
        # None: not a formatter; the host (or a later plugin) encodes.
        return None

    def push(self, events):
        return [types.Event_Text(event.value.upper()) if isinstance(event, types.Event_Text) else event for event in events]

    def finish(self):
        return []
