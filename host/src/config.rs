//! Settings shared by every frontend. Each has a default, a flag and an
//! environment variable.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::Args;

use crate::engine::{Limits, OutputLimits};
use crate::history::HistorySettings;
use crate::pipeline::AgentSettings;
use crate::plugin_store::{PluginName, S3Location};
use crate::providers::ProviderSettings;
use crate::runs::RunSettings;

/// Where plugins come from: a folder, or an S3 bucket and prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A local folder of `<name>.wasm` files.
    Folder(PathBuf),
    /// An S3 bucket and prefix, from `s3://bucket/prefix/`.
    S3(S3Location),
}

impl FromStr for PluginSource {
    type Err = String;

    fn from_str(source: &str) -> Result<Self, Self::Err> {
        if source.starts_with("s3://") {
            source.parse().map(PluginSource::S3)
        } else {
            Ok(PluginSource::Folder(source.into()))
        }
    }
}

impl fmt::Display for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginSource::Folder(dir) => write!(f, "{}", dir.display()),
            PluginSource::S3(location) => write!(f, "{location}"),
        }
    }
}

/// `name=sha256`: the only version of a plugin the host will load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The plugin pinned.
    pub name: PluginName,
    /// The sha256 of the one component it may load, as 64 lowercase hex digits.
    pub sha256: String,
}

impl FromStr for Pin {
    type Err = String;

    fn from_str(pin: &str) -> Result<Self, Self::Err> {
        let (name, sha256) = pin.split_once('=').ok_or_else(|| format!("{pin:?} is not name=sha256"))?;
        let name = name.parse().map_err(|error| format!("{error}"))?;
        let sha256 = sha256.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(format!("{pin:?}: the digest must be 64 hex digits"));
        }
        Ok(Pin { name, sha256 })
    }
}

/// The settings every frontend shares: where plugins come from, their limits,
/// model sources, agents, history and runs.
#[derive(Debug, Clone, Args)]
pub struct HostSettings {
    /// Where plugins are loaded from, `<name>.wasm` each: a folder, or
    /// `s3://bucket/prefix/`. Defaults to the bundled example plugins when
    /// built with them, else `./plugins`.
    #[arg(long, env = "STREAMHOST_PLUGINS", value_name = "DIR|s3://BUCKET/PREFIX/")]
    pub plugins: Option<PluginSource>,

    /// Serve only the `--plugins` folder's plugins and pipelines. Without
    /// it, a folder of one's own is laid over the bundled examples (when the
    /// binary was built with them, and not on Lambda): a name in the folder
    /// wins, the examples serve the rest (`ndjson`, `sse`, ...).
    #[arg(long, env = "STREAMHOST_WITHOUT_EXAMPLES")]
    pub without_examples: bool,

    /// How often a loaded plugin is checked for a new version in S3 (a
    /// conditional GET). Folders are checked on every request.
    #[arg(long, env = "STREAMHOST_S3_REVALIDATE_MS", default_value_t = 5000, value_name = "MS")]
    pub s3_revalidate_ms: u64,

    /// Address buckets as `endpoint/bucket` (for S3-compatible servers).
    #[arg(long, env = "STREAMHOST_S3_PATH_STYLE")]
    pub s3_path_style: bool,

    /// Load only this version of a plugin: `name=sha256`. Repeat, or
    /// separate with commas in the variable.
    #[arg(long = "pin", env = "STREAMHOST_PINS", value_delimiter = ',', value_name = "NAME=SHA256")]
    pub pins: Vec<Pin>,

    /// Plugins to load at start-up, so the first request does not compile.
    #[arg(long, env = "STREAMHOST_PRELOAD", value_delimiter = ',', value_name = "NAMES")]
    pub preload: Vec<PluginName>,

    /// Where compiled plugins are kept between runs (default:
    /// `$XDG_CACHE_HOME/streamhost` or `~/.cache/streamhost`; on Lambda
    /// `/tmp/streamhost`, which survives between warm invocations).
    #[arg(long, env = "STREAMHOST_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Do not keep compiled plugins on disk.
    #[arg(long, env = "STREAMHOST_NO_DISK_CACHE")]
    pub no_disk_cache: bool,

    /// Load `<name>.cwasm` artifacts made by `publish --precompile` from the
    /// plugin store instead of compiling, when they were made from the very
    /// component and for this host's engine. They are native code: only for
    /// stores that only trusted parties can write (docs/deploy.md).
    #[arg(long, env = "STREAMHOST_TRUST_PRECOMPILED")]
    pub trust_precompiled: bool,

