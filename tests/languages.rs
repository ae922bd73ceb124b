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
