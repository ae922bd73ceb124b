//! The README's examples, run as a newcomer runs them, against the built
//! binary, and their output held to what the README shows (as `seeds.rs`
//! holds the seeds' clients to what they read).
//!
//! Every fenced `sh`, `python` and `js` block runs, in order, unless the
//! line before it is `<!-- readme-test: skip: <why> -->` (it needs AWS, a
//! model server, a long-running process, or another test covers it):
//! - a `sh` block runs in `sh -e` with `streamhost` on the `PATH`, against a
//!   server started for it (`serve` on the examples and the echo model; a
//!   block whose first line is `streamhost serve …` gets a server with those
//!   flags), `localhost:9000` being that server. A plain fence right after
//!   it is its output: compared line by line, a line `…` standing for any
//!   lines, latencies aside. A block shown without output must still
//!   succeed and answer no error.
//! - a `python` or `js` block runs with the pinned SDKs against the same
//!   server, and prints what its `print(…)  # <text>` comments say.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{self, REPOSITORY, Server};

const SKIP: &str = "<!-- readme-test: skip: ";

/// One fenced block of the README.
#[derive(Debug)]
struct Block {
    /// The fence's language: `sh`, `python`, `js`, `json`, or empty.
    lang: String,
    /// Its first line's number in the README, for messages.
    line: usize,
    text: String,
    /// Why it is not run, if the line before it says.
    skip: Option<String>,
    /// The plain block right after it: its output, as shown.
    output: Option<String>,
}

fn blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut blocks: Vec<Block> = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let Some(lang) = lines[index].strip_prefix("```") else {
            index += 1;
            continue;
        };
        let start = index + 1;
        let end = start + lines[start..].iter().position(|line| *line == "```").expect("every fence is closed");
        let text = lines[start..end].join("\n");
        let follows_a_block = blocks.last().is_some_and(|last| last.line + last.text.lines().count() + 1 == index);
        if lang.is_empty() && follows_a_block {
            blocks.last_mut().unwrap().output = Some(text);
        } else {
            let skip = index.checked_sub(1).and_then(|before| lines[before].strip_prefix(SKIP));
            let skip = skip.map(|why| why.trim_end_matches("-->").trim().to_string());
            blocks.push(Block { lang: lang.to_string(), line: start, text, skip, output: None });
        }
        index = end + 1;
    }
    blocks
}

/// The folder holding the `streamhost` binary under test, first on `PATH`.
fn path_with_streamhost() -> String {
    let bin_dir = support::bin().parent().unwrap().display().to_string();
    format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default())
}

/// `text` with the README's address replaced by `server`'s.
fn addressed(text: &str, server: &Server) -> String {
    let base = server.url("");
    let host_port = base.trim_start_matches("http://").trim_end_matches('/');
    text.replace("localhost:9000", host_port).replace("127.0.0.1:9000", host_port)
}

