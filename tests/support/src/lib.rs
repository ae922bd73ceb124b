//! What streamhost's integration tests (`tests/all/`) and benches
//! (`host/benches/`) share, compiled once: the real `streamhost serve`
//! process started on 127.0.0.1 and stopped when the test ends ([`Server`]),
//! the host built in this process ([`in_process_pipeline`],
//! [`in_process_host`]), and the servers around it: a Lambda Runtime API
//! emulator (`lambda`), moto (`moto`), Amplify's AppSync simulator
//! (`appsync`), loopback model sources (`upstream`), the runs API's client
//! (`runs`) and the builds of the non-Rust examples (`polyglot`).
//!
//! A library gets none of the variables Cargo gives an integration test
//! (`CARGO_BIN_EXE_streamhost`, `CARGO_TARGET_TMPDIR`): the binary and the
//! shared scratch folder are found from the running test's own path
//! ([`bin`], [`tmp_dir`]).

pub mod appsync;
pub mod lambda;
pub mod moto;
pub mod polyglot;
pub mod runs;
pub mod upstream;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tempfile::TempDir;

pub const EXAMPLES: &str = streamhost_artifacts::EXAMPLES_DIR;
pub const FIXTURES: &str = streamhost_artifacts::FIXTURES_DIR;

/// The repository's root (this crate is `tests/support/`).
pub const REPOSITORY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// How long a server may take to start (it may compile on first use).
const STARTUP: Duration = Duration::from_secs(60);

/// The folder of the running test's or bench's profile: `target/debug` (or
/// `target/release`, `target/<triple>/debug`, ...). Cargo puts a test or
/// bench executable in the profile's `deps/` folder and the package's
/// binaries beside `deps/`; this is found as assert_cmd's `cargo_bin` finds
/// it, from the running executable's path.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running test's path is known");
    let mut dir = exe.parent().expect("an executable is in a folder").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// The `streamhost` binary: `streamhost` (with the platform's executable
/// suffix) in [`profile_dir`], beside the `deps/` folder of the running
/// test or bench. `cargo test -p streamhost` and `cargo bench -p
/// streamhost` build it before they run the host's integration tests and
/// benches. Panics, saying how to build it, when it is not there.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = profile_dir().join(format!("streamhost{}", std::env::consts::EXE_SUFFIX));
        assert!(
            bin.is_file(),
            "no streamhost binary at {}, beside the running test's deps/ folder: build it with \
             `cargo build -p streamhost` (in the tests' profile and target), or run the tests with \
             `cargo test -p streamhost`, which builds it first",
            bin.display()
        );
        bin
    })
}

/// Scratch space the tests and benches share, kept between runs:
/// `<target>/tmp/streamhost-tests`, where `<target>` is the parent of
/// [`profile_dir`]. It is to this crate what `CARGO_TARGET_TMPDIR`
/// (`<target>/tmp`) is to an integration test, which a library does not get.
pub fn tmp_dir() -> PathBuf {
    let profile = profile_dir();
    let target = profile.parent().expect("a profile folder is in the target directory");
    let dir = target.join("tmp").join("streamhost-tests");
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("creating {}: {error}", dir.display()));
    dir
}

/// A compile cache shared by the tests that do not test the cache, so each
/// plugin is compiled once per `cargo test`, not once per server.
pub fn shared_cache() -> PathBuf {
    tmp_dir().join("compile-cache")
}

pub struct Server {
    child: Child,
    pub base: String,
    log: PathBuf,
    _log_dir: TempDir,
}

pub struct ServerBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    echo_delay_ms: u64,
    address_space_kb: Option<u64>,
    plugins: String,
    cache: PathBuf,
}

impl ServerBuilder {
    /// Plugins from `dir` alone, instead of the examples (not laid over
    /// them: `--without-examples`).
    pub fn plugins(mut self, dir: &Path) -> Self {
        self.plugins = dir.display().to_string();
        self.args.push("--without-examples".into());
        self
    }

    /// Plugins from `dir` laid over the bundled examples, as `serve
    /// --plugins DIR` runs by default.
    pub fn plugins_over_examples(mut self, dir: &Path) -> Self {
        self.plugins = dir.display().to_string();
        self
    }

    /// Plugins from a source such as `s3://bucket/prefix/`.
    pub fn plugin_source(mut self, source: &str) -> Self {
        self.plugins = source.to_string();
        self
    }

