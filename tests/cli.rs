//! `streamhost invoke`: the same pipeline, written to stdout.

mod support;

use std::process::Command;

use support::{BIN, EXAMPLES, shared_cache};

fn invoke(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
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
    let output = invoke(&["redact", "--then", "text", "--body", body]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "mail [email]\nusage: input=3 output=3 total=6 latency_ms=0\nsession: s9\n");
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
