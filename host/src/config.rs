//! Settings shared by every frontend. Each has a default, a flag and an
//! environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::engine::Limits;
use crate::providers::EchoSettings;

#[derive(Debug, Clone, Args)]
pub struct HostSettings {
    /// The folder the plugins are loaded from: `<name>.wasm` per plugin.
    /// Defaults to the bundled example plugins when built with them, else `./plugins`.
    #[arg(long, env = "STREAMHOST_PLUGINS", value_name = "DIR")]
    pub plugins: Option<PathBuf>,

    /// Where compiled plugins are kept between runs
    /// (default: `$XDG_CACHE_HOME/streamhost` or `~/.cache/streamhost`).
    #[arg(long, env = "STREAMHOST_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Do not keep compiled plugins on disk.
    #[arg(long, env = "STREAMHOST_NO_DISK_CACHE")]
    pub no_disk_cache: bool,

    /// The longest a single plugin call may run before it is stopped.
    #[arg(long, env = "STREAMHOST_PLUGIN_TIMEOUT_MS", default_value_t = 1000, value_name = "MS")]
    pub plugin_timeout_ms: u64,

    /// The most linear memory one plugin instance may use.
    #[arg(long, env = "STREAMHOST_PLUGIN_MEMORY_MB", default_value_t = 64, value_name = "MB")]
    pub plugin_memory_mb: usize,

    /// The most plugin instances alive at once (sizes the pooling allocator).
    #[arg(long, env = "STREAMHOST_MAX_INSTANCES", default_value_t = 256)]
    pub max_instances: u32,

    #[command(flatten)]
    pub echo: EchoSettings,
}

impl HostSettings {
    pub fn limits(&self) -> Limits {
        Limits {
            call_timeout: Duration::from_millis(self.plugin_timeout_ms),
            memory_bytes: self.plugin_memory_mb << 20,
            max_instances: self.max_instances,
        }
    }

    pub fn plugin_dir(&self) -> PathBuf {
        self.plugins.clone().unwrap_or_else(default_plugin_dir)
    }

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

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("streamhost"))
}
