//! Plugins that are broken, misbehave or change, through the real server:
//! each is answered clearly and the next request is still served.

use crate::support;

use std::fs;
use std::time::Duration;

use support::{Server, example, fixture, plugin_dir};

const HELLO: &str = r#"{"prompt":"Hi there"}"#;

#[tokio::test]
async fn files_that_cannot_be_transforms_are_refused_by_name() {
    let dir = plugin_dir(&[
        ("ndjson", &example("ndjson")),
        ("other", &fixture("other-world")),
        ("nosy", &fixture("nosy-transform")),
        ("router", &example("keyword-router")),
    ]);
    fs::write(dir.path().join("notes.wasm"), "just some text").unwrap();
    // A valid, empty core module: wasm, but not a component.
    fs::write(dir.path().join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let server = Server::builder().plugins(dir.path()).start();

    server.post("/notes", HELLO).await.assert_error(500, "invalid_plugin", "plugin `notes` is not a WebAssembly file");
    server.post("/core", HELLO).await.assert_error(
        500,
        "invalid_plugin",
        "plugin `core` is a core WebAssembly module, not a component; build it for wasm32-wasip2 \
         (or wrap it with `wasm-tools component new`)",
    );
    server.post("/other", HELLO).await.assert_error(
        500,
        "invalid_plugin",
        "plugin `other` is not a streamhost plugin: it must export `streamhost:plugin/transformer@0.1.0`, `streamhost:plugin/selector@0.1.0`, `streamhost:plugin/handler@0.1.0` or `streamhost:plugin/filter@0.1.0`, and it exports `run`",
    );
    // A transform runs with no conversation: it may not import one.
    server.post("/nosy", HELLO).await.assert_error(
        500,
        "invalid_plugin",
        "plugin `nosy` is a transform plugin and imports `streamhost:plugin/history@0.1.0`, which only routers and agents may",
    );
    server.post("/ndjson?then=router", HELLO).await.assert_error(
        500,
        "invalid_plugin",
        "plugin `router` is a router plugin, used here as a transform",
    );
    assert_eq!(server.post("/ndjson", HELLO).await.status, 200);
}

#[tokio::test]
async fn a_trap_before_the_first_byte_is_an_error_response() {
    let dir = plugin_dir(&[("trap", &fixture("trap")), ("ndjson", &example("ndjson"))]);
    let server = Server::builder().plugins(dir.path()).start();
    let reply = server.post("/trap?then=ndjson", HELLO).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (500, "application/json"));
    let error: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(error["error"]["code"], "plugin_trapped");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("plugin `trap` trapped: "), "{message}");
    assert!(message.ends_with("; what it printed is in the host's log"), "{message}");
    assert!(
        !message.contains("deliberate panic") && !message.contains(".rs"),
        "what the plugin printed is not the caller's: {message}"
    );
    assert!(server.logs().contains("trap fixture: deliberate panic"), "the operator has it: {}", server.logs());
    assert_eq!(server.post("/ndjson", HELLO).await.status, 200);
    assert!(!server.logs().contains("stream cancelled"), "an error response is not a cancellation: {}", server.logs());

    // In development the caller may see it.
    let server =
        Server::builder().plugins(dir.path()).env([("STREAMHOST_EXPOSE_PLUGIN_OUTPUT", "true".to_string())]).start();
    let error: serde_json::Value = serde_json::from_str(&server.post("/trap?then=ndjson", HELLO).await.body).unwrap();
    assert!(error["error"]["message"].as_str().unwrap().contains("trap fixture: deliberate panic"), "{error}");
}

/// A slow provider makes each token its own batch, so the third push comes
/// after the response has started.
fn paced_server(dir: &std::path::Path) -> Server {
    Server::builder().plugins(dir).echo_delay_ms(20).start()
}

#[tokio::test]
async fn a_trap_mid_stream_ends_the_stream_with_an_error_event_from_the_formatter() {
    let dir = plugin_dir(&[("trap", &fixture("trap")), ("ndjson", &example("ndjson"))]);
    let server = paced_server(dir.path());
    let body = r#"{"prompt":"Hi there","config":{"trap":{"trapAt":3}}}"#;
    let reply = server.post("/trap?then=ndjson", body).await;
    assert_eq!(reply.status, 200);
    let lines: Vec<&str> = reply.body.lines().collect();
    assert_eq!(
        lines[..2],
        [
            "{\"type\":\"metadata\",\"data\":{\"provider\":\"echo\",\"model\":\"echo\"}}",
            "{\"type\":\"chunk\",\"data\":\"Hi\"}"
        ]
    );
    assert_eq!(lines.len(), 3, "nothing follows the error: {lines:?}");
    let error: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["data"]["code"], "plugin_trapped");
}

