//! Multi-agent pipelines through the real host, with real router and agent
//! components: the router's choice over a conversation, the metadata line
//! that names it, the conversation's memory (in memory, in a file, in
//! DynamoDB on moto), the failures that end a turn, and progress that
//! streams.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use support::moto::Moto;
use support::upstream::{EVENT_STREAM, SSE, Script, Upstream, converse_answer, converse_event, exception, sse};
use support::{Server, example, fixture, ndjson_lines, plugin_dir, timed_chunks, write_manifest};

/// The calculator pipeline: tool-agent alone, as NDJSON, on `model`.
fn calculator_pipeline(model: Value) -> tempfile::TempDir {
    let plugins = plugin_dir(&[("tool-agent", &example("tool-agent")), ("ndjson", &example("ndjson"))]);
    write_manifest(
        plugins.path(),
        "calc",
        &json!({
            "agents": [{ "name": "calc", "description": "Sums", "plugin": "tool-agent", "system": "Use the calculator." }],
            "transforms": ["ndjson"],
            "model": model
        }),
    );
    plugins
}

/// A desk of billing and tech whose llm-router's model (the echo script)
/// answers `classifier_reply`.
fn llm_router_desk(classifier_reply: &str) -> tempfile::TempDir {
    let plugins = plugin_dir(&[("llm-router", &example("llm-router")), ("ndjson", &example("ndjson"))]);
    write_manifest(
        plugins.path(),
        "desk",
        &json!({
            "router": "llm-router",
            "agents": [{ "name": "billing", "description": "Money" }, { "name": "tech", "description": "Bugs" }],
            "transforms": ["ndjson"],
            "model": { "provider": "echo", "script": [{ "system": "You are a router", "reply": classifier_reply }] }
        }),
    );
    plugins
}

/// The support desk of the keyword router and two built-in agents, whose
/// model is Bedrock (a loopback server that records what it is asked).
fn support_desk(dir: &Path) {
    write_manifest(
        dir,
        "desk",
        &json!({
            "router": "keyword-router",
            "agents": [
                { "name": "billing", "description": "Invoices and refunds", "system": "You handle billing." },
                { "name": "tech", "description": "Crashes and errors", "system": "You handle technical problems." }
            ],
            "transforms": ["ndjson"],
            "model": { "provider": "bedrock", "id": "test-model" }
        }),
    );
}

fn answer(text: &str) -> Script {
    Script::new(200, EVENT_STREAM).chunks(Duration::ZERO, converse_answer(&[text]))
}

