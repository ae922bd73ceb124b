//! The example plugins and the request path through the real `streamhost
//! serve` process over HTTP: byte-exact bodies, streaming proven by timing,
//! cancellation, and every bad request answered with its exact error.

use crate::support;

use std::time::{Duration, Instant};

use support::{Server, timed_chunks};

/// "Hi there" comes back from the echo provider as "Hi", " ther", "e".
const HELLO: &str = r#"{"prompt":"Hi there","userId":"u1","sessionId":"s1"}"#;

#[tokio::test]
async fn ndjson_formats_the_orchestrator_schema() {
    let server = Server::start();
    let reply = server.post("/ndjson", HELLO).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (200, "application/x-ndjson"));
    assert_eq!(
        reply.body,
        concat!(
            "{\"type\":\"metadata\",\"data\":{\"provider\":\"echo\",\"model\":\"echo\"}}\n",
            "{\"type\":\"chunk\",\"data\":\"Hi\"}\n",
            "{\"type\":\"chunk\",\"data\":\" ther\"}\n",
            "{\"type\":\"chunk\",\"data\":\"e\"}\n",
            "{\"type\":\"complete\",\"data\":{\"stopReason\":\"end_turn\",",
            "\"usage\":{\"inputTokens\":3,\"outputTokens\":3,\"totalTokens\":6,\"latencyMs\":0}}}\n",
        )
    );
}

#[tokio::test]
async fn sse_sends_named_events_and_a_final_done() {
    let server = Server::start();
    let reply = server.post("/sse", HELLO).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (200, "text/event-stream"));
    assert_eq!(
        reply.body,
        concat!(
            "event: metadata\ndata: {\"provider\":\"echo\",\"model\":\"echo\"}\n\n",
            "event: text\ndata: {\"text\":\"Hi\"}\n\n",
            "event: text\ndata: {\"text\":\" ther\"}\n\n",
            "event: text\ndata: {\"text\":\"e\"}\n\n",
            "event: usage\ndata: {\"inputTokens\":3,\"outputTokens\":3,\"totalTokens\":6,\"latencyMs\":0}\n\n",
            "event: done\ndata: {\"stopReason\":\"end_turn\"}\n\n",
        )
    );
}

#[tokio::test]
async fn text_sends_only_text_then_usage_and_session() {
    let server = Server::start();
    let reply = server.post("/text-only", HELLO).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (200, "text/plain; charset=utf-8"));
    assert_eq!(reply.body, "Hi there\nusage: input=3 output=3 total=6 latency_ms=0\nsession: s1\n");
}

#[tokio::test]
async fn redact_masks_addresses_and_cards_split_across_deltas_before_a_formatter() {
    let server = Server::start();
    // The echo provider splits these into "bob@", "exam", "ple." ... and
    // "4111", " 1111", ...: no delta holds a whole address or number.
    let body = r#"{"prompt":"mail bob@example.com or pay 4111 1111 1111 1111 now"}"#;
    let reply = server.post("/redact?then=ndjson", body).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (200, "application/x-ndjson"));
    let lines: Vec<&str> = reply.body.lines().collect();
    let text: String = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["type"] == "chunk")
        .map(|line| line["data"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text, "mail [email] or pay [card] now");
    assert!(!reply.body.contains("bob") && !reply.body.contains("4111"), "{}", reply.body);
    assert!(lines.last().unwrap().starts_with("{\"type\":\"complete\""));
}

