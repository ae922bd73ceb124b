use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use streamhost::config::HostSettings;
use streamhost::frontends::http::HttpSettings;
use streamhost::frontends::{cli, http, lambda};
use streamhost::publish;
use streamhost::store::{ObjectKind, PluginName, S3Location};
use tracing_subscriber::EnvFilter;

/// A streaming host for WebAssembly transform plugins.
#[derive(Parser)]
#[command(name = "streamhost", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve `POST /{pipeline}` (and `POST /{plugin}[?then=a,b]`) over HTTP.
    Serve {
        #[command(flatten)]
        host: HostSettings,
        #[command(flatten)]
        http: HttpSettings,
    },
    /// Run as an AWS Lambda custom runtime behind a streaming Function URL.
    /// Chosen by itself when Lambda starts the binary with no arguments.
    Lambda {
        #[command(flatten)]
        host: HostSettings,
        #[command(flatten)]
        lambda: lambda::LambdaSettings,
    },
    /// Run one request and write the response body to stdout.
    Invoke {
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
        #[command(flatten)]
        host: HostSettings,
    },
    /// Check a component as the host would, then upload it to S3.
    Publish {
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
    },
    /// Work with plugin files.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// Print a component's digest, imports and exports, or why the host
    /// would refuse it.
    Inspect { file: PathBuf },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("STREAMHOST_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        // Colours only on a terminal: not in files, nor in CloudWatch.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Lambda starts the bootstrap binary with no arguments.
    let cli = if lambda::is_lambda() && std::env::args_os().len() == 1 {
        Cli::parse_from(["streamhost", "lambda"])
    } else {
        Cli::parse()
    };
    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { host, http } => {
            let pipeline = Arc::new(streamhost::build_pipeline(&host).await?);
            let runs = streamhost::build_runs(&host).await?;
            http::serve(pipeline, runs, http).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Lambda { host, lambda: settings } => {
            let pipeline = Arc::new(streamhost::build_pipeline(&host).await?);
            let runs = streamhost::build_runs(&host).await?;
            lambda::run(pipeline, runs, settings).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Invoke { plugin, then, prompt, body, user_id, session_id, run, host } => {
            let pipeline = streamhost::build_pipeline(&host).await?;
            let invocation = cli::Invocation {
                plugin: &plugin,
                then: then.as_deref(),
                body: body.as_deref(),
                prompt: prompt.as_deref(),
                user_id: user_id.as_deref(),
                session_id: session_id.as_deref(),
            };
            let done = match run {
                true => {
                    cli::run(
                        &pipeline,
                        &streamhost::build_runs(&host).await?,
                        &invocation,
                        &mut std::io::stdout().lock(),
                    )
                    .await
                }
                false => cli::invoke(&pipeline, &invocation, &mut std::io::stdout().lock()).await,
            };
            match done {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(reply) => {
                    eprintln!("{}", reply.to_json());
                    Ok(ExitCode::from(if reply.status < 500 { 2 } else { 1 }))
                }
            }
        }
        Command::Publish { file, name, to, s3_path_style, precompile, target } => {
            let (wasm, report) = publish::inspect(&file, &name)?;
            let client = streamhost::aws::s3_client(&streamhost::aws::load().await, s3_path_style);
            // The artifact first: a host that sees the new component finds
            // its artifact already there (an old one would be refused).
            if precompile {
                let artifact = publish::precompile(&wasm, &report.digest, target.as_deref())?;
                let size = artifact.len();
                let key =
                    publish::upload(&client, &to, &name, ObjectKind::Precompiled, artifact, &report.digest).await?;
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
        Command::Plugins { command: PluginsCommand::Inspect { file } } => {
            // The name only labels messages; the file's own stem where it is a valid name.
            let name = file
                .file_stem()
                .and_then(|stem| stem.to_str()?.parse().ok())
                .unwrap_or_else(|| "plugin".parse().unwrap());
            let (wasm, report) = publish::inspect(&file, &name)?;
            print!("{}", publish::describe(&file, wasm.len(), &report));
            Ok(ExitCode::SUCCESS)
        }
    }
}
