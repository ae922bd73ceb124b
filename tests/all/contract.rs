//! The contract's answers that are behaviour (the WIT's package and
//! interface documentation, `wit/`), in process: how settings merge, how
//! large a batch is. (Limits, WASI, `finish` and failures are proven in
//! `plugins`, `logs` and `agents`.)

use crate::support;

use std::path::Path;

use futures::StreamExt;
use serde_json::{Value, json};
use streamhost::pipeline::{Inference, Pipeline};
use support::{example, plugin_dir, write_manifest};

async fn pipeline(plugins: &Path, args: &[&str]) -> Pipeline {
    support::in_process_pipeline(plugins, args).await
}

/// `config.settings`: the request's keys over the manifest's, at the top
/// level only: a key the request gives replaces the manifest's value whole.
#[tokio::test(flavor = "multi_thread")]
async fn settings_merge_key_by_key_at_the_top_level_only() {
    let plugins = plugin_dir(&[("redact", &example("redact")), ("ndjson", &example("ndjson"))]);
    let manifest = json!({
        "transforms": ["redact", "ndjson"],
        "config": { "redact": { "emailMask": "[e]", "nested": { "a": 1, "b": 2 } } },
        "callers": { "may": ["config.redact.nested"] }
    });
    write_manifest(plugins.path(), "merged", &manifest);
    let pipeline = pipeline(plugins.path(), &[]).await;
    let found = pipeline.resolve("merged", None).await.unwrap();
    let body = json!({ "prompt": "hi", "config": { "redact": { "nested": { "a": 9 } } } });
    let request = found.request(None, body.to_string().as_bytes(), Inference::Refused).unwrap();
    let settings: Value = serde_json::from_str(&request.settings_for(&"redact".parse().unwrap())).unwrap();
    assert_eq!(settings, json!({ "emailMask": "[e]", "nested": { "a": 9 } }));
}

/// `transformer.push`: the first transform gets what the source has ready,
/// 1 to 64 events a batch (the offline model at full speed); the batches
/// hold every event once, in order.
#[tokio::test(flavor = "multi_thread")]
async fn the_first_transform_gets_batches_of_one_to_sixty_four_events() {
    let plugins = plugin_dir(&[("ndjson", &example("ndjson"))]);
    let pipeline = pipeline(plugins.path(), &["--echo-delay-ms", "0"]).await;
    let found = pipeline.resolve("ndjson", None).await.unwrap();
    let manifest = found.manifest.clone();
    let prompt = (0..400).map(|index| format!("w{index}")).collect::<Vec<_>>().join(" ");
    let body = json!({ "prompt": prompt }).to_string();
    let request = found.request(None, body.as_bytes(), Inference::Refused).unwrap();
    let (response, recording) = pipeline.open_recorded(request, manifest).await.unwrap();
    let written: Vec<_> = response.body.collect().await;
    assert!(!written.is_empty());
    let batches = recording.batches();
    assert!(
        batches.iter().all(|batch| (1..=64).contains(&batch.len())),
        "{:?}",
        batches.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let text: String = batches
        .iter()
        .flatten()
        .filter_map(|event| match event {
            streamhost::event::Event::Text(text) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, prompt);
}
