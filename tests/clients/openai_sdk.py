"""The official `openai` Python SDK against streamhost's /v1 (tests/all/standard_apis.rs).

Usage: python3 openai_sdk.py BASE_URL  (BASE_URL without /v1)

Runs every scenario as an application would and prints one JSON object:
each scenario's outcome, or the exception the SDK raised (its class, status
and message). Arrival times of streamed deltas are in seconds from the call.
The pipelines it names are the test's: `chat` (echo and `redact`), `guarded`
(`seed001-auth` in front, demo key `demo-key`), `failing` (a transform that
traps mid-stream).
"""

import json
import sys
import time

import openai

PROMPT = "Write to ada@example.com about the plan for the launch of the new product line"


def client(api_key="unused"):
    return openai.OpenAI(base_url=BASE + "/v1", api_key=api_key, max_retries=0, timeout=30)


def raised(error):
    return {
        "raised": type(error).__name__,
        "status": getattr(error, "status_code", None),
        "message": str(getattr(error, "message", error)),
        "body": getattr(error, "body", None),
    }


def chat_stream(model="chat", api_key="unused"):
    started = time.monotonic()
    stream = client(api_key).chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
        temperature=0.2,
    )
    deltas, finish, usage, ids, roles = [], None, None, set(), []
    for chunk in stream:
        ids.add(chunk.id)
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for choice in chunk.choices:
            if choice.delta.role:
                roles.append(choice.delta.role)
            if choice.delta.content:
                deltas.append([time.monotonic() - started, choice.delta.content])
            if choice.finish_reason:
                finish = choice.finish_reason
    return {"deltas": deltas, "text": "".join(d for _, d in deltas), "finish": finish, "usage": usage,
            "ids": len(ids), "roles": roles, "done_at": time.monotonic() - started}


def chat_whole(model="chat"):
    completion = client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": [{"type": "text", "text": PROMPT}]}], max_tokens=200
    )
    choice = completion.choices[0]
    return {"object": completion.object, "text": choice.message.content, "role": choice.message.role,
            "finish": choice.finish_reason, "usage": completion.usage.model_dump(), "model": completion.model}


def responses_stream():
    started = time.monotonic()
    deltas, final = [], None
    events = client().responses.create(model="chat", input=PROMPT, instructions="Be brief.", stream=True)
    for event in events:
        if event.type == "response.output_text.delta":
            deltas.append([time.monotonic() - started, event.delta])
        if event.type == "response.completed":
            final = event.response
    return {"deltas": deltas, "text": final.output_text, "status": final.status,
            "usage": final.usage.model_dump() if final.usage else None}


def responses_helper():
    with client().responses.stream(model="chat", input=PROMPT) as stream:
        texts = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    return {"text": "".join(texts), "final": final.output_text, "status": final.status}


def responses_whole():
    response = client().responses.create(
        model="chat", input=[{"role": "user", "content": [{"type": "input_text", "text": PROMPT}]}]
    )
    return {"object": response.object, "text": response.output_text, "status": response.status}


def models():
    listed = [model.id for model in client().models.list()]
    return {"listed": listed, "retrieved": client().models.retrieve("chat").id}


def tool_call():
    stream = client().chat.completions.create(
        model="tooling", stream=True, messages=[{"role": "user", "content": "Where is order A-1?"}]
    )
    text, finish, calls = "", None, []
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                calls.append([call.id, call.function.name, json.loads(call.function.arguments)])
    return {"text": text, "finish": finish, "calls": calls}


def responses_tool_call():
    response = client().responses.create(model="tooling", input="Where is order A-1?")
    calls = [[item.call_id, item.name, json.loads(item.arguments)] for item in response.output if item.type == "function_call"]
    return {"text": response.output_text, "status": response.status, "calls": calls}


LOOKUP = {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]}


def client_tools():
    """The client's own tool: the model's call comes out, the result goes back in."""
    tools = [{"type": "function", "function": {"name": "lookup", "description": "Finds an order", "parameters": LOOKUP}}]
    messages = [{"role": "user", "content": "Where is order A-1?"}]
    first = client().chat.completions.create(model="tooling", messages=messages, tools=tools)
    asked = first.choices[0].message
    call = asked.tool_calls[0]
    messages.append(asked)  # the SDK's own message object, as OpenAI's function-calling guide does
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "shipped"})
    stream = client().chat.completions.create(model="tooling", messages=messages, tools=tools, stream=True)
    answer = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    return {"call": [call.id, call.function.name, json.loads(call.function.arguments)],
            "finish": first.choices[0].finish_reason, "answer": answer}


def responses_client_tools():
    """The same through Responses, the result sent with `previous_response_id` alone."""
    tools = [{"type": "function", "name": "lookup", "description": "Finds an order", "parameters": LOOKUP}]
    first = client().responses.create(model="tooling", input="Where is order A-1?", tools=tools)
    call = next(item for item in first.output if item.type == "function_call")
    second = client().responses.create(
        model="tooling", previous_response_id=first.id, tools=tools,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "shipped"}])
    return {"call": [call.call_id, call.name, json.loads(call.arguments)], "answer": second.output_text}


def tools_not_opened():
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": LOOKUP}}]
    client().chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}], tools=tools)
    return {"raised": None}


def attempt(name, scenario, *args):
    try:
        RESULTS[name] = scenario(*args)
    except openai.APIError as error:
        RESULTS[name] = raised(error)


def refused(name, **body):
    try:
        client().chat.completions.create(model="chat", **body)
        RESULTS[name] = {"raised": None}
    except openai.APIError as error:
        RESULTS[name] = raised(error)


BASE = sys.argv[1]
RESULTS = {}
attempt("chat_stream", chat_stream)
attempt("chat_whole", chat_whole)
attempt("responses_stream", responses_stream)
attempt("responses_helper", responses_helper)
attempt("responses_whole", responses_whole)
attempt("models", models)
attempt("tool_call", tool_call)
attempt("responses_tool_call", responses_tool_call)
attempt("client_tools", client_tools)
attempt("responses_client_tools", responses_client_tools)
attempt("tools_not_opened", tools_not_opened)
attempt("unknown_model", chat_stream, "no-such-pipeline")
attempt("guarded_wrong_key", chat_stream, "guarded", "not-the-key")
attempt("guarded", chat_stream, "guarded", "demo-key")
attempt("failing", chat_stream, "failing")
attempt("failing_whole", chat_whole, "failing")
refused("two_choices", messages=[{"role": "user", "content": "hi"}], n=2)
refused("image", messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}])
print(json.dumps(RESULTS))