    /// Development: error messages to callers carry what a trapping plugin
    /// printed (a panic message, with its source file paths). Off, that goes
    /// to the host's log only.
    #[arg(long, env = "STREAMHOST_EXPOSE_PLUGIN_OUTPUT")]
    pub expose_plugin_output: bool,

    /// Tests: plugins read this wall-clock time, in ms since the Unix epoch,
    /// instead of the real one, so the timestamps they write are the same on
    /// every run (`streamhost test` sets it to 2026-01-01T00:00:00Z).
    #[arg(long, env = "STREAMHOST_FROZEN_WALL_CLOCK_MS", value_name = "MS", hide = true)]
    pub frozen_wall_clock_ms: Option<u64>,

    /// The wasm instructions one plugin call may execute (wasmtime's fuel,
    /// about one per instruction; the default is about 90 ms of a busy
    /// loop's work on a 2 GHz x86-64 core, and some 300 times what the
    /// example plugins' heaviest call needs, docs/benchmarks.md): the limit on
    /// a plugin's own work, whatever else the host is doing. Past it,
    /// `plugin_out_of_fuel`.
    #[arg(long, env = "STREAMHOST_PLUGIN_FUEL", default_value_t = 1_000_000_000, value_name = "UNITS")]
    pub plugin_fuel: u64,

    /// The longest a single plugin call may run on the wall clock, not
    /// counting its waits on the host: a backstop behind `--plugin-fuel`.
    /// Past it, `plugin_timeout`.
    #[arg(long, env = "STREAMHOST_PLUGIN_TIMEOUT_MS", default_value_t = 5000, value_name = "MS")]
    pub plugin_timeout_ms: u64,

    /// The most linear memory one plugin instance may use.
    #[arg(long, env = "STREAMHOST_PLUGIN_MEMORY_MB", default_value_t = 64, value_name = "MB")]
    pub plugin_memory_mb: usize,

    /// The most plugin instances alive at once (sizes the pooling allocator).
    /// Every plugin of a stream's chain holds one for the stream's life, so
    /// the default, 4096, serves 1,000 streams of a three-plugin chain with
    /// room to spare. What it bounds is address space reserved up front
    /// (about 32 TiB at 4096, none of it touched until used) and work in
    /// flight, not memory. On Lambda, where an environment runs one
    /// invocation at a time, the default is 256: a larger pool would only add
    /// to the cold start (docs/benchmarks.md, "Defaults for 1,000 streams").
    #[arg(long, env = "STREAMHOST_MAX_INSTANCES", default_value_t = default_max_instances())]
    pub max_instances: u32,

    /// The most bytes of event payload one plugin call may return or emit.
    #[arg(long, env = "STREAMHOST_PLUGIN_CALL_OUTPUT_BYTES", default_value_t = OutputLimits::default().call_bytes, value_name = "BYTES")]
    pub plugin_call_output_bytes: usize,

    /// The most events one plugin call may return or emit.
    #[arg(long, env = "STREAMHOST_PLUGIN_CALL_OUTPUT_EVENTS", default_value_t = OutputLimits::default().call_events, value_name = "EVENTS")]
    pub plugin_call_output_events: usize,

    /// The most bytes of event payload one plugin may produce in a stream.
    #[arg(long, env = "STREAMHOST_PLUGIN_STREAM_OUTPUT_BYTES", default_value_t = OutputLimits::default().stream_bytes, value_name = "BYTES")]
    pub plugin_stream_output_bytes: usize,

    /// The most events one plugin may produce in a stream.
    #[arg(long, env = "STREAMHOST_PLUGIN_STREAM_OUTPUT_EVENTS", default_value_t = OutputLimits::default().stream_events, value_name = "EVENTS")]
    pub plugin_stream_output_events: usize,

    /// The model sources: their defaults, and how to reach and retry them.
    #[command(flatten)]
    pub providers: ProviderSettings,

    /// The bounds on a turn: its model calls and its time.
    #[command(flatten)]
    pub agents: AgentSettings,

    /// Where conversations are kept, and how much of them.
    #[command(flatten)]
    pub history: HistorySettings,

    /// The run store and its bounds, and the runs' sinks.
    #[command(flatten)]
    pub runs: RunSettings,
}

impl HostSettings {
    /// The limits on every plugin instance, from `--plugin-fuel`, `--plugin-timeout-ms`,
    /// `--plugin-memory-mb`, `--max-instances` and the `--plugin-*-output-*`
    /// flags.
    pub fn limits(&self) -> Limits {
        Limits {
            call_fuel: self.plugin_fuel,
            call_timeout: Duration::from_millis(self.plugin_timeout_ms),
            memory_bytes: self.plugin_memory_mb << 20,
            max_instances: self.max_instances,
            output: OutputLimits {
                call_bytes: self.plugin_call_output_bytes,
                call_events: self.plugin_call_output_events,
                stream_bytes: self.plugin_stream_output_bytes,
                stream_events: self.plugin_stream_output_events,
            },
        }
    }