fn run(command: &mut Command, what: &str) -> String {
    let output = command.output().unwrap_or_else(|error| panic!("{what}: {error}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{what} failed ({}):\n{stdout}\n{stderr}", output.status);
    stdout.into_owned()
}

/// A `sh` block's server: its own when it starts with `streamhost serve`.
fn server_for(block: &Block) -> (Server, String) {
    let mut lines = block.text.lines();
    let first = lines.next().unwrap_or_default();
    let Some(flags) = first.strip_prefix("streamhost serve") else {
        return (Server::start(), block.text.clone());
    };
    let flags = flags.split('#').next().unwrap_or_default().split_whitespace();
    let mut builder = Server::builder();
    let flags: Vec<&str> = flags.collect();
    for pair in flags.chunks(2) {
        builder = builder.arg(pair[0], pair.get(1).copied().unwrap_or("true"));
    }
    (builder.start(), lines.collect::<Vec<_>>().join("\n"))
}

fn run_sh(block: &Block) -> String {
    let (server, script) = server_for(block);
    let script = addressed(&script, &server);
    let scratch = tempfile::tempdir().unwrap();
    run(
        Command::new("sh")
            .args(["-e", "-c", &script])
            .current_dir(scratch.path())
            .env("PATH", path_with_streamhost())
            .env("STREAMHOST_CACHE_DIR", support::shared_cache()),
        &format!("README.md:{} (sh)", block.line),
    )
}

/// The lines of `shown` must match `actual`'s, `…` matching any run of
/// lines (none included); `"latencyMs":N` is not compared.
fn matches_shown(shown: &str, actual: &str) -> bool {
    fn without_latency(line: &str) -> String {
        let mut out = String::new();
        let mut rest = line;
        while let Some(at) = rest.find("\"latencyMs\":") {
            let (before, after) = rest.split_at(at + "\"latencyMs\":".len());
            out.push_str(before);
            rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
        }
        out + rest
    }
    fn matches(shown: &[String], actual: &[String]) -> bool {
        match shown.split_first() {
            None => actual.is_empty(),
            Some((first, rest)) if first == "…" => (0..=actual.len()).any(|skip| matches(rest, &actual[skip..])),
            Some((first, rest)) => actual.first() == Some(first) && matches(rest, &actual[1..]),
        }
    }
    let lines = |text: &str| text.lines().map(without_latency).collect::<Vec<_>>();
    matches(&lines(shown), &lines(actual))
}

/// What a snippet's `print(…)  # <text>` comments say it prints.
fn printed_per_comments(code: &str) -> Vec<&str> {
    code.lines()
        .filter(|line| line.contains("print(") || line.contains("process.stdout.write("))
        .filter_map(|line| line.rsplit_once("# ").or_else(|| line.rsplit_once("// ")).map(|(_, said)| said.trim()))
        .collect()
}

fn run_snippet(block: &Block, node_modules: &Path) -> String {
    let server = Server::start();
    let code = addressed(&block.text, &server);
    let what = format!("README.md:{} ({})", block.line, block.lang);
    if block.lang == "python" {
        return run(Command::new("python3").args(["-c", &code]), &what);
    }
    // An ES module, beside the pinned packages it imports.
    let scratch = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(node_modules, scratch.path().join("node_modules")).unwrap();
    let module = scratch.path().join("snippet.mjs");
    std::fs::write(&module, code).unwrap();
    run(Command::new("node").arg(&module), &what)
}

fn no_error_answered(output: &str) -> bool {
    !output.contains("\"type\":\"error\"") && !output.contains("{\"error\":") && !output.contains("event: error")
}

#[test]
fn the_readme_examples_run_and_answer_what_the_readme_shows() {
    let readme = std::fs::read_to_string(PathBuf::from(REPOSITORY).join("README.md")).unwrap();
    let node_modules =
        support::npm_ci(&PathBuf::from(REPOSITORY).join("tests/clients/node-sdks"), "ai").join("node_modules");
    let mut ran = 0;
    for block in blocks(&readme).iter().filter(|block| block.skip.is_none()) {
        let output = match block.lang.as_str() {
            "sh" => run_sh(block),
            "python" | "js" => run_snippet(block, &node_modules),
            _ => continue,
        };
        match &block.output {
            Some(shown) => assert!(
                matches_shown(shown, &output),
                "README.md:{} shows:\n{shown}\nbut the command wrote:\n{output}",
                block.line
            ),
            None => assert!(
                !output.trim().is_empty() && no_error_answered(&output),
                "README.md:{} wrote:\n{output}",
                block.line
            ),
        }
        for said in printed_per_comments(&block.text) {
            assert!(output.contains(said), "README.md:{} says it prints {said:?}; it wrote:\n{output}", block.line);
        }
        ran += 1;
    }
    assert!(ran >= 5, "only {ran} of the README's blocks ran: is every one marked skip?");
}

#[test]
fn every_skipped_block_says_why_and_every_runnable_kind_is_known() {
    let readme = std::fs::read_to_string(PathBuf::from(REPOSITORY).join("README.md")).unwrap();
    for block in blocks(&readme) {
        if let Some(why) = &block.skip {
            assert!(why.len() > 10, "README.md:{}: a skip says why: {why:?}", block.line);
        }
        assert!(
            ["sh", "python", "js", "json", ""].contains(&block.lang.as_str()),
            "README.md:{}: a block in {:?}, which this test does not run",
            block.line,
            block.lang
        );
    }
}

#[test]
fn shown_output_matches_with_ellipses_and_without_latencies() {
    let shown = "a\n…\n{\"latencyMs\":60}";
    assert!(matches_shown(shown, "a\nb\nc\n{\"latencyMs\":3}"));
    assert!(matches_shown(shown, "a\n{\"latencyMs\":0}"));
    assert!(!matches_shown(shown, "a\nb\n{\"latencyMs\":3}\nd"));
    assert!(!matches_shown("a\nb", "a\nc"));
    assert_eq!(printed_per_comments("print(x)   # mail [email]\nx = 1  # not printed"), vec!["mail [email]"]);
}
