//! Every example plugin's golden fixtures (`plugins/<name>/fixtures/`),
//! replayed through the plugin in the real host by `streamhost test`, the
//! command authors use.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{EXAMPLES, bin, polyglot, shared_cache};

/// The example plugins that `build.sh` builds in their own language; the
/// others are built for the tests by `artifacts/`.
const POLYGLOT: [&str; 4] = ["markdown-js", "word-filter-py", "seed002-text-py", "sse-reframe-c"];

fn plugins_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins")
}

#[test]
fn every_example_plugin_has_golden_fixtures_and_passes_them() {
    let mut tested = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(plugins_dir()).unwrap().map(|entry| entry.unwrap().path()).collect();
    entries.sort();
    for folder in entries.into_iter().filter(|path| path.is_dir()) {
        let name = folder.file_name().unwrap().to_str().unwrap().to_string();
        let fixtures = folder.join("fixtures");
        assert!(fixtures.is_dir(), "plugins/{name} has no golden fixtures");
        let plugin = match POLYGLOT.contains(&name.as_str()) {
            true => polyglot::component(&name).display().to_string(),
            false => name.clone(),
        };
        let output = Command::new(bin())
            .args(["test", &plugin, "--fixture"])
            .arg(&fixtures)
            .args(["--plugins", EXAMPLES])
            .env("STREAMHOST_CACHE_DIR", shared_cache())
            .env("STREAMHOST_LOG", "warn")
            .output()
            .unwrap();
        let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "plugins/{name}:\n{report}");
        tested.push(name);
    }
    assert!(tested.len() >= 25, "{tested:?}");
}
