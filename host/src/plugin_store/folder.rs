//! Plugins in a local folder: `<dir>/<name>.wasm` (and `<name>.json`). A file's size and
//! modification time are checked on every fetch, so a replaced file is
//! served by the next request. Replace files by renaming a finished file
//! over the old one, so a request never reads half a file.
//!
//! A folder of one's own may lie over others (the checkout's `pipelines/`,
//! the bundled examples): a name is served from the first folder that has
//! it, so an author's `my-plugins/` chains with `ndjson` without copying it.
//! Uploads go to one's own.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::{Fetched, ListError, ObjectKind, PluginName, PutError, Revision, StoreError};

/// A plugin store in a local folder, whose files' size and modification time are their revision.
pub struct FolderStore {
    /// The folder uploads go to.
    dir: PathBuf,
    /// The folders read, first to last: a name is served from the first
    /// that has it. `dir` is among them.
    layers: Vec<PathBuf>,
}

impl FolderStore {
    /// A store of the files in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Self { layers: vec![dir.clone()], dir }
    }

    /// A store that reads `layers`, first to last, and writes to `dir`, one
    /// of them.
    pub fn layered(dir: PathBuf, layers: Vec<PathBuf>) -> Self {
        debug_assert!(layers.contains(&dir), "the folder written is one of those read");
        Self { dir, layers }
    }

    /// The folder uploads go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folders read, first to last.
    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }

    /// The file's bytes from the first folder that has it (see [`Self::fetch_in`]).
    pub async fn fetch(
        &self,
        name: &PluginName,
        kind: ObjectKind,
        known: Option<&Revision>,
    ) -> Result<Fetched, StoreError> {
        let mut fetched = Err(StoreError::NotFound(name.clone()));
        for layer in &self.layers {
            fetched = Self::fetch_in(layer, name, kind, known).await;
            if !matches!(fetched, Err(StoreError::NotFound(_))) {
                break;
            }
        }
        fetched
    }

    /// The file's bytes in `dir`, unless `known` is still its revision: `<size in bytes>:<mtime in ns since the Unix epoch>`.
    async fn fetch_in(
        dir: &Path,
        name: &PluginName,
        kind: ObjectKind,
        known: Option<&Revision>,
    ) -> Result<Fetched, StoreError> {
        let path = dir.join(kind.file_name(name));
        let io_error = |source: std::io::Error| match source.kind() {
            ErrorKind::NotFound => StoreError::NotFound(name.clone()),
            _ => StoreError::Io { name: name.clone(), source },
        };
        let metadata = tokio::fs::metadata(&path).await.map_err(io_error)?;
        if !metadata.is_file() {
            return Err(StoreError::NotFound(name.clone()));
        }
        let modified =
            metadata.modified().ok().and_then(|time| time.duration_since(UNIX_EPOCH).ok()).unwrap_or_default();
        let revision = Revision(format!("{}:{}", metadata.len(), modified.as_nanos()));
        if known == Some(&revision) {
            return Ok(Fetched::Unchanged);
        }
        let bytes = tokio::fs::read(&path).await.map_err(io_error)?;
        Ok(Fetched::Changed { bytes, revision })
    }

    /// The plugin files of every folder, each name and kind once.
    pub async fn list(&self) -> Result<Vec<(PluginName, ObjectKind)>, ListError> {
        let mut objects = Vec::new();
        for layer in &self.layers {
            for object in Self::list_in(layer).await? {
                if !objects.contains(&object) {
                    objects.push(object);
                }
            }
        }
        Ok(objects)
    }

    /// The plugin files in `dir`.
    async fn list_in(dir: &Path) -> Result<Vec<(PluginName, ObjectKind)>, ListError> {
        let listing = |error: std::io::Error| ListError(format!("{}: {error}", dir.display()));
        let mut entries = tokio::fs::read_dir(dir).await.map_err(listing)?;
        let mut objects = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(listing)? {
            if let Some(object) = entry.file_name().to_str().and_then(ObjectKind::of_file_name) {
                objects.push(object);
            }
        }
        Ok(objects)
    }

    /// Writes the file beside its place, then renames it over the old one.
    pub async fn put(&self, name: &PluginName, kind: ObjectKind, bytes: &[u8]) -> Result<(), PutError> {
        let io = |source: std::io::Error| PutError::Io { name: name.clone(), source };
        let path = self.dir.join(kind.file_name(name));
        let partial = self.dir.join(format!(".{}.{:016x}.partial", kind.file_name(name), fastrand::u64(..)));
        tokio::fs::write(&partial, bytes).await.map_err(io)?;
        if let Err(error) = tokio::fs::rename(&partial, &path).await {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(io(error));
        }
        Ok(())
    }
}
