//! The standard APIs (`/v1/chat/completions`, `/v1/responses`,
//! `/v1/messages`, `/v1/models`) and the UI streams (`ai-sdk-ui`, `ag-ui`),
//! called by the field's official clients, pinned: the `openai` and
//! `anthropic` Python SDKs (`.ci/requirements.txt`), the OpenAI Node SDK,
//! the AI SDK and `@ag-ui/client` (`tests/clients/node-sdks/`). Each client
//! runs a script of scenarios against `streamhost serve` and prints what it
//! got or what it raised; the tests hold that to what the pipeline does.
//!
//! The pipelines: `chat` (bundled: the echo model, `redact`), `guarded`
//! (`seed001-auth` in front), `failing` (the `trap` fixture, which traps on
//! its fourth batch, mid-stream). The echo model runs at a model's pace
//! (20 ms a token), so streaming is seen in the clients' own arrival times.

use std::path::Path;
use std::sync::Arc;
use tokio::process::Command;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::lambda::{Function, RuntimeApi};
use crate::support::moto::Moto;
use crate::support::{self, EXAMPLES, REPOSITORY, Server, fixture, npm_ci, write_manifest};

/// What the echo model answers to the clients' prompt, `redact` masking the
/// address.
const MASKED: &str = "Write to [email] about the plan for the launch of the new product line";

/// The tokens the echo model counts in that answer (its own tokenizer's,
/// before `redact`).
const OUTPUT_TOKENS: u64 = 21;

/// The echo model's pause before each token.
const TOKEN_PACE_MS: u64 = 40;

/// The examples, with the `trap` fixture and the test's pipelines.
fn plugins() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(EXAMPLES).unwrap().map(Result::unwrap) {
        std::os::unix::fs::symlink(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    std::fs::copy(fixture("trap"), dir.path().join("trap.wasm")).unwrap();
    let demo_key = "sha256:c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c";
    let guarded = json!({
        "inbound": "seed001-auth",
        "model": { "provider": "echo" },
        "transforms": ["redact"],
        "callers": { "may": ["system"] },
        "config": { "seed001-auth": { "apiKeys": { "demo": demo_key } } },
    });
    write_manifest(dir.path(), "guarded", &guarded);
    let failing = json!({
        "model": { "provider": "echo" },
        "callers": { "may": ["system"] },
        "transforms": ["trap"],
        "config": { "trap": { "trapAt": 4 } },
    });
    write_manifest(dir.path(), "failing", &failing);
    // A model that calls a tool: its call goes to the client, whose tools
    // the pipeline takes, and the client's result comes back to it.
    let tooling = json!({
        "model": { "provider": "echo", "script": [
            { "afterTool": true, "reply": "Done: {{toolResult}}" },
            { "reply": "Let me look.", "toolUse": { "name": "lookup", "input": { "order": "A-1" } } }
        ] },
        "callers": { "may": ["tools"] },
    });
    write_manifest(dir.path(), "tooling", &tooling);
    // A model with memory, as far as a test needs one.
    let remember = json!({ "model": { "provider": "echo", "script": [{ "reply": "You first said: {{firstUser}}" }] } });
    write_manifest(dir.path(), "remember", &remember);
    dir
}

fn server(plugins: &Path) -> Server {
    server_builder(plugins).start()
}

fn server_builder(plugins: &Path) -> support::ServerBuilder {
    Server::builder().plugins(plugins).echo_delay_ms(TOKEN_PACE_MS)
}

/// Runs a client script (`python3` or `node`) on `bases` and reads its
/// JSON. Awaited, so that a Function URL served by this test's runtime
/// answers it.
async fn run_client(program: &str, script: &Path, bases: &[&str]) -> Value {
    let output =
        Command::new(program).arg(script).args(bases).output().await.unwrap_or_else(|_| panic!("{program} runs"));
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&output.stdout)))
}

fn clients_dir() -> std::path::PathBuf {
    Path::new(REPOSITORY).join("tests/clients")
}