    /// Where plugins are loaded from: `--plugins`, else the default folder.
    pub fn plugin_source(&self) -> PluginSource {
        self.plugins.clone().unwrap_or_else(|| PluginSource::Folder(default_plugin_dir()))
    }

    /// The plugin folder (uploads go there) and every folder read, first to
    /// last: a `--plugins` folder of one's own, then the checkout's
    /// `pipelines/` (when the binary runs from one: an edited manifest
    /// applies on the next request, not after a rebuild), then the bundled
    /// examples. Only the plugin folder under `--without-examples`, on
    /// Lambda, or in a build without the examples.
    pub fn plugin_folders(&self, dir: PathBuf) -> (PathBuf, Vec<PathBuf>) {
        let mut layers = vec![dir.clone()];
        if self.without_examples || crate::aws::on_lambda() {
            return (dir, layers);
        }
        let same = |a: &Path, b: &Path| a == b || a.canonicalize().ok() == b.canonicalize().ok();
        let bundled = bundled_folders();
        // Serving the examples' own folder (the default), the checkout's
        // manifests still come before their copies there.
        let serving_the_examples = bundled.last().is_some_and(|examples| same(&dir, examples));
        for folder in bundled {
            if folder.is_dir() && !layers.iter().any(|layer| same(layer, &folder)) {
                layers.insert(if serving_the_examples { 0 } else { layers.len() }, folder);
            }
        }
        (dir, layers)
    }

    /// How often a plugin loaded from S3 is checked for a new version
    /// (`--s3-revalidate-ms`).
    pub fn s3_revalidate_every(&self) -> Duration {
        Duration::from_millis(self.s3_revalidate_ms)
    }

    /// Where compiled plugins are kept on disk: `--cache-dir`, else the
    /// default; `None` with `--no-disk-cache`, or when there is no default
    /// (neither `XDG_CACHE_HOME` nor `HOME` set).
    pub fn disk_cache_dir(&self) -> Option<PathBuf> {
        if self.no_disk_cache {
            return None;
        }
        self.cache_dir.clone().or_else(default_cache_dir)
    }
}

#[cfg(feature = "examples")]
fn default_plugin_dir() -> PathBuf {
    PathBuf::from(streamhost_artifacts::EXAMPLES_DIR)
}

#[cfg(not(feature = "examples"))]
fn default_plugin_dir() -> PathBuf {
    PathBuf::from("plugins")
}

/// The checkout's `pipelines/`, then the bundled examples.
#[cfg(feature = "examples")]
fn bundled_folders() -> Vec<PathBuf> {
    let pipelines = Path::new(streamhost_artifacts::PIPELINES_SOURCE_DIR);
    vec![
        pipelines.canonicalize().unwrap_or_else(|_| pipelines.into()),
        PathBuf::from(streamhost_artifacts::EXAMPLES_DIR),
    ]
}

#[cfg(not(feature = "examples"))]
fn bundled_folders() -> Vec<PathBuf> {
    Vec::new()
}

fn default_max_instances() -> u32 {
    if crate::aws::on_lambda() { 256 } else { 4096 }
}

fn default_cache_dir() -> Option<PathBuf> {
    if crate::aws::on_lambda() {
        return Some(PathBuf::from("/tmp/streamhost"));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("streamhost"))
}

#[cfg(all(test, feature = "examples"))]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        host: HostSettings,
    }

    fn folders(args: &[&str]) -> (PathBuf, Vec<PathBuf>) {
        let settings = Command::parse_from(std::iter::once("streamhost").chain(args.iter().copied())).host;
        let PluginSource::Folder(dir) = settings.plugin_source() else { panic!("a folder") };
        settings.plugin_folders(dir)
    }

    #[test]
    fn a_folder_of_ones_own_lies_over_the_checkouts_pipelines_and_the_examples() {
        let [pipelines, examples] = <[PathBuf; 2]>::try_from(bundled_folders()).unwrap();
        let own = tempfile::tempdir().unwrap();
        let own_path = own.path().to_str().unwrap();
        assert_eq!(
            folders(&["--plugins", own_path]),
            (own.path().into(), vec![own.path().into(), pipelines.clone(), examples.clone()])
        );
        assert_eq!(
            folders(&["--plugins", own_path, "--without-examples"]),
            (own.path().into(), vec![own.path().into()])
        );
        // On its default the host serves the examples, the checkout's
        // manifests before their copies; uploads still go to the examples.
        assert_eq!(folders(&[]), (examples.clone(), vec![pipelines, examples]));
    }
}
