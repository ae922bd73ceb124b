//! `streamhost serve --watch DIR`: rebuilds a plugin folder when its source
//! changes, and puts the new component in the plugin folder, where the next
//! request finds it (a folder store checks its files on every request).
//!
//! A watched folder is one `streamhost new` writes: its `build.sh OUT`
//! builds the component to `OUT`, and the folder's name is the plugin's.
//! The build goes to a file beside its place and is renamed over the old
//! one, so a request never reads half a component; a failed build leaves
//! the last good one in place and logs the build's output. File changes
//! come from the `notify` crate (inotify on Linux); a burst of them (an
//! editor's save) is one build.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::plugin_store::PluginName;

/// How long a folder must be quiet after a change before it is built.
const SETTLE: Duration = Duration::from_millis(300);

/// The longest a build may take before it is stopped (a first Rust build
/// with downloads takes a minute or two).
const BUILD_LIMIT: Duration = Duration::from_secs(600);

/// Folders a build writes into, whose changes are not the author's.
const BUILD_OUTPUTS: [&str; 5] = ["target", "node_modules", "__pycache__", "build", ".git"];

/// One watched plugin folder.
#[derive(Debug, Clone)]
pub struct WatchedPlugin {
    /// The folder, with its `build.sh`.
    pub dir: PathBuf,
    /// The plugin's name: the folder's.
    pub name: PluginName,
}

impl WatchedPlugin {
    /// The plugin folder `dir`, checked: it has a `build.sh` and its name is
    /// a plugin name.
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        let dir = dir.canonicalize().with_context(|| format!("--watch {}", dir.display()))?;
        anyhow::ensure!(
            dir.join("build.sh").is_file(),
            "--watch {}: no build.sh (a folder `streamhost new` writes has one)",
            dir.display()
        );
        let folder_name = dir.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        let name =
            folder_name.parse().with_context(|| format!("--watch {}: the folder names the plugin", dir.display()))?;
        Ok(Self { dir, name })
    }
}

/// Builds each plugin once, then again after each change to its source,
/// into `plugins_dir`, until the process ends. The watchers live in the
/// task this starts.
pub fn spawn(watched: Vec<WatchedPlugin>, plugins_dir: PathBuf) -> anyhow::Result<()> {
    let (changes, mut changed) = mpsc::unbounded_channel::<usize>();
    let mut watchers = Vec::new();
    for (index, plugin) in watched.iter().enumerate() {
        let changes = changes.clone();
        let dir = plugin.dir.clone();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|event| is_edit(&event.kind) && event.paths.iter().any(|path| is_source(&dir, path))) {
                let _ = changes.send(index);
            }
        })?;
        watcher.watch(&plugin.dir, RecursiveMode::Recursive)?;
        watchers.push(watcher);
        info!(plugin = %plugin.name, dir = %plugin.dir.display(), "watching");
    }
    tokio::spawn(async move {
        let _watchers = watchers;
        for plugin in &watched {
            build(plugin, &plugins_dir).await;
        }
        while let Some(first) = changed.recv().await {
            let mut due = vec![first];
            // Settle: a save is often several events, over several files.
            while let Ok(Some(next)) = tokio::time::timeout(SETTLE, changed.recv()).await {
                due.push(next);
            }
            due.sort_unstable();
            due.dedup();
            for index in due {
                build(&watched[index], &plugins_dir).await;
            }
        }
    });
    Ok(())
}

/// Whether an event changes a file: a build reads the sources (open and
/// access events), and reading is not a change, or every build would start
/// the next.
fn is_edit(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::ModifyKind;
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

/// Whether a change at `path` is to the author's source: not to what a
/// build writes, and not a component.
fn is_source(dir: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(dir) else { return false };
    let in_outputs = relative.components().any(|part| BUILD_OUTPUTS.iter().any(|output| part.as_os_str() == *output));
    let built = path.extension().is_some_and(|extension| extension == "wasm");
    !in_outputs && !built
}

/// Runs the folder's `build.sh` to a file beside the plugin's place, then
/// renames it over the old component.
async fn build(plugin: &WatchedPlugin, plugins_dir: &Path) {
    let target = plugins_dir.join(format!("{}.wasm", plugin.name));
    let partial = plugins_dir.join(format!(".{}.wasm.building", plugin.name));
    let started = Instant::now();
    info!(plugin = %plugin.name, "building");
    let mut command = tokio::process::Command::new("bash");
    command.arg(plugin.dir.join("build.sh")).arg(&partial).current_dir(&plugin.dir).kill_on_drop(true);
    // Its own process group, so that a build stopped for its time is
    // stopped with whatever it started.
    #[cfg(unix)]
    command.process_group(0);
    let output = match command.spawn() {
        Ok(child) => {
            let group = child.id();
            match tokio::time::timeout(BUILD_LIMIT, child.wait_with_output()).await {
                Ok(output) => output,
                Err(_) => {
                    if let Some(group) = group {
                        let _ = std::process::Command::new("kill").arg("-KILL").arg(format!("-{group}")).status();
                    }
                    Err(std::io::Error::other(format!("build.sh ran past {} s and was stopped", BUILD_LIMIT.as_secs())))
                }
            }
        }
        Err(error) => Err(error),
    };
    let built = match output {
        Ok(output) if output.status.success() => {
            tokio::fs::rename(&partial, &target).await.map_err(|error| error.to_string())
        }
        Ok(output) => Err(format!(
            "build.sh failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )),
        Err(error) => Err(format!("could not run build.sh: {error}")),
    };
    match built {
        Ok(()) => {
            info!(plugin = %plugin.name, ms = started.elapsed().as_millis() as u64, to = %target.display(), "built; the next request runs it")
        }
        Err(failure) => {
            let _ = tokio::fs::remove_file(&partial).await;
            let kept = match target.exists() {
                true => "the last good build stays in place",
                false => "there is no build of it yet: its requests answer 404 unknown_plugin",
            };
            warn!(plugin = %plugin.name, "{failure}\n{kept}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_a_file_is_not_an_edit() {
        use notify::EventKind;
        use notify::event::{AccessKind, CreateKind, DataChange, MetadataKind, ModifyKind};
        assert!(!is_edit(&EventKind::Access(AccessKind::Any)));
        assert!(!is_edit(&EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime))));
        assert!(is_edit(&EventKind::Modify(ModifyKind::Data(DataChange::Content))));
        assert!(is_edit(&EventKind::Create(CreateKind::File)));
    }

    #[test]
    fn only_the_authors_files_are_source() {
        let dir = Path::new("/p/shout");
        assert!(is_source(dir, Path::new("/p/shout/src/lib.rs")));
        assert!(is_source(dir, Path::new("/p/shout/app.py")));
        assert!(!is_source(dir, Path::new("/p/shout/target/debug/x.rlib")));
        assert!(!is_source(dir, Path::new("/p/shout/node_modules/a/index.js")));
        assert!(!is_source(dir, Path::new("/p/shout/shout.wasm")));
        assert!(!is_source(dir, Path::new("/elsewhere/lib.rs")));
    }
}
