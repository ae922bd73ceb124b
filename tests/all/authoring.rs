//! The author's loop through the real binary: `streamhost new` for every
//! role in every language, each built with its own `build.sh` and passing
//! its golden test with `streamhost test`; a changed plugin failing its test
//! with a diff until `--update`; `invoke --record` making a fixture that
//! replays to the same output; `serve --watch` serving each new build.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::{EXAMPLES, Server, bin, polyglot, shared_cache};

const ROLES: [&str; 4] = ["transform", "router", "agent", "request-filter"];

fn streamhost(args: &[&str], dir: &Path) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("STREAMHOST_LOG", "warn")
        .env("STREAMHOST_CACHE_DIR", shared_cache())
        .output()
        .expect("streamhost runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Runs the plugin folder's `build.sh`; Rust plugins share one target
/// folder, so only the first compiles wit-bindgen.
fn build(folder: &Path, wit_c: &Path) {
    let output = polyglot::one_at_a_time(|| {
        Command::new("bash")
            .arg(folder.join("build.sh"))
            .current_dir(folder)
            .env("WIT_C", wit_c)
            .env("CARGO_TARGET_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffolds"))
            .output()
            .expect("bash runs")
    });
    assert!(output.status.success(), "{}: build.sh failed\n{}", folder.display(), text(&output));
}

fn new(dir: &Path, role: &str, name: &str, lang: &str) -> PathBuf {
    let output = streamhost(&["new", role, name, "--lang", lang], dir);
    assert!(output.status.success(), "{}", text(&output));
    dir.join(name)
}

fn golden_test(folder: &Path, name: &str, extra: &[&str]) -> Output {
    let wasm = format!("./{name}.wasm");
    let mut args = vec!["test", &wasm, "--fixture", "fixtures"];
    args.extend_from_slice(extra);
    streamhost(&args, folder)
}

#[test]
fn every_scaffold_builds_and_passes_its_golden_test() {
    let dir = tempfile::tempdir().unwrap();
    let wit_c = polyglot::wit_c();
    for lang in ["rust", "python", "js", "c"] {
        for role in ROLES {
            let name = format!("my-{lang}-{role}");
            let folder = new(dir.path(), role, &name, lang);
            build(&folder, &wit_c);
            let tested = golden_test(&folder, &name, &[]);
            assert!(tested.status.success(), "{lang} {role}: {}", text(&tested));
            assert!(String::from_utf8_lossy(&tested.stdout).contains(" passed, 0 failed"), "{}", text(&tested));
        }
    }
    // A folder that exists is not written over.
    let again = streamhost(&["new", "transform", "my-rust-transform"], dir.path());
    assert!(!again.status.success());
    assert!(text(&again).contains("exists"), "{}", text(&again));
}

