use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use streamhost::authoring::scaffold;
use streamhost::authoring::watch::WatchedPlugin;
use streamhost::config::{HostSettings, PluginSource};
use streamhost::frontends::http::HttpSettings;
use streamhost::frontends::{cli, http, lambda};
use streamhost::plugin_store::{ObjectKind, PluginName, S3Location};
use streamhost::publish;
use streamhost::telemetry::Telemetry;
use tracing_subscriber::EnvFilter;

/// jemalloc, its background thread on: memory freed after a burst of
/// streams goes back to the system within seconds, where glibc's allocator
/// kept most of it (docs/benchmarks.md, "Soak").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A streaming host for WebAssembly transform plugins.
#[derive(Parser)]
#[command(name = "streamhost", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// How log lines are written (to stderr): `text`, one line per event for
    /// people, or `json`, one JSON object per line with its fields and its
    /// request's span (`{"timestamp","level","fields":{"message",…},
    /// "target","span":{"id"},"spans"}`), for CloudWatch Logs Insights and
    /// other collectors. Default: `json` on Lambda, `text` elsewhere. The
    /// level is set by `STREAMHOST_LOG` (`info`; a tracing filter).
    #[arg(long, global = true, env = "STREAMHOST_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
}

/// See `Cli::log_format`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve `POST /{pipeline}` (and `POST /{plugin}[?then=a,b]`) over HTTP.
    Serve(ServeArgs),
    /// Run as an AWS Lambda custom runtime behind a streaming Function URL.
    /// Chosen by itself when Lambda starts the binary with no arguments.
    Lambda(LambdaArgs),
    /// Run one request and write the response body to stdout.
    Invoke(InvokeArgs),
    /// Write a new plugin folder that builds and passes its golden test.
    New(NewArgs),
    /// Replay golden fixtures through a plugin or a chain and compare the
    /// output with each fixture's `.expected` file.
    Test(TestArgs),
    /// Check a component as the host would, then upload it to S3.
    Publish(PublishArgs),
    /// Work with plugin files.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    host: HostSettings,
    #[command(flatten)]
    http: HttpSettings,
    /// A plugin folder (`streamhost new` makes them) to build now and
    /// again whenever its source changes, into the plugin folder: the
    /// next request runs the new build. Repeat for several.
    #[arg(long, value_name = "DIR")]
    watch: Vec<PathBuf>,
}

#[derive(Args)]
struct LambdaArgs {
    #[command(flatten)]
    host: HostSettings,
    #[command(flatten)]
    lambda: lambda::LambdaSettings,
}

#[derive(Args)]
struct InvokeArgs {
    /// The plugin to run.
    plugin: String,
    /// Plugins to run after it, comma-separated.
    #[arg(long)]
    then: Option<String>,
    /// The prompt.
    #[arg(long, conflicts_with = "body")]
    prompt: Option<String>,
    /// A whole JSON request body instead of `--prompt`.
    #[arg(long)]
    body: Option<String>,
    #[arg(long)]
    user_id: Option<String>,
    #[arg(long)]
    session_id: Option<String>,
    /// Start a detached run instead: print its start (`{"id",…}`), then
    /// its events as `GET /runs/{id}/events` gives them, while this
    /// process drives it to its end (with --runs-table, any host can
    /// follow or resume it too).
    #[arg(long)]
    run: bool,
    /// Record the stream into a golden fixture at FILE: the source's
    /// events as the first plugin got them, and the output as
    /// FILE's `.expected` (`streamhost test` replays it).
    #[arg(long, value_name = "FILE", conflicts_with = "run")]
    record: Option<PathBuf>,
    #[command(flatten)]
    host: HostSettings,
}

