//! Where plugins come from. A store maps a validated name to the bytes of
//! its component (`<name>.wasm`) or pipeline manifest (`<name>.json`), and
//! says when those bytes change.

mod folder;
mod s3;

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::error_code::ErrorCode;

pub use folder::FolderStore;
pub use s3::{S3Location, S3Store};

/// The longest plugin name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// A plugin name: `[a-z0-9][a-z0-9-]*`, at most [`MAX_NAME_LEN`] bytes. It is
/// never a path, so it can name a file or an object key safely.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct PluginName(String);

impl TryFrom<String> for PluginName {
    type Error = InvalidName;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl PluginName {
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PluginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A string refused as a [`PluginName`].
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid plugin name {name:?}: {reason}")]
pub struct InvalidName {
    /// The string refused, cut to its first [`MAX_NAME_LEN`] + 8 characters.
    pub name: String,
    /// What is wrong with it, for people.
    pub reason: &'static str,
}

impl FromStr for PluginName {
    type Err = InvalidName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| Err(InvalidName { name: name.chars().take(MAX_NAME_LEN + 8).collect(), reason });
        let mut bytes = name.bytes();
        match bytes.next() {
            None => return invalid("it is empty"),
            Some(first) if !(first.is_ascii_lowercase() || first.is_ascii_digit()) => {
                return invalid("it must start with a lowercase letter or a digit");
            }
            Some(_) => {}
        }
        if name.len() > MAX_NAME_LEN {
            return invalid("it is longer than 64 characters");
        }
        if !bytes.all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-') {
            return invalid("only lowercase letters, digits and '-' are allowed");
        }
        Ok(Self(name.to_string()))
    }
}

/// The two kinds of object a store holds under a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// The plugin's component, `<name>.wasm`.
    Component,
    /// A pipeline manifest, `<name>.json`.
    Manifest,
    /// A component compiled ahead of time (`publish --precompile`).
    Precompiled,
}

/// Serialised as the name, a string.
impl serde::Serialize for PluginName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl ObjectKind {
    /// The name and kind a file or key's last part stands for:
    /// `<name>.wasm`, `<name>.json`, `<name>.cwasm`.
    pub fn of_file_name(file_name: &str) -> Option<(PluginName, ObjectKind)> {
        let (name, extension) = file_name.rsplit_once('.')?;
        let kind = match extension {
            "wasm" => ObjectKind::Component,
            "json" => ObjectKind::Manifest,
            "cwasm" => ObjectKind::Precompiled,
            _ => return None,
        };
        Some((name.parse().ok()?, kind))
    }

    /// The object's file name, also its key under an S3 prefix: `<name>.wasm`, `<name>.json` or `<name>.cwasm`.
    pub fn file_name(self, name: &PluginName) -> String {
        match self {
            ObjectKind::Component => format!("{name}.wasm"),
            ObjectKind::Manifest => format!("{name}.json"),
            ObjectKind::Precompiled => format!("{name}.cwasm"),
        }
    }
}

/// Identifies one version of a plugin in its store (a file's size and
/// modification time; an object's ETag), to tell cheaply whether it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision(pub String);

/// The answer to "has this plugin changed since `Revision`?".
pub enum Fetched {
    /// Keep the version already loaded: the caller's revision is still current, or (S3) was confirmed within
    /// the revalidation interval, or S3 cannot be reached. The bytes were not fetched.
    Unchanged,
    /// The object's current bytes, new to the caller or changed since its revision.
    Changed {
        /// The object's bytes.
        bytes: Vec<u8>,
        /// The revision of these bytes, to pass as `known` next time.
        revision: Revision,
    },
}

/// Why a store could not give an object.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The store has no such object: no such file (or not a regular file), or S3 answered 404.
    #[error("no plugin named `{0}`")]
    NotFound(PluginName),
    /// The folder store could not read the file, for another reason than its absence.
    #[error("reading plugin `{name}`: {source}")]
    Io {
        /// The plugin.
        name: PluginName,
        /// The file system's error.
        source: std::io::Error,
    },
    /// S3 could not give the object: it could not be reached or answered an error other than 304 or 404 (for an
    /// object not loaded yet), or the body broke off.
    #[error("the plugin store cannot be reached for `{name}`: {message}")]
    Unavailable {
        /// The plugin.
        name: PluginName,
        /// The object's key, then the SDK's error with its causes.
        message: String,
    },
}

