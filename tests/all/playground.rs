//! The playground: its page, its catalog and its uploads over HTTP, then
//! the page itself in a real browser (Debian's Chromium, driven by
//! Playwright for Python: `tests/browser/playground.py`).

use std::process::Command;

use serde_json::Value;

use crate::support::{Server, example, fixture, plugin_dir, sha256_hex, write_manifest};

fn playground_plugins() -> tempfile::TempDir {
    let plugins = plugin_dir(&[
        ("ndjson", &example("ndjson")),
        ("trap", &fixture("trap")),
        ("llm-router", &example("llm-router")),
    ]);
    write_manifest(
        plugins.path(),
        "desk",
        &serde_json::json!({ "router": "llm-router", "agents": [{ "name": "a", "description": "A" }], "transforms": ["ndjson"] }),
    );
    plugins
}

#[tokio::test]
async fn the_page_and_the_catalog_are_served_and_name_each_plugin() {
    let plugins = playground_plugins();
    let host = Server::builder().plugins(plugins.path()).start();
    let page = reqwest::get(host.url("/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>streamhost playground</title>") && !html.contains("://cdn"), "served whole, no CDN");

    let catalog: Value = reqwest::get(host.url("/_catalog")).await.unwrap().json().await.unwrap();
    assert_eq!(catalog["upload"], false);
    let plugins_listed = catalog["plugins"].as_array().unwrap();
    let names: Vec<&str> = plugins_listed.iter().map(|plugin| plugin["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["llm-router", "ndjson", "trap"]);
    let ndjson = &plugins_listed[1];
    assert_eq!(ndjson["role"], "transform");
    assert_eq!(ndjson["contentType"], "application/x-ndjson");
    assert_eq!(ndjson["digest"], sha256_hex(&std::fs::read(example("ndjson")).unwrap()));
    assert!(ndjson["imports"].as_array().unwrap().iter().any(|import| import == "streamhost:plugin/config@0.1.0"));
    assert_eq!(plugins_listed[0]["role"], "router");
    assert_eq!(plugins_listed[0]["contentType"], Value::Null);
    assert_eq!(catalog["pipelines"][0]["name"], "desk");
    assert_eq!(catalog["pipelines"][0]["agents"], serde_json::json!(["a"]));
}

#[tokio::test]
async fn uploads_are_refused_unless_allowed_and_checked_before_they_are_served() {
    let plugins = playground_plugins();
    let client = reqwest::Client::new();
    let put = |host: &Server, name: &str, bytes: Vec<u8>| {
        client.put(host.url(&format!("/_plugins/{name}"))).body(bytes).send()
    };

    let closed = Server::builder().plugins(plugins.path()).start();
    let refused = put(&closed, "mine", std::fs::read(example("sse")).unwrap()).await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upload_not_allowed");
    assert!(!plugins.path().join("mine.wasm").exists());

    let cache = tempfile::tempdir().unwrap();
    let open = Server::builder().plugins(plugins.path()).cache(cache.path()).arg("--playground-upload", "true").start();
    let bad_name = put(&open, "..%2Fx", b"\0asm".to_vec()).await.unwrap();
    assert_eq!(bad_name.status(), 400);
    assert_eq!(bad_name.json::<Value>().await.unwrap()["error"]["code"], "invalid_plugin_name");
    let not_wasm = put(&open, "mine", b"hello".to_vec()).await.unwrap();
    assert_eq!(not_wasm.status(), 422);
    let body: Value = not_wasm.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_upload");
    assert_eq!(body["error"]["message"], "plugin `mine` is not a WebAssembly file");
    assert!(!plugins.path().join("mine.wasm").exists(), "a refused upload writes nothing");

    // Names no request could call it by, or that a pin holds, are refused
    // before the body is read.
    let pinned = Server::builder()
        .plugins(plugins.path())
        .arg("--playground-upload", "true")
        .arg("--pin", &format!("held={}", "0".repeat(64)))
        .start();
    for (host, name, why) in
        [(&open, "runs", "the host's own route"), (&open, "desk", "is a pipeline"), (&pinned, "held", "is pinned")]
    {
        let refused = put(host, name, std::fs::read(example("sse")).unwrap()).await.unwrap();
        assert_eq!(refused.status(), 403, "{name}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "upload_not_allowed");
        assert!(body["error"]["message"].as_str().unwrap().contains(why), "{body}");
    }

    let uploaded = put(&open, "mine", std::fs::read(example("sse")).unwrap()).await.unwrap();
    assert_eq!(uploaded.status(), 201);
    let body: Value = uploaded.json().await.unwrap();
    assert_eq!((body["name"].as_str(), body["role"].as_str()), (Some("mine"), Some("transform")));
    let served = open.post("/mine", r#"{"prompt":"hi"}"#).await;
    assert_eq!((served.status, served.content_type.as_str()), (200, "text/event-stream"));
    // Compiled once, by the check: the first request found it compiled.
    let loaded = open
        .logs()
        .lines()
        .find(|line| line.contains("plugin loaded") && line.contains("plugin=mine"))
        .map(str::to_string);
    assert!(loaded.as_deref().is_some_and(|line| line.contains("origin=DiskCache")), "{loaded:?}");
}

#[tokio::test]
async fn the_playground_can_be_turned_off() {
    let plugins = playground_plugins();
    let host = Server::builder()
        .plugins(plugins.path())
        .arg("--playground", "false")
        .arg("--playground-upload", "true")
        .start();
    assert_eq!(reqwest::get(host.url("/")).await.unwrap().status(), 405);
    assert_eq!(reqwest::get(host.url("/_catalog")).await.unwrap().status(), 404);
    let upload = reqwest::Client::new().put(host.url("/_plugins/mine")).body("x").send().await.unwrap();
    assert_eq!(upload.status(), 403, "no uploads without the playground");
}

/// Text appears while the stream still runs, an error event is shown, and
/// an upload is served at once: in Chromium, at a model's pace.
#[tokio::test]
async fn in_a_real_browser_the_stream_arrives_live_errors_show_and_uploads_serve() {
    let plugins = playground_plugins();
    let host = Server::builder().plugins(plugins.path()).echo_delay_ms(120).arg("--playground-upload", "true").start();
    let screenshot = std::env::var_os("STREAMHOST_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("playground.png"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/browser/playground.py");
    let base = host.url("");
    let upload = example("sse");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3").arg(script).arg(base.trim_end_matches('/')).arg(upload).arg(&screenshot).output()
    })
    .await
    .unwrap()
    .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        host.logs()
    );
}
