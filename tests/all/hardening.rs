//! The host against a hostile page, a hostile upload and names that do
//! not exist: each refusal by its exact status and body, and proof that
//! the refused call had no effect (no model call, no plugin replaced).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::upstream::{Script, Upstream, sse};
use crate::support::{Reply, Server, error_of, example, examples_with, write_manifest};

/// An OpenAI-compatible source that answers every call with "Hello" and
/// counts them: a refused call must never reach it.
async fn counting_source() -> Upstream {
    let chunk = |content: Option<&str>, finish: Option<&str>| {
        sse(&json!({ "id": "c1", "object": "chat.completion.chunk", "choices": [{ "index": 0, "delta": { "content": content }, "finish_reason": finish }] }).to_string())
    };
    let script = Script::new(200, "text/event-stream")
        .chunk(Duration::ZERO, chunk(Some("Hello"), None))
        .chunk(Duration::ZERO, chunk(None, Some("stop")))
        .chunk(Duration::ZERO, b"data: [DONE]\n\n".to_vec());
    Upstream::start(vec![script]).await
}

fn host_on(source: &Upstream) -> Server {
    Server::builder()
        .arg("--openai-base-url", &format!("{}/v1", source.base))
        .arg("--model", "llama3.2")
        .env([("STREAMHOST_OPENAI_API_KEY", "sk-loopback".to_string())])
        .start()
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    error_of(request.send().await.unwrap()).await
}

fn refusal(code: &str, message: &str) -> Value {
    json!({ "error": { "code": code, "message": message } })
}