#[tokio::test]
async fn when_the_formatter_itself_fails_the_host_writes_the_error_in_its_format() {
    let dir = plugin_dir(&[("trap", &fixture("trap")), ("sse", &example("sse"))]);
    let server = paced_server(dir.path());
    let body = r#"{"prompt":"Hi there","config":{"trap":{"trapAt":3}}}"#;
    let reply = server.post("/sse?then=trap", body).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (200, "text/event-stream"));
    let frames: Vec<&str> = reply.body.split_terminator("\n\n").collect();
    assert_eq!(frames.len(), 3, "{frames:?}");
    assert!(
        frames[2].starts_with("event: error\ndata: {\"code\":\"plugin_trapped\",\"message\":\"plugin `trap` trapped: "),
        "{frames:?}"
    );
}

/// A loop runs out of its fuel, the same on a busy host as on an idle one;
/// the wall-clock deadline stands behind it.
#[tokio::test]
async fn a_plugin_that_loops_is_stopped_when_its_fuel_or_its_time_runs_out() {
    let dir = plugin_dir(&[("spin", &fixture("spin")), ("ndjson", &example("ndjson"))]);
    let server = Server::builder().plugins(dir.path()).arg("--plugin-fuel", "50000000").start();
    for _ in 0..2 {
        server.post("/spin", HELLO).await.assert_error(
            500,
            "plugin_out_of_fuel",
            "plugin `spin` used up its 50000000 units of fuel (wasm instructions) in one call",
        );
        assert_eq!(server.post("/ndjson", HELLO).await.status, 200);
    }

    let backstop = Server::builder()
        .plugins(dir.path())
        .arg("--plugin-fuel", "1000000000000000")
        .arg("--plugin-timeout-ms", "300")
        .start();
    backstop.post("/spin", HELLO).await.assert_error(
        500,
        "plugin_timeout",
        "plugin `spin` ran past its 300 ms time limit",
    );
    assert_eq!(backstop.post("/ndjson", HELLO).await.status, 200);
}

/// Sixteen at once on a couple of cores: each is stopped for what it did
/// (its memory, its fuel), never for the time it waited for a core.
#[tokio::test]
async fn plugins_under_contention_are_stopped_for_what_they_did_not_for_waiting() {
    let dir = plugin_dir(&[("spin", &fixture("spin")), ("hog", &fixture("hog"))]);
    let server = Server::builder()
        .plugins(dir.path())
        .arg("--plugin-memory-mb", "16")
        .arg("--plugin-fuel", "2000000000")
        .start();
    let calls = (0..16).map(|index| {
        let plugin = if index % 2 == 0 { "/spin" } else { "/hog" };
        let server = &server;
        async move { (plugin, server.post(plugin, HELLO).await) }
    });
    for (plugin, reply) in futures::future::join_all(calls).await {
        let code = if plugin == "/spin" { "plugin_out_of_fuel" } else { "plugin_out_of_memory" };
        let error = support::error_without_request_id(&reply.body, &reply.request_id);
        assert_eq!((reply.status, &error["error"]["code"]), (500, &serde_json::json!(code)), "{plugin}: {error}");
    }
}

#[tokio::test]
async fn a_plugin_that_allocates_without_bound_is_stopped_at_its_memory_cap() {
    let dir = plugin_dir(&[("hog", &fixture("hog")), ("ndjson", &example("ndjson"))]);
    let server = Server::builder().plugins(dir.path()).arg("--plugin-memory-mb", "16").start();
    server.post("/hog", HELLO).await.assert_error(
        500,
        "plugin_out_of_memory",
        "plugin `hog` needed more than its 16 MiB memory limit",
    );
    assert_eq!(server.post("/ndjson", HELLO).await.status, 200);
}

/// A flood is stopped where it leaves the plugin that made it, the same way
/// on every run, and the stream names that plugin, not the formatter after it.
#[tokio::test]
async fn a_plugin_that_floods_its_output_is_stopped_and_blamed() {
    let dir = plugin_dir(&[("flood", &fixture("flood")), ("ndjson", &example("ndjson")), ("sse", &example("sse"))]);
    let server = Server::builder().plugins(dir.path()).start();
    // 8 MiB in the first call: over the call's 1 MiB before anything is sent.
    for chain in ["/flood?then=ndjson", "/flood?then=sse"] {
        server.post(chain, HELLO).await.assert_error(
            500,
            "plugin_output_limit",
            "plugin `flood` produced more than 1048576 bytes beyond its input in one call (--plugin-call-output-bytes)",
        );
    }
    let many_small = r#"{"prompt":"Hi there","config":{"flood":{"count":5000,"size":1}}}"#;
    server.post("/flood?then=ndjson", many_small).await.assert_error(
        500,
        "plugin_output_limit",
        "plugin `flood` produced more than 4096 events beyond its input in one call (--plugin-call-output-events)",
    );
    assert_eq!(server.post("/ndjson", HELLO).await.status, 200);
}