/// The deltas' texts arrived one by one as the model made them: the first
/// well before the last (the echo model takes `TOKEN_PACE_MS` a token; a
/// quarter of that pace is asked for, so that a client slowed by a busy
/// machine, which reads several deltas at once, still passes, and a stream
/// sent whole still fails).
fn assert_streamed(deltas: &Value) {
    let deltas = deltas.as_array().expect("the deltas and their arrival times");
    assert!(deltas.len() >= 8, "one delta per token or so: {deltas:?}");
    let first = deltas[0][0].as_f64().unwrap();
    let last = deltas[deltas.len() - 1][0].as_f64().unwrap();
    let paced = (deltas.len() as f64 - 2.0) * TOKEN_PACE_MS as f64 / 1000.0 / 4.0;
    assert!(last - first >= paced, "the first text came {first} s in, the last {last} s: not streamed");
}

/// A scenario that had the SDK raise: its exception class and status.
fn assert_raised(outcome: &Value, class: &str, status: Option<u16>, says: &str) {
    assert_eq!(outcome["raised"], class, "{outcome}");
    if let Some(status) = status {
        assert_eq!(outcome["status"], status, "{outcome}");
    }
    assert!(outcome.to_string().contains(says), "`{says}` not in what the SDK raised: {outcome}");
}

#[tokio::test]
async fn the_openai_python_sdk_streams_and_answers_through_the_pipeline() {
    let plugins = plugins();
    let server = server(plugins.path());
    let results = run_client("python3", &clients_dir().join("openai_sdk.py"), &[&server.base]).await;
    assert_openai_sdk_results(&results);
}

/// The same client on the Function URL, through the Runtime API, where
/// only named pipelines are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_python_sdk_works_on_a_function_url_as_on_serve() {
    let plugins = plugins();
    let api = Arc::new(RuntimeApi::start().await);
    let env = vec![("STREAMHOST_NAMED_PIPELINES_ONLY", "true".to_string())];
    let _function = Function::start_with(&api, plugins.path().to_str().unwrap(), TOKEN_PACE_MS, env);
    let url = api.function_url(None).await;
    let results = run_client("python3", &clients_dir().join("openai_sdk.py"), &[&url.url]).await;
    assert_openai_sdk_results(&results);
}