    pub fn env(mut self, vars: impl IntoIterator<Item = (&'static str, String)>) -> Self {
        self.env.extend(vars.into_iter().map(|(name, value)| (name.to_string(), value)));
        self
    }

    pub fn cache(mut self, dir: &Path) -> Self {
        self.cache = dir.to_path_buf();
        self
    }

    /// Runs the server under `ulimit -v`, as on a host with little address space.
    pub fn address_space_limit_kb(mut self, kb: u64) -> Self {
        self.address_space_kb = Some(kb);
        self
    }

    /// The echo provider's pause before each token.
    pub fn echo_delay_ms(mut self, delay: u64) -> Self {
        self.echo_delay_ms = delay;
        self
    }

    pub fn arg(mut self, name: &str, value: &str) -> Self {
        self.args.extend([name.to_string(), value.to_string()]);
        self
    }

    pub fn start(self) -> Server {
        let log_dir = tempfile::tempdir().unwrap();
        let log = log_dir.path().join("stderr.log");
        let mut command = match self.address_space_kb {
            // `exec` keeps the pid, so stopping the server stops streamhost.
            Some(kb) => {
                let mut shell = Command::new("sh");
                shell.arg("-c").arg(format!("ulimit -v {kb} && exec \"$0\" \"$@\"")).arg(bin());
                shell
            }
            None => Command::new(bin()),
        };
        let mut child = command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .arg("--plugins")
            .arg(&self.plugins)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(["--echo-delay-ms", &self.echo_delay_ms.to_string()])
            .args(&self.args)
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .env("STREAMHOST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("streamhost starts");
        let base = wait_for_address(&mut child).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("streamhost did not start: {}", std::fs::read_to_string(&log).unwrap_or_default())
        });
        Server { child, base, log, _log_dir: log_dir }
    }
}

/// Reads stdout until the "listening on" line and returns its address.
fn wait_for_address(child: &mut Child) -> Option<String> {
    let stdout = child.stdout.take()?;
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(address) = line.strip_prefix("streamhost listening on ") {
                let _ = sender.send(address.to_string());
            }
        }
    });
    receiver.recv_timeout(STARTUP).ok()
}

impl Server {
    /// A server on the example plugins, with an echo provider that does not
    /// pause between tokens (byte-exact tests need no pacing).
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            args: Vec::new(),
            env: Vec::new(),
            echo_delay_ms: 0,
            address_space_kb: None,
            plugins: EXAMPLES.into(),
            cache: shared_cache(),
        }
    }

    pub fn start() -> Server {
        Self::builder().start()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// POSTs `body` to `path` and returns the status, content type and body.
    pub async fn post(&self, path: &str, body: &str) -> Reply {
        let response = reqwest::Client::new().post(self.url(path)).body(body.to_string()).send().await.unwrap();
        Reply::read(response).await
    }

    pub async fn health(&self) -> serde_json::Value {
        let body = reqwest::get(self.url("/healthz")).await.unwrap().text().await.unwrap();
        serde_json::from_str(&body).unwrap()
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    /// The `x-request-id` header.
    pub request_id: String,
    pub body: String,
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let header = |name| response.headers().get(name).map(|value| value.to_str().unwrap().to_string());
        let content_type = header("content-type").unwrap_or_default();
        let request_id = header("x-request-id").expect("every answer has an x-request-id");
        let body = response.text().await.unwrap();
        Reply { status, content_type, request_id, body }
    }

    /// Asserts an error answered before the stream: status and exact body,
    /// whose `requestId` is the `x-request-id` header's.
    pub fn assert_error(&self, status: u16, code: &str, message: &str) {
        let expected = serde_json::json!({ "error": { "code": code, "message": message } });
        assert_eq!(
            (self.status, self.content_type.as_str(), error_without_request_id(&self.body, &self.request_id)),
            (status, "application/json", expected),
            "{}",
            self.body
        );
    }
}

/// An error answer's status and body, the body without its `requestId`
/// (which must be the `x-request-id` header's).
pub async fn error_of(response: reqwest::Response) -> (u16, serde_json::Value) {
    let reply = Reply::read(response).await;
    (reply.status, error_without_request_id(&reply.body, &reply.request_id))
}

/// An error body (`{"error":{…}}`) without its `requestId`, which must be
/// `request_id`: what is left to compare.
pub fn error_without_request_id(body: &str, request_id: &str) -> serde_json::Value {
    let mut error: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    let id = error["error"].as_object_mut().and_then(|fields| fields.remove("requestId"));
    assert_eq!(id, Some(serde_json::json!(request_id)), "{body}");
    error
}