#[derive(Args)]
struct NewArgs {
    /// The plugin's role.
    role: streamhost::registry::PluginRole,
    /// The plugin's name (`a-z`, `0-9`, `-`): the folder's and the URL's.
    name: PluginName,
    /// The language to write it in.
    #[arg(long, default_value = "rust")]
    lang: scaffold::Lang,
    /// Where to make the folder.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

#[derive(Args)]
struct TestArgs {
    /// The plugin, then the plugins after it, comma-separated: `.wasm`
    /// files, or names in --plugins.
    chain: String,
    /// A fixture file, or a folder of them (`*.json`). Repeat for more.
    #[arg(long, required = true)]
    fixture: Vec<PathBuf>,
    /// Write each fixture's `.expected` from the current output instead.
    #[arg(long)]
    update: bool,
    #[command(flatten)]
    host: HostSettings,
}

#[derive(Args)]
struct PublishArgs {
    /// The component (`.wasm`).
    file: PathBuf,
    /// The plugin's name: the URL path it is called by.
    #[arg(long)]
    name: PluginName,
    /// The plugin store: `s3://bucket/prefix/`.
    #[arg(long, env = "STREAMHOST_PUBLISH_TO")]
    to: S3Location,
    /// Address buckets as `endpoint/bucket` (for S3-compatible servers).
    #[arg(long, env = "STREAMHOST_S3_PATH_STYLE")]
    s3_path_style: bool,
    /// Also upload `<name>.cwasm`, the component compiled for the hosts'
    /// engine, which hosts started with --trust-precompiled load instead
    /// of compiling.
    #[arg(long)]
    precompile: bool,
    /// The hosts' target triple, when it is not this machine's
    /// (`aarch64-unknown-linux-gnu` for Lambda on arm64).
    #[arg(long, requires = "precompile", value_name = "TRIPLE")]
    target: Option<String>,
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// Print a component's digest, imports and exports, or why the host
    /// would refuse it.
    Inspect { file: PathBuf },
}

fn main() -> ExitCode {
    // Lambda starts the bootstrap binary with no arguments.
    let cli = if streamhost::aws::on_lambda() && std::env::args_os().len() == 1 {
        Cli::parse_from(["streamhost", "lambda"])
    } else {
        Cli::parse()
    };
    let telemetry = init_observability(cli.log_format);
    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    let code = match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    };
    drop(runtime);
    if let Some(telemetry) = telemetry {
        telemetry.shutdown();
    }
    code
}

/// What is logged without `STREAMHOST_LOG`: `info` for the host, `warn`
/// for the author's one-shot commands (whose output is their report), and
/// never the file watcher's own chatter about folders a build removed.
/// Logs to stderr (`--log-format`), metrics and traces (`telemetry`): the
/// exporters to flush at exit, unless they could not be set up (said on
/// stderr; the host runs without them).
fn init_observability(format: Option<LogFormat>) -> Option<Telemetry> {
    use tracing_subscriber::prelude::*;
    let on_lambda = streamhost::aws::on_lambda();
    let format = format.unwrap_or(if on_lambda { LogFormat::Json } else { LogFormat::Text });
    let (telemetry, traces) = match Telemetry::init(on_lambda) {
        Ok((telemetry, traces)) => (Some(telemetry), traces),
        Err(error) => {
            eprintln!("metrics and traces are off: {error:#}");
            (None, None)
        }
    };
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Json => logs.json().boxed(),
        // Colours only on a terminal: not in files, nor in CloudWatch.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).boxed(),
    };
    let filter = EnvFilter::try_from_env("STREAMHOST_LOG").unwrap_or_else(|_| EnvFilter::new(default_log()));
    tracing_subscriber::registry().with(filter).with(logs).with(traces).init();
    telemetry
}

fn default_log() -> &'static str {
    match std::env::args().nth(1).as_deref() {
        Some("test" | "new") => "warn,notify=error",
        _ => "info,notify=error",
    }
}

/// Runs one subcommand; its exit code.
async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Lambda(args) => run_lambda(args).await,
        Command::Invoke(args) => invoke(args).await,
        Command::Publish(args) => publish(args).await,
        Command::New(args) => new(args),
        Command::Test(args) => test(args).await,
        Command::Plugins { command: PluginsCommand::Inspect { file } } => inspect(&file),
    }
}

async fn serve(ServeArgs { host, http, watch }: ServeArgs) -> anyhow::Result<ExitCode> {
    if !watch.is_empty() {
        let PluginSource::Folder(plugins) = host.plugin_source() else {
            anyhow::bail!("--watch builds into a folder of plugins; this host's come from S3");
        };
        let watched = watch.iter().map(|dir| WatchedPlugin::new(dir)).collect::<anyhow::Result<Vec<_>>>()?;
        std::fs::create_dir_all(&plugins)?;
        streamhost::authoring::watch::spawn(watched, plugins)?;
    }
    let pipeline = Arc::new(streamhost::build_pipeline(&host).await?);
    let runs = streamhost::build_runs(&host).await?;
    http::serve(pipeline, runs, http).await?;
    Ok(ExitCode::SUCCESS)
}

async fn run_lambda(LambdaArgs { host, lambda: settings }: LambdaArgs) -> anyhow::Result<ExitCode> {
    let pipeline = Arc::new(streamhost::build_pipeline(&host).await?);
    let runs = streamhost::build_runs(&host).await?;
    lambda::run(pipeline, runs, settings).await?;
    Ok(ExitCode::SUCCESS)
}

