//! Plugins written in other languages, built by their own toolchains and run
//! by the real host over HTTP, byte for byte.

use crate::support;

use std::time::Duration;

use serde_json::json;
use support::upstream::{SSE, Script, Upstream};
use support::{Server, example, plugin_dir, polyglot, write_manifest};

#[tokio::test]
async fn python_word_filter_masks_words_split_across_deltas() {
    let dir =
        plugin_dir(&[("word-filter-py", &polyglot::component("word-filter-py")), ("text-only", &example("text-only"))]);
    let server = Server::builder().plugins(dir.path()).start();
    // The echo model sends "Oh", " darn", ... " darn", "ing": a listed word
    // can arrive whole, or as the start of a longer one.
    let body = r##"{"prompt":"Oh darn it, HECK no; darning is fine","config":{"word-filter-py":{"words":["darn","heck"],"mask":"#"}}}"##;
    let reply = server.post("/word-filter-py?then=text-only", body).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (200, "text/plain; charset=utf-8"));
    assert_eq!(reply.body, "Oh #### it, #### no; darning is fine\nusage: input=9 output=9 total=18 latency_ms=0\n");

    let refused =
        server.post("/word-filter-py", r###"{"prompt":"x","config":{"word-filter-py":{"mask":"##"}}}"###).await;
    refused.assert_error(422, "invalid_config", "plugin `word-filter-py`: `mask` must be one character");
}

#[tokio::test]
async fn python_request_filter_serves_seed_002s_plain_text_client() {
    // The request-filter role in a second language: seed 002's client posts
    // the prompt as the raw body to the bare URL.
    let dir = plugin_dir(&[
        ("seed002-text-py", &polyglot::component("seed002-text-py")),
        ("text-only", &example("text-only")),
    ]);
    let manifest = json!({ "inbound": "seed002-text-py", "transforms": ["text-only"], "config": { "text-only": { "layout": "plain" } } });
    write_manifest(dir.path(), "seed002", &manifest);
    let server = Server::builder().plugins(dir.path()).arg("--default-pipeline", "seed002").start();
    let client = reqwest::Client::new();
    let reply = client.post(server.url("/")).body("Tell me a joke\n").send().await.unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.text().await.unwrap(), "Tell me a joke");
    let json = client
        .post(server.url("/"))
        .header("content-type", "application/json")
        .body(r#"{"prompt":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 415);
    let body: serde_json::Value = json.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_media_type");
    assert_eq!(client.post(server.url("/")).body("").send().await.unwrap().status(), 400);
}

#[tokio::test]
async fn javascript_markdown_sends_each_html_element_when_its_line_is_complete() {
    let dir = plugin_dir(&[("markdown-js", &polyglot::component("markdown-js"))]);
    let server = Server::builder().plugins(dir.path()).start();
    let markdown = "# Title <x>\nSome **bold**, *em* and `code`.\n- one\n- two\n\n```\nlet a = 1 < 2;\n```\nend";
    let reply = server.post("/markdown-js", &serde_json::json!({ "prompt": markdown }).to_string()).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (200, "text/html; charset=utf-8"));
    assert_eq!(
        reply.body,
        concat!(
            "<h1>Title &lt;x&gt;</h1>\n",
            "<p>Some <strong>bold</strong>, <em>em</em> and <code>code</code>.</p>\n",
            "<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n",
            "<pre><code>let a = 1 &lt; 2;\n</code></pre>\n",
            "<p>end</p>\n",
        )
    );

    let styled = server.post("/markdown-js", r#"{"prompt":"hi","config":{"markdown-js":{"class":"answer"}}}"#).await;
    assert_eq!(styled.body, "<p class=\"answer\">hi</p>\n");
    let refused = server.post("/markdown-js", r#"{"prompt":"x","config":{"markdown-js":{"class":"a b"}}}"#).await;
    refused.assert_error(422, "invalid_config", "plugin `markdown-js`: `class` must be a CSS class name");
}

#[tokio::test]
async fn c_sse_reframer_writes_canonical_events() {
    // CRLF, CR and LF line ends, comments, "field:value" without a space.
    let upstream_bytes =
        [": connected\r\n\r\n", "data:{\"a\":1}\r\n\r\n", "event:x\rdata: two\r\r", "id: 7\n\n: ping\n\n"];
    let script = Script::new(200, SSE).chunks(Duration::ZERO, upstream_bytes.map(|chunk| chunk.as_bytes().to_vec()));
    let agent = Upstream::start(vec![script]).await;
    let dir = plugin_dir(&[("sse-reframe-c", &polyglot::component("sse-reframe-c"))]);
    let server = Server::builder().plugins(dir.path()).arg("--upstream-url", &agent.base).start();
    let reply = server.post("/sse-reframe-c", r#"{"prompt":"x"}"#).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (200, "text/event-stream"));
    assert_eq!(reply.body, "data: {\"a\":1}\n\nevent: x\ndata: two\n\nid: 7\n\n");
}

/// The one entry in a compile cache folder.
fn only_entry(cache: &std::path::Path) -> std::path::PathBuf {
    let entries: Vec<_> = std::fs::read_dir(cache).unwrap().map(|entry| entry.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.into_iter().next().unwrap()
}

/// Starts a host on `dir` and `cache`, runs the plugin once, and returns the
/// compile counters and the log.
async fn run_once(dir: &std::path::Path, cache: &std::path::Path) -> (serde_json::Value, String) {
    let server = Server::builder().plugins(dir).cache(cache).start();
    assert_eq!(server.post("/word-filter-py", r#"{"prompt":"darn"}"#).await.status, 200);
    (server.health().await["plugins"].clone(), server.logs())
}

#[tokio::test]
async fn the_python_component_loads_from_the_cache_and_a_bad_entry_is_compiled_again() {
    let dir = plugin_dir(&[("word-filter-py", &polyglot::component("word-filter-py"))]);
    let cache = tempfile::tempdir().unwrap();
    let compiled = serde_json::json!({ "compiled": 1, "cacheHits": 0, "precompiled": 0 });

    assert_eq!(run_once(dir.path(), cache.path()).await.0, compiled);
    assert_eq!(
        run_once(dir.path(), cache.path()).await.0,
        serde_json::json!({ "compiled": 0, "cacheHits": 1, "precompiled": 0 })
    );

    // One byte of the compiled code changed.
    let entry = only_entry(cache.path());
    let mut bytes = std::fs::read(&entry).unwrap();
    *bytes.last_mut().unwrap() ^= 0x55;
    std::fs::write(&entry, &bytes).unwrap();
    let (counters, logs) = run_once(dir.path(), cache.path()).await;
    assert_eq!(counters, compiled);
    assert!(logs.contains("unusable cache entry; compiling again") && logs.contains("sha256 mismatch"), "{logs}");

    // An entry whose header says another engine configuration made it.
    let bytes = std::fs::read(&entry).unwrap();
    let text_end = bytes.windows(2).position(|pair| pair == b"\n\n").unwrap();
    let header = String::from_utf8(bytes[..text_end].to_vec()).unwrap();
    let engine_line = header.lines().find(|line| line.starts_with("engine: ")).unwrap();
    let other = header.replace(engine_line, "engine: 0123456789abcdef");
    std::fs::write(&entry, [other.as_bytes(), &bytes[text_end..]].concat()).unwrap();
    let (counters, logs) = run_once(dir.path(), cache.path()).await;
    assert_eq!(counters, compiled);
    assert!(logs.contains("made by another engine configuration (0123456789abcdef"), "{logs}");
}
