//! `streamhost publish` and `streamhost plugins inspect`: check a component
//! exactly as the host will when it loads it, then (publish) upload it to
//! the plugin store in S3 with its digest in the object's metadata.

use std::path::Path;

use anyhow::Context;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use indicatif::{ProgressBar, ProgressStyle};

use crate::engine;
use crate::registry::{self, ComponentReport};
use crate::store::{PluginName, S3Location};
use crate::wit::TRANSFORMER_INTERFACE;

/// Components larger than this go up in parts of this size, with progress.
const PART_BYTES: usize = 8 << 20;
/// The object metadata key holding the component's sha256.
pub const DIGEST_METADATA: &str = "sha256";

/// Reads and checks a component; the error says why the host would refuse it.
pub fn inspect(file: &Path, name: &PluginName) -> anyhow::Result<(Vec<u8>, ComponentReport)> {
    let wasm = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let engine = engine::build_for_checks()?;
    let report = registry::inspect(&engine, name, &wasm)?;
    Ok((wasm, report))
}

/// The report `plugins inspect` prints.
pub fn describe(file: &Path, size: usize, report: &ComponentReport) -> String {
    let mut out = format!("{}: a transform plugin ({size} bytes)\nsha256: {}\n", file.display(), report.digest);
    out.push_str(&format!("world: exports {TRANSFORMER_INTERFACE}\nexports:\n"));
    for export in &report.exports {
        out.push_str(&format!("  {export}\n"));
    }
    out.push_str("imports:\n");
    for import in &report.imports {
        out.push_str(&format!("  {import}\n"));
    }
    out
}

/// Uploads a checked component as `<prefix><name>.wasm`; returns its key.
pub async fn upload(client: &aws_sdk_s3::Client, to: &S3Location, name: &PluginName, wasm: Vec<u8>, digest: &str) -> anyhow::Result<String> {
    let key = to.key(name);
    let progress = ProgressBar::new(wasm.len() as u64).with_message(format!("s3://{}/{key}", to.bucket));
    progress.set_style(ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}").expect("a valid template"));
    if wasm.len() <= PART_BYTES {
        client
            .put_object()
            .bucket(&to.bucket)
            .key(&key)
            .content_type("application/wasm")
            .metadata(DIGEST_METADATA, digest)
            .body(ByteStream::from(wasm.clone()))
            .send()
            .await
            .with_context(|| format!("uploading s3://{}/{key}", to.bucket))?;
        progress.inc(wasm.len() as u64);
    } else {
        upload_in_parts(client, to, &key, &wasm, digest, &progress).await?;
    }
    progress.finish_and_clear();
    Ok(key)
}

async fn upload_in_parts(
    client: &aws_sdk_s3::Client,
    to: &S3Location,
    key: &str,
    wasm: &[u8],
    digest: &str,
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    let upload = client
        .create_multipart_upload()
        .bucket(&to.bucket)
        .key(key)
        .content_type("application/wasm")
        .metadata(DIGEST_METADATA, digest)
        .send()
        .await
        .with_context(|| format!("starting an upload to s3://{}/{key}", to.bucket))?;
    let upload_id = upload.upload_id().context("S3 returned no upload id")?;
    let mut parts = Vec::new();
    for (index, chunk) in wasm.chunks(PART_BYTES).enumerate() {
        let number = index as i32 + 1;
        let sent = client
            .upload_part()
            .bucket(&to.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await;
        match sent {
            Ok(part) => parts.push(CompletedPart::builder().part_number(number).set_e_tag(part.e_tag).build()),
            Err(error) => {
                // An unfinished upload keeps costing storage until aborted.
                let _ = client.abort_multipart_upload().bucket(&to.bucket).key(key).upload_id(upload_id).send().await;
                return Err(error).with_context(|| format!("uploading part {number} of s3://{}/{key}", to.bucket));
            }
        }
        progress.inc(chunk.len() as u64);
    }
    client
        .complete_multipart_upload()
        .bucket(&to.bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .with_context(|| format!("completing the upload to s3://{}/{key}", to.bucket))?;
    Ok(())
}