/// A body's chunks with the time each arrived, measured from `start`.
pub async fn timed_chunks(response: reqwest::Response, start: Instant) -> Vec<(Duration, String)> {
    let mut chunks = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        chunks.push((start.elapsed(), String::from_utf8(chunk.unwrap().to_vec()).unwrap()));
    }
    chunks
}

/// `dir` (a folder of Node clients with a package-lock.json) with its
/// packages installed: `npm ci` once, unless `node_modules/<installed>` is
/// there already. Serialised between the tests of one binary.
pub fn npm_ci(dir: &Path, installed: &str) -> PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !dir.join("node_modules").join(installed).exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir)
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm ci in {}", dir.display());
    }
    dir.to_path_buf()
}

/// A folder holding copies of the named plugins, each under a name of its
/// own: `(name to give it, source .wasm file)`.
pub fn plugin_dir(plugins: &[(&str, &Path)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, source) in plugins {
        std::fs::copy(source, dir.path().join(format!("{name}.wasm"))).unwrap();
    }
    dir
}

pub fn example(name: &str) -> PathBuf {
    Path::new(EXAMPLES).join(format!("{name}.wasm"))
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(format!("{name}.wasm"))
}

/// Writes `<name>.json` the way a deploy should: a finished file renamed over
/// the old one.
pub fn write_manifest(dir: &Path, name: &str, manifest: &serde_json::Value) {
    let staging = dir.join(format!(".{name}.json.tmp"));
    std::fs::write(&staging, manifest.to_string()).unwrap();
    std::fs::rename(staging, dir.join(format!("{name}.json"))).unwrap();
}

/// An NDJSON body, a JSON value per line.
pub fn ndjson_lines(body: &str) -> Vec<serde_json::Value> {
    body.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"))).collect()
}

/// A component's sha256 in hex: how the host names it in pins and caches.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// AWS settings for a process that must reach only loopback servers: test
/// credentials, a region, and no profile files or instance metadata to fall
/// back on.
pub fn loopback_aws_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "AKIDLOOPBACK".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_CONFIG_FILE", "/nonexistent".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
    ]
}

/// The host's settings as `streamhost serve` reads them: over `plugins`,
/// with `args` (flags of `serve`), and no disk cache.
pub fn in_process_settings(plugins: &Path, args: &[&str]) -> streamhost::config::HostSettings {
    #[derive(clap::Parser)]
    struct Settings {
        #[command(flatten)]
        host: streamhost::config::HostSettings,
    }
    let plugins = plugins.to_str().unwrap();
    let argv = ["streamhost", "--plugins", plugins, "--no-disk-cache"].into_iter().chain(args.iter().copied());
    <Settings as clap::Parser>::parse_from(argv).host
}

/// The host as `streamhost serve` builds it, over `plugins`, with `args`
/// (flags of `serve`), in this process.
pub async fn in_process_pipeline(plugins: &Path, args: &[&str]) -> streamhost::pipeline::Pipeline {
    streamhost::build_pipeline(&in_process_settings(plugins, args)).await.unwrap()
}

/// One host's pipeline and detached runs (in memory, unless `args` name a
/// table), as `streamhost serve` builds them, in this process.
pub async fn in_process_host(
    plugins: &Path,
    args: &[&str],
) -> (streamhost::pipeline::Pipeline, Arc<streamhost::runs::Runs>) {
    let settings = in_process_settings(plugins, args);
    let pipeline = streamhost::build_pipeline(&settings).await.unwrap();
    let runs = streamhost::build_runs(&settings).await.unwrap();
    (pipeline, runs)
}

/// A folder of every example plugin and pipeline, and each `(name,
/// fixture)` beside them: one a test may change (uploads, manifests).
pub fn examples_with(fixtures: &[(&str, &str)]) -> TempDir {
    let dir = plugin_dir(&[]);
    for entry in std::fs::read_dir(EXAMPLES).unwrap().map(|entry| entry.unwrap().path()) {
        std::fs::copy(&entry, dir.path().join(entry.file_name().unwrap())).unwrap();
    }
    for (name, source) in fixtures {
        std::fs::copy(fixture(source), dir.path().join(format!("{name}.wasm"))).unwrap();
    }
    dir
}