#[tokio::test]
async fn a_plugin_over_its_stream_output_limit_ends_the_stream_with_an_error_event() {
    let dir = plugin_dir(&[("flood", &fixture("flood")), ("ndjson", &example("ndjson"))]);
    let server =
        Server::builder().plugins(dir.path()).echo_delay_ms(20).arg("--plugin-stream-output-bytes", "200000").start();
    // 64 KiB a call, each within the call's limit; the fourth goes past 200,000 bytes.
    let body = r#"{"prompt":"one two three four five","config":{"flood":{"count":1,"size":65536}}}"#;
    let reply = server.post("/flood?then=ndjson", body).await;
    assert_eq!(reply.status, 200);
    // `ndjson` writes raw bytes as they are, so they run into the next line.
    assert_eq!(reply.body.bytes().filter(|&byte| byte == b'x').count(), 3 * 65536, "three calls' output went on");
    let error_line = &reply.body[reply.body.rfind(r#"{"type":"error""#).expect("an error event")..];
    let error: serde_json::Value = serde_json::from_str(error_line).unwrap();
    assert_eq!(
        error,
        serde_json::json!({ "type": "error", "data": { "code": "plugin_output_limit", "message":
            "plugin `flood` produced more than 200000 bytes beyond its input in the stream (--plugin-stream-output-bytes)" } })
    );
}

#[tokio::test]
async fn a_replaced_plugin_is_served_by_the_next_request() {
    let dir = plugin_dir(&[("fmt", &example("ndjson"))]);
    let server = Server::builder().plugins(dir.path()).start();
    assert_eq!(server.post("/fmt", HELLO).await.content_type, "application/x-ndjson");

    // Publish the new version the safe way: write aside, rename over.
    let staged = dir.path().join("fmt.wasm.new");
    fs::copy(example("sse"), &staged).unwrap();
    fs::rename(&staged, dir.path().join("fmt.wasm")).unwrap();
    let reply = server.post("/fmt", HELLO).await;
    assert_eq!(reply.content_type, "text/event-stream");
    assert!(reply.body.ends_with("event: done\ndata: {\"stopReason\":\"end_turn\"}\n\n"));

    fs::remove_file(dir.path().join("fmt.wasm")).unwrap();
    server.post("/fmt", HELLO).await.assert_error(404, "unknown_plugin", "no plugin named `fmt`");
}

#[tokio::test]
async fn a_restart_loads_compiled_plugins_from_the_disk_cache() {
    let cache = tempfile::tempdir().unwrap();
    let first = Server::builder().cache(cache.path()).start();
    assert_eq!(first.post("/ndjson", HELLO).await.status, 200);
    assert_eq!(first.health().await["plugins"], serde_json::json!({ "compiled": 1, "cacheHits": 0, "precompiled": 0 }));
    drop(first);
    let entries: Vec<_> = fs::read_dir(cache.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert_eq!(entries.len(), 1, "one compiled entry: {entries:?}");

    let second = Server::builder().cache(cache.path()).start();
    let reply = second.post("/ndjson", HELLO).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        second.health().await["plugins"],
        serde_json::json!({ "compiled": 0, "cacheHits": 1, "precompiled": 0 })
    );
}

#[tokio::test]
async fn a_damaged_cache_entry_is_compiled_again() {
    let cache = tempfile::tempdir().unwrap();
    drop(Server::builder().cache(cache.path()).start().post("/ndjson", HELLO).await);
    for entry in fs::read_dir(cache.path()).unwrap() {
        fs::write(entry.unwrap().path(), b"not compiled code").unwrap();
    }
    let server = Server::builder().cache(cache.path()).start();
    assert_eq!(server.post("/ndjson", HELLO).await.status, 200);
    assert_eq!(
        server.health().await["plugins"],
        serde_json::json!({ "compiled": 1, "cacheHits": 0, "precompiled": 0 })
    );
    assert!(server.logs().contains("unusable cache entry"));
}

#[tokio::test]
async fn concurrent_streams_each_get_their_own_instance() {
    let server = Server::builder().echo_delay_ms(5).start();
    let requests = (0..8).map(|index| {
        let body =
            serde_json::json!({ "prompt": format!("stream {index}"), "sessionId": format!("s{index}") }).to_string();
        let url = server.url("/text-only");
        async move { reqwest::Client::new().post(url).body(body).send().await.unwrap().text().await.unwrap() }
    });
    let bodies = futures::future::join_all(requests).await;
    for (index, body) in bodies.iter().enumerate() {
        assert!(body.starts_with(&format!("stream {index}\n")), "{body}");
        assert!(body.ends_with(&format!("session: s{index}\n")), "{body}");
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn past_the_instance_limit_requests_are_shed_with_503() {
    let server = Server::builder().arg("--max-instances", "1").echo_delay_ms(50).start();
    // Holds the only instance slot for 400 tokens x 50 ms unless dropped.
    let long = serde_json::json!({ "prompt": "word ".repeat(400) }).to_string();
    let response = reqwest::Client::new().post(server.url("/ndjson")).body(long).send().await.unwrap();
    assert_eq!(response.status(), 200);

    server.post("/sse", HELLO).await.assert_error(
        503,
        "overloaded",
        "all 1 plugin instances are in use; try again shortly",
    );
    drop(response);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = server.post("/sse", HELLO).await;
        if reply.status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the slot was not freed: {reply:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_default_pool_holds_hundreds_of_three_plugin_streams_at_once() {
    // Every plugin of a chain holds an instance for the stream's life: 300
    // streams of three plugins need 900, past the old default of 256.
    const STREAMS: usize = 300;
    let server = Server::builder().echo_delay_ms(50).start();
    let client = reqwest::Client::builder().pool_max_idle_per_host(STREAMS).build().unwrap();
    let body = serde_json::json!({ "prompt": "word ".repeat(200) }).to_string();
    let opened =
        (0..STREAMS).map(|_| client.post(server.url("/redact?then=text-only,ndjson")).body(body.clone()).send());
    let responses: Vec<_> = futures::future::join_all(opened).await.into_iter().map(Result::unwrap).collect();
    let statuses: Vec<u16> = responses.iter().map(|response| response.status().as_u16()).collect();
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    // All of them open at once: none has ended (200 tokens take 10 s).
    assert_eq!(server.health().await["activeStreams"], STREAMS);
}

#[tokio::test]
async fn without_address_space_for_the_pool_the_host_allocates_on_demand() {
    // The pool reserves several GiB of address space per memory slot; 16 GiB
    // in all cannot hold it, but is plenty for the host itself.
    let server = Server::builder().address_space_limit_kb(16 << 20).start();
    assert_eq!(server.post("/ndjson", HELLO).await.status, 200);
    assert!(server.logs().contains("pooling allocator unavailable; using on-demand allocation"), "{}", server.logs());
}

#[tokio::test]
async fn a_plugins_output_goes_to_the_log_and_never_stops_it() {
    let dir = plugin_dir(&[("chatty", &fixture("chatty")), ("ndjson", &example("ndjson"))]);
    let server = Server::builder().plugins(dir.path()).start();
    let reply = server.post("/chatty?then=ndjson", HELLO).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.ends_with("{\"type\":\"chunk\",\"data\":\"e\"}\n{\"type\":\"complete\",\"data\":{\"stopReason\":\"end_turn\",\"usage\":{\"inputTokens\":3,\"outputTokens\":3,\"totalTokens\":6,\"latencyMs\":0}}}\n"), "{}", reply.body);
    let logs = server.logs();
    // One line per batch (how many events a batch holds depends on pace).
    assert!(
        logs.lines()
            .any(|line| line.contains("chatty saw ") && line.ends_with(" events plugin=chatty stream=\"stdout\"")),
        "{logs}"
    );
    assert!(logs.contains("chatty is fine plugin=chatty stream=\"stderr\""), "{logs}");
}

#[tokio::test]
async fn a_metadata_event_reaches_the_formatter_compact_and_one_that_is_not_a_json_object_ends_the_stream() {
    let dir = plugin_dir(&[("metadata", &fixture("metadata")), ("ndjson", &example("ndjson"))]);
    let server = Server::builder().plugins(dir.path()).start();
    let with_metadata =
        |text: &str| serde_json::json!({"prompt": "hi", "config": {"metadata": {"metadata": text}}}).to_string();

    // As Python's json.dumps writes it: the spaces do not reach the client.
    let reply = server.post("/metadata?then=ndjson", &with_metadata("{\"words\": 1, \"note\": \"a  b\"}")).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.body.contains("\n{\"type\":\"metadata\",\"data\":{\"words\":1,\"note\":\"a  b\"}}\n"),
        "{}",
        reply.body
    );

    for not_an_object in ["words: 1", "[1]", "{\"words\":"] {
        let reply = server.post("/metadata?then=ndjson", &with_metadata(not_an_object)).await;
        assert_eq!(reply.status, 200, "the error comes after the stream's first bytes");
        let last: serde_json::Value = serde_json::from_str(reply.body.lines().last().unwrap()).unwrap();
        assert_eq!(last["type"], "error", "{}", reply.body);
        assert_eq!(last["data"]["code"], "plugin_invalid_event");
        let message = last["data"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("plugin `metadata` returned an event that breaks the contract: a metadata event must be a JSON object; got "),
            "{message}"
        );
    }
}

#[tokio::test]
async fn a_component_that_imports_what_the_host_does_not_provide_is_refused_by_name() {
    let dir = plugin_dir(&[("foreign", &fixture("foreign-import"))]);
    let server = Server::builder().plugins(dir.path()).start();
    let reply = server.post("/foreign", HELLO).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (500, "application/json"));
    let error: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(error["error"]["code"], "invalid_plugin");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("plugin `foreign` imports `acme:vault/secrets`, which this host does not provide"),
        "{message}"
    );
}

#[tokio::test]
async fn a_cache_entry_of_another_component_is_refused() {
    let cache = tempfile::tempdir().unwrap();
    let dir = plugin_dir(&[("ndjson", &example("ndjson")), ("sse", &example("sse"))]);
    let first = Server::builder().plugins(dir.path()).cache(cache.path()).start();
    assert_eq!(first.post("/ndjson", HELLO).await.status, 200);
    assert_eq!(first.post("/sse", HELLO).await.status, 200);
    drop(first);
    // Each entry is named by its component's digest; put ndjson's compiled
    // code under sse's name.
    let ndjson_digest = support::sha256_hex(&fs::read(example("ndjson")).unwrap());
    let entries: Vec<_> = fs::read_dir(cache.path()).unwrap().map(|entry| entry.unwrap().path()).collect();
    let (ndjson, sse): (Vec<_>, Vec<_>) =
        entries.iter().partition(|path| path.file_name().unwrap().to_string_lossy().starts_with(&ndjson_digest));
    fs::copy(ndjson[0], sse[0]).unwrap();

    let server = Server::builder().plugins(dir.path()).cache(cache.path()).start();
    let reply = server.post("/sse", HELLO).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (200, "text/event-stream"), "sse's own code runs");
    assert_eq!(
        server.health().await["plugins"],
        serde_json::json!({ "compiled": 1, "cacheHits": 0, "precompiled": 0 })
    );
    assert!(server.logs().contains(&format!("made from another component ({ndjson_digest})")), "{}", server.logs());
}

/// A folder of one's own lies over the bundled examples: its names win, the
/// examples serve the rest, uploads land in it; `--without-examples` serves
/// it alone.
#[tokio::test]
async fn a_plugin_folder_of_ones_own_lies_over_the_examples() {
    // `ndjson` here is really `sse`: one's own wins over the example's name.
    let own = plugin_dir(&[("mine", &fixture("trap")), ("ndjson", &example("sse"))]);
    let settings = r#"{"prompt":"hello","config":{"mine":{"trapAt":1000}}}"#;
    let server = Server::builder().plugins_over_examples(own.path()).start();
    let chained = server.post("/mine?then=text-only", settings).await;
    assert_eq!(chained.status, 200, "`text-only` comes from the examples: {}", chained.body);
    assert!(chained.body.starts_with("hello"), "{}", chained.body);
    let shadowed = server.post("/ndjson", HELLO).await;
    assert!(shadowed.body.starts_with("event: metadata\n"), "one's own `ndjson` is served: {}", shadowed.body);
    let catalog: serde_json::Value = reqwest::get(server.url("/_catalog")).await.unwrap().json().await.unwrap();
    let names: Vec<&str> = catalog["plugins"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(names.contains(&"mine") && names.contains(&"text-only"), "{names:?}");
    assert_eq!(names.iter().filter(|name| **name == "ndjson").count(), 1, "{names:?}");
    let layers = format!("folder {} over ", own.path().display());
    assert!(catalog["store"].as_str().unwrap().starts_with(&layers), "{}", catalog["store"]);
    assert!(catalog["store"].as_str().unwrap().ends_with(support::EXAMPLES), "{}", catalog["store"]);
    assert!(server.logs().contains(&layers), "the start-up log says what is served from where");

    let alone = Server::builder().plugins(own.path()).start();
    alone.post("/mine?then=text-only", settings).await.assert_error(
        404,
        "unknown_plugin",
        "no plugin named `text-only`",
    );
}