async fn invoke(args: InvokeArgs) -> anyhow::Result<ExitCode> {
    let InvokeArgs { plugin, then, prompt, body, user_id, session_id, run, record, mut host } = args;
    if record.is_some() {
        // As `streamhost test` replays it: timestamps a plugin writes
        // are then the same in the recording and in every replay.
        host.frozen_wall_clock_ms.get_or_insert(streamhost::authoring::GOLDEN_WALL_CLOCK_MS);
    }
    let pipeline = streamhost::build_pipeline(&host).await?;
    let invocation = cli::Invocation {
        plugin: &plugin,
        then: then.as_deref(),
        body: body.as_deref(),
        prompt: prompt.as_deref(),
        user_id: user_id.as_deref(),
        session_id: session_id.as_deref(),
    };
    let done = match (run, record) {
        (_, Some(fixture)) => match cli::record(&pipeline, &invocation, &mut std::io::stdout().lock()).await {
            Ok(recorded) => {
                let cli::Recorded { target, chain, body, whole, batches, output } = recorded;
                anyhow::ensure!(whole, "the output was closed before the stream ended; nothing recorded");
                streamhost::authoring::write_recording(&fixture, &target, &chain, &body, &batches, &output)?;
                eprintln!("recorded {} and its .expected", fixture.display());
                Ok(())
            }
            Err(reply) => Err(reply),
        },
        (true, None) => {
            cli::run(&pipeline, &streamhost::build_runs(&host).await?, &invocation, &mut std::io::stdout().lock()).await
        }
        (false, None) => cli::invoke(&pipeline, &invocation, &mut std::io::stdout().lock()).await,
    };
    match done {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(reply) => {
            eprintln!("{}", reply.to_json());
            Ok(ExitCode::from(if reply.status < 500 { 2 } else { 1 }))
        }
    }
}

async fn publish(
    PublishArgs { file, name, to, s3_path_style, precompile, target }: PublishArgs,
) -> anyhow::Result<ExitCode> {
    {
        let (wasm, report) = publish::inspect(&file, &name)?;
        let client = streamhost::aws::s3_client(&streamhost::aws::load().await, s3_path_style);
        // The artifact first: a host that sees the new component finds
        // its artifact already there (an old one would be refused).
        if precompile {
            let artifact = publish::precompile(&wasm, &report.digest, target.as_deref())?;
            let size = artifact.len();
            let key = publish::upload(&client, &to, &name, ObjectKind::Precompiled, artifact, &report.digest).await?;
            println!(
                "precompiled `{name}` for {} ({size} bytes) to s3://{}/{key}",
                target.as_deref().unwrap_or("this machine"),
                to.bucket
            );
        }
        let size = wasm.len();
        let key = publish::upload(&client, &to, &name, ObjectKind::Component, wasm, &report.digest).await?;
        println!("published `{name}` ({size} bytes, sha256 {}) to s3://{}/{key}", report.digest, to.bucket);
        Ok(ExitCode::SUCCESS)
    }
}

fn new(NewArgs { role, name, lang, dir }: NewArgs) -> anyhow::Result<ExitCode> {
    let root = scaffold::new(role, &name, lang, &dir)?;
    println!("wrote {} ({role} in {lang}); next:", root.display());
    println!("  cd {} && ./build.sh && streamhost test ./{name}.wasm --fixture fixtures", root.display());
    Ok(ExitCode::SUCCESS)
}

async fn test(TestArgs { chain, fixture, update, host }: TestArgs) -> anyhow::Result<ExitCode> {
    let report = match streamhost::authoring::test(&host, &chain, &fixture, update).await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error:#}");
            return Ok(ExitCode::from(2));
        }
    };
    for (path, failure) in &report.failed {
        println!("FAIL {}\n{failure}", path.display());
    }
    let verb = if update { "written" } else { "passed" };
    println!("fixtures: {} {verb}, {} failed", report.passed, report.failed.len());
    Ok(if report.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn inspect(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    // The name only labels messages; the file's own stem where it is a valid name.
    let name =
        file.file_stem().and_then(|stem| stem.to_str()?.parse().ok()).unwrap_or_else(|| "plugin".parse().unwrap());
    let (wasm, report) = publish::inspect(file, &name)?;
    print!("{}", publish::describe(file, wasm.len(), &report));
    Ok(ExitCode::SUCCESS)
}