fn assert_openai_sdk_results(results: &Value) {
    let stream = &results["chat_stream"];
    assert_eq!(stream["text"], MASKED, "{stream}");
    assert_streamed(&stream["deltas"]);
    assert_eq!(stream["finish"], "stop");
    assert_eq!(stream["ids"], 1, "one completion id for every chunk");
    assert_eq!(stream["roles"], json!(["assistant"]));
    let usage = &stream["usage"];
    assert_eq!(usage["completion_tokens"], OUTPUT_TOKENS, "{usage}");
    assert_eq!(usage["total_tokens"], usage["prompt_tokens"].as_u64().unwrap() + OUTPUT_TOKENS, "{usage}");

    let whole = &results["chat_whole"];
    assert_eq!(whole["object"], "chat.completion", "{whole}");
    assert_eq!(whole["text"], MASKED);
    assert_eq!(
        (&whole["role"], &whole["finish"], &whole["model"]),
        (&json!("assistant"), &json!("stop"), &json!("chat"))
    );
    assert_eq!(whole["usage"]["completion_tokens"], OUTPUT_TOKENS);

    let responses = &results["responses_stream"];
    assert_eq!(responses["text"], MASKED, "{responses}");
    assert_streamed(&responses["deltas"]);
    assert_eq!(responses["status"], "completed");
    assert_eq!(responses["usage"]["output_tokens"], OUTPUT_TOKENS);
    assert_eq!(
        results["responses_helper"],
        json!({"text": MASKED, "final": MASKED, "status": "completed"}),
        "`responses.stream()` and `get_final_response()`"
    );
    assert_eq!(results["responses_whole"], json!({"object": "response", "text": MASKED, "status": "completed"}));

    let models = &results["models"];
    for name in ["chat", "guarded", "failing"] {
        assert!(models["listed"].as_array().unwrap().contains(&json!(name)), "{models}");
    }
    assert_eq!(models["retrieved"], "chat");

    assert_raised(&results["unknown_model"], "NotFoundError", Some(404), "no-such-pipeline");
    assert_raised(&results["guarded_wrong_key"], "AuthenticationError", Some(401), "");
    assert_eq!(results["guarded"]["text"], MASKED, "the key opens the guarded pipeline: {}", results["guarded"]);
    assert_raised(&results["failing"], "APIError", None, "plugin_trapped");
    // Whole, the failure is the answer's status: the trap's own 500.
    assert_raised(&results["failing_whole"], "InternalServerError", Some(500), "plugin_trapped");
    assert_eq!(
        results["tool_call"],
        json!({"text": "Let me look.", "finish": "tool_calls", "calls": [["tooluse_1", "lookup", {"order": "A-1"}]]}),
        "the model's tool call reaches the client"
    );
    assert_eq!(
        results["responses_tool_call"],
        json!({"text": "Let me look.", "status": "completed", "calls": [["tooluse_1", "lookup", {"order": "A-1"}]]}),
    );
    assert_eq!(
        results["client_tools"],
        json!({"call": ["tooluse_1", "lookup", {"order": "A-1"}], "finish": "tool_calls", "answer": "Done: shipped"}),
        "the client's tool: its call out, its result in"
    );
    assert_eq!(
        results["responses_client_tools"],
        json!({"call": ["tooluse_1", "lookup", {"order": "A-1"}], "answer": "Done: shipped"}),
        "the result sent with previous_response_id alone"
    );
    assert_raised(&results["tools_not_opened"], "PermissionDeniedError", Some(403), "`tools`");
    assert_raised(&results["two_choices"], "BadRequestError", Some(400), "`n`");
    assert_raised(&results["image"], "BadRequestError", Some(400), "messages[0].content[0]");
}

/// Responses' state through the `openai` SDK: on one host (memory), then
/// across two that share a DynamoDB table, as two Lambda environments do.
#[tokio::test]
async fn the_openai_sdk_continues_responses_by_previous_response_id_across_hosts() {
    let plugins = plugins();
    let script = clients_dir().join("openai_sdk_state.py");
    let one = server(plugins.path());
    assert_state_results(&run_client("python3", &script, &[&one.base, &one.base]).await);

    let moto = Moto::start().await;
    moto.create_table("conversations", "conversation", "turn").await;
    let shared = || server_builder(plugins.path()).env(moto.env()).arg("--history-table", "conversations").start();
    let (first, second) = (shared(), shared());
    assert_state_results(&run_client("python3", &script, &[&first.base, &second.base]).await);

    // No caller's session shares a key with a kept response.
    let claimed = json!({ "prompt": "hi", "sessionId": "response:remember:resp_x" }).to_string();
    first.post("/remember", &claimed).await.assert_error(
        400,
        "invalid_request",
        "`sessionId` may not start with `response:`: the host keeps responses under such ids",
    );
}

fn assert_state_results(results: &Value) {
    let remembered = "You first said: My name is Ada";
    let chain = &results["chain"];
    assert_eq!(
        [&chain["first"], &chain["second"], &chain["third"], &chain["branch"]],
        [&json!(remembered); 4],
        "each continuation carries the conversation: {results}"
    );
    assert_eq!(chain["stored"], json!([true, true]));
    let previous = chain["previous"].as_array().unwrap();
    assert!(previous.iter().all(|id| id.as_str().unwrap().starts_with("resp_")), "{chain}");
    let tokens = chain["input_tokens"].as_array().unwrap();
    assert!(tokens[1].as_u64() > tokens[0].as_u64(), "the third call's input holds the chain: {chain}");
    assert_eq!(results["not_stored_answer"], json!({ "text": "You first said: Forget me", "store": false }));
    assert_raised(&results["not_stored"], "BadRequestError", Some(400), "no response `resp_");
    assert_raised(&results["unknown"], "BadRequestError", Some(400), "no response `resp_never_issued` of `remember`");
    assert_raised(&results["other_pipeline"], "BadRequestError", Some(400), "of `chat` is kept for this caller");
    assert_raised(&results["retrieve"], "APIStatusError", Some(405), "it does not retrieve, delete or cancel one");
}

