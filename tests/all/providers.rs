//! The model sources through the real host over HTTP, each against a
//! loopback server that speaks its wire format: Bedrock's event stream to the
//! real AWS SDK client (ConverseStream and raw InvokeModelWithResponseStream
//! with each decoder plugin), an OpenAI-compatible SSE server, and an agent
//! runtime that streams SSE (with `sse-passthrough` and `text-only`).

use crate::support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use support::upstream::{
    self, EVENT_STREAM, SSE, Script, Upstream, converse_answer, converse_event, exception, raw_chunk, sse,
};
use support::{Server, ndjson_lines, timed_chunks};

const NOW: Duration = Duration::ZERO;

fn bedrock_host(upstream: &Upstream) -> Server {
    Server::builder()
        .env(upstream.bedrock_env())
        .arg("--provider", "bedrock")
        .arg("--model", "anthropic.claude-3-haiku-20240307-v1:0")
        .arg("--provider-backoff-ms", "10")
        .start()
}

fn converse(pause: Duration, deltas: &[&str]) -> Script {
    Script::new(200, EVENT_STREAM).chunks(pause, converse_answer(deltas))
}

// ---- Bedrock ConverseStream ----

#[tokio::test]
async fn bedrock_maps_every_converse_event_and_sends_the_inference_settings() {
    let events = vec![
        converse_event("messageStart", json!({ "role": "assistant" })),
        converse_event(
            "contentBlockDelta",
            json!({ "contentBlockIndex": 0, "delta": { "reasoningContent": { "text": "think" } } }),
        ),
        converse_event("contentBlockDelta", json!({ "contentBlockIndex": 1, "delta": { "text": "Hel" } })),
        converse_event("contentBlockDelta", json!({ "contentBlockIndex": 1, "delta": { "text": "lo" } })),
        converse_event(
            "contentBlockStart",
            json!({ "contentBlockIndex": 2, "start": { "toolUse": { "toolUseId": "t1", "name": "clock" } } }),
        ),
        converse_event(
            "contentBlockDelta",
            json!({ "contentBlockIndex": 2, "delta": { "toolUse": { "input": "{\"tz\":" } } }),
        ),
        converse_event(
            "contentBlockDelta",
            json!({ "contentBlockIndex": 2, "delta": { "toolUse": { "input": "\"UTC\"}" } } }),
        ),
        converse_event("contentBlockStop", json!({ "contentBlockIndex": 2 })),
        converse_event("messageStop", json!({ "stopReason": "tool_use" })),
        converse_event(
            "metadata",
            json!({ "usage": { "inputTokens": 7, "outputTokens": 4, "totalTokens": 11, "cacheReadInputTokens": 3, "cacheWriteInputTokens": 2 }, "metrics": { "latencyMs": 250 } }),
        ),
    ];
    let bedrock = Upstream::start(vec![Script::new(200, EVENT_STREAM).chunks(NOW, events)]).await;
    let host = bedrock_host(&bedrock);
    let body = json!({
        "system": "Be brief.",
        "messages": [{ "role": "user", "content": "Hi" }, { "role": "assistant", "content": "Hello?" }, { "role": "user", "content": "Time?" }],
        "model": { "id": "us.anthropic.claude-3-5-haiku-20241022-v1:0", "temperature": 0.25, "maxTokens": 50, "topP": 0.5, "stopSequences": ["END"] }
    });
    let reply = host.post("/ndjson", &body.to_string()).await;
    assert_eq!(
        reply.body,
        concat!(
            "{\"type\":\"metadata\",\"data\":{\"provider\":\"bedrock\",\"model\":\"us.anthropic.claude-3-5-haiku-20241022-v1:0\"}}\n",
            "{\"type\":\"metadata\",\"data\":{\"reasoning\":{\"index\":0,\"text\":\"think\"}}}\n",
            "{\"type\":\"chunk\",\"data\":\"Hel\"}\n",
            "{\"type\":\"chunk\",\"data\":\"lo\"}\n",
            // A tool call is one event, once its input is whole.
            "{\"type\":\"metadata\",\"data\":{\"toolUse\":{\"toolUseId\":\"t1\",\"name\":\"clock\",\"input\":{\"tz\":\"UTC\"}}}}\n",
            "{\"type\":\"complete\",\"data\":{\"stopReason\":\"tool_use\",\"usage\":{\"inputTokens\":7,\"outputTokens\":4,\"totalTokens\":11,",
            "\"latencyMs\":250,\"cacheReadInputTokens\":3,\"cacheWriteInputTokens\":2}}}\n",
        )
    );

    let [request] = &bedrock.received()[..] else { panic!("one call") };
    assert_eq!(request.path, "/model/us.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream");
    assert_eq!(request.body["system"], json!([{ "text": "Be brief." }]));
    assert_eq!(request.body["messages"][1], json!({ "role": "assistant", "content": [{ "text": "Hello?" }] }));
    assert_eq!(
        request.body["inferenceConfig"],
        json!({ "maxTokens": 50, "temperature": 0.25, "topP": 0.5, "stopSequences": ["END"] })
    );
    let authorization = request.headers["authorization"].to_str().unwrap();
    assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDLOOPBACK/"), "{authorization}");
    assert!(authorization.contains("/us-east-1/bedrock/aws4_request"), "{authorization}");
}

