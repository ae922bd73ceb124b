//! Plugins from S3 through the real server, against a real S3 API server
//! (moto) on loopback: uploads served without a restart, conditional GETs,
//! S3 going away, digest pins, names that could escape the prefix, and
//! `streamhost publish`.

use crate::support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::moto::{BUCKET, Moto};
use support::{Server, bin, example, fixture};

const HELLO: &str = r#"{"prompt":"Hi there"}"#;
const SOURCE: &str = "s3://streamhost-plugins/plugins/";
const REVALIDATE_MS: u64 = 300;

fn s3_server(moto: &Moto) -> support::ServerBuilder {
    Server::builder()
        .plugin_source(SOURCE)
        .env(moto.env())
        .arg("--s3-revalidate-ms", &REVALIDATE_MS.to_string())
        .cache(tempfile::tempdir().unwrap().keep().as_path())
}

fn read(path: std::path::PathBuf) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[tokio::test]
async fn a_new_upload_is_served_without_a_restart() {
    let moto = Moto::start().await;
    moto.put("plugins/fmt.wasm", read(example("ndjson"))).await;
    let server = s3_server(&moto).start();
    assert_eq!(server.post("/fmt", HELLO).await.content_type, "application/x-ndjson");

    moto.put("plugins/fmt.wasm", read(example("sse"))).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = server.post("/fmt", HELLO).await;
        if reply.content_type == "text/event-stream" {
            assert!(reply.body.ends_with("event: done\ndata: {\"stopReason\":\"end_turn\"}\n\n"));
            break;
        }
        assert!(Instant::now() < deadline, "the new upload was never served: {reply:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Unchanged since: revalidation is a conditional GET answered 304.
    tokio::time::sleep(Duration::from_millis(REVALIDATE_MS + 100)).await;
    assert_eq!(server.post("/fmt", HELLO).await.content_type, "text/event-stream");
    assert!(
        moto.log().contains("GET /streamhost-plugins/plugins/fmt.wasm?x-id=GetObject HTTP/1.1\" 304"),
        "no 304 in: {}",
        moto.log()
    );
}

#[tokio::test]
async fn when_s3_is_down_loaded_plugins_keep_being_served() {
    let mut moto = Moto::start().await;
    moto.put("plugins/ndjson.wasm", read(example("ndjson"))).await;
    let server = s3_server(&moto).start();
    assert_eq!(server.post("/ndjson", HELLO).await.status, 200);

    moto.stop();
    tokio::time::sleep(Duration::from_millis(REVALIDATE_MS + 100)).await;
    let reply = server.post("/ndjson", HELLO).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (200, "application/x-ndjson"));
    assert!(server.logs().contains("plugin store unreachable; serving the cached version"), "{}", server.logs());

    let never_loaded = server.post("/sse", HELLO).await;
    assert_eq!((never_loaded.status, never_loaded.content_type.as_str()), (503, "application/json"));
    assert!(never_loaded.body.starts_with(r#"{"error":{"code":"plugin_store_unavailable","message":"the plugin store cannot be reached for `sse`: plugins/sse.wasm: "#), "{}", never_loaded.body);
}

#[tokio::test]
async fn a_pinned_plugin_whose_object_differs_is_refused() {
    let moto = Moto::start().await;
    let ndjson = read(example("ndjson"));
    moto.put("plugins/ndjson.wasm", ndjson.clone()).await;
    let pinned = support::sha256_hex(&read(example("sse")));
    let actual = support::sha256_hex(&ndjson);
    let server = s3_server(&moto).arg("--pin", &format!("ndjson={pinned}")).start();
    server.post("/ndjson", HELLO).await.assert_error(
        500,
        "digest_mismatch",
        &format!("plugin `ndjson` is pinned to sha256 {pinned}, but the store holds {actual}"),
    );

    let server = s3_server(&moto).arg("--pin", &format!("ndjson={actual}")).start();
    assert_eq!(server.post("/ndjson", HELLO).await.status, 200);
}

#[tokio::test]
async fn names_are_checked_before_any_key_is_built() {
    let moto = Moto::start().await;
    moto.put("secret.wasm", read(example("ndjson"))).await;
    let server = s3_server(&moto).start();
    server.post("/..%2Fsecret", HELLO).await.assert_error(
        400,
        "invalid_plugin_name",
        "invalid plugin name \"../secret\": it must start with a lowercase letter or a digit",
    );
    server.post("/missing", HELLO).await.assert_error(404, "unknown_plugin", "no plugin named `missing`");
    let reads_of_secret = moto.log().lines().filter(|line| line.contains("GET") && line.contains("secret")).count();
    assert_eq!(reads_of_secret, 0, "a request reached S3: {}", moto.log());
}

fn publish(moto: &Moto, file: &std::path::Path, name: &str) -> std::process::Output {
    publish_with(moto, file, name, &[])
}

fn publish_with(moto: &Moto, file: &std::path::Path, name: &str, flags: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("publish")
        .arg(file)
        .args(["--name", name, "--to", SOURCE])
        .args(flags)
        .envs(moto.env())
        .output()
        .unwrap()
}

#[tokio::test]
async fn publish_checks_then_uploads_with_the_digest() {
    let moto = Moto::start().await;
    let output = publish(&moto, &example("text-only"), "plain");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let digest = support::sha256_hex(&read(example("text-only")));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!(
            "published `plain` ({} bytes, sha256 {digest}) to s3://{BUCKET}/plugins/plain.wasm\n",
            read(example("text-only")).len()
        )
    );
    let object = moto.client().head_object().bucket(BUCKET).key("plugins/plain.wasm").send().await.unwrap();
    assert_eq!(object.metadata().unwrap()["sha256"], digest);

    // Served as published.
    let server = s3_server(&moto).start();
    assert_eq!(server.post("/plain", HELLO).await.content_type, "text/plain; charset=utf-8");
}

#[tokio::test]
async fn publish_refuses_what_the_host_would_refuse_and_uploads_nothing() {
    let moto = Moto::start().await;
    let output = publish(&moto, &fixture("other-world"), "other");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(output.stderr).unwrap().lines().last().unwrap(),
        "error: plugin `other` is not a streamhost plugin: it must export `streamhost:plugin/transformer@0.1.0`, `streamhost:plugin/selector@0.1.0`, `streamhost:plugin/handler@0.1.0` or `streamhost:plugin/filter@0.1.0`, and it exports `run`"
    );
    let listed = moto.client().list_objects_v2().bucket(BUCKET).send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0));
}