#[tokio::test]
async fn the_anthropic_python_sdk_streams_and_answers_through_the_pipeline() {
    let plugins = plugins();
    let server = server(plugins.path());
    let results = run_client("python3", &clients_dir().join("anthropic_sdk.py"), &[&server.base]).await;

    let stream = &results["stream"];
    assert_eq!(stream["text"], MASKED, "{stream}");
    assert_streamed(&stream["deltas"]);
    assert_eq!((&stream["stop_reason"], &stream["role"]), (&json!("end_turn"), &json!("assistant")));
    assert_eq!(stream["usage"]["output_tokens"], OUTPUT_TOKENS, "{stream}");
    assert!(stream["id"].as_str().unwrap().starts_with("msg_"), "{stream}");

    let whole = &results["whole"];
    assert_eq!(
        (&whole["type"], &whole["text"], &whole["stop_reason"]),
        (&json!("message"), &json!(MASKED), &json!("end_turn"))
    );

    assert_raised(&results["unknown_model"], "NotFoundError", Some(404), "no-such-pipeline");
    assert_eq!(
        results["tool_use"],
        json!({"stop_reason": "tool_use", "blocks": [["text", "Let me look."], ["tool_use", "tooluse_1", "lookup", {"order": "A-1"}]]}),
        "the model's tool call reaches the client"
    );
    assert_eq!(
        results["client_tools"],
        json!({"stop_reason": "tool_use", "call": ["tooluse_1", "lookup", {"order": "A-1"}], "answer": "Done: shipped"}),
        "the client's tool: its tool_use out, its tool_result in"
    );
    assert!(results["models"]["listed"].as_array().unwrap().contains(&json!("chat")), "{}", results["models"]);
    assert_eq!(results["models"]["display_name"], "chat");
    assert_raised(&results["guarded_without_key"], "AuthenticationError", Some(401), "");
    assert_eq!(results["guarded"]["text"], MASKED, "x-api-key opens the guarded pipeline: {}", results["guarded"]);
    assert_raised(&results["failing"], "APIStatusError", None, "plugin_trapped");
}

#[tokio::test]
async fn the_node_sdks_the_ai_sdk_and_ag_ui_read_their_streams() {
    let clients = npm_ci(&clients_dir().join("node-sdks"), "@ag-ui/client");
    let plugins = plugins();
    let server = server(plugins.path());
    let results = run_client("node", &clients.join("clients.mjs"), &[&server.base]).await;

    let openai = &results["openai_chat_stream"];
    assert_eq!((&openai["text"], &openai["finish"]), (&json!(MASKED), &json!("stop")), "{openai}");
    assert_eq!(openai["usage"]["completion_tokens"], OUTPUT_TOKENS);
    assert!(results["openai_failing"]["message"].as_str().unwrap_or_default().contains("trapped"), "{results}");
    assert_eq!(results["openai_unknown_model"]["status"], 404, "{results}");

    let ai_sdk = &results["ai_sdk_stream_text"];
    assert_eq!((&ai_sdk["text"], &ai_sdk["finishReason"]), (&json!(MASKED), &json!("stop")), "{ai_sdk}");
    assert_eq!(ai_sdk["usage"]["outputTokens"], OUTPUT_TOKENS, "{ai_sdk}");
    let failed = &results["ai_sdk_failing"];
    assert!(failed["errors"].to_string().contains("trapped"), "the AI SDK saw the failure: {failed}");

    let ui = &results["ai_sdk_ui"];
    assert_eq!((&ui["text"], &ui["role"], &ui["errors"]), (&json!(MASKED), &json!("assistant"), &json!([])), "{ui}");
    let ag_ui = &results["ag_ui"];
    assert_eq!(ag_ui["text"], MASKED, "{ag_ui}");
    for event in ["RUN_STARTED", "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END", "RUN_FINISHED"] {
        assert!(ag_ui["events"].as_array().unwrap().contains(&json!(event)), "{ag_ui}");
    }
    let ag_ui_failed = &results["ag_ui_failing"];
    assert!(ag_ui_failed["events"].as_array().unwrap().contains(&json!("RUN_ERROR")), "{ag_ui_failed}");
    assert!(ag_ui_failed["errors"].to_string().contains("plugin_trapped"), "{ag_ui_failed}");
}

