//! Compiled plugins kept on disk, so that a restart loads native code in
//! well under a millisecond instead of compiling again.
//!
//! An entry is named by the sha256 of the component and a hash of everything
//! in the engine that affects the compiled code (wasmtime's version, the
//! target, the settings), so a change to either misses instead of loading
//! code made for something else.

use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tracing::{debug, warn};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a loaded component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Compiled,
    DiskCache,
}

pub struct CompileCache {
    dir: Option<PathBuf>,
    engine_hash: String,
}

impl CompileCache {
    /// A cache in `dir`, or none (always compile) when `dir` is `None`.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        Self { dir, engine_hash: engine_hash(engine) }
    }

    /// Loads the compiled form of `wasm` (whose sha256 is `digest`) from the
    /// cache, or compiles it and stores the result.
    pub fn load(&self, engine: &Engine, wasm: &[u8], digest: &str) -> wasmtime::Result<(Component, Origin)> {
        let Some(path) = self.entry_path(digest) else {
            return Ok((Component::new(engine, wasm)?, Origin::Compiled));
        };
        if path.exists() {
            // SAFETY: the cache folder is the host's own; entries are written
            // only by `store` below, from code this engine compiled, and the
            // name ties each to the component and the engine configuration.
            // wasmtime checks the header's engine compatibility again.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, Origin::DiskCache)),
                Err(error) => warn!(path = %path.display(), %error, "unusable cache entry; compiling again"),
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(error) = store(&path, &component.serialize()?) {
            warn!(path = %path.display(), %error, "could not write the compile cache");
        }
        Ok((component, Origin::Compiled))
    }

    fn entry_path(&self, digest: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{digest}-{}.cwasm", self.engine_hash)))
    }
}

/// Writes through a temporary file and a rename, so that a concurrent reader
/// (another host process) never sees half an entry.
fn store(path: &Path, compiled: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("an entry lives in the cache folder");
    fs::create_dir_all(dir)?;
    let temp = dir.join(format!(".{}.{}.tmp", path.file_name().unwrap().to_string_lossy(), std::process::id()));
    fs::write(&temp, compiled)?;
    fs::rename(&temp, path)?;
    debug!(path = %path.display(), bytes = compiled.len(), "stored compiled plugin");
    Ok(())
}

/// A stable digest of `Engine::precompile_compatibility_hash`.
fn engine_hash(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..8])
}

/// Feeds `Hash` output into sha256, which (unlike `DefaultHasher`) is the
/// same from one Rust release to the next.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        unreachable!("only `write` is used; the digest is read from the inner hasher")
    }
}
