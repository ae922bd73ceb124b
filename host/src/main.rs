use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use streamhost::config::HostSettings;
use streamhost::frontends::{cli, http};
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
    /// Serve `POST /{plugin}[?then=a,b]` over HTTP.
    Serve {
        #[command(flatten)]
        host: HostSettings,
        /// The address to listen on.
        #[arg(long, env = "STREAMHOST_LISTEN", default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        /// The largest request body accepted.
        #[arg(long, env = "STREAMHOST_MAX_BODY_BYTES", default_value_t = 1 << 20)]
        max_body_bytes: usize,
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
        #[command(flatten)]
        host: HostSettings,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("STREAMHOST_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    match runtime.block_on(run(Cli::parse().command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { host, listen, max_body_bytes } => {
            let pipeline = Arc::new(streamhost::build_pipeline(&host)?);
            http::serve(pipeline, listen, max_body_bytes).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Invoke { plugin, then, prompt, body, user_id, session_id, host } => {
            let pipeline = streamhost::build_pipeline(&host)?;
            let invocation = cli::Invocation {
                plugin: &plugin,
                then: then.as_deref(),
                body: body.as_deref(),
                prompt: prompt.as_deref(),
                user_id: user_id.as_deref(),
                session_id: session_id.as_deref(),
            };
            match cli::invoke(&pipeline, &invocation, &mut std::io::stdout().lock()).await {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(reply) => {
                    eprintln!("{}", reply.to_json());
                    Ok(ExitCode::from(if reply.status < 500 { 2 } else { 1 }))
                }
            }
        }
    }
}
