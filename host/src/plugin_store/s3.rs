//! Plugins in S3: `s3://bucket/prefix/<name>.wasm` (and `<name>.json`).
//!
//! The object's ETag is its revision. After a plugin is loaded, it is
//! revalidated with a conditional GET (`If-None-Match`) at most once per
//! interval, so a new upload is served within that interval without a
//! deploy, and the steady state costs one cheap 304 per interval. An object
//! found missing is not asked for again within the interval either (every
//! request looks for a manifest first). If S3 cannot be reached, the loaded
//! version keeps being served.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::GetObjectError;
use tracing::warn;

use super::{Fetched, ListError, ObjectKind, PluginName, Revision, StoreError};

/// `s3://bucket/prefix/`, the prefix empty or ending in `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket's name.
    pub bucket: String,
    /// The key prefix before each object's file name: empty, or ending in `/`.
    pub prefix: String,
}

impl S3Location {
    /// The object key of `name`'s object of `kind`: the prefix, then its file name.
    pub fn key(&self, name: &PluginName, kind: ObjectKind) -> String {
        format!("{}{}", self.prefix, kind.file_name(name))
    }
}

impl FromStr for S3Location {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| format!("{url:?} is not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{url:?} names no bucket"));
        }
        let prefix = match prefix {
            "" => String::new(),
            prefix if prefix.ends_with('/') => prefix.to_string(),
            prefix => format!("{prefix}/"),
        };
        Ok(Self { bucket: bucket.to_string(), prefix })
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// A plugin store in S3, read with `GetObject`, whose objects' ETags are their revision.
pub struct S3Store {
    client: aws_sdk_s3::Client,
    location: S3Location,
    revalidate_every: Duration,
    /// When each object was last confirmed current, or missing.
    checked: Mutex<HashMap<(PluginName, ObjectKind), Checked>>,
}

#[derive(Clone, Copy)]
struct Checked {
    at: Instant,
    missing: bool,
}

impl S3Store {
    /// A store of the objects under `location`, each revalidated at most once per `revalidate_every`.
    pub fn new(client: aws_sdk_s3::Client, location: S3Location, revalidate_every: Duration) -> Self {
        Self { client, location, revalidate_every, checked: Mutex::default() }
    }

    /// The bucket and prefix it reads.
    pub fn location(&self) -> &S3Location {
        &self.location
    }

    /// The plugin objects under the prefix (ListObjectsV2, every page).
    pub async fn list(&self) -> Result<Vec<(PluginName, ObjectKind)>, ListError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.location.bucket)
            .prefix(&self.location.prefix)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| ListError(format!("{}: {}", self.location, error_text(&error))))?;
            for object in page.contents() {
                let key = object.key().unwrap_or_default();
                let file_name = key.strip_prefix(self.location.prefix.as_str()).unwrap_or(key);
                if let Some(object) = ObjectKind::of_file_name(file_name) {
                    objects.push(object);
                }
            }
        }
        Ok(objects)
    }

    /// The object's bytes, unless `known` is still its ETag (a conditional GET) or was confirmed within the
    /// interval. An object found missing within the interval is `NotFound` without asking S3 again; with `known`,
    /// an S3 that cannot be reached gives `Unchanged`.
    pub async fn fetch(
        &self,
        name: &PluginName,
        kind: ObjectKind,
        known: Option<&Revision>,
    ) -> Result<Fetched, StoreError> {
        let object = (name.clone(), kind);
        match self.checked_recently(&object) {
            Some(Checked { missing: true, .. }) => return Err(StoreError::NotFound(name.clone())),
            Some(_) if known.is_some() => return Ok(Fetched::Unchanged),
            _ => {}
        }
        let mut request = self.client.get_object().bucket(&self.location.bucket).key(self.location.key(name, kind));
        if let Some(known) = known {
            request = request.if_none_match(&known.0);
        }
        match request.send().await {
            Ok(output) => {
                let revision = Revision(output.e_tag().unwrap_or_default().to_string());
                let body = output.body.collect().await.map_err(|error| self.unavailable(name, kind, &error))?;
                self.mark_checked(object, false);
                Ok(Fetched::Changed { bytes: body.into_bytes().to_vec(), revision })
            }
            Err(error) => self.on_error(object, known, error),
        }
    }

    fn on_error(
        &self,
        object: (PluginName, ObjectKind),
        known: Option<&Revision>,
        error: SdkError<GetObjectError>,
    ) -> Result<Fetched, StoreError> {
        let (name, kind) = object.clone();
        // The SDK reports "304 Not Modified" as an error; its status says so.
        match error.raw_response().map(|response| response.status().as_u16()) {
            Some(304) => {
                self.mark_checked(object, false);
                Ok(Fetched::Unchanged)
            }
            Some(404) => {
                self.mark_checked(object, true);
                Err(StoreError::NotFound(name))
            }
            _ if known.is_some() => {
                warn!(plugin = %name, location = %self.location, error = %error_text(&error), "plugin store unreachable; serving the cached version");
                self.mark_checked(object, false);
                Ok(Fetched::Unchanged)
            }
            _ => Err(self.unavailable(&name, kind, &error_text(&error))),
        }
    }

    fn unavailable(&self, name: &PluginName, kind: ObjectKind, error: &dyn fmt::Display) -> StoreError {
        StoreError::Unavailable { name: name.clone(), message: format!("{}: {error}", self.location.key(name, kind)) }
    }

    fn checked_recently(&self, object: &(PluginName, ObjectKind)) -> Option<Checked> {
        let checked = self.checked.lock().unwrap();
        checked.get(object).copied().filter(|checked| checked.at.elapsed() < self.revalidate_every)
    }

    fn mark_checked(&self, object: (PluginName, ObjectKind), missing: bool) {
        self.checked.lock().unwrap().insert(object, Checked { at: Instant::now(), missing });
    }
}

/// The SDK's error with its causes, which name what actually failed.
fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        let location: S3Location = "s3://bucket/plugins".parse().unwrap();
        assert_eq!(location, S3Location { bucket: "bucket".into(), prefix: "plugins/".into() });
        assert_eq!(location.key(&"ndjson".parse().unwrap(), ObjectKind::Component), "plugins/ndjson.wasm");
        assert_eq!(location.key(&"chat".parse().unwrap(), ObjectKind::Manifest), "plugins/chat.json");
        let root: S3Location = "s3://bucket".parse().unwrap();
        assert_eq!(root.key(&"a".parse().unwrap(), ObjectKind::Component), "a.wasm");
        assert!("s3:///x".parse::<S3Location>().is_err());
        assert!("/tmp/x".parse::<S3Location>().is_err());
    }
}
