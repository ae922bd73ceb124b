//! Plugins written in other languages, built by their own toolchains and run
//! by the real host over HTTP, byte for byte.

mod support;

use support::{Server, example, plugin_dir, polyglot};

#[tokio::test]
async fn python_word_filter_masks_words_split_across_deltas() {
    let dir = plugin_dir(&[("word-filter-py", &polyglot::component("word-filter-py")), ("ndjson", &example("ndjson"))]);
    let server = Server::builder().plugins(dir.path()).start();
    // The echo model sends "Oh d", "arn " ...: the word arrives in pieces.
    let body = r##"{"prompt":"Oh darn it, HECK no; darning is fine","config":{"word-filter-py":{"words":["darn","heck"],"mask":"#"}}}"##;
    let reply = server.post("/word-filter-py?then=ndjson", body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let chunks: String = reply
        .body
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["data"].as_str().map(str::to_string))
        .collect();
    assert_eq!(chunks, "Oh #### it, #### no; darning is fine");

    let refused = server.post("/word-filter-py", r###"{"prompt":"x","config":{"word-filter-py":{"mask":"##"}}}"###).await;
    refused.assert_error(422, "invalid_config", "plugin `word-filter-py`: `mask` must be one character");
}
