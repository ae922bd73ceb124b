"""The official `openai` Python SDK continuing Responses through streamhost (tests/all/standard_apis.rs).

Usage: python3 openai_sdk_state.py BASE_A BASE_B  (each without /v1)

Each call to `remember` (an echo model whose script answers "You first
said: {{firstUser}}") goes to A, and each continuation to B: two hosts
that share a conversation store stand for two Lambda environments (one host
given twice is one). Prints one JSON object: each scenario's outcome, or the
exception the SDK raised (its class, status and message).
"""

import json
import sys

import openai


def client(base):
    return openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=30)


def raised(error):
    return {"raised": type(error).__name__, "status": getattr(error, "status_code", None),
            "message": str(getattr(error, "message", error))}


def attempt(name, scenario):
    try:
        RESULTS[name] = scenario()
    except openai.APIError as error:
        RESULTS[name] = raised(error)


def chain():
    first = A.responses.create(model="remember", input="My name is Ada")
    second = B.responses.create(model="remember", input="What is my name?", previous_response_id=first.id)
    # Streamed, continuing the continuation: the whole chain is carried.
    with B.responses.stream(model="remember", input="And again?", previous_response_id=second.id) as stream:
        third = stream.get_final_response()
    # A second continuation of the first response: a branch.
    branch = B.responses.create(model="remember", input="Hello?", previous_response_id=first.id)
    return {"first": first.output_text, "second": second.output_text, "third": third.output_text,
            "branch": branch.output_text, "previous": [second.previous_response_id, third.previous_response_id],
            "stored": [first.store, third.store], "input_tokens": [first.usage.input_tokens, third.usage.input_tokens]}


def not_stored():
    unkept = A.responses.create(model="remember", input="Forget me", store=False)
    RESULTS["not_stored_answer"] = {"text": unkept.output_text, "store": unkept.store}
    B.responses.create(model="remember", input="Who?", previous_response_id=unkept.id)
    return {"raised": None}


def other_pipeline():
    first = A.responses.create(model="remember", input="Kept by remember")
    RESULTS["retrieve"] = attempt_call(lambda: A.responses.retrieve(first.id))
    B.responses.create(model="chat", input="Who?", previous_response_id=first.id)
    return {"raised": None}


def attempt_call(call):
    try:
        call()
        return {"raised": None}
    except openai.APIError as error:
        return raised(error)


def unknown():
    B.responses.create(model="remember", input="Who?", previous_response_id="resp_never_issued")
    return {"raised": None}


A, B = client(sys.argv[1]), client(sys.argv[2])
RESULTS = {}
attempt("chain", chain)
attempt("not_stored", not_stored)
attempt("unknown", unknown)
attempt("other_pipeline", other_pipeline)
print(json.dumps(RESULTS))
