//! The plugin author's loop, on the command line: `streamhost new` writes a
//! plugin folder that builds and passes its test straight away
//! (`scaffold`), `streamhost test` replays golden fixtures through a plugin
//! or a chain in the real host (`golden`), `streamhost invoke --record`
//! records a live stream into a fixture, and `streamhost serve --watch`
//! rebuilds a plugin folder when its source changes (`watch`).

pub mod golden;
pub mod scaffold;
pub mod watch;

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::{HostSettings, PluginSource};
use crate::event::Event;
use crate::pipeline::Pipeline;
use crate::plugin_store::PluginName;
use golden::{Fixture, FixtureEvent};

/// The wall-clock time plugins read under `streamhost test`:
/// 2026-01-01T00:00:00Z, so timestamps they write are the same every run.
pub const GOLDEN_WALL_CLOCK_MS: u64 = 1_767_225_600_000;

/// The outcome of `streamhost test`: how many fixtures passed, and the
/// report of each that did not.
#[derive(Debug, Default)]
pub struct TestReport {
    /// Fixtures whose output matched (or was written, with `--update`).
    pub passed: usize,
    /// `(fixture, what differed or failed)` for the others.
    pub failed: Vec<(PathBuf, String)>,
}

/// `streamhost test CHAIN --fixture PATH…`: each element of `chain` is a
/// `.wasm` file or a plugin name in `host.plugins`; each fixture path is a
/// file or a folder of `*.json` fixtures. With `update`, writes each
/// fixture's expected file instead of comparing.
pub async fn test(host: &HostSettings, chain: &str, fixtures: &[PathBuf], update: bool) -> anyhow::Result<TestReport> {
    let folder = tempfile::tempdir().context("a folder for the plugins under test")?;
    let names = gather(host, chain, folder.path())?;
    let mut settings = host.clone();
    settings.plugins = Some(PluginSource::Folder(folder.path().to_path_buf()));
    settings.providers.echo.delay_ms = 0;
    settings.frozen_wall_clock_ms = Some(GOLDEN_WALL_CLOCK_MS);
    let pipeline = crate::assemble::build_pipeline(&settings).await?;
    // A component not in the compile cache takes seconds to compile (a
    // componentize-py one, tens): say so before the wait.
    eprintln!("streamhost test: loading {chain}");
    let role = pipeline.registry().load(&names[0]).await.map_err(|error| anyhow::anyhow!("{error}"))?.role();
    let mut report = TestReport::default();
    for path in fixture_files(fixtures)? {
        match test_one(&pipeline, folder.path(), role, &names, &path, update).await {
            Ok(None) => report.passed += 1,
            Ok(Some(difference)) => report.failed.push((path, difference)),
            Err(error) => report.failed.push((path, format!("{error:#}"))),
        }
    }
    Ok(report)
}

async fn test_one(
    pipeline: &Pipeline,
    folder: &Path,
    role: crate::registry::PluginRole,
    names: &[PluginName],
    path: &Path,
    update: bool,
) -> anyhow::Result<Option<String>> {
    let fixture = Fixture::read(path)?;
    anyhow::ensure!(
        fixture.settings.is_none() || role != crate::registry::PluginRole::Transform,
        "{}: `settings` are a composed pipeline's (a router, an agent or a request filter first); a transform's \
         settings go in `request.config`",
        path.display()
    );
    if let Some(manifest) = golden::manifest_for(role, names, &fixture) {
        let file = folder.join(format!("{}.json", golden::test_pipeline()));
        std::fs::write(&file, serde_json::to_vec_pretty(&manifest)?).context("writing the test's manifest")?;
    }
    let actual = golden::run(pipeline, names, &fixture).await?;
    let expected_path = Fixture::expected_path(path);
    if update {
        std::fs::write(&expected_path, &actual).with_context(|| format!("writing {}", expected_path.display()))?;
        return Ok(None);
    }
    let expected = std::fs::read(&expected_path).with_context(|| {
        format!("reading {} (write it from the current output with --update)", expected_path.display())
    })?;
    Ok(golden::diff(&expected, &actual, &expected_path.display().to_string()))
}

/// Puts the chain's plugins in `folder` under their names: a `.wasm` path
/// is copied as its file stem (`my_plugin.wasm`, as cargo names it, is
/// `my-plugin`), a name is copied from the host's plugin folder.
fn gather(host: &HostSettings, chain: &str, folder: &Path) -> anyhow::Result<Vec<PluginName>> {
    let mut names = Vec::new();
    for element in chain.split(',').map(str::trim).filter(|element| !element.is_empty()) {
        let path = Path::new(element);
        let (name, source) = if element.ends_with(".wasm") || path.is_file() {
            let stem = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default().replace('_', "-");
            let name: PluginName = stem.parse().with_context(|| format!("naming the plugin of {element}"))?;
            (name, path.to_path_buf())
        } else {
            let name: PluginName = element.parse().with_context(|| format!("`{element}` in the chain"))?;
            let PluginSource::Folder(dir) = host.plugin_source() else {
                anyhow::bail!("`streamhost test` takes plugins from a folder or as .wasm files, not from S3");
            };
            let wasm = dir.join(format!("{name}.wasm"));
            if !wasm.is_file() && dir.join(format!("{name}.json")).is_file() {
                anyhow::bail!(
                    "`{name}` is a pipeline (a manifest in {}), not a plugin: test the plugins of its chain",
                    dir.display()
                );
            }
            anyhow::ensure!(wasm.is_file(), "no plugin `{name}`: {} does not exist", wasm.display());
            (name.clone(), wasm)
        };
        anyhow::ensure!(!names.contains(&name), "two plugins of the chain are named `{name}`; rename one file");
        std::fs::copy(&source, folder.join(format!("{name}.wasm")))
            .with_context(|| format!("copying {}", source.display()))?;
        names.push(name);
    }
    anyhow::ensure!(!names.is_empty(), "name at least one plugin to test");
    Ok(names)
}

/// The fixture files `paths` name: files as given, folders' `*.json`
/// (sorted).
fn fixture_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|file| file.extension().is_some_and(|extension| extension == "json"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    anyhow::ensure!(!files.is_empty(), "no fixtures found in {paths:?}");
    Ok(files)
}

/// Writes what `invoke --record` saw as a fixture at `path` and the output
/// as its expected file beside it.
pub fn write_recording(
    path: &Path,
    target: &str,
    chain: &str,
    request: &str,
    batches: &[Vec<Event>],
    output: &[u8],
) -> anyhow::Result<()> {
    anyhow::ensure!(
        path.extension().is_none_or(|extension| extension != "expected"),
        "{} would be the fixture's own expected file; record into a `.json`",
        path.display()
    );
    let fixture = Fixture {
        description: Some(format!(
            "recorded from `streamhost invoke {target}`; replay it with `streamhost test {chain} --fixture …` \
             (and the same `--plugins`, if it was given one)"
        )),
        chain: Some(chain.to_string()),
        request: serde_json::from_str(request).ok(),
        batches: Some(batches.iter().map(|batch| batch.iter().map(FixtureEvent::of).collect()).collect()),
        ..Fixture::default()
    };
    std::fs::write(path, format!("{}\n", serde_json::to_string_pretty(&fixture)?))
        .with_context(|| format!("writing {}", path.display()))?;
    let expected = Fixture::expected_path(path);
    std::fs::write(&expected, output).with_context(|| format!("writing {}", expected.display()))
}
