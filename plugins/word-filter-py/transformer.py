"""word-filter-py: masks listed words in a stream's text, even when a word
is split across deltas ("da" + "rn"). A streamhost transform plugin in
Python, built with componentize-py against ../../wit (see README.md). The
module is named after the WIT interface it implements, `transformer`: that
is where componentize-py looks for the `Transform` class.

Settings (the request's `config.word-filter-py`), all optional:

    {"words": ["darn", "heck"], "mask": "*"}

`words` are matched whole and case-insensitively; each match is replaced by
`mask` repeated to the word's length. Other events pass through, in order.
"""

import json
import re

from componentize_py_types import Err
from wit_world.exports import transformer
from wit_world.imports import config, types

DEFAULT_WORDS = ["darn", "heck"]


class Transform(transformer.Transform):
    def __init__(self, words, mask):
        self.pattern = re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE) if words else None
        self.mask = mask
        # Text not sent yet: a trailing run of word characters that may be
        # the first half of a listed word.
        self.pending = ""

    @classmethod
    def open(cls, context):
        try:
            settings = json.loads(config.settings())
            words = settings.get("words", DEFAULT_WORDS)
            mask = settings.get("mask", "*")
        except (ValueError, AttributeError) as error:
            raise Err(types.ErrorInfo("invalid_config", f"the settings are not a JSON object: {error}"))
        if not isinstance(words, list) or not all(isinstance(word, str) and word for word in words):
            raise Err(types.ErrorInfo("invalid_config", "`words` must be a list of non-empty strings"))
        if not isinstance(mask, str) or len(mask) != 1:
            raise Err(types.ErrorInfo("invalid_config", "`mask` must be one character"))
        return cls(words, mask)

    def content_type(self):
        return None

    def push(self, events):
        out = []
        for event in events:
            if isinstance(event, types.Event_Text):
                text = self.pending + event.value
                cut = _last_word_start(text)
                self.pending = text[cut:]
                if cut:
                    out.append(types.Event_Text(self._masked(text[:cut])))
            else:
                # Anything else ends the text that came before it.
                out.extend(self._flush())
                out.append(event)
        return out

    def finish(self):
        return self._flush()

    def _flush(self):
        text, self.pending = self.pending, ""
        return [types.Event_Text(self._masked(text))] if text else []

    def _masked(self, text):
        if self.pattern is None:
            return text
        return self.pattern.sub(lambda match: self.mask * len(match.group(0)), text)


def _last_word_start(text):
    """Where the trailing run of word characters begins (len(text) if none)."""
    end = len(text)
    while end > 0 and (text[end - 1].isalnum() or text[end - 1] == "_"):
        end -= 1
    return end