#[tokio::test]
async fn a_chain_without_a_formatter_uses_the_hosts_ndjson() {
    let server = Server::start();
    let reply = server.post("/redact", r#"{"prompt":"to a@b.io"}"#).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (200, "application/x-ndjson"));
    assert_eq!(
        reply.body,
        concat!(
            "{\"type\":\"metadata\",\"data\":{\"provider\":\"echo\",\"model\":\"echo\"}}\n",
            // "to" waits for the next delta: it could have begun an address.
            "{\"type\":\"text\",\"data\":\"to \"}\n",
            "{\"type\":\"text\",\"data\":\"[email]\"}\n",
            "{\"type\":\"end\",\"data\":\"end_turn\"}\n",
            "{\"type\":\"usage\",\"data\":{\"inputTokens\":3,\"outputTokens\":3,\"totalTokens\":6,\"latencyMs\":0}}\n",
        )
    );
}

#[tokio::test]
async fn plugin_settings_come_from_the_request() {
    let server = Server::start();
    let body = r#"{"prompt":"to a@b.io","config":{"redact":{"emailMask":"<hidden>"}}}"#;
    let reply = server.post("/redact?then=text-only", body).await;
    assert_eq!(reply.body, "to <hidden>\nusage: input=3 output=3 total=6 latency_ms=0\n");
}

#[tokio::test]
async fn the_first_chunk_arrives_before_the_provider_finishes() {
    const DELAY_MS: u64 = 100;
    let server = Server::builder().echo_delay_ms(DELAY_MS).start();
    // Eight tokens: the provider needs at least 800 ms to produce them.
    let body = r#"{"prompt":"one two three four five six seven eight"}"#;
    let start = Instant::now();
    let response = reqwest::Client::new().post(server.url("/ndjson")).body(body).send().await.unwrap();
    let chunks = timed_chunks(response, start).await;

    let first_text = chunks.iter().find(|(_, chunk)| chunk.contains("\"chunk\"")).expect("a text chunk");
    let (finished, _) = chunks.last().unwrap();
    let remaining = *finished - first_text.0;
    assert!(
        remaining >= Duration::from_millis(DELAY_MS * 6),
        "the first text came {:?} before the end, so it was not streamed: {chunks:?}",
        remaining
    );
    assert!(chunks.len() >= 8, "each token arrives as its own chunk: {chunks:?}");
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_stream() {
    let server = Server::builder().echo_delay_ms(50).start();
    // 400 tokens at 50 ms: 20 s unless cancelled.
    let body = serde_json::json!({ "prompt": "word ".repeat(400) }).to_string();
    let response = reqwest::Client::new().post(server.url("/ndjson")).body(body).send().await.unwrap();
    let mut chunks = response.bytes_stream();
    futures::StreamExt::next(&mut chunks).await.unwrap().unwrap();
    assert_eq!(server.health().await["activeStreams"], 1);

    drop(chunks);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.health().await["activeStreams"] != 0 {
        assert!(Instant::now() < deadline, "the stream was not cancelled after the client left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn bad_requests_get_exact_errors_and_the_server_keeps_serving() {
    let server = Server::builder().arg("--max-body-bytes", "1024").start();

    server.post("/nope", HELLO).await.assert_error(404, "unknown_plugin", "no plugin named `nope`");
    server.post("/..%2Fx", HELLO).await.assert_error(
        400,
        "invalid_plugin_name",
        "invalid plugin name \"../x\": it must start with a lowercase letter or a digit",
    );
    server.post("/NDJSON", HELLO).await.assert_error(
        400,
        "invalid_plugin_name",
        "invalid plugin name \"NDJSON\": it must start with a lowercase letter or a digit",
    );
    server.post("/redact?then=nd.json", HELLO).await.assert_error(
        400,
        "invalid_plugin_name",
        "invalid plugin name \"nd.json\": only lowercase letters, digits and '-' are allowed",
    );
    server.post("/ndjson", r#"{"prompt":"#).await.assert_error(
        400,
        "malformed_json",
        "the body is not valid JSON: EOF while parsing a value at line 1 column 10",
    );
    server.post("/ndjson", r#"{"promt":"hi"}"#).await.assert_error(
        400,
        "invalid_request",
        "unknown field `promt`, expected one of `prompt`, `messages`, `system`, `userId`, `sessionId`, `model`, `tools`, `config` at line 1 column 8",
    );
    server.post("/ndjson", "{}").await.assert_error(400, "invalid_request", "`prompt` or `messages` is required");
    let oversized = serde_json::json!({ "prompt": "x".repeat(2000) }).to_string();
    server.post("/ndjson", &oversized).await.assert_error(
        413,
        "body_too_large",
        "the body is larger than the 1024-byte limit",
    );

    let get = reqwest::get(server.url("/ndjson")).await.unwrap();
    support::Reply::read(get).await.assert_error(405, "method_not_allowed", "plugins are called with POST");
    let refused = server.post("/redact", r#"{"prompt":"x","config":{"redact":{"mask":"*"}}}"#).await;
    assert_eq!((refused.status, refused.content_type.as_str()), (422, "application/json"));
    assert!(
        refused.body.starts_with(
            r#"{"error":{"code":"invalid_config","message":"plugin `redact`: redact settings: unknown field `mask`"#
        ),
        "{}",
        refused.body
    );

    assert_eq!(server.post("/ndjson", HELLO).await.status, 200);
}

#[tokio::test]
async fn a_body_streamed_past_the_limit_is_refused_too() {
    let server = Server::builder().arg("--max-body-bytes", "1024").start();
    // No Content-Length: the limit must hold while reading.
    let chunks = (0..3).map(|_| Ok::<_, std::io::Error>(vec![b' '; 800]));
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let response = reqwest::Client::new().post(server.url("/ndjson")).body(body).send().await.unwrap();
    support::Reply::read(response).await.assert_error(
        413,
        "body_too_large",
        "the body is larger than the 1024-byte limit",
    );
}

#[tokio::test]
async fn sigterm_stops_the_server_gracefully() {
    let mut server = Server::start();
    assert_eq!(server.post("/ndjson", HELLO).await.status, 200);
    let killed = std::process::Command::new("kill").args(["-TERM", &server.pid().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = server.wait_exit(Duration::from_secs(10)).expect("streamhost exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}; log: {}", server.logs());
    assert!(server.logs().contains("shutting down"));
}

#[tokio::test]
async fn every_call_has_a_request_id_in_its_answer_and_its_log_lines() {
    let server = Server::start();
    let response = reqwest::Client::new().post(server.url("/nope")).body(r#"{"prompt":"hi"}"#).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let id = response.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(id.len() == 32 && id.bytes().all(|byte| byte.is_ascii_hexdigit()), "{id}");
    let logs = server.logs();
    let refused = logs.lines().find(|line| line.contains("request refused")).unwrap_or_else(|| panic!("{logs}"));
    assert!(refused.contains(&format!("request{{id={id}}}")), "{refused}");
}

/// Reads until the server closes the connection (or `guard` passes, a
/// failure): what it sent before closing.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, guard: std::time::Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let closed = tokio::time::timeout(guard, stream.read_to_end(&mut received)).await;
    assert!(closed.is_ok(), "the server kept the connection open: {}", String::from_utf8_lossy(&received));
    String::from_utf8_lossy(&received).into_owned()
}

/// A client that sends half a request header, or goes quiet on a kept-alive
/// connection, is disconnected after `--header-read-timeout-ms`; one that
/// sends half a body gets `408 body_timeout`.
#[tokio::test]
async fn slow_and_idle_clients_are_disconnected() {
    use tokio::io::AsyncWriteExt;
    let host = Server::builder().arg("--header-read-timeout-ms", "300").arg("--body-read-timeout-ms", "300").start();
    let address = host.url("").trim_start_matches("http://").trim_end_matches('/').to_string();
    let guard = std::time::Duration::from_secs(10);

    let mut half_header = tokio::net::TcpStream::connect(&address).await.unwrap();
    half_header.write_all(b"POST /ndjson HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.unwrap();
    assert_eq!(read_until_closed(&mut half_header, guard).await, "", "no response to half a request");

    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let answered = read_until_closed(&mut idle, guard).await;
    assert!(answered.starts_with("HTTP/1.1 200 OK"), "answered, then closed when idle: {answered}");

    let mut half_body = tokio::net::TcpStream::connect(&address).await.unwrap();
    half_body
        .write_all(b"POST /ndjson HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 20\r\n\r\n{\"prompt\":")
        .await
        .unwrap();
    let answered = read_until_closed(&mut half_body, guard).await;
    assert!(answered.starts_with("HTTP/1.1 408 Request Timeout"), "{answered}");
    assert!(answered.contains(r#"{"error":{"code":"body_timeout","message":"the body did not arrive within 300 ms (--body-read-timeout-ms)","requestId":""#), "{answered}");
}

/// A client that stops reading a stream is disconnected after
/// `--write-timeout-ms`: the stream is cancelled and its instances freed,
/// though the client still holds its socket.
#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_and_its_stream_cancelled() {
    use tokio::io::AsyncWriteExt;
    let dir = support::plugin_dir(&[("flood", &support::fixture("flood")), ("ndjson", &support::example("ndjson"))]);
    let host = Server::builder()
        .plugins(dir.path())
        .echo_delay_ms(20)
        .arg("--write-timeout-ms", "500")
        .arg("--plugin-stream-output-bytes", "100000000")
        .start();
    let address = host.url("").trim_start_matches("http://").trim_end_matches('/').to_string();
    // About 1 MB a push, 50 MB in all: far more than the sockets' buffers take.
    let body = r#"{"prompt":"one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty twenty-one twenty-two twenty-three twenty-four twenty-five twenty-six twenty-seven twenty-eight twenty-nine thirty thirty-one thirty-two thirty-three thirty-four thirty-five thirty-six thirty-seven thirty-eight thirty-nine forty forty-one forty-two forty-three forty-four forty-five forty-six forty-seven forty-eight forty-nine fifty","config":{"flood":{"count":1,"size":1000000}}}"#;
    let mut reader_that_never_reads = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request =
        format!("POST /flood?then=ndjson HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    reader_that_never_reads.write_all(request.as_bytes()).await.unwrap();
    let active = || async {
        let health: serde_json::Value = reqwest::get(host.url("/healthz")).await.unwrap().json().await.unwrap();
        health["activeStreams"].as_u64().unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while active().await == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    while active().await > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(active().await, 0, "the stream is cancelled while the client still holds its socket: {}", host.logs());
    assert!(host.logs().contains("stream cancelled before its end"), "{}", host.logs());
    drop(reader_that_never_reads);
}

/// Past `--max-connections`, a new connection waits to be served until one
/// of the others closes.
#[tokio::test]
async fn past_the_connection_limit_a_client_waits_for_a_free_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = Server::builder().arg("--max-connections", "2").arg("--header-read-timeout-ms", "60000").start();
    let address = host.url("").trim_start_matches("http://").trim_end_matches('/').to_string();
    let holders = [
        tokio::net::TcpStream::connect(&address).await.unwrap(),
        tokio::net::TcpStream::connect(&address).await.unwrap(),
    ];
    // Both holders are served first: each gets an answer on its connection.
    let mut holders = holders;
    for holder in &mut holders {
        holder.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
        let mut head = [0u8; 15];
        holder.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200 OK");
    }
    let mut third = tokio::net::TcpStream::connect(&address).await.unwrap();
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut first_byte = [0u8; 1];
    let waited = tokio::time::timeout(std::time::Duration::from_millis(500), third.read_exact(&mut first_byte)).await;
    assert!(waited.is_err(), "both slots are held: the third connection is not served yet");
    drop(holders);
    let served = read_until_closed(&mut third, std::time::Duration::from_secs(10)).await;
    assert!(served.starts_with("HTTP/1.1 200 OK"), "served once a slot was free: {served}");
}