/// Why a store's objects could not be listed (the playground's catalog).
#[derive(Debug, Error)]
#[error("the plugin store cannot be listed: {0}")]
pub struct ListError(pub String);

/// Why a plugin could not be written to the store (the playground's upload).
#[derive(Debug, Error)]
pub enum PutError {
    /// Only a local folder takes uploads; S3 is written by `streamhost publish`.
    #[error("this host's plugins come from S3, which `streamhost publish` writes; uploads go to a local folder")]
    NotAFolder,
    /// The file could not be written.
    #[error("writing plugin `{name}`: {source}")]
    Io {
        /// The plugin.
        name: PluginName,
        /// The file system's error.
        source: std::io::Error,
    },
}

impl StoreError {
    /// The code of this error in the host's table (error_code.rs).
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::NotFound(_) => ErrorCode::UnknownPlugin,
            StoreError::Io { .. } => ErrorCode::PluginStoreError,
            StoreError::Unavailable { .. } => ErrorCode::PluginStoreUnavailable,
        }
    }
}

/// The plugin sources the host supports.
pub enum PluginStore {
    /// Files in a local folder.
    Folder(FolderStore),
    /// Objects under a prefix of an S3 bucket.
    S3(S3Store),
}

impl PluginStore {
    /// The object's bytes, unless `known` is still its current revision.
    pub async fn fetch(
        &self,
        name: &PluginName,
        kind: ObjectKind,
        known: Option<&Revision>,
    ) -> Result<Fetched, StoreError> {
        match self {
            PluginStore::Folder(folder) => folder.fetch(name, kind, known).await,
            PluginStore::S3(s3) => s3.fetch(name, kind, known).await,
        }
    }

    /// The objects the store holds, by name and kind, sorted; files or keys
    /// that are not `<name>.wasm`, `<name>.json` or `<name>.cwasm` with a
    /// valid name are left out.
    pub async fn list(&self) -> Result<Vec<(PluginName, ObjectKind)>, ListError> {
        let mut objects = match self {
            PluginStore::Folder(folder) => folder.list().await?,
            PluginStore::S3(s3) => s3.list().await?,
        };
        objects.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()).then((a.1 as u8).cmp(&(b.1 as u8))));
        Ok(objects)
    }

    /// Writes `bytes` as `name`'s object of `kind`, whole or not at all: a
    /// request never reads half of it.
    pub async fn put(&self, name: &PluginName, kind: ObjectKind, bytes: &[u8]) -> Result<(), PutError> {
        match self {
            PluginStore::Folder(folder) => folder.put(name, kind, bytes).await,
            PluginStore::S3(_) => Err(PutError::NotAFolder),
        }
    }
}

impl fmt::Display for PluginStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginStore::Folder(folder) => {
                let layers: Vec<String> = folder.layers().iter().map(|layer| layer.display().to_string()).collect();
                write!(f, "folder {}", layers.join(" over "))
            }
            PluginStore::S3(s3) => write!(f, "{}", s3.location()),
        }
    }
}

impl crate::error_code::CodedError for StoreError {
    fn error_code(&self) -> crate::error_code::Code<'_> {
        self.code().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for name in ["ndjson", "a", "0", "text-only", "v2-x"] {
            assert_eq!(name.parse::<PluginName>().unwrap().as_str(), name);
        }
    }

    #[test]
    fn refuses_anything_that_could_be_a_path() {
        for name in ["", "../x", "a/b", "a.wasm", "A", "-x", "x_y", "é", ".", "a\\b", &"a".repeat(65)] {
            assert!(name.parse::<PluginName>().is_err(), "{name:?} must be refused");
        }
    }
}
