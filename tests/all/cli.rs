//! `streamhost invoke`: the same pipeline, written to stdout.

use crate::support;

use std::process::Command;

use support::{EXAMPLES, bin, example, fixture, shared_cache};

fn invoke(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("invoke")
        .args(args)
        .arg("--plugins")
        .arg(EXAMPLES)
        .arg("--cache-dir")
        .arg(shared_cache())
        .args(["--echo-delay-ms", "0"])
        .env("STREAMHOST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn invoke_writes_the_pipeline_output_to_stdout() {
    let output = invoke(&["sse", "--prompt", "hello"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        concat!(
            "event: metadata\ndata: {\"provider\":\"echo\",\"model\":\"echo\"}\n\n",
            "event: text\ndata: {\"text\":\"hell\"}\n\n",
            "event: text\ndata: {\"text\":\"o\"}\n\n",
            "event: usage\ndata: {\"inputTokens\":2,\"outputTokens\":2,\"totalTokens\":4,\"latencyMs\":0}\n\n",
            "event: done\ndata: {\"stopReason\":\"end_turn\"}\n\n",
        )
    );
}

#[test]
fn invoke_runs_chains_and_takes_a_whole_body() {
    let body = r#"{"messages":[{"role":"user","content":"mail a@b.io"}],"sessionId":"s9"}"#;
    let output = invoke(&["redact", "--then", "text-only", "--body", body]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "mail [email]\nusage: input=3 output=3 total=6 latency_ms=0\nsession: s9\n"
    );
}

#[test]
fn invoke_reports_errors_as_json_with_an_exit_code() {
    let output = invoke(&["missing", "--prompt", "x"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert_eq!(
        String::from_utf8(output.stderr).unwrap().trim_end(),
        r#"{"error":{"code":"unknown_plugin","message":"no plugin named `missing`"}}"#
    );
}

#[test]
fn plugins_inspect_describes_a_component() {
    let file = example("ndjson");
    let output = Command::new(bin()).args(["plugins", "inspect"]).arg(&file).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let wasm = std::fs::read(&file).unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let expected_head = format!(
        "{}: a transform plugin ({} bytes)\nsha256: {}\n\
         exports:\n  streamhost:plugin/transformer@0.1.0\nimports:\n",
        file.display(),
        wasm.len(),
        support::sha256_hex(&wasm)
    );
    assert!(stdout.starts_with(&expected_head), "{stdout}");
    // Only what the plugin uses: ndjson never logs, so no `log` import.
    for import in ["streamhost:plugin/config@0.1.0", "streamhost:plugin/types@0.1.0", "wasi:cli/stderr@0.2.6"] {
        assert!(stdout.contains(&format!("\n  {import}\n")), "{stdout}");
    }
}

#[test]
fn plugins_inspect_refuses_what_the_host_would_refuse() {
    let output = Command::new(bin()).args(["plugins", "inspect"]).arg(fixture("other-world")).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert_eq!(
        String::from_utf8(output.stderr).unwrap().trim_end(),
        "error: plugin `other-world` is not a streamhost plugin: it must export `streamhost:plugin/transformer@0.1.0`, `streamhost:plugin/selector@0.1.0`, `streamhost:plugin/handler@0.1.0` or `streamhost:plugin/filter@0.1.0`, and it exports `run`"
    );
}

#[test]
fn invoke_run_starts_a_detached_run_and_follows_it() {
    let output = invoke(&["redact", "--prompt", "hello there", "--run"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let (start, events) = stdout.split_once('\n').unwrap();
    let start: serde_json::Value = serde_json::from_str(start).unwrap();
    let id = start["id"].as_str().unwrap();
    assert_eq!(
        start,
        serde_json::json!({ "id": id, "status": "started", "conversationId": id, "events": format!("/runs/{id}/events") })
    );
    let ids: Vec<&str> = events.lines().filter_map(|line| line.strip_prefix("id: ")).collect();
    assert_eq!(ids, (1..=ids.len()).map(|n| n.to_string()).collect::<Vec<_>>(), "{events}");
    let text: String = events
        .split("\n\n")
        .filter_map(|event| {
            event.split_once("event: text\ndata: ").map(|(_, data)| serde_json::from_str::<String>(data).unwrap())
        })
        .collect();
    assert_eq!(text, "hello there", "{events}");
    assert!(events.ends_with("event: done\ndata: {\"status\":\"completed\"}\n\n"), "{events}");

    let refused = invoke(&["no-such-plugin", "--prompt", "hi", "--run"]);
    assert_eq!(refused.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(refused.stderr).unwrap().trim(),
        r#"{"error":{"code":"unknown_plugin","message":"no plugin named `no-such-plugin`"}}"#
    );
}