/// The conversation Bedrock was sent, as `role: text` lines.
fn conversation(request: &Value) -> Vec<String> {
    let messages = request["messages"].as_array().unwrap();
    messages
        .iter()
        .map(|message| {
            format!("{}: {}", message["role"].as_str().unwrap(), message["content"][0]["text"].as_str().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn routing_follows_a_multi_turn_conversation_and_agents_see_it() {
    let bedrock = Upstream::start(vec![
        answer("Refunds take 5 days."),
        answer("By Friday."),
        answer("Reinstall it."),
        answer("Which one?"),
    ])
    .await;
    let plugins = plugin_dir(&[("keyword-router", &example("keyword-router")), ("ndjson", &example("ndjson"))]);
    support_desk(plugins.path());
    let host = Server::builder().plugins(plugins.path()).env(bedrock.bedrock_env()).start();
    let turn =
        |prompt: &str, session: &str| json!({ "prompt": prompt, "userId": "ana", "sessionId": session }).to_string();

    let first = host.post("/desk", &turn("I need a refund", "s1")).await;
    assert_eq!(first.status, 200);
    let first = ndjson_lines(&first.body);
    // The metadata line comes first and names the agent, as the
    // orchestrator's does.
    assert_eq!(
        first[0],
        json!({ "type": "metadata", "data": { "agent": "billing", "confidence": 1.0, "reason": "mentions refunds", "userInput": "I need a refund" } })
    );
    assert!(first.contains(&json!({ "type": "chunk", "data": "Refunds take 5 days." })));
    assert_eq!(first.last().unwrap()["type"], "complete");

    // A follow-up with no keyword stays with the agent of the last turn.
    let second = ndjson_lines(&host.post("/desk", &turn("And when will I get it?", "s1")).await.body);
    assert_eq!(
        second[0]["data"],
        json!({ "agent": "billing", "confidence": 0.5, "reason": "no keyword; the conversation continues with billing", "userInput": "And when will I get it?" })
    );
    let third = ndjson_lines(&host.post("/desk", &turn("Now the app crashes", "s1")).await.body);
    assert_eq!(third[0]["data"]["agent"], "tech");
    // Another session of the same user starts afresh: the fallback agent.
    let other = ndjson_lines(&host.post("/desk", &turn("And when?", "s2")).await.body);
    assert_eq!(
        other[0]["data"],
        json!({ "agent": "billing", "confidence": 0.0, "reason": "no keyword matched; the fallback agent", "userInput": "And when?" })
    );

    let asked = bedrock.received();
    assert_eq!(asked[1].body["system"], json!([{ "text": "You handle billing." }]));
    assert_eq!(
        conversation(&asked[1].body),
        ["user: I need a refund", "assistant: Refunds take 5 days.", "user: And when will I get it?"]
    );
    assert_eq!(asked[2].body["system"], json!([{ "text": "You handle technical problems." }]));
    assert_eq!(conversation(&asked[2].body).len(), 5);
    assert_eq!(conversation(&asked[3].body), ["user: And when?"]);
}

#[tokio::test]
async fn a_failed_turn_is_not_remembered_and_a_file_keeps_the_rest_across_a_restart() {
    let broken = Script::new(200, EVENT_STREAM).chunks(
        Duration::ZERO,
        [
            converse_event("messageStart", json!({ "role": "assistant" })),
            converse_event("contentBlockDelta", json!({ "contentBlockIndex": 0, "delta": { "text": "Refunds take" } })),
            exception("modelStreamErrorException", "the model stopped"),
        ],
    );
    let bedrock = Upstream::start(vec![broken, answer("Refunds take 5 days."), answer("By Friday.")]).await;
    let plugins = plugin_dir(&[("keyword-router", &example("keyword-router")), ("ndjson", &example("ndjson"))]);
    support_desk(plugins.path());
    let state = tempfile::tempdir().unwrap();
    let history_file = state.path().join("conversations.json");
    let start = || {
        Server::builder()
            .plugins(plugins.path())
            .env(bedrock.bedrock_env())
            .arg("--history-file", history_file.to_str().unwrap())
            .start()
    };
    let turn = |prompt: &str| json!({ "prompt": prompt, "userId": "ana", "sessionId": "s1" }).to_string();

    let host = start();
    let failed = ndjson_lines(&host.post("/desk", &turn("I need a refund")).await.body);
    assert_eq!(
        failed.last().unwrap(),
        &json!({ "type": "error", "data": { "code": "model_stream_error", "message": "the model stopped" } })
    );
    let retried = ndjson_lines(&host.post("/desk", &turn("I need a refund, please")).await.body);
    assert_eq!(retried.last().unwrap()["type"], "complete");
    drop(host);

    let restarted = start();
    ndjson_lines(&restarted.post("/desk", &turn("And when?")).await.body);
    let asked = bedrock.received();
    assert_eq!(conversation(&asked[1].body), ["user: I need a refund, please"]);
    assert_eq!(
        conversation(&asked[2].body),
        ["user: I need a refund, please", "assistant: Refunds take 5 days.", "user: And when?"]
    );
}

#[tokio::test]
async fn the_example_support_desk_routes_and_uses_tools_offline() {
    // The README's demo: the bundled manifest, the echo model and its script.
    let host = Server::start();
    let turn = |prompt: &str| json!({ "prompt": prompt, "userId": "ana", "sessionId": "demo" }).to_string();
    let order = ndjson_lines(&host.post("/support-desk", &turn("Where is my order?")).await.body);
    assert_eq!(
        order[0]["data"],
        json!({ "agent": "orders", "confidence": 1.0, "reason": "mentions order", "userInput": "Where is my order?" })
    );
    assert_eq!(order[1], json!({ "type": "status", "data": { "message": "running lookup_order" } }));
    let text: String =
        order.iter().filter(|line| line["type"] == "chunk").map(|line| line["data"].as_str().unwrap()).collect();
    assert_eq!(text, "Your order A1 was shipped on Monday, arriving Thursday.");
    assert_eq!(order.last().unwrap()["data"]["stopReason"], "end_turn");

    let follow_up = ndjson_lines(&host.post("/support-desk", &turn("Thanks. And when does it arrive?")).await.body);
    assert_eq!(follow_up[0]["data"]["agent"], "orders");
    let classified =
        ndjson_lines(&host.post("/support-desk-llm", r#"{"prompt":"The app crashes at start"}"#).await.body);
    assert_eq!(
        classified[0]["data"],
        json!({ "agent": "tech", "confidence": 0.88, "reason": "a technical problem", "userInput": "The app crashes at start" })
    );
    let vague = ndjson_lines(&host.post("/support-desk-llm", r#"{"prompt":"Hello there"}"#).await.body);
    assert_eq!(vague[0]["data"]["agent"], "billing");
}

#[tokio::test]
async fn a_router_waiting_for_its_model_at_a_real_pace_is_not_stopped() {
    // 200 ms a token: the classifier's answer takes about 2 s, twice the
    // plugin's 1 s limit; the waiting is the host's time, not the plugin's.
    let host = Server::builder().echo_delay_ms(200).arg("--plugin-timeout-ms", "1000").start();
    let asked = Instant::now();
    let classified =
        ndjson_lines(&host.post("/support-desk-llm", r#"{"prompt":"The app crashes at start"}"#).await.body);
    assert!(
        asked.elapsed() > Duration::from_secs(1),
        "the model took longer than the plugin's limit: {:?}",
        asked.elapsed()
    );
    assert_eq!(classified[0]["data"]["agent"], "tech", "{classified:?}");
    assert_eq!(classified.last().unwrap()["type"], "complete", "{classified:?}");
}

/// An agent that reads its model's answer event by event and emits each
/// one: a model's pace (150 ms a token) makes its one `handle` call last
/// twice its 1 s limit, nearly all of it waiting, and far less fuel than 10^8.
#[tokio::test]
async fn an_agent_reading_its_model_at_a_real_pace_is_not_stopped() {
    let plugins = calculator_pipeline(json!({ "provider": "echo" }));
    let host = Server::builder()
        .plugins(plugins.path())
        .echo_delay_ms(150)
        .arg("--plugin-timeout-ms", "1000")
        .arg("--plugin-fuel", "100000000")
        .start();
    let asked = Instant::now();
    let prompt = "one two three four five six seven eight nine ten eleven twelve thirteen";
    let answer = ndjson_lines(&host.post("/calc", &json!({ "prompt": prompt }).to_string()).await.body);
    assert!(asked.elapsed() > Duration::from_secs(2), "the model took twice the limit: {:?}", asked.elapsed());
    let text: String =
        answer.iter().filter(|line| line["type"] == "chunk").map(|line| line["data"].as_str().unwrap()).collect();
    assert_eq!(text, prompt, "{answer:?}");
    assert_eq!(answer.last().unwrap()["type"], "complete", "{answer:?}");
}

#[tokio::test]
async fn tool_agent_runs_its_tool_loop_against_bedrock() {
    let asks_for_the_calculator = [
        converse_event("messageStart", json!({ "role": "assistant" })),
        converse_event("contentBlockDelta", json!({ "contentBlockIndex": 0, "delta": { "text": "Let me compute. " } })),
        converse_event(
            "contentBlockStart",
            json!({ "contentBlockIndex": 1, "start": { "toolUse": { "toolUseId": "tu-1", "name": "calculator" } } }),
        ),
        converse_event(
            "contentBlockDelta",
            json!({ "contentBlockIndex": 1, "delta": { "toolUse": { "input": "{\"expression\":" } } }),
        ),
        converse_event(
            "contentBlockDelta",
            json!({ "contentBlockIndex": 1, "delta": { "toolUse": { "input": " \"6 * 7\"}" } } }),
        ),
        converse_event("contentBlockStop", json!({ "contentBlockIndex": 1 })),
        converse_event("messageStop", json!({ "stopReason": "tool_use" })),
        converse_event(
            "metadata",
            json!({ "usage": { "inputTokens": 20, "outputTokens": 9, "totalTokens": 29 }, "metrics": { "latencyMs": 100 } }),
        ),
    ];
    let bedrock = Upstream::start(vec![
        Script::new(200, EVENT_STREAM).chunks(Duration::ZERO, asks_for_the_calculator),
        answer("It is 42."),
    ])
    .await;
    let plugins = calculator_pipeline(json!({ "provider": "bedrock", "id": "test-model" }));
    let host = Server::builder().plugins(plugins.path()).env(bedrock.bedrock_env()).start();
    let reply = ndjson_lines(&host.post("/calc", r#"{"prompt":"What is 6 times 7?"}"#).await.body);
    assert_eq!(
        reply[1..],
        [
            json!({ "type": "chunk", "data": "Let me compute. " }),
            json!({ "type": "status", "data": { "message": "running calculator" } }),
            json!({ "type": "chunk", "data": "It is 42." }),
            json!({ "type": "complete", "data": { "stopReason": "end_turn", "usage": {
            "inputTokens": 27, "outputTokens": 10, "totalTokens": 37, "latencyMs": 350, "cacheReadInputTokens": 3
        } } }),
        ]
    );

    let asked = bedrock.received();
    let spec = &asked[0].body["toolConfig"]["tools"][0]["toolSpec"];
    assert_eq!(
        (&spec["name"], &spec["inputSchema"]["json"]["required"]),
        (&json!("calculator"), &json!(["expression"]))
    );
    assert_eq!(asked[1].body["system"], json!([{ "text": "Use the calculator." }]));
    assert_eq!(
        asked[1].body["messages"],
        json!([
            { "role": "user", "content": [{ "text": "What is 6 times 7?" }] },
            { "role": "assistant", "content": [
                { "text": "Let me compute. " },
                { "toolUse": { "toolUseId": "tu-1", "name": "calculator", "input": { "expression": "6 * 7" } } }
            ] },
            { "role": "user", "content": [{ "toolResult": { "toolUseId": "tu-1", "content": [{ "text": "42" }], "status": "success" } }] }
        ])
    );
}

#[tokio::test]
async fn tool_agent_runs_its_tool_loop_against_an_openai_server() {
    let delta = |delta: Value, finish: Option<&str>| {
        sse(&json!({ "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] }).to_string())
    };
    let piece = |function: Value| json!({ "tool_calls": [{ "index": 0, "function": function }] });
    let asks_for_the_calculator = [
        delta(
            json!({ "role": "assistant", "content": null, "tool_calls": [{ "index": 0, "id": "call_1", "type": "function", "function": { "name": "calculator", "arguments": "" } }] }),
            None,
        ),
        delta(piece(json!({ "arguments": "{\"expression\":" })), None),
        delta(piece(json!({ "arguments": " \"6 * 7\"}" })), None),
        delta(json!({}), Some("tool_calls")),
        sse("[DONE]"),
    ];
    let answers = [delta(json!({ "content": "It is 42." }), None), delta(json!({}), Some("stop")), sse("[DONE]")];
    let server = Upstream::start(vec![
        Script::new(200, SSE).chunks(Duration::ZERO, asks_for_the_calculator),
        Script::new(200, SSE).chunks(Duration::ZERO, answers),
    ])
    .await;
    let plugins = calculator_pipeline(json!({ "provider": "openai", "id": "llama3.2" }));
    let host =
        Server::builder().plugins(plugins.path()).arg("--openai-base-url", &format!("{}/v1", server.base)).start();
    let reply = ndjson_lines(&host.post("/calc", r#"{"prompt":"What is 6 times 7?"}"#).await.body);
    assert_eq!(
        reply[1..],
        [
            json!({ "type": "status", "data": { "message": "running calculator" } }),
            json!({ "type": "chunk", "data": "It is 42." }),
            // The server reported no usage, so none is made up.
            json!({ "type": "complete", "data": { "stopReason": "end_turn" } }),
        ]
    );

    let asked = server.received();
    assert_eq!(asked[0].body["tools"][0]["function"]["name"], "calculator");
    assert_eq!(
        asked[1].body["messages"],
        json!([
            { "role": "system", "content": "Use the calculator." },
            { "role": "user", "content": "What is 6 times 7?" },
            { "role": "assistant", "content": null, "tool_calls": [
                { "id": "call_1", "type": "function", "function": { "name": "calculator", "arguments": "{\"expression\":\"6 * 7\"}" } }
            ] },
            { "role": "tool", "tool_call_id": "call_1", "content": "42" }
        ])
    );
}

#[tokio::test]
async fn tool_agent_sends_its_reasoning_back_under_extended_thinking_with_the_guardrail_and_cache_points() {
    let reasoning = |delta: Value| {
        converse_event("contentBlockDelta", json!({ "contentBlockIndex": 0, "delta": { "reasoningContent": delta } }))
    };
    let thinks_then_asks = [
        converse_event("messageStart", json!({ "role": "assistant" })),
        reasoning(json!({ "text": "6 times 7: " })),
        reasoning(json!({ "text": "use the tool." })),
        reasoning(json!({ "signature": "sig-1" })),
        converse_event("contentBlockStop", json!({ "contentBlockIndex": 0 })),
        converse_event(
            "contentBlockDelta",
            json!({ "contentBlockIndex": 1, "delta": { "reasoningContent": { "redactedContent": "AQID" } } }),
        ),
        converse_event(
            "contentBlockStart",
            json!({ "contentBlockIndex": 2, "start": { "toolUse": { "toolUseId": "tu-1", "name": "calculator" } } }),
        ),
        converse_event(
            "contentBlockDelta",
            json!({ "contentBlockIndex": 2, "delta": { "toolUse": { "input": "{\"expression\":\"6 * 7\"}" } } }),
        ),
        converse_event("contentBlockStop", json!({ "contentBlockIndex": 2 })),
        converse_event("messageStop", json!({ "stopReason": "tool_use" })),
    ];
    let bedrock = Upstream::start(vec![
        Script::new(200, EVENT_STREAM).chunks(Duration::ZERO, thinks_then_asks),
        answer("It is 42."),
    ])
    .await;
    let model = json!({
        "provider": "bedrock", "id": "test-model",
        "guardrail": { "identifier": "gr-1", "version": "2", "trace": true },
        "cachePoints": ["system", "tools"]
    });
    let plugins = calculator_pipeline(model);
    let host = Server::builder().plugins(plugins.path()).env(bedrock.bedrock_env()).start();
    let reply = ndjson_lines(&host.post("/calc", r#"{"prompt":"What is 6 times 7?"}"#).await.body);
    assert_eq!(reply.last().unwrap()["type"], "complete", "{reply:?}");

    let asked = bedrock.received();
    assert_eq!(
        asked[0].body["guardrailConfig"],
        json!({ "guardrailIdentifier": "gr-1", "guardrailVersion": "2", "trace": "enabled", "streamProcessingMode": "sync" })
    );
    assert_eq!(
        asked[0].body["system"],
        json!([{ "text": "Use the calculator." }, { "cachePoint": { "type": "default" } }])
    );
    assert_eq!(
        asked[0].body["toolConfig"]["tools"].as_array().unwrap().last().unwrap(),
        &json!({ "cachePoint": { "type": "default" } })
    );
    // Bedrock refuses the next request of a tool loop under extended
    // thinking unless the reasoning comes back first, signed.
    assert_eq!(
        asked[1].body["messages"][1],
        json!({ "role": "assistant", "content": [
        { "reasoningContent": { "reasoningText": { "text": "6 times 7: use the tool.", "signature": "sig-1" } } },
        { "reasoningContent": { "redactedContent": "AQID" } },
        { "toolUse": { "toolUseId": "tu-1", "name": "calculator", "input": { "expression": "6 * 7" } } }
    ] })
    );
}

#[tokio::test]
async fn llm_router_decides_by_the_json_outside_the_models_reasoning() {
    let reasons_first = "<think>A crash would be {\"agent\": \"tech\"}, but this is a charge.</think>\n{\"agent\": \"billing\", \"confidence\": 0.9, \"reason\": \"a charge\"}";
    let plugins = llm_router_desk(reasons_first);
    let host = Server::builder().plugins(plugins.path()).start();
    let lines = ndjson_lines(&host.post("/desk", r#"{"prompt":"I was charged twice"}"#).await.body);
    assert_eq!(
        lines[0],
        json!({ "type": "metadata", "data": { "agent": "billing", "confidence": 0.9, "reason": "a charge", "userInput": "I was charged twice" } })
    );
}

#[tokio::test]
async fn a_router_naming_an_unknown_agent_ends_with_an_error_event() {
    let plugins = llm_router_desk("{\"agent\": \"astrology\", \"confidence\": 1}");
    let host = Server::builder().plugins(plugins.path()).start();
    let reply = host.post("/desk", r#"{"prompt":"What does my horoscope say?"}"#).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (200, "application/x-ndjson"));
    assert_eq!(
        ndjson_lines(&reply.body),
        [json!({ "type": "error", "data": {
            "code": "unknown_agent",
            "message": "router `llm-router` chose `astrology`, which is not one of this pipeline's agents (billing, tech)"
        } })]
    );
}

/// The same failure has the same code wherever it is met: a pinned router
/// whose file differs ends its stream with the `digest_mismatch` a pinned
/// transform is refused with before the stream.
#[tokio::test]
async fn a_pinned_router_whose_file_differs_ends_with_digest_mismatch() {
    let plugins = llm_router_desk("{\"agent\": \"billing\", \"confidence\": 1}");
    let pinned = support::sha256_hex(&std::fs::read(example("ndjson")).unwrap());
    let actual = support::sha256_hex(&std::fs::read(example("llm-router")).unwrap());
    let host = Server::builder().plugins(plugins.path()).arg("--pin", &format!("llm-router={pinned}")).start();
    let reply = host.post("/desk", r#"{"prompt":"I was charged twice"}"#).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (200, "application/x-ndjson"));
    assert_eq!(
        ndjson_lines(&reply.body),
        [json!({ "type": "error", "data": {
            "code": "digest_mismatch",
            "message": format!("plugin `llm-router` is pinned to sha256 {pinned}, but the store holds {actual}")
        } })]
    );
}

#[tokio::test]
async fn an_agent_that_traps_mid_stream_ends_with_an_error_event() {
    let plugins = plugin_dir(&[("trap-agent", &fixture("trap-agent")), ("ndjson", &example("ndjson"))]);
    write_manifest(
        plugins.path(),
        "flaky",
        &json!({ "agents": [{ "name": "flaky", "description": "Breaks", "plugin": "trap-agent" }], "transforms": ["ndjson"] }),
    );
    let host = Server::builder().plugins(plugins.path()).start();
    let body = json!({ "prompt": "go", "sessionId": "s1" }).to_string();
    let reply = ndjson_lines(&host.post("/flaky", &body).await.body);
    assert_eq!(reply[0]["data"]["agent"], "flaky");
    assert_eq!(
        reply[1..3],
        [
            json!({ "type": "status", "data": { "message": "working" } }),
            json!({ "type": "chunk", "data": "partial answer" })
        ]
    );
    let error = &reply[3]["data"];
    assert_eq!((reply.len(), &error["code"]), (4, &json!("plugin_trapped")));
    assert!(error["message"].as_str().unwrap().ends_with("what it printed is in the host's log"), "{error}");
    assert!(host.logs().contains("the tool crashed"), "the panic message is the operator's: {}", host.logs());
    // The host goes on serving.
    assert_eq!(ndjson_lines(&host.post("/flaky", &body).await.body).len(), 4);
}

#[tokio::test]
async fn an_agent_that_emits_without_end_is_stopped_at_its_output_limit() {
    let plugins = plugin_dir(&[("flood-agent", &fixture("flood-agent")), ("ndjson", &example("ndjson"))]);
    write_manifest(
        plugins.path(),
        "flood",
        &json!({ "agents": [{ "name": "flood", "description": "Floods", "plugin": "flood-agent" }], "transforms": ["ndjson"] }),
    );
    let host = Server::builder().plugins(plugins.path()).arg("--plugin-stream-output-bytes", "1048576").start();
    let reply = ndjson_lines(&host.post("/flood", &json!({ "prompt": "go" }).to_string()).await.body);
    // Each emit is a call of its own; 16 of 64 KiB make the stream's 1 MiB, the 17th is refused.
    let chunks = reply.iter().filter(|line| line["type"] == "chunk").count();
    assert_eq!(chunks, 16, "{:?}", &reply[..2]);
    assert_eq!(
        reply.last().unwrap()["data"],
        json!({ "code": "plugin_output_limit", "message":
            "plugin `flood-agent` produced more than 1048576 bytes beyond its input in the stream (--plugin-stream-output-bytes)" })
    );
}

#[tokio::test]
async fn a_tool_loop_that_never_ends_is_stopped_by_the_model_call_limit() {
    let plugins = plugin_dir(&[("tool-agent", &example("tool-agent")), ("ndjson", &example("ndjson"))]);
    write_manifest(
        plugins.path(),
        "loop",
        &json!({
            "agents": [{ "name": "calc", "description": "Sums", "plugin": "tool-agent" }],
            "transforms": ["ndjson"],
            "model": { "provider": "echo", "script": [{ "toolUse": { "name": "calculator", "input": { "expression": "1 + 1" } } }] }
        }),
    );
    let host = Server::builder().plugins(plugins.path()).arg("--max-model-calls", "3").start();
    let reply = ndjson_lines(&host.post("/loop", r#"{"prompt":"add forever"}"#).await.body);
    let running = json!({ "type": "status", "data": { "message": "running calculator" } });
    assert_eq!(
        reply[1..],
        [
            running.clone(),
            running.clone(),
            running,
            json!({ "type": "error", "data": {
            "code": "model_call_limit",
            "message": "plugin `tool-agent`: this turn has made its 3 model calls (--max-model-calls); is a tool loop not ending?"
        } }),
        ]
    );
}

#[tokio::test]
async fn status_events_arrive_one_by_one() {
    let plugins =
        plugin_dir(&[("slow-process", &example("slow-process")), ("ndjson-status", &example("ndjson-status"))]);
    let steps = ["one", "two", "three"];
    write_manifest(
        plugins.path(),
        "progress",
        &json!({
            "agents": [{ "name": "report", "description": "Slow", "plugin": "slow-process", "config": { "steps": steps, "stepMs": 300 } }],
            "transforms": ["ndjson-status"]
        }),
    );
    // The plugin's own per-call limit is shorter than the whole job: time
    // spent waiting in the host is not the plugin's.
    let host = Server::builder().plugins(plugins.path()).arg("--plugin-timeout-ms", "500").start();
    let start = Instant::now();
    let response =
        reqwest::Client::new().post(host.url("/progress")).body(r#"{"prompt":"weekly report"}"#).send().await.unwrap();
    let chunks = timed_chunks(response, start).await;
    let timed_lines: Vec<(Duration, Value)> = chunks
        .iter()
        .flat_map(|(at, chunk)| chunk.lines().map(move |line| (*at, serde_json::from_str(line).unwrap())))
        .collect();
    let kinds: Vec<&str> = timed_lines.iter().map(|(_, line)| line["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["metadata", "status", "status", "status", "result"]);
    assert_eq!(timed_lines[1].1["payload"], json!({ "message": "one (1/3)" }));
    assert_eq!(timed_lines[4].1["payload"], json!({ "task": "weekly report", "steps": 3, "status": "done" }));
    // Each status line left when its step began: one step's pause apart,
    // not together at the end.
    for pair in timed_lines[1..].windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= Duration::from_millis(250),
            "{:?}",
            timed_lines.iter().map(|(at, _)| at).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn dynamodb_keeps_the_conversation() {
    let moto = Moto::start().await;
    moto.create_table("conversations", "conversation", "turn").await;
    let dynamodb = moto.dynamodb();
    let host = Server::builder().env(moto.env()).arg("--history-table", "conversations").start();
    let turn = |prompt: &str| json!({ "prompt": prompt, "userId": "ana", "sessionId": "s1" }).to_string();

    ndjson_lines(&host.post("/support-desk", &turn("I was charged twice, I want a refund")).await.body);
    let follow_up = ndjson_lines(&host.post("/support-desk", &turn("How long does it take?")).await.body);
    assert_eq!(follow_up[0]["data"]["agent"], "billing", "the router read the last agent from DynamoDB");

    let stored = dynamodb
        .query()
        .table_name("conversations")
        .key_condition_expression("conversation = :c")
        .expression_attribute_values(":c", AttributeValue::S("ana#s1".into()))
        .send()
        .await
        .unwrap();
    let items = stored.items();
    assert_eq!(items.len(), 2);
    let messages: Value = serde_json::from_str(items[0]["messages"].as_s().unwrap()).unwrap();
    let answer = "Billing here. Refunds reach your card within 5 days of approval.";
    assert_eq!(
        messages,
        json!([{ "role": "user", "content": "I was charged twice, I want a refund" }, { "role": "assistant", "content": answer }])
    );
    assert_eq!(items[0]["agent"].as_s().unwrap(), "billing");
    assert!(items[0]["expiresAt"].as_n().unwrap().parse::<u64>().unwrap() > 1_700_000_000);
}