#[tokio::test]
async fn publish_uploads_a_large_component() {
    let moto = Moto::start().await;
    let big = read(fixture("big"));
    assert!(big.len() > 8 << 20, "the fixture is as large as a Python component: {} bytes", big.len());
    let output = publish(&moto, &fixture("big"), "big");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let object = moto.client().head_object().bucket(BUCKET).key("plugins/big.wasm").send().await.unwrap();
    assert_eq!(object.content_length(), Some(big.len() as i64));
    assert_eq!(object.metadata().unwrap()["sha256"], support::sha256_hex(&big));

    let server = s3_server(&moto).start();
    let reply = server.post("/big", HELLO).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("{\"type\":\"text\",\"data\":\"Hi\"}\n"), "{}", reply.body);
}

#[tokio::test]
async fn a_manifest_in_s3_runs_its_chain_and_a_missing_one_is_not_asked_for_each_request() {
    let moto = Moto::start().await;
    moto.put("plugins/ndjson.wasm", read(example("ndjson"))).await;
    moto.put("plugins/redact.wasm", read(example("redact"))).await;
    let manifest = r#"{"transforms":["redact","ndjson"],"config":{"redact":{"emailMask":"<hidden>"}}}"#;
    moto.put("plugins/private.json", manifest.as_bytes().to_vec()).await;
    let server = s3_server(&moto).start();

    let reply = server.post("/private", r#"{"prompt":"to a@b.io"}"#).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains(r#"{"type":"chunk","data":"<hidden>"}"#), "{}", reply.body);

    // Each request looks for a manifest first; within the revalidation
    // interval a missing one is remembered, not asked for again.
    for _ in 0..5 {
        assert_eq!(server.post("/ndjson", HELLO).await.status, 200);
    }
    let lookups = moto.log().matches("GET /streamhost-plugins/plugins/ndjson.json").count();
    assert!((1..=2).contains(&lookups), "{lookups} lookups of ndjson.json in: {}", moto.log());
}

#[tokio::test]
async fn a_precompiled_artifact_is_loaded_only_by_hosts_that_trust_it() {
    let moto = Moto::start().await;
    let output = publish_with(&moto, &example("ndjson"), "fmt", &["--precompile"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with("precompiled `fmt` for this machine ("), "{stdout}");
    assert!(stdout.contains(&format!("to s3://{BUCKET}/plugins/fmt.cwasm\npublished `fmt`")), "{stdout}");

    let untrusting = s3_server(&moto).start();
    assert_eq!(untrusting.post("/fmt", HELLO).await.status, 200);
    assert_eq!(
        untrusting.health().await["plugins"],
        serde_json::json!({ "compiled": 1, "cacheHits": 0, "precompiled": 0 })
    );

    let trusting = s3_server(&moto).env([("STREAMHOST_TRUST_PRECOMPILED", "true".to_string())]).start();
    let reply = trusting.post("/fmt", HELLO).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (200, "application/x-ndjson"));
    assert_eq!(
        trusting.health().await["plugins"],
        serde_json::json!({ "compiled": 0, "cacheHits": 0, "precompiled": 1 })
    );
}

#[tokio::test]
async fn a_precompiled_artifact_of_another_component_is_refused_and_the_component_compiled() {
    let moto = Moto::start().await;
    let output = publish_with(&moto, &example("sse"), "sse", &["--precompile"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // `fmt` is ndjson, with sse's artifact beside it.
    moto.put("plugins/fmt.wasm", read(example("ndjson"))).await;
    let sse_artifact = moto.client().get_object().bucket(BUCKET).key("plugins/sse.cwasm").send().await.unwrap();
    moto.put("plugins/fmt.cwasm", sse_artifact.body.collect().await.unwrap().to_vec()).await;

    let server = s3_server(&moto).env([("STREAMHOST_TRUST_PRECOMPILED", "true".to_string())]).start();
    let reply = server.post("/fmt", HELLO).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (200, "application/x-ndjson"), "ndjson's own code runs");
    assert_eq!(
        server.health().await["plugins"],
        serde_json::json!({ "compiled": 1, "cacheHits": 0, "precompiled": 0 })
    );
    let sse_digest = support::sha256_hex(&read(example("sse")));
    assert!(server.logs().contains("precompiled artifact refused; compiling"), "{}", server.logs());
    assert!(server.logs().contains(&format!("made from another component ({sse_digest})")), "{}", server.logs());
}