#[tokio::test]
async fn bedrock_text_streams_as_it_arrives() {
    let deltas = ["one ", "two ", "three ", "four ", "five ", "six"];
    let bedrock = Upstream::start(vec![converse(Duration::from_millis(150), &deltas)]).await;
    let host = bedrock_host(&bedrock);
    let start = Instant::now();
    let response =
        reqwest::Client::new().post(host.url("/text-only")).body(r#"{"prompt":"count"}"#).send().await.unwrap();
    let chunks = timed_chunks(response, start).await;
    let first_text = chunks.iter().find(|(_, chunk)| chunk.contains("one")).unwrap().0;
    let end = chunks.last().unwrap().0;
    assert!(
        end - first_text >= Duration::from_millis(600),
        "text arrived at {first_text:?}, the stream ended at {end:?}: {chunks:?}"
    );
    let body: String = chunks.into_iter().map(|(_, chunk)| chunk).collect();
    assert_eq!(body, "one two three four five six\nusage: input=7 output=6 total=13 latency_ms=250\n");
}

#[tokio::test]
async fn bedrock_exception_mid_stream_ends_the_stream_with_its_error() {
    let mut events = converse_answer(&["Hel", "lo"]);
    events.truncate(3);
    events.push(exception("modelStreamErrorException", "The model failed mid-answer."));
    let bedrock = Upstream::start(vec![Script::new(200, EVENT_STREAM).chunks(NOW, events)]).await;
    let host = bedrock_host(&bedrock);
    let reply = host.post("/ndjson", r#"{"prompt":"hi"}"#).await;
    assert_eq!(reply.status, 200);
    let lines = ndjson_lines(&reply.body);
    assert_eq!(
        lines[1..],
        [
            json!({ "type": "chunk", "data": "Hel" }),
            json!({ "type": "chunk", "data": "lo" }),
            json!({ "type": "error", "data": { "code": "model_stream_error", "message": "The model failed mid-answer." } }),
        ]
    );
}

#[tokio::test]
async fn bedrock_throttling_before_the_first_event_is_retried() {
    let scripts = vec![
        upstream::aws_error(429, "ThrottlingException", "Too many requests, please wait before trying again."),
        Script::new(200, EVENT_STREAM).chunk(NOW, exception("throttlingException", "Rate exceeded")),
        converse(NOW, &["ok"]),
    ];
    let bedrock = Upstream::start(scripts).await;
    let host = bedrock_host(&bedrock);
    let reply = host.post("/text-only", r#"{"prompt":"hi"}"#).await;
    assert_eq!(reply.body, "ok\nusage: input=7 output=1 total=8 latency_ms=250\n");
    assert_eq!(bedrock.received().len(), 3, "an HTTP 429, then an exception as the first event, then the answer");
}

#[tokio::test]
async fn bedrock_throttling_after_the_first_event_is_not_retried() {
    let mut events = converse_answer(&["Hel"]);
    events.truncate(2);
    events.push(exception("throttlingException", "Rate exceeded"));
    let bedrock =
        Upstream::start(vec![Script::new(200, EVENT_STREAM).chunks(NOW, events), converse(NOW, &["never"])]).await;
    let host = bedrock_host(&bedrock);
    let reply = host.post("/ndjson", r#"{"prompt":"hi"}"#).await;
    assert_eq!(
        ndjson_lines(&reply.body)[1..],
        [
            json!({ "type": "chunk", "data": "Hel" }),
            json!({ "type": "error", "data": { "code": "throttled", "message": "Rate exceeded" } }),
        ]
    );
    assert_eq!(bedrock.received().len(), 1, "text was sent: a retry would repeat it");
}

#[tokio::test]
async fn bedrock_throttling_past_the_attempts_is_a_429() {
    let bedrock = Upstream::start(vec![upstream::aws_error(429, "ThrottlingException", "Rate exceeded")]).await;
    let host = bedrock_host(&bedrock);
    let reply = host.post("/ndjson", r#"{"prompt":"hi"}"#).await;
    let message = "the model source is throttling requests: Bedrock: ThrottlingException: Rate exceeded (3 attempts)";
    reply.assert_error(429, "upstream_throttled", message);
    assert_eq!(bedrock.received().len(), 3);
}

#[tokio::test]
async fn bedrock_refusal_is_not_retried_and_hides_the_account() {
    let denied = "User: arn:aws:sts::123456789012:assumed-role/fn/streamhost is not authorized to perform: bedrock:InvokeModelWithResponseStream";
    let bedrock = Upstream::start(vec![upstream::aws_error(403, "AccessDeniedException", denied)]).await;
    let host = bedrock_host(&bedrock);
    let reply = host.post("/ndjson", r#"{"prompt":"hi"}"#).await;
    let message = "the model source refused the request: Bedrock: AccessDeniedException: User: [arn] is not authorized to perform: \
                   bedrock:InvokeModelWithResponseStream (1 attempt)";
    reply.assert_error(502, "upstream_rejected", message);
    assert_eq!(bedrock.received().len(), 1);
}

#[tokio::test]
async fn an_unreachable_bedrock_is_a_short_message_and_the_sdks_chain_stays_in_the_log() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut env = support::loopback_aws_env();
    env.push(("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", format!("http://{}", closed.local_addr().unwrap())));
    drop(closed);
    let host = Server::builder()
        .env(env)
        .arg("--provider", "bedrock")
        .arg("--model", "m")
        .arg("--provider-backoff-ms", "10")
        .start();
    let reply = host.post("/ndjson", r#"{"prompt":"hi"}"#).await;
    reply.assert_error(
        503,
        "upstream_unavailable",
        "the model source is unavailable: Bedrock could not be reached (see the host's log) (3 attempts)",
    );
    assert!(host.logs().contains("Bedrock call failed"), "{}", host.logs());
    assert!(host.logs().contains("request failed"), "the failure is logged with its request id: {}", host.logs());
}

#[tokio::test]
async fn bedrock_connection_dropped_mid_stream_is_an_error_event() {
    let mut events = converse_answer(&["Hel", "lo"]);
    events.truncate(3);
    let broken = Script::new(200, EVENT_STREAM).chunks(NOW, events.clone()).then_break();
    let cut_at_a_frame = Script::new(200, EVENT_STREAM).chunks(NOW, events);
    let bedrock = Upstream::start(vec![broken, cut_at_a_frame]).await;
    let host = bedrock_host(&bedrock);
    for _ in 0..2 {
        let reply = host.post("/ndjson", r#"{"prompt":"hi"}"#).await;
        let lines = ndjson_lines(&reply.body);
        assert_eq!(lines[1..3], [json!({ "type": "chunk", "data": "Hel" }), json!({ "type": "chunk", "data": "lo" })]);
        assert_eq!(lines[3]["type"], "error");
        assert_eq!(lines[3]["data"]["code"], "upstream_disconnected");
        assert_eq!(lines.len(), 4);
    }
}

#[tokio::test]
async fn a_client_that_goes_away_closes_the_bedrock_connection() {
    let deltas: Vec<String> = (0..100).map(|n| format!("{n} ")).collect();
    let deltas: Vec<&str> = deltas.iter().map(String::as_str).collect();
    let bedrock = Upstream::start(vec![converse(Duration::from_millis(50), &deltas)]).await;
    let host = bedrock_host(&bedrock);
    let response = reqwest::Client::new().post(host.url("/ndjson")).body(r#"{"prompt":"long"}"#).send().await.unwrap();
    let mut body = response.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    assert!(
        bedrock.wait_cut_short(Duration::from_secs(3)).await,
        "the host kept reading from Bedrock after its caller left"
    );
}

// ---- Bedrock raw mode, with the decoder plugins ----

/// Runs `chunks` (the model's own JSON) through `decoder` then ndjson, and
/// returns the ndjson lines after the metadata and the request Bedrock got.
async fn raw(decoder: &str, model_id: &str, chunks: &[&str]) -> (Vec<Value>, Value) {
    let script = Script::new(200, EVENT_STREAM).chunks(NOW, chunks.iter().map(|chunk| raw_chunk(chunk)));
    let bedrock = Upstream::start(vec![script]).await;
    let host =
        Server::builder().env(bedrock.bedrock_env()).arg("--provider", "bedrock-raw").arg("--model", model_id).start();
    let reply = host.post(&format!("/{decoder}?then=ndjson"), r#"{"prompt":"Hi","model":{"maxTokens":20}}"#).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let lines = ndjson_lines(&reply.body);
    assert_eq!(lines[0], json!({ "type": "metadata", "data": { "provider": "bedrock-raw", "model": model_id } }));
    let [request] = &bedrock.received()[..] else { panic!("one call") };
    assert!(request.path.ends_with("/invoke-with-response-stream"), "{}", request.path);
    (lines[1..].to_vec(), request.body.clone())
}

fn metrics(input: u32, output: u32) -> String {
    format!(
        r#""amazon-bedrock-invocationMetrics":{{"inputTokenCount":{input},"outputTokenCount":{output},"invocationLatency":300,"firstByteLatency":90}}"#
    )
}

fn text_and_complete(texts: &[&str], stop: &str, input: u32, output: u32) -> Vec<Value> {
    let mut lines: Vec<Value> = texts.iter().map(|text| json!({ "type": "chunk", "data": text })).collect();
    let usage =
        json!({ "inputTokens": input, "outputTokens": output, "totalTokens": input + output, "latencyMs": 300 });
    lines.push(json!({ "type": "complete", "data": { "stopReason": stop, "usage": usage } }));
    lines
}

#[tokio::test]
async fn raw_llama_chunks_decode_to_text_and_usage() {
    let chunks = [
        r#"{"generation":"Hel","prompt_token_count":9,"generation_token_count":1,"stop_reason":null}"#,
        r#"{"generation":"lo","prompt_token_count":null,"generation_token_count":2,"stop_reason":null}"#,
        &format!(
            r#"{{"generation":"","prompt_token_count":null,"generation_token_count":3,"stop_reason":"stop",{}}}"#,
            metrics(9, 3)
        ),
    ];
    let (lines, request) = raw("decode-llama", "meta.llama3-8b-instruct-v1:0", &chunks).await;
    assert_eq!(lines, text_and_complete(&["Hel", "lo"], "end_turn", 9, 3));
    assert_eq!(request["max_gen_len"], 20);
    assert!(
        request["prompt"].as_str().unwrap().ends_with("Hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    );
}

#[tokio::test]
async fn raw_cohere_chunks_decode_without_the_end_of_stream_token() {
    let chunks = [
        r#"{"text":" Hel","is_finished":false}"#,
        r#"{"text":"lo<EOS_TOKEN>","is_finished":false}"#,
        &format!(r#"{{"is_finished":true,"finish_reason":"COMPLETE",{}}}"#, metrics(4, 2)),
    ];
    let (lines, request) = raw("decode-cohere", "cohere.command-text-v14", &chunks).await;
    assert_eq!(lines, text_and_complete(&[" Hel", "lo"], "end_turn", 4, 2));
    assert_eq!((request["prompt"].as_str(), &request["stream"]), (Some("User: Hi\nChatbot:"), &json!(true)));
}

#[tokio::test]
async fn raw_titan_chunks_decode_to_text_and_usage() {
    let chunks = [
        r#"{"outputText":"Hel","index":0,"totalOutputTextTokenCount":1,"completionReason":null,"inputTextTokenCount":3}"#,
        &format!(
            r#"{{"outputText":"lo","index":0,"totalOutputTextTokenCount":2,"completionReason":"LENGTH",{}}}"#,
            metrics(3, 2)
        ),
    ];
    let (lines, request) = raw("decode-titan", "amazon.titan-text-express-v1", &chunks).await;
    assert_eq!(lines, text_and_complete(&["Hel", "lo"], "max_tokens", 3, 2));
    assert_eq!(request["textGenerationConfig"], json!({ "maxTokenCount": 20 }));
}

#[tokio::test]
async fn raw_anthropic_messages_events_decode_to_text_and_usage() {
    let chunks = [
        r#"{"type":"message_start","message":{"id":"m","model":"claude","usage":{"input_tokens":8,"output_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2}}"#,
        &format!(r#"{{"type":"message_stop",{}}}"#, metrics(8, 2)),
    ];
    let (lines, request) = raw("decode-anthropic", "anthropic.claude-3-haiku-20240307-v1:0", &chunks).await;
    assert_eq!(lines, text_and_complete(&["Hel", "lo"], "end_turn", 8, 2));
    assert_eq!(
        request,
        json!({ "anthropic_version": "bedrock-2023-05-31", "max_tokens": 20, "messages": [{ "role": "user", "content": "Hi" }] })
    );
}

// ---- OpenAI-compatible servers ----

fn openai_chunk(content: Option<&str>, finish: Option<&str>) -> Vec<u8> {
    sse(&json!({ "id": "c1", "object": "chat.completion.chunk", "choices": [{ "index": 0, "delta": { "content": content }, "finish_reason": finish }] }).to_string())
}

fn openai_host(server: &Upstream) -> Server {
    Server::builder()
        .arg("--openai-base-url", &format!("{}/v1", server.base))
        .arg("--model", "llama3.2")
        .env([("STREAMHOST_OPENAI_API_KEY", "sk-loopback".to_string())])
        .start()
}

#[tokio::test]
async fn openai_streams_deltas_stop_and_usage() {
    let chunks = vec![
        openai_chunk(Some(""), None),
        openai_chunk(Some("Hel"), None),
        openai_chunk(Some("lo"), None),
        openai_chunk(None, Some("length")),
        sse(
            r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":4}}}"#,
        ),
        sse("[DONE]"),
    ];
    let server = Upstream::start(vec![Script::new(200, SSE).chunks(NOW, chunks)]).await;
    let host = openai_host(&server);
    let reply = host
        .post("/ndjson", r#"{"system":"Be brief.","prompt":"Hi","model":{"temperature":0.5,"stopSequences":["x"]}}"#)
        .await;
    let mut lines = ndjson_lines(&reply.body);
    let latency = lines[3]["data"]["usage"]["latencyMs"].take();
    assert!(latency.is_u64(), "the host measures the latency: {latency}");
    assert_eq!(
        lines,
        [
            json!({ "type": "metadata", "data": { "provider": "openai", "model": "llama3.2" } }),
            json!({ "type": "chunk", "data": "Hel" }),
            json!({ "type": "chunk", "data": "lo" }),
            json!({ "type": "complete", "data": { "stopReason": "max_tokens", "usage": { "inputTokens": 5, "outputTokens": 2, "totalTokens": 7, "latencyMs": null, "cacheReadInputTokens": 4 } } }),
        ]
    );

    let [request] = &server.received()[..] else { panic!("one call") };
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.headers["authorization"], "Bearer sk-loopback");
    assert_eq!(
        request.body,
        json!({
            "model": "llama3.2",
            "messages": [{ "role": "system", "content": "Be brief." }, { "role": "user", "content": "Hi" }],
            "stream": true,
            "stream_options": { "include_usage": true },
            "temperature": 0.5,
            "stop": ["x"],
        })
    );
}

#[tokio::test]
async fn openai_stream_without_done_ends_with_an_error_event() {
    let server = Upstream::start(vec![Script::new(200, SSE).chunk(NOW, openai_chunk(Some("Hel"), None))]).await;
    let host = openai_host(&server);
    let lines = ndjson_lines(&host.post("/ndjson", r#"{"prompt":"Hi"}"#).await.body);
    assert_eq!(
        lines[1..],
        [
            json!({ "type": "chunk", "data": "Hel" }),
            json!({ "type": "error", "data": { "code": "upstream_disconnected", "message": "the model server's stream ended before it said the answer was finished" } }),
        ]
    );
}

#[tokio::test]
async fn openai_stream_that_finished_then_closed_is_complete_without_done() {
    let server = Upstream::start(vec![
        Script::new(200, SSE).chunk(NOW, openai_chunk(Some("Hel"), None)).chunk(NOW, openai_chunk(None, Some("stop"))),
    ])
    .await;
    let host = openai_host(&server);
    let lines = ndjson_lines(&host.post("/ndjson", r#"{"prompt":"Hi"}"#).await.body);
    assert_eq!(
        lines[1..],
        [
            json!({ "type": "chunk", "data": "Hel" }),
            json!({ "type": "complete", "data": { "stopReason": "end_turn" } })
        ]
    );
}

#[tokio::test]
async fn an_answer_of_only_done_is_an_error_not_an_empty_success() {
    let server = Upstream::start(vec![Script::new(200, SSE).chunk(NOW, sse("[DONE]"))]).await;
    let host = openai_host(&server);
    let reply = host.post("/ndjson", r#"{"prompt":"Hi"}"#).await;
    reply.assert_error(
        502,
        "upstream_failed",
        "the model source failed: upstream_unexpected_content: the OpenAI-compatible server ended its answer with no \
         content and no finish reason (1 attempt)",
    );
    assert_eq!(server.received().len(), 1, "a source that may have done work is not asked again");
}

#[tokio::test]
async fn openai_unknown_model_is_a_502_and_not_retried() {
    let server = Upstream::start(vec![
        Script::new(404, "application/json").chunk(NOW, r#"{"error":{"message":"model 'nope' not found"}}"#),
    ])
    .await;
    let host = openai_host(&server);
    let reply = host.post("/ndjson", r#"{"prompt":"Hi","model":{"id":"nope"}}"#).await;
    let message = "the model source refused the request: HTTP 404 from the OpenAI-compatible server (1 attempt)";
    reply.assert_error(502, "upstream_rejected", message);
    assert_eq!(server.received().len(), 1);
}

// ---- An upstream agent runtime that streams SSE ----

/// What an AgentCore-style runtime streams: a comment, ConverseStream-shaped
/// events inside `"event"`, CRLF line ends in one of them, usage at the end.
fn agent_events() -> Vec<Vec<u8>> {
    vec![
        b": connected\n\n".to_vec(),
        sse(r#"{"event":{"messageStart":{"role":"assistant"}}}"#),
        sse(r#"{"event":{"contentBlockDelta":{"delta":{"text":"Hel"},"contentBlockIndex":0}}}"#),
        b"data: {\"event\":{\"contentBlockDelta\":{\"delta\":{\"text\":\"lo\"},\"contentBlockIndex\":0}}}\r\n\r\n"
            .to_vec(),
        sse(r#"{"event":{"messageStop":{"stopReason":"end_turn"}}}"#),
        sse(
            r#"{"event":{"metadata":{"usage":{"inputTokens":6,"outputTokens":2,"totalTokens":8},"metrics":{"latencyMs":120}}}}"#,
        ),
    ]
}

const AGENT_SESSION: &str = "x-amzn-bedrock-agentcore-runtime-session-id";

async fn agent_runtime(pause: Duration) -> Upstream {
    let script = Script::new(200, SSE).header(AGENT_SESSION, "upstream-session-7").chunks(pause, agent_events());
    Upstream::start(vec![script]).await
}

fn agent_host(runtime: &Upstream, auth: &[(&str, &str)]) -> Server {
    let url = format!(
        "{}/runtimes/arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Fagent/invocations",
        runtime.base
    );
    auth.iter()
        .fold(Server::builder().env(runtime.bedrock_env()).arg("--upstream-url", &url), |builder, (flag, value)| {
            builder.arg(flag, value)
        })
        .start()
}

#[tokio::test]
async fn sse_passthrough_sends_the_upstreams_bytes_unchanged() {
    let runtime = agent_runtime(NOW).await;
    let host = agent_host(&runtime, &[("--upstream-token", "agent-token")]);
    let reply = host.post("/sse-passthrough", r#"{"prompt":"Hi","userId":"u1","sessionId":"caller-session"}"#).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (200, "text/event-stream"));
    assert_eq!(reply.body.as_bytes(), agent_events().concat());

    let [request] = &runtime.received()[..] else { panic!("one call") };
    assert_eq!(request.headers["authorization"], "Bearer agent-token");
    assert_eq!(request.headers[AGENT_SESSION], "caller-session");
    assert_eq!(
        request.body,
        json!({ "prompt": "Hi", "messages": [{ "role": "user", "content": "Hi" }], "userId": "u1", "sessionId": "caller-session" })
    );
}

#[tokio::test]
async fn text_only_sends_the_text_then_usage_and_the_upstream_session() {
    let runtime = agent_runtime(NOW).await;
    let host = agent_host(&runtime, &[]);
    let reply = host.post("/text-only", r#"{"prompt":"Hi","sessionId":"caller-session"}"#).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (200, "text/plain; charset=utf-8"));
    assert_eq!(reply.body, "Hello\nusage: input=6 output=2 total=8 latency_ms=120\nsession: upstream-session-7\n");
    assert!(runtime.received()[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn upstream_calls_can_be_signed_with_sigv4() {
    let runtime = agent_runtime(NOW).await;
    let host = agent_host(&runtime, &[("--upstream-auth", "sigv4")]);
    let reply = host.post("/ndjson", r#"{"prompt":"Hi"}"#).await;
    assert_eq!(
        ndjson_lines(&reply.body)[0],
        json!({ "type": "metadata", "data": { "provider": "upstream", "sessionId": "upstream-session-7" } })
    );
    let headers = &runtime.received()[0].headers;
    let authorization = headers["authorization"].to_str().unwrap();
    assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDLOOPBACK/"), "{authorization}");
    assert!(authorization.contains("/us-east-1/bedrock-agentcore/aws4_request"), "{authorization}");
    assert!(authorization.contains("SignedHeaders=accept;content-type;host;x-amz-date"), "{authorization}");
    assert!(headers.contains_key("x-amz-date"));
}

#[tokio::test]
async fn a_500_from_the_agent_runtime_is_not_sent_again_and_hides_its_address() {
    // The runtime may have run tools before it failed: sending the request
    // again could run them twice.
    let crashed = Script::new(500, "text/plain").chunk(NOW, "arn:aws:bedrock-agentcore:us-east-1:123456789012 crashed");
    let runtime = Upstream::start(vec![crashed, Script::new(200, SSE).chunks(NOW, agent_events())]).await;
    let host = agent_host(&runtime, &[("--provider-backoff-ms", "10")]);
    let reply = host.post("/ndjson", r#"{"prompt":"Hi"}"#).await;
    reply.assert_error(502, "upstream_failed", "the model source failed: HTTP 500 from the upstream (1 attempt)");
    assert_eq!(runtime.received().len(), 1);
}

#[tokio::test]
async fn an_unavailable_agent_runtime_is_tried_again() {
    let scripts = vec![
        Script::new(503, "text/plain").chunk(NOW, "try later"),
        Script::new(504, "text/plain").chunk(NOW, "gateway timeout"),
        Script::new(200, SSE).chunks(NOW, agent_events()),
    ];
    let runtime = Upstream::start(scripts).await;
    let host = agent_host(&runtime, &[("--provider-backoff-ms", "10")]);
    let reply = host.post("/text-only", r#"{"prompt":"Hi"}"#).await;
    assert!(reply.body.starts_with("Hello\n"), "{}", reply.body);
    assert_eq!(runtime.received().len(), 3, "a 503 and a 504 are safe to repeat");
}

#[tokio::test]
async fn a_refused_connection_is_tried_again_and_then_answered_503() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/invocations", closed.local_addr().unwrap());
    drop(closed);
    let host = Server::builder().arg("--upstream-url", &url).arg("--provider-backoff-ms", "10").start();
    let reply = host.post("/ndjson", r#"{"prompt":"Hi"}"#).await;
    assert_eq!(
        (reply.status, reply.body.contains("\"upstream_unavailable\""), reply.body.contains("(3 attempts)")),
        (503, true, true),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn a_client_that_goes_away_closes_the_upstream_connection() {
    let runtime = agent_runtime(Duration::from_millis(400)).await;
    let host = agent_host(&runtime, &[]);
    let response =
        reqwest::Client::new().post(host.url("/sse-passthrough")).body(r#"{"prompt":"Hi"}"#).send().await.unwrap();
    let mut body = response.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    assert!(
        runtime.wait_cut_short(Duration::from_secs(3)).await,
        "the host kept reading from the upstream after its caller left"
    );
}

// ---- What a source says in an error is scrubbed, whichever source ----

/// An AWS refusal as a source passes it on: a role's ARN and the account id.
const DENIED: &str = "User: arn:aws:sts::123456789012:assumed-role/R/x is not authorized";
const DENIED_SCRUBBED: &str = "User: [arn] is not authorized";

/// `text` names neither the account nor an ARN.
fn assert_scrubbed(text: &str) {
    assert!(!text.contains("123456789012") && !text.contains("arn:aws"), "{text}");
}

#[tokio::test]
async fn an_agent_runtimes_in_band_error_reaches_the_caller_scrubbed() {
    let text = sse(r#"{"event":{"contentBlockDelta":{"delta":{"text":"Looking"},"contentBlockIndex":0}}}"#);
    let error = sse(&json!({ "error": DENIED }).to_string());
    let runtime = Upstream::start(vec![Script::new(200, SSE).chunks(NOW, [text.clone(), error])]).await;
    let host = agent_host(&runtime, &[]);

    let reply = host.post("/ndjson", r#"{"prompt":"Hi"}"#).await;
    assert_scrubbed(&reply.body);
    assert_eq!(
        ndjson_lines(&reply.body)[1..],
        [
            json!({ "type": "chunk", "data": "Looking" }),
            json!({ "type": "error", "data": { "code": "upstream_error", "message": DENIED_SCRUBBED } }),
        ]
    );
    // `sse-passthrough` forwards the error as its own error event, scrubbed,
    // never the upstream's bytes, and the stream ends there.
    let reply = host.post("/sse-passthrough", r#"{"prompt":"Hi"}"#).await;
    assert_scrubbed(&reply.body);
    let error = json!({ "code": "upstream_error", "message": DENIED_SCRUBBED });
    let forwarded = format!("{}event: error\ndata: {error}\n\n", String::from_utf8(text).unwrap());
    assert_eq!(reply.body, forwarded);
}

#[tokio::test]
async fn an_agent_runtimes_errors_before_a_stream_are_scrubbed() {
    let whole = Script::new(200, "application/json").chunk(NOW, json!({ "error": DENIED }).to_string());
    let status = Script::new(403, "application/json").chunk(NOW, json!({ "message": DENIED }).to_string());
    let runtime = Upstream::start(vec![whole, status]).await;
    let host = agent_host(&runtime, &[]);
    let reply = host.post("/ndjson", r#"{"prompt":"Hi"}"#).await;
    reply.assert_error(
        502,
        "upstream_failed",
        &format!("the model source failed: upstream_error: {DENIED_SCRUBBED} (1 attempt)"),
    );
    let reply = host.post("/ndjson", r#"{"prompt":"Hi"}"#).await;
    reply.assert_error(
        502,
        "upstream_rejected",
        "the model source refused the request: HTTP 403 from the upstream (1 attempt)",
    );
}

#[tokio::test]
async fn an_openai_servers_error_objects_and_statuses_are_scrubbed() {
    let first = Script::new(200, SSE).chunk(
        NOW,
        sse(&json!({ "error": { "message": DENIED, "type": "invalid_request_error", "code": null } }).to_string()),
    );
    let mid_stream = Script::new(200, SSE)
        .chunk(NOW, openai_chunk(Some("Hel"), None))
        .chunk(NOW, sse(&json!({ "error": DENIED }).to_string()));
    let status = Script::new(403, "application/json").chunk(NOW, json!({ "error": { "message": DENIED } }).to_string());
    let server = Upstream::start(vec![first, mid_stream, status]).await;
    let host = openai_host(&server);

    let reply = host.post("/ndjson", r#"{"prompt":"Hi"}"#).await;
    reply.assert_error(
        502,
        "upstream_failed",
        &format!("the model source failed: upstream_error: {DENIED_SCRUBBED} (1 attempt)"),
    );
    let reply = host.post("/ndjson", r#"{"prompt":"Hi"}"#).await;
    assert_eq!(
        ndjson_lines(&reply.body)[1..],
        [
            json!({ "type": "chunk", "data": "Hel" }),
            json!({ "type": "error", "data": { "code": "upstream_error", "message": DENIED_SCRUBBED } }),
        ]
    );
    let reply = host.post("/ndjson", r#"{"prompt":"Hi"}"#).await;
    reply.assert_error(
        502,
        "upstream_rejected",
        "the model source refused the request: HTTP 403 from the OpenAI-compatible server (1 attempt)",
    );
}

#[tokio::test]
async fn bedrock_exceptions_are_scrubbed_first_and_mid_stream() {
    let mut events = converse_answer(&["Hel"]);
    events.truncate(2);
    events.push(exception("modelStreamErrorException", DENIED));
    let first = Script::new(200, EVENT_STREAM).chunk(NOW, exception("validationException", DENIED));
    let bedrock = Upstream::start(vec![first, Script::new(200, EVENT_STREAM).chunks(NOW, events)]).await;
    let host = bedrock_host(&bedrock);

    let reply = host.post("/ndjson", r#"{"prompt":"hi"}"#).await;
    reply.assert_error(
        502,
        "upstream_rejected",
        &format!("the model source refused the request: validation_error: {DENIED_SCRUBBED} (1 attempt)"),
    );
    let reply = host.post("/ndjson", r#"{"prompt":"hi"}"#).await;
    assert_eq!(
        ndjson_lines(&reply.body)[1..],
        [
            json!({ "type": "chunk", "data": "Hel" }),
            json!({ "type": "error", "data": { "code": "model_stream_error", "message": DENIED_SCRUBBED } }),
        ]
    );
}

// ---- Choosing a provider ----

#[tokio::test]
async fn a_provider_that_cannot_serve_the_request_is_a_clear_400() {
    let host = Server::start();
    let reply = host.post("/ndjson", r#"{"prompt":"Hi","model":{"provider":"openai"}}"#).await;
    reply.assert_error(
        400,
        "provider_not_configured",
        "the `openai` provider is not configured on this host: set --openai-base-url",
    );
    let reply = host.post("/ndjson", r#"{"prompt":"Hi","model":{"provider":"bedrock"}}"#).await;
    reply.assert_error(
        400,
        "invalid_model_request",
        "the `bedrock` provider needs a model: give `model.id` in the request, or start the host with --model",
    );
    let reply = host.post("/ndjson", r#"{"prompt":"Hi","model":{"provider":"gpt"}}"#).await;
    assert_eq!((reply.status, reply.body.contains("unknown variant `gpt`")), (400, true), "{}", reply.body);
}
