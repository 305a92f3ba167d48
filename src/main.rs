//! The `shardline` binary: one entry point with subcommands.
//!
//! - `shardline serve`: open the data directory and run the engine until SIGTERM or Ctrl-C.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use shardline_engine::io::IoMode;
use shardline_engine::{CreateStream, Durability, Engine, EngineConfig};

#[derive(Parser)]
#[command(
    name = "shardline",
    version,
    about = "A Kinesis-compatible stream engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine on a local data directory.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Where streams are stored.
    #[arg(long, default_value = "./shardline-data")]
    data_dir: PathBuf,
    /// `sync`: acknowledge appends once on disk; `none`: once in the page cache.
    #[arg(long, default_value = "sync", value_parser = parse_durability)]
    durability: Durability,
    /// Create this stream at start if it is missing (NAME:SHARDS; repeatable).
    #[arg(long = "create-stream", value_parser = parse_create_stream)]
    create_streams: Vec<(String, u32)>,
}

fn parse_durability(s: &str) -> Result<Durability, String> {
    Durability::parse(s).ok_or_else(|| format!("'{s}' is not one of sync, none"))
}

fn parse_create_stream(s: &str) -> Result<(String, u32), String> {
    let (name, shards) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}' is not NAME:SHARDS"))?;
    let shards: u32 = shards
        .parse()
        .map_err(|_| format!("'{shards}' is not a shard count"))?;
    if name.is_empty() || shards == 0 {
        return Err(format!("'{s}' needs a name and at least one shard"));
    }
    Ok((name.to_string(), shards))
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shardline: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHARDLINE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = EngineConfig {
        durability: args.durability,
        io: IoMode::from_env().map_err(anyhow::Error::msg)?,
        ..EngineConfig::default()
    };
    let engine = Engine::open(&args.data_dir, config)
        .with_context(|| format!("opening data directory {}", args.data_dir.display()))?;
    for (name, shards) in args.create_streams {
        if engine.stream(&name).is_err() {
            engine.create_stream(CreateStream::new(name, shards))?;
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    println!(
        "engine ready: data dir {}, {} streams, io backend {}",
        engine.path().display(),
        engine.streams().len(),
        engine.io_backend()
    );
    runtime.block_on(shutdown_signal())?;
    engine.shutdown();
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
