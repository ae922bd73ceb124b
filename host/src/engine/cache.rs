//! Compiled plugins kept on disk, so that a restart loads native code in
//! a fraction of a millisecond (a Python or JavaScript component: tens of
//! milliseconds) instead of compiling again (up to seconds).
//!
//! An entry is named by the sha256 of the component and a hash of everything
//! in the engine that affects the compiled code (wasmtime's version, the
//! target, the settings), so a change to either misses instead of loading
//! code made for something else. Compiled code is native code, run without
//! the sandbox's checks on what it is, so each entry also carries a header
//! that is checked before the code is used (see [`Entry`]): the component it
//! was made from, the engine it was made by, and the sha256 of the code. An
//! entry that fails any check is refused and the component compiled again.
//! The folder itself must be writable by the host only: the checks catch a
//! damaged, truncated, swapped or hand-edited entry, not someone able to
//! write a whole new one with a matching header.

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
    /// Compiled from the component's bytes just now.
    Compiled,
    /// Loaded from an entry of the disk cache, after its header's checks.
    DiskCache,
    /// A precompiled artifact from the plugin store (`--trust-precompiled`).
    Precompiled,
}

/// Compiled components kept on disk: one `<sha256>-<engine hash>.cwasm` entry per component and
/// engine configuration, in a folder (or no folder: always compile).
#[derive(Clone)]
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
        match self.cached(engine, digest) {
            Some(component) => Ok((component, Origin::DiskCache)),
            None => Ok((self.compile(engine, wasm, digest)?, Origin::Compiled)),
        }
    }

    /// The cached compiled form of the component `digest`, if there is a
    /// usable one.
    pub fn cached(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.entry_path(digest).filter(|path| path.exists())?;
        match self.read(engine, &path, digest) {
            Ok(component) => Some(component),
            Err(error) => {
                warn!(path = %path.display(), %error, "unusable cache entry; compiling again");
                None
            }
        }
    }

    /// Compiles `wasm` and keeps the result in the cache.
    pub fn compile(&self, engine: &Engine, wasm: &[u8], digest: &str) -> wasmtime::Result<Component> {
        let component = Component::new(engine, wasm)?;
        self.keep(digest, &self.entry(digest).encode(&component.serialize()?));
        Ok(component)
    }

    /// Compiles `wasm` into an artifact a host with this engine
    /// configuration can load instead of compiling (`publish --precompile`).
    pub fn precompile(&self, engine: &Engine, wasm: &[u8], digest: &str) -> wasmtime::Result<Vec<u8>> {
        Ok(self.entry(digest).encode(&engine.precompile_component(wasm)?))
    }

    /// Loads a precompiled artifact of the component `digest` after the
    /// same checks as a cache entry, and keeps it in the cache.
    pub fn adopt(&self, engine: &Engine, digest: &str, artifact: &[u8]) -> anyhow::Result<Component> {
        let component = self.deserialize(engine, digest, artifact)?;
        self.keep(digest, artifact);
        Ok(component)
    }

    fn entry<'a>(&'a self, digest: &'a str) -> Entry<'a> {
        Entry { component_sha256: digest, engine_hash: &self.engine_hash }
    }

    fn keep(&self, digest: &str, entry: &[u8]) {
        let Some(path) = self.entry_path(digest) else { return };
        if let Err(error) = store(&path, entry) {
            warn!(path = %path.display(), %error, "could not write the compile cache");
        }
    }

    fn read(&self, engine: &Engine, path: &Path, digest: &str) -> anyhow::Result<Component> {
        self.deserialize(engine, digest, &fs::read(path)?)
    }

    fn deserialize(&self, engine: &Engine, digest: &str, entry: &[u8]) -> anyhow::Result<Component> {
        let code = self.entry(digest).verify(entry)?;
        // SAFETY: `verify` checked that these bytes are, unchanged, what an
        // engine configured as this one compiled from this component (see
        // the module docs for what that does and does not rule out); wasmtime
        // checks its own compatibility header again.
        Ok(unsafe { Component::deserialize(engine, code) }?)
    }

    fn entry_path(&self, digest: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{digest}-{}.cwasm", self.engine_hash)))
    }
}

/// The header before the compiled code of an entry:
///
/// ```text
/// streamhost-compiled 1
/// component-sha256: <hex>
/// engine: <engine hash>
/// code-sha256: <hex>
///
/// <the code, as wasmtime serialised it>
/// ```
struct Entry<'a> {
    component_sha256: &'a str,
    engine_hash: &'a str,
}

const MAGIC: &str = "streamhost-compiled 1";

impl Entry<'_> {
    fn encode(&self, code: &[u8]) -> Vec<u8> {
        let header = format!(
            "{MAGIC}\ncomponent-sha256: {}\nengine: {}\ncode-sha256: {}\n\n",
            self.component_sha256,
            self.engine_hash,
            hex::encode(Sha256::digest(code))
        );
        [header.as_bytes(), code].concat()
    }

    /// The code in `bytes`, if its header names this component and engine
    /// and its digest matches.
    fn verify<'b>(&self, bytes: &'b [u8]) -> anyhow::Result<&'b [u8]> {
        let end = bytes.windows(2).position(|pair| pair == b"\n\n").ok_or_else(|| anyhow::anyhow!("no header"))?;
        let header = std::str::from_utf8(&bytes[..end])?;
        let code = &bytes[end + 2..];
        let mut lines = header.lines();
        anyhow::ensure!(lines.next() == Some(MAGIC), "not a streamhost compiled entry");
        let mut field = |name: &str| {
            lines
                .next()
                .and_then(|line| line.strip_prefix(name))
                .and_then(|rest| rest.strip_prefix(": "))
                .ok_or_else(|| anyhow::anyhow!("no `{name}` in the header"))
        };
        let (component, engine, code_sha256) = (field("component-sha256")?, field("engine")?, field("code-sha256")?);
        anyhow::ensure!(component == self.component_sha256, "made from another component ({component})");
        anyhow::ensure!(
            engine == self.engine_hash,
            "made by another engine configuration ({engine}, this one is {})",
            self.engine_hash
        );
        anyhow::ensure!(
            hex::encode(Sha256::digest(code)) == code_sha256,
            "the code is not what was written (sha256 mismatch)"
        );
        Ok(code)
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
pub(super) fn engine_hash(engine: &Engine) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY: Entry<'static> = Entry { component_sha256: "c0ffee", engine_hash: "e1" };

    #[test]
    fn an_entry_reads_back_only_unchanged_for_its_component_and_engine() {
        let bytes = ENTRY.encode(b"native code");
        assert_eq!(ENTRY.verify(&bytes).unwrap(), b"native code");

        let error = |entry: &Entry<'_>, bytes: &[u8]| entry.verify(bytes).unwrap_err().to_string();
        assert_eq!(
            error(&Entry { component_sha256: "other", ..ENTRY }, &bytes),
            "made from another component (c0ffee)"
        );
        assert_eq!(
            error(&Entry { engine_hash: "e2", ..ENTRY }, &bytes),
            "made by another engine configuration (e1, this one is e2)"
        );
        let mut tampered = bytes.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(error(&ENTRY, &tampered), "the code is not what was written (sha256 mismatch)");
        assert_eq!(error(&ENTRY, b"not compiled code"), "no header");
    }
}