/// A change the fixture does not expect fails with a diff naming the line,
/// exits 1, and passes once `--update` has accepted it.
#[test]
fn a_changed_plugin_fails_its_golden_test_with_a_diff_until_updated() {
    let dir = tempfile::tempdir().unwrap();
    let folder = new(dir.path(), "transform", "shout", "c");
    let source = folder.join("plugin.c");
    let lowered = std::fs::read_to_string(&source).unwrap().replace("toupper(", "tolower(");
    std::fs::write(&source, lowered).unwrap();
    build(&folder, &polyglot::wit_c());

    let failed = golden_test(&folder, "shout", &[]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    let report = String::from_utf8_lossy(&failed.stdout);
    assert!(report.contains("FAIL fixtures/hello.json"), "{report}");
    assert!(report.contains("-{\"type\":\"text\",\"data\":\"HEL\"}"), "{report}");
    assert!(report.contains("+{\"type\":\"text\",\"data\":\"hel\"}"), "{report}");

    let updated = golden_test(&folder, "shout", &["--update"]);
    assert!(updated.status.success(), "{}", text(&updated));
    let passed = golden_test(&folder, "shout", &[]);
    assert!(passed.status.success(), "{}", text(&passed));
}

/// A stream recorded at a model's pace replays, batch for batch, to the
/// output it had live.
#[test]
fn a_recorded_stream_replays_to_the_output_it_had_live() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("mail.json");
    let fixture_arg = fixture.to_str().unwrap();
    let recorded = streamhost(
        &[
            "invoke",
            "redact",
            "--then",
            "ndjson",
            "--prompt",
            "mail me at ada@example.com",
            "--plugins",
            EXAMPLES,
            "--echo-delay-ms",
            "20",
            "--record",
            fixture_arg,
        ],
        dir.path(),
    );
    assert!(recorded.status.success(), "{}", text(&recorded));
    let expected = std::fs::read(dir.path().join("mail.expected")).unwrap();
    assert_eq!(expected, recorded.stdout, "the expected file is what the caller got");
    assert!(String::from_utf8_lossy(&expected).contains("[email]"));
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&fixture).unwrap()).unwrap();
    let batches = written["batches"].as_array().unwrap();
    assert!(batches.len() > 3, "at a model's pace, tokens come in batches of their own: {written}");
    assert_eq!(written["chain"], "redact,ndjson");

    let replayed = streamhost(&["test", "redact,ndjson", "--fixture", fixture_arg, "--plugins", EXAMPLES], dir.path());
    assert!(replayed.status.success(), "{}", text(&replayed));

    // A pipeline with an agent, whose formatter writes timestamps: the
    // agent's events are the source, the fixed clock makes them replayable.
    let progress = dir.path().join("progress.json");
    let progress_arg = progress.to_str().unwrap();
    let recorded = streamhost(
        &["invoke", "progress", "--prompt", "weekly report", "--plugins", EXAMPLES, "--record", progress_arg],
        dir.path(),
    );
    assert!(recorded.status.success(), "{}", text(&recorded));
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&progress).unwrap()).unwrap();
    assert_eq!(written["chain"], "ndjson-status");
    let replayed = streamhost(&["test", "ndjson-status", "--fixture", progress_arg, "--plugins", EXAMPLES], dir.path());
    assert!(replayed.status.success(), "{}", text(&replayed));
}

/// `serve --watch` builds a plugin folder at start and after each change,
/// and the next request runs the new build.
#[tokio::test]
async fn serve_watch_serves_each_new_build() {
    let dir = tempfile::tempdir().unwrap();
    let folder = new(dir.path(), "transform", "shout", "c");
    let plugins = tempfile::tempdir().unwrap();
    let host = Server::builder()
        .plugins(plugins.path())
        .env([("WIT_C", polyglot::wit_c().display().to_string())])
        .arg("--watch", folder.to_str().unwrap())
        .start();
    wait_for_builds(&host, 1).await;
    // Building reads the sources; reading is not an edit, so nothing is
    // built again until something changes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(host.logs().matches("watch: building").count(), 1, "{}", host.logs());
    let shouted = host.post("/shout", r#"{"prompt":"hi yo"}"#).await;
    assert!(shouted.body.contains(r#"{"type":"text","data":"HI"}"#), "{}", shouted.body);

    let source = folder.join("plugin.c");
    let lowered = std::fs::read_to_string(&source).unwrap().replace("toupper(", "tolower(");
    std::fs::write(&source, lowered).unwrap();
    wait_for_builds(&host, 2).await;
    let lowered = host.post("/shout", r#"{"prompt":"HI YO"}"#).await;
    assert!(lowered.body.contains(r#"{"type":"text","data":"hi"}"#), "{}", lowered.body);

    // A build that fails keeps the last good one.
    std::fs::write(&source, "this is not C").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !host.logs().contains("build.sh failed") {
        assert!(Instant::now() < deadline, "{}", host.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let still = host.post("/shout", r#"{"prompt":"HI YO"}"#).await;
    assert!(still.body.contains(r#"{"type":"text","data":"hi"}"#), "{}", still.body);
}

async fn wait_for_builds(host: &Server, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while host.logs().matches("built; the next request runs it").count() < count {
        assert!(Instant::now() < deadline, "no build {count}: {}", host.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
