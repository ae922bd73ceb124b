//! `streamhost publish` and `streamhost plugins inspect`: check a component
//! exactly as the host will when it loads it, then (publish) upload it to
//! the plugin store in S3 with its digest in the object's metadata, and, if
//! asked, the component compiled ahead of time beside it.

use std::convert::Infallible;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::Context as _;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::{self, CompileCache};
use crate::plugin_store::{ObjectKind, PluginName, S3Location};
use crate::registry::{self, ComponentReport};

/// How much of the component the progress bar moves by at a time.
const PIECE_BYTES: usize = 256 << 10;
/// The object metadata key holding the component's sha256.
pub const DIGEST_METADATA: &str = "sha256";

/// Reads and checks a component; the error says why the host would refuse it.
pub fn inspect(file: &Path, name: &PluginName) -> anyhow::Result<(Vec<u8>, ComponentReport)> {
    let wasm = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let engine = engine::build_for_checks(None)?;
    let report = registry::inspect(&engine, name, &wasm)?;
    Ok((wasm, report))
}

/// The report `plugins inspect` prints.
pub fn describe(file: &Path, size: usize, report: &ComponentReport) -> String {
    let mut out = format!("{}: a {} plugin ({size} bytes)\nsha256: {}\n", file.display(), report.role, report.digest);
    out.push_str("exports:\n");
    for export in &report.exports {
        out.push_str(&format!("  {export}\n"));
    }
    out.push_str("imports:\n");
    for import in &report.imports {
        out.push_str(&format!("  {import}\n"));
    }
    out
}

/// The component compiled for hosts on `target` (or this machine), in the
/// form their compile cache checks before loading it.
pub fn precompile(wasm: &[u8], digest: &str, target: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let engine = engine::build_for_checks(target)?;
    Ok(CompileCache::new(&engine, None).precompile(&engine, wasm, digest)?)
}

/// Uploads a checked component (`<prefix><name>.wasm`) or its precompiled
/// artifact (`.cwasm`); returns the key. One PutObject (S3 takes up to 5 GB
/// that way), whose body moves the progress bar as the HTTP client reads it.
/// `digest` is the component's, in both.
pub async fn upload(
    client: &aws_sdk_s3::Client,
    to: &S3Location,
    name: &PluginName,
    kind: ObjectKind,
    bytes: Vec<u8>,
    digest: &str,
) -> anyhow::Result<String> {
    let key = to.key(name, kind);
    let content_type = if kind == ObjectKind::Component { "application/wasm" } else { "application/octet-stream" };
    let wasm = bytes;
    let progress = ProgressBar::new(wasm.len() as u64).with_message(format!("s3://{}/{key}", to.bucket));
    progress.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}").expect("a valid template"),
    );
    let wasm = Bytes::from(wasm);
    let body = {
        let progress = progress.clone();
        // A retry sends the body again from the start, and so does the bar.
        SdkBody::retryable(move || {
            progress.set_position(0);
            SdkBody::from_body_1_x(ProgressBody { rest: wasm.clone(), progress: progress.clone() })
        })
    };
    client
        .put_object()
        .bucket(&to.bucket)
        .key(&key)
        .content_type(content_type)
        .metadata(DIGEST_METADATA, digest)
        .body(ByteStream::new(body))
        .send()
        .await
        .with_context(|| format!("uploading s3://{}/{key}", to.bucket))?;
    progress.finish_and_clear();
    Ok(key)
}

/// The component's bytes in pieces of [`PIECE_BYTES`], counted as they go.
struct ProgressBody {
    rest: Bytes,
    progress: ProgressBar,
}

impl http_body::Body for ProgressBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let len = self.rest.len().min(PIECE_BYTES);
        let piece = self.rest.split_to(len);
        self.progress.inc(piece.len() as u64);
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}
