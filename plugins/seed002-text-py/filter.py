"""seed002-text-py: a streamhost request filter in Python for seed 002's
client (Bedrock streaming on a custom Python Lambda runtime), which posts
the prompt as the raw body, plain text, and the function reads it as it is
(`{"prompt": event["body"]}`). Built with componentize-py against
../../wit (see README.md). The module is named after the interface the
world `request-filter` exports, `filter`: that is where componentize-py
looks for the `Filter` class.

The mapping: the body, decoded as UTF-8 (a leading byte-order mark and
trailing line breaks dropped, as `curl --data-binary @prompt.txt` or an
editor leaves them), is the one user message. Nothing else is set.

Refused, before anything else runs:
- an empty (or blank) body, or one that is not UTF-8: 400 `invalid_request`;
- a `content-type` that says the body is JSON (`application/json`,
  `application/*+json`) or a multipart form: 415
  `unsupported_media_type`. Such a body is a
  structured request sent to the wrong pipeline, not a prompt. No
  `content-type`, `text/plain` or `application/octet-stream` are fine.

No settings.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import filter as api
from wit_world.imports import types

# Media types whose body is a structured request, not a prompt.
# (`curl -d 'a prompt'` labels its body `application/x-www-form-urlencoded`,
# so that one is read as text.)
REFUSED_MEDIA_TYPES = ("application/json", "multipart/form-data")


class Filter(exports.Filter):
    def filter(self, request):
        return map_request(request)


def map_request(request):
    """The host's request for `request` (an `IncomingRequest`); raises
    `Err(Refusal)` when it is refused."""
    media_type = _media_type(request.headers)
    if media_type is not None and (media_type in REFUSED_MEDIA_TYPES or (media_type.startswith("application/") and media_type.endswith("+json"))):
        raise Err(_refusal(
            415,
            "unsupported_media_type",
            f"the body is the prompt as plain text (`content-type: text/plain`), not `{media_type}`",
        ))
    try:
        prompt = bytes(request.body).decode("utf-8")
    except UnicodeDecodeError as error:
        raise Err(_refusal(400, "invalid_request", f"the body is not UTF-8 text (byte {error.start})"))
    prompt = prompt.removeprefix("\ufeff").rstrip("\r\n")
    if not prompt.strip():
        raise Err(_refusal(400, "invalid_request", "the body is empty: post the prompt as plain text"))
    return api.PipelineRequest(
        messages=[types.ModelMessage(types.Role.USER, [types.Content_Text(prompt)])],
        system=None,
        user_id=None,
        session_id=None,
        model=None,
        tools=[],
        config=None,
        chain=None,
    )


def _media_type(headers):
    """The first `content-type`'s media type, lower case, without
    parameters; None without one."""
    for name, value in headers:
        if name.lower() == "content-type":
            return value.split(";", 1)[0].strip().lower()
    return None


def _refusal(status, code, message):
    return api.Refusal(status=status, error=types.ErrorInfo(code, message), headers=[])