#[tokio::test]
async fn a_loopback_server_answers_only_requests_addressed_to_loopback_names() {
    let source = counting_source().await;
    let host = host_on(&source);
    let client = reqwest::Client::new();
    let port = host.base.rsplit(':').next().unwrap().trim_end_matches('/').to_string();
    let expected = |name: &str| {
        refusal(
            "host_not_allowed",
            &format!(
                "this server answers only requests addressed to localhost, *.localhost, 127.0.0.1, [::1]; \
                 `Host: {name}` is none of them (start it with --allowed-hosts to add names)"
            ),
        )
    };
    // DNS rebinding: the page's own name, pointed at 127.0.0.1.
    for rebound in [format!("evil.example:{port}"), "evil.example".into(), format!("127.0.0.1.evil.example:{port}")] {
        let catalog = client.get(host.url("/_catalog")).header("host", &rebound);
        assert_eq!(send(catalog).await, (403, expected(&rebound)), "{rebound}");
        let call = client.post(host.url("/ndjson")).header("host", &rebound).body(r#"{"prompt":"hi"}"#);
        assert_eq!(send(call).await, (403, expected(&rebound)));
        let run = client.post(host.url("/runs/ndjson")).header("host", &rebound).body(r#"{"prompt":"hi"}"#);
        assert_eq!(send(run).await, (403, expected(&rebound)));
    }
    assert!(source.received().is_empty(), "a refused call made a model call");
    for loopback in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("app.localhost:{port}")] {
        let catalog = client.get(host.url("/_catalog")).header("host", &loopback).send().await.unwrap();
        assert_eq!(catalog.status(), 200, "{loopback}");
    }
    let named = Server::builder().arg("--allowed-hosts", "dev.example").start();
    let catalog = client.get(named.url("/_catalog")).header("host", "dev.example").send().await.unwrap();
    assert_eq!(catalog.status(), 200);
}

#[tokio::test]
async fn a_page_of_another_origin_is_refused_before_its_call_has_any_effect() {
    let source = counting_source().await;
    let host = host_on(&source);
    let client = reqwest::Client::new();
    let expected = refusal(
        "origin_not_allowed",
        "a page on `https://evil.example` may not call this host (--cors-origins does not name it)",
    );
    // The "simple" requests a page sends without a preflight: text/plain,
    // a form; and a run, which would outlive the page.
    for (path, content_type) in [
        ("/ndjson", "text/plain"),
        ("/ndjson", "application/x-www-form-urlencoded"),
        ("/runs/ndjson", "text/plain"),
        ("/", "text/plain"),
    ] {
        let call = client
            .post(host.url(path))
            .header("origin", "https://evil.example")
            .header("content-type", content_type)
            .body(r#"{"prompt":"bill the developer"}"#);
        assert_eq!(send(call).await, (403, expected.clone()), "{path} {content_type}");
    }
    // A browser that leaves `Origin` out still says where the call came from.
    let cross_site = client.post(host.url("/ndjson")).header("sec-fetch-site", "cross-site").body(r#"{"prompt":"x"}"#);
    assert_eq!(
        send(cross_site).await,
        (
            403,
            refusal(
                "origin_not_allowed",
                "a page on another site may not call this host (--cors-origins does not name it)"
            )
        )
    );
    assert!(source.received().is_empty(), "a refused call reached the model source");

    // The host's own page, and clients that are not browsers, are served.
    let own =
        client.post(host.url("/ndjson")).header("origin", host.base.trim_end_matches('/')).body(r#"{"prompt":"hi"}"#);
    let own = Reply::read(own.send().await.unwrap()).await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert!(own.body.contains("Hello"), "{}", own.body);
    assert_eq!(host.post("/ndjson", r#"{"prompt":"hi"}"#).await.status, 200);
    assert_eq!(source.received().len(), 2);
}

#[tokio::test]
async fn every_answer_is_sandboxed_and_never_sniffed() {
    let host = Server::start();
    let client = reqwest::Client::new();
    let stream = client.post(host.url("/text-only")).body(r#"{"prompt":"<img src=x onerror=alert(origin)>"}"#);
    let error = client.post(host.url("/nope")).body("{}");
    let catalog = client.get(host.url("/_catalog"));
    let health = client.get(host.url("/healthz"));
    for (what, request) in [("a stream", stream), ("an error", error), ("the catalog", catalog), ("health", health)] {
        let response = request.send().await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(headers["content-security-policy"], "sandbox; default-src 'none'; frame-ancestors 'none'", "{what}");
    }
    // The page runs its own script, found by its hash, and nothing else.
    let page = reqwest::get(host.url("/")).await.unwrap();
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert!(
        policy.starts_with("default-src 'none'; script-src 'sha256-") && policy.contains("frame-ancestors 'none'"),
        "{policy}"
    );
    assert!(!policy.contains("script-src 'unsafe-inline'"), "{policy}");
    let favicon = reqwest::get(host.url("/favicon.ico")).await.unwrap();
    assert_eq!(favicon.status(), 204, "asked for on every page load; no 405 in the log");
}

#[tokio::test]
async fn an_upload_cannot_replace_what_an_operator_composed() {
    let plugins = examples_with(&[]);
    write_manifest(
        plugins.path(),
        "desk",
        &json!({ "router": "keyword-router", "agents": [{ "name": "a", "description": "A" }, { "name": "b", "description": "B", "plugin": "tool-agent" }], "transforms": ["redact", "ndjson"] }),
    );
    let host = Server::builder()
        .plugins(plugins.path())
        .arg("--playground-upload", "true")
        .arg("--default-pipeline", "ndjson-status")
        .start();
    let put = |name: &str| {
        reqwest::Client::new().put(host.url(&format!("/_plugins/{name}"))).body(std::fs::read(example("sse")).unwrap())
    };
    let composed = |pipeline: &str, name: &str| {
        refusal(
            "upload_not_allowed",
            &format!(
                "pipeline `{pipeline}` runs `{name}`: an upload may not change what the operator composed; choose another name"
            ),
        )
    };
    // Inbound plugin, transform, a transform of a named chain only, router, agent plugin.
    for (name, pipeline) in [
        ("seed001-auth", "seed001"),
        ("redact", "chat"),
        ("text-only", "seed001"),
        ("keyword-router", "desk"),
        ("tool-agent", "desk"),
        ("slow-process", "progress"),
    ] {
        let digest_before = std::fs::read(plugins.path().join(format!("{name}.wasm"))).unwrap();
        assert_eq!(send(put(name)).await, (403, composed(pipeline, name)), "{name}");
        assert_eq!(std::fs::read(plugins.path().join(format!("{name}.wasm"))).unwrap(), digest_before, "{name}");
    }
    assert_eq!(
        send(put("ndjson-status")).await,
        (
            403,
            refusal(
                "upload_not_allowed",
                "`ndjson-status` is this host's default pipeline (`POST /`); choose another name"
            )
        )
    );
    // The guard still holds.
    let unguarded = host.post("/seed001", r#"{"prompt":"hi","runtimeSessionId":"s","response":"original"}"#).await;
    assert_eq!(unguarded.status, 401, "{}", unguarded.body);
    // What no pipeline runs may still be replaced: that is the playground's job.
    assert_eq!(put("sse").send().await.unwrap().status(), 201);
    assert_eq!(put("brand-new").send().await.unwrap().status(), 201);

    // A manifest that cannot be read: what it runs cannot be known.
    std::fs::write(plugins.path().join("broken.json"), "{ not json").unwrap();
    let (status, body) = send(put("another")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("upload_not_allowed")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("pipeline `broken` cannot be read"), "{body}");
}

#[tokio::test]
async fn a_name_that_does_not_exist_is_a_404_whatever_else_is_wrong() {
    let host = Server::start();
    let missing = |name: &str| refusal("unknown_plugin", &format!("no plugin named `{name}`"));
    // A path below it, a body of another pipeline's shape, no body at all.
    host.post("/no-such-pipeline/invoke", r#"{"args":{"message":"hi"}}"#).await.assert_error(
        404,
        "unknown_plugin",
        "no plugin named `no-such-pipeline`",
    );
    let (status, body) = send(reqwest::Client::new().post(host.url("/no-such-pipeline")).body(r#"{"args":{}}"#)).await;
    assert_eq!((status, body), (404, missing("no-such-pipeline")));
    host.post("/no-such-pipeline", "not json").await.assert_error(
        404,
        "unknown_plugin",
        "no plugin named `no-such-pipeline`",
    );
    host.post("/ndjson?then=nope", r#"{"args":{}}"#).await.assert_error(
        404,
        "unknown_plugin",
        "no plugin named `nope`",
    );
    // A plugin that exists keeps the answer about what is wrong with the call.
    host.post("/ndjson/invoke", r#"{"prompt":"hi"}"#).await.assert_error(
        404,
        "not_found",
        "`ndjson` answers only at /ndjson: it has no inbound plugin to read `/invoke`",
    );
    let (status, body) = send(reqwest::Client::new().post(host.url("/ndjson")).body(r#"{"args":{}}"#)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{body}");

    let named_only = Server::builder().arg("--named-pipelines-only", "true").start();
    named_only.post("/no-such-pipeline/invoke", "{}").await.assert_error(
        404,
        "unknown_pipeline",
        "no pipeline is named `no-such-pipeline`; this host serves only named pipelines, as their manifests compose them",
    );
}

#[tokio::test]
async fn an_answer_that_is_one_json_document_reaches_a_frames_only_formatter() {
    // The AgentCore SDK's non-streaming entrypoint answers one document.
    let answer = json!({ "result": { "role": "assistant", "content": [{ "text": "Hello from the runtime" }] } });
    let runtime = Upstream::start(vec![
        Script::new(200, "application/json").chunk(Duration::ZERO, answer.to_string().into_bytes()),
    ])
    .await;
    let host = Server::builder().arg("--upstream-url", &format!("{}/invocations", runtime.base)).start();
    let original = host.post("/sse-passthrough", r#"{"prompt":"Hi"}"#).await;
    assert_eq!((original.status, original.content_type.as_str()), (200, "text/event-stream"));
    assert_eq!(original.body, format!("data: {answer}\n\n"), "the runtime's answer, as one SSE event");
    let text = host.post("/text-only", r#"{"prompt":"Hi"}"#).await;
    assert!(text.body.starts_with("Hello from the runtime"), "{}", text.body);

    // JSON lines and plain text are carried the same way.
    let runtime = Upstream::start(vec![
        Script::new(200, "application/x-ndjson")
            .chunk(Duration::ZERO, b"\"one \"\n".to_vec())
            .chunk(Duration::ZERO, b"\"two\"\n".to_vec()),
        Script::new(200, "text/plain").chunk(Duration::ZERO, b"plain\nanswer".to_vec()),
    ])
    .await;
    let host = Server::builder().arg("--upstream-url", &format!("{}/invocations", runtime.base)).start();
    let lines = host.post("/sse-passthrough", r#"{"prompt":"Hi"}"#).await;
    assert_eq!(lines.body, "data: \"one \"\n\ndata: \"two\"\n\n");
    let plain = host.post("/sse-passthrough", r#"{"prompt":"Hi"}"#).await;
    assert_eq!(plain.body, "data: plain\n\ndata: answer\n\n", "a frame per line, once the line is whole");
}

#[tokio::test]
async fn a_preflight_is_checked_like_the_call_it_asks_for() {
    let host = Server::builder().arg("--cors-origins", "https://app.example.com").start();
    let client = reqwest::Client::new();
    let preflight = |host_header: &str, origin: &str| {
        client
            .request(reqwest::Method::OPTIONS, host.url("/ndjson"))
            .header("host", host_header)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
    };
    let port = host.base.rsplit(':').next().unwrap().trim_end_matches('/').to_string();
    let local = format!("127.0.0.1:{port}");
    let (status, body) = send(preflight("evil.example", "https://app.example.com")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("host_not_allowed")), "{body}");
    let (status, body) = send(preflight(&local, "https://evil.example")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("origin_not_allowed")), "{body}");
    let allowed = preflight(&local, "https://app.example.com").send().await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(allowed.headers()["x-content-type-options"], "nosniff", "a preflight's answer is hardened too");
    // The host's own origin is `http://` and its own name and port, nothing else.
    for origin in [format!("https://{local}"), format!("ws://{local}")] {
        let call = client.post(host.url("/ndjson")).header("origin", &origin).body(r#"{"prompt":"hi"}"#);
        assert_eq!(send(call).await.0, 403, "{origin}");
    }
}

#[tokio::test]
async fn an_upload_is_checked_again_once_its_body_has_arrived() {
    let plugins = examples_with(&[]);
    let host = Server::builder().plugins(plugins.path()).arg("--playground-upload", "true").start();
    let wasm = std::fs::read(example("sse")).unwrap();
    let (half, rest) = wasm.split_at(wasm.len() / 2);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    sender.send(Ok(half.to_vec())).await.unwrap();
    let body = reqwest::Body::wrap_stream(tokio_stream_of(receiver));
    let upload = tokio::spawn(reqwest::Client::new().put(host.url("/_plugins/late-guard")).body(body).send());
    // A pipeline that runs the name appears while the body is on its way.
    tokio::time::sleep(Duration::from_millis(300)).await;
    write_manifest(plugins.path(), "late", &json!({ "transforms": ["late-guard"] }));
    sender.send(Ok(rest.to_vec())).await.unwrap();
    drop(sender);
    let (status, body) = error_of(upload.await.unwrap().unwrap()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("upload_not_allowed")), "{body}");
    assert!(!plugins.path().join("late-guard.wasm").exists(), "nothing was written");
}

fn tokio_stream_of<T: Send + 'static>(
    mut receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |context| receiver.poll_recv(context))
}

/// A user id that an inbound plugin passes on from the body is a claim,
/// not an identity: it owns no run and has no share of its own.
#[tokio::test]
async fn a_claimed_user_id_is_no_owner_and_no_share_of_its_own() {
    let host = Server::builder().arg("--max-runs", "20").echo_delay_ms(200).start();
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut first = None;
    for user in 0..5 {
        let body = json!({ "query": "refund please, and a long answer to keep the run going", "userId": format!("u{user}"), "sessionId": "s" });
        let response = client.post(host.url("/runs/seed000")).body(body.to_string()).send().await.unwrap();
        statuses.push(response.status().as_u16());
        let answer: Value = response.json().await.unwrap();
        first = first.or(answer["id"].as_str().map(str::to_string));
    }
    assert_eq!(statuses, [202, 202, 429, 429, 429], "one address, a tenth of --max-runs, whatever ids it claims");
    let id = first.unwrap();
    let read = client.get(host.url(&format!("/runs/{id}"))).send().await.unwrap();
    assert_eq!(read.status(), 200, "a run with no owner is read by its id");
}

#[tokio::test]
async fn an_error_from_an_agent_runtime_reaches_the_caller_as_an_error_event_scrubbed() {
    let arn = "User: arn:aws:sts::123456789012:assumed-role/MyRole/sess1 is not authorized";
    let scripts = [
        format!("data: \"Hello\"\n\nevent: error\ndata: {arn}\n\n"),
        format!(
            "data: \"Hello\"\n\ndata: {}\n\n",
            json!({ "errorMessage": arn, "errorType": "AccessDeniedException" })
        ),
        // JSON's escaped slash (`\/`), as a raw frame would carry it.
        format!(
            "data: \"Hello\"\n\nevent: error\ndata: {{\"message\":\"{}\"}}\n\ndata: \"after\"\n\n",
            arn.replace('/', "\\/")
        ),
    ];
    let runtime = Upstream::start(
        scripts
            .iter()
            .map(|body| Script::new(200, "text/event-stream").chunk(Duration::ZERO, body.clone().into_bytes()))
            .collect(),
    )
    .await;
    let host = Server::builder().arg("--upstream-url", &format!("{}/invocations", runtime.base)).start();
    for script in &scripts {
        let reply = host.post("/sse-passthrough", r#"{"prompt":"Hi"}"#).await;
        assert!(!reply.body.contains("123456789012") && !reply.body.contains("MyRole"), "{script}\n{}", reply.body);
        assert!(reply.body.starts_with("data: \"Hello\"\n\nevent: error\ndata: {\"code\":"), "{}", reply.body);
        assert!(!reply.body.contains("after"), "the stream ends at its error: {}", reply.body);
    }
}

/// A chain that writes nothing of an answer the source made is refused
/// before its first byte, never a `200` with an empty body: here a
/// formatter that forwards only an agent runtime's frames, on the echo
/// model, which sends none.
#[tokio::test]
async fn an_answer_the_chain_drops_whole_is_refused_not_an_empty_success() {
    let host = Server::start();
    host.post("/sse-passthrough", r#"{"prompt":"hello"}"#).await.assert_error(
        500,
        "answer_dropped",
        "the model source answered (2 text chunks) but the chain wrote nothing of it: its formatter reads only what \
         this source does not send (`sse-passthrough` forwards an agent runtime's own frames)",
    );
    assert!(host.logs().contains("answer_dropped"), "logged once, where it was refused");
}
