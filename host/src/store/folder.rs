//! Plugins in a local folder: `<dir>/<name>.wasm` (and `<name>.json`). A file's size and
//! modification time are checked on every fetch, so a replaced file is
//! served by the next request. Replace files by renaming a finished file
//! over the old one, so a request never reads half a file.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::{Fetched, ObjectKind, PluginName, Revision, StoreError};

/// A plugin store in a local folder, whose files' size and modification time are their revision.
pub struct FolderStore {
    dir: PathBuf,
}

impl FolderStore {
    /// A store of the files in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder it reads.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file's bytes, unless `known` is still its revision: `<size in bytes>:<mtime in ns since the Unix epoch>`.
    pub async fn fetch(
        &self,
        name: &PluginName,
        kind: ObjectKind,
        known: Option<&Revision>,
    ) -> Result<Fetched, StoreError> {
        let path = self.dir.join(kind.file_name(name));
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
}