/// Errors before the first byte, exactly as each API shapes them.
#[tokio::test]
async fn errors_before_the_stream_take_each_apis_shape() {
    let plugins = plugins();
    let server = server(plugins.path());
    let client = reqwest::Client::new();
    let call = |path: &str, body: Value| client.post(server.url(path)).json(&body).send();

    let reply = call("/v1/chat/completions", json!({"messages": [{"role": "user", "content": "hi"}]})).await.unwrap();
    assert_eq!(reply.status(), 400);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {
            "message": "`model` is required: the name of a pipeline (`GET /v1/models` lists them)",
            "type": "invalid_request_error", "param": null, "code": "invalid_request",
        }})
    );

    let reply = call("/v1/messages", json!({"model": "nope", "max_tokens": 5, "messages": []})).await.unwrap();
    assert_eq!(reply.status(), 404);
    let request_id = reply.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = reply.json().await.unwrap();
    assert_eq!(
        body,
        json!({"type": "error", "request_id": request_id, "error": {
            "type": "not_found_error",
            "message": "unknown_plugin: the model `nope` is not served (no plugin named `nope`); `GET /v1/models` lists the pipelines",
        }})
    );

    let reply = call("/v1/chat/completions", json!({"model": "guarded", "messages": []})).await.unwrap();
    assert_eq!(reply.status(), 401, "the pipeline's own inbound plugin is asked first");
    assert!(reply.headers().contains_key("www-authenticate"));

    // Tool-call arguments nested past what the host carries: a 400 (not a
    // dropped connection), at any depth a reader takes, whether the
    // pipeline opens tools or not.
    for (model, depth) in [("chat", 40), ("chat", 124), ("tooling", 40)] {
        let arguments = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        let body = json!({"model": model, "messages": [
            {"role": "user", "content": "w"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "r"},
        ]});
        let reply = call("/v1/chat/completions", body).await.unwrap();
        assert_eq!(reply.status(), 400, "{model} at {depth}");
        let body: Value = reply.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    }

    let reply = client.get(server.url("/v1/chat/completions")).send().await.unwrap();
    assert_eq!(reply.status(), 405);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["error"]["message"], "`/v1/chat/completions` is called with POST", "{body}");

    // A name no pipeline could have serves nothing; a chain naming a
    // plugin that is no transform is the caller's mistake.
    let messages = json!([{"role": "user", "content": "hi"}]);
    let reply = call("/v1/chat/completions", json!({"model": "openai/gpt-4o", "messages": messages})).await.unwrap();
    assert_eq!(reply.status(), 404);
    let reply =
        call("/v1/chat/completions", json!({"model": "chat,seed001-auth", "messages": messages})).await.unwrap();
    assert_eq!(reply.status(), 400);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "the model `chat,seed001-auth` names `seed001-auth`, a request-filter plugin: a model is a pipeline, or a chain of transforms"
    );

    let models: Value = client.get(server.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["object"], "list");
    assert!(models["data"].as_array().unwrap().contains(&json!({
        "id": "chat", "object": "model", "created": 0, "owned_by": "streamhost",
        "type": "model", "display_name": "chat", "created_at": "1970-01-01T00:00:00Z",
    })));
}
