"""The official `anthropic` Python SDK against streamhost's /v1/messages (tests/all/standard_apis.rs).

Usage: python3 anthropic_sdk.py BASE_URL

Prints one JSON object: each scenario's outcome, or the exception the SDK
raised. The pipelines are the test's, as in openai_sdk.py.
"""

import json
import sys
import time

import anthropic

PROMPT = "Write to ada@example.com about the plan for the launch of the new product line"


def client(api_key="unused"):
    return anthropic.Anthropic(base_url=BASE, api_key=api_key, max_retries=0, timeout=30)


def raised(error):
    return {
        "raised": type(error).__name__,
        "status": getattr(error, "status_code", None),
        "message": str(getattr(error, "message", error)),
        "body": getattr(error, "body", None),
    }


def stream(model="chat", api_key="unused"):
    started = time.monotonic()
    deltas = []
    with client(api_key).messages.stream(
        model=model, max_tokens=1024, system="Be brief.", messages=[{"role": "user", "content": PROMPT}]
    ) as events:
        for text in events.text_stream:
            deltas.append([time.monotonic() - started, text])
        final = events.get_final_message()
    return {"deltas": deltas, "text": final.content[0].text, "stop_reason": final.stop_reason,
            "usage": final.usage.model_dump(), "id": final.id, "role": final.role, "done_at": time.monotonic() - started}


def whole():
    message = client().messages.create(
        model="chat", max_tokens=1024,
        messages=[{"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
    )
    return {"type": message.type, "text": message.content[0].text, "stop_reason": message.stop_reason,
            "usage": message.usage.model_dump()}


def tool_use():
    with client().messages.stream(
        model="tooling", max_tokens=1024, messages=[{"role": "user", "content": "Where is order A-1?"}]
    ) as events:
        final = events.get_final_message()
    blocks = [[b.type, b.text] if b.type == "text" else [b.type, b.id, b.name, b.input] for b in final.content]
    return {"stop_reason": final.stop_reason, "blocks": blocks}


def client_tools():
    """The client's own tool: its `tool_use` comes out, its `tool_result` goes back in."""
    tools = [{"name": "lookup", "description": "Finds an order",
              "input_schema": {"type": "object", "properties": {"order": {"type": "string"}}}}]
    messages = [{"role": "user", "content": "Where is order A-1?"}]
    first = client().messages.create(model="tooling", max_tokens=1024, tools=tools, messages=messages)
    use = next(block for block in first.content if block.type == "tool_use")
    messages.append({"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "shipped"}]})
    with client().messages.stream(model="tooling", max_tokens=1024, tools=tools, messages=messages) as stream:
        answer = "".join(stream.text_stream)
    return {"stop_reason": first.stop_reason, "call": [use.id, use.name, use.input], "answer": answer}


def models():
    return {"listed": [model.id for model in client().models.list()], "display_name": client().models.retrieve("chat").display_name}


def attempt(name, scenario, *args):
    try:
        RESULTS[name] = scenario(*args)
    except anthropic.APIError as error:
        RESULTS[name] = raised(error)


BASE = sys.argv[1]
RESULTS = {}
attempt("stream", stream)
attempt("whole", whole)
attempt("models", models)
attempt("tool_use", tool_use)
attempt("client_tools", client_tools)
attempt("unknown_model", stream, "no-such-pipeline")
attempt("guarded_without_key", stream, "guarded")
attempt("guarded", stream, "guarded", "demo-key")
attempt("failing", stream, "failing")
print(json.dumps(RESULTS))
