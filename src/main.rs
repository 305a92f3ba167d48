//! The `shardline` binary: one entry point with subcommands.
//!
//! - `shardline serve`: open the data directory and serve the Kinesis API until SIGTERM or
//!   Ctrl-C.
//! - `shardline streams|put|tail`: a client for people against a running server ([`cli`]).
//! - `shardline consume`: a consumer worker running a record processor command per shard.
//! - `shardline serve --native-listen ADDR` also serves the native ingest protocol
//!   ([`native`], `docs/formats/native.md`).

mod api;
mod cli;
mod native;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    #[command(after_help = api::metrics::SERVE_HELP)]
    Serve(ServeArgs),
    /// Create, list, describe and delete streams on a running server.
    Streams(cli::StreamsArgs),
    /// Write stdin to a stream, one record per line.
    Put(cli::PutArgs),
    /// Print a stream's records as they arrive, following every shard.
    Tail(cli::TailArgs),
    /// Run a consumer worker (KCL leases) with a MultiLangDaemon record processor per shard.
    Consume(cli::ConsumeArgs),
    /// Measure a Kinesis endpoint (or the native protocol): produce, consume, end-to-end,
    /// replay; optionally against a second endpoint.
    Bench(cli::bench::BenchArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address for the Kinesis HTTP API (HTTP/1.1 and HTTP/2: h2c, or TLS with --tls-cert).
    #[arg(long, default_value = "127.0.0.1:4567")]
    listen: std::net::SocketAddr,
    /// Shard iterator lifetime in seconds (AWS: 300).
    #[arg(long, default_value_t = 300)]
    iterator_ttl_secs: u64,
    /// Where streams are stored.
    #[arg(long, default_value = "./shardline-data")]
    data_dir: PathBuf,
    /// `sync`: acknowledge appends once on disk; `none`: once in the page cache.
    #[arg(long, default_value = "sync", value_parser = parse_durability)]
    durability: Durability,
    /// Threads that write and sync shards' appends (default: 1 with io_uring, which syncs
    /// every shard with data in one round; 4 with pwrite). More threads let one shard's
    /// write proceed while another's sync runs: more throughput at the maximum rate, but a
    /// longer latency tail at moderate rates (docs/performance.md).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    committer_threads: Option<u16>,
    /// Write segments with O_DIRECT, past the page cache, where the file system allows it
    /// (else a warning, and writes through the page cache). Saves the kernel's copy of every
    /// append; sealed segments are then read from the disk the first time, not from memory.
    #[arg(long)]
    direct_writes: bool,
    /// With --direct-writes, do not write zeros ahead of each segment's end. By default a
    /// background thread keeps zeros past the log of each shard that appends under
    /// 256 MiB/s (what it appends in 250 ms, 1 to 8 MiB), so that appends overwrite blocks
    /// instead of growing the file, which costs the kernel less (docs/performance.md).
    /// For comparisons.
    #[arg(long)]
    no_zero_ahead: bool,
    /// Roll a shard's active segment once it holds this many bytes (1 MiB to 4 GiB). Each
    /// roll syncs the old segment, writes its index and creates the next one, while that
    /// shard's appends wait; fewer rolls mean fewer such pauses, larger segments mean
    /// retention deletes in larger steps.
    #[arg(long, default_value_t = 128 << 20, value_parser = parse_segment_bytes)]
    segment_max_bytes: u64,
    /// Milliseconds a stream stays CREATING, UPDATING or DELETING after the change that
    /// started it, as on AWS (0: changes are immediate and streams are always ACTIVE).
    #[arg(long, default_value_t = 0)]
    state_transition_ms: u64,
    /// Milliseconds a SubscribeToShard stream lasts before the client must subscribe again
    /// (AWS: 300000, five minutes).
    #[arg(long, default_value_t = 300_000)]
    subscription_lifetime_ms: u64,
    /// The account's shard quota for provisioned streams (default: AWS's, 500 in us-east-1).
    #[arg(long)]
    shard_limit: Option<u32>,
    /// Verify SigV4 signatures against the keys in FILE: one `ACCESS_KEY_ID SECRET_ACCESS_KEY`
    /// per line, `#` comments. Without it any signature (or none) is accepted.
    #[arg(long, value_name = "FILE")]
    auth: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key. ALPN
    /// offers h2 and http/1.1.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Enforce AWS's per-shard quotas: writes 1 MiB/s and 1,000 records/s, reads 5 calls/s
    /// and 2 MiB/s (ProvisionedThroughputExceededException beyond them).
    #[arg(long)]
    emulate_limits: bool,
    /// Also serve the native ingest protocol (docs/formats/native.md) on this address:
    /// HOST:PORT, or a bare port for loopback. Off unless given.
    #[arg(long, value_name = "ADDR", value_parser = native::parse_listen)]
    native_listen: Option<std::net::SocketAddr>,
    /// Per-connection window of the native protocol: bytes of batches read ahead of their
    /// results (frames are limited to the smaller of 16 MiB and this).
    #[arg(long, default_value_t = shardline_protocol::frame::DEFAULT_WINDOW_BYTES,
          value_parser = parse_window_bytes)]
    native_window_bytes: usize,
    /// Create this stream at start if it is missing (NAME:SHARDS; repeatable).
    #[arg(long = "create-stream", value_parser = parse_create_stream)]
    create_streams: Vec<(String, u32)>,
    /// Let the kernel back the heap with transparent huge pages. Off by default: the
    /// first touch of a huge page clears 2 MiB inside the page fault, which stalled the
    /// committer for 10-60 ms at a time in virtual machines (docs/performance.md).
    #[arg(long)]
    transparent_huge_pages: bool,
}

/// Transparent huge pages, off for the whole process.
///
/// A latency-bound server pays for a huge page when it first touches it: the page fault
/// clears 2 MiB before the thread goes on. On the development machine (a virtual machine
/// whose host backs guest memory on first use), one such fault held the committer for
/// 10-60 ms, and every batch waiting for it with it. The allocator asks for huge pages
/// (`madvise`); `PR_SET_THP_DISABLE` overrides that and the system-wide `always` setting.
mod huge_pages {
    #[cfg(target_os = "linux")]
    pub fn disable() {
        if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
            tracing::debug!("could not disable transparent huge pages: {e}");
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn disable() {}
}

fn parse_durability(s: &str) -> Result<Durability, String> {
    Durability::parse(s).ok_or_else(|| format!("'{s}' is not one of sync, none"))
}

fn parse_segment_bytes(s: &str) -> Result<u64, String> {
    let n: u64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of bytes"))?;
    if !(1 << 20..=4 << 30).contains(&n) {
        return Err(format!("{n} is not between 1048576 and {}", 4u64 << 30));
    }
    Ok(n)
}

fn parse_window_bytes(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of bytes"))?;
    // At least 64 KiB so that ordinary batches fit; at most what HelloAck can announce.
    if !(64 << 10..=u32::MAX as usize).contains(&n) {
        return Err(format!("{n} is not between 65536 and {}", u32::MAX));
    }
    Ok(n)
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
        // Colour codes only for a person watching; log files and pipes get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let keep_huge_pages = matches!(&cli.command, Command::Serve(a) if a.transparent_huge_pages);
    if !keep_huge_pages {
        huge_pages::disable();
    }
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Streams(args) => cli::streams(args),
        Command::Put(args) => cli::put(args),
        Command::Tail(args) => cli::tail(args),
        Command::Consume(args) => cli::consume(args),
        Command::Bench(args) => cli::bench::bench(args),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let credentials = args
        .auth
        .as_deref()
        .map(api::auth::Credentials::load)
        .transpose()?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(api::tls::load(cert, key)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut config = EngineConfig {
        durability: args.durability,
        io: IoMode::from_env().map_err(anyhow::Error::msg)?,
        committer_threads: args.committer_threads.map(usize::from),
        ..EngineConfig::default()
    };
    let metrics = api::metrics::Metrics::new();
    config.commit_observer = Some(metrics.commit_observer());
    config.log.direct_writes = args.direct_writes;
    config.log.zero_ahead = !args.no_zero_ahead;
    config.log.segment_max_bytes = args.segment_max_bytes;
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
    let iterators = api::iterator::IteratorCodec::load_or_create(engine.path())
        .context("loading the shard iterator key")?;
    let state = std::sync::Arc::new(api::Api {
        engine: engine.clone(),
        iterators,
        config: api::ApiConfig {
            iterator_ttl: std::time::Duration::from_secs(args.iterator_ttl_secs),
            state_transition: std::time::Duration::from_millis(args.state_transition_ms),
            credentials: credentials.map(std::sync::Arc::new),
            shard_limit: args.shard_limit,
            subscription_lifetime: std::time::Duration::from_millis(args.subscription_lifetime_ms),
        },
        metrics,
        limits: args.emulate_limits.then(api::limits::Limits::default),
        subscriptions: api::subscribe::Subscriptions::default(),
    });
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        println!("listening on {scheme}://{addr}");
        let (native_stop, native_stopped) = tokio::sync::watch::channel(false);
        let native = match args.native_listen {
            Some(native_addr) => {
                let listener = tokio::net::TcpListener::bind(native_addr)
                    .await
                    .with_context(|| format!("listening on {native_addr} (native protocol)"))?;
                let bound = listener
                    .local_addr()
                    .context("reading the bound native address")?;
                println!("native listening on {bound}");
                Some(tokio::spawn(native::serve(
                    listener,
                    state.clone(),
                    native::NativeConfig::with_window(args.native_window_bytes),
                    native_stopped,
                )))
            }
            None => None,
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(api::server::serve(listener, state, tls, async {
            let _ = rx.await;
        }));
        let signal = shutdown_signal().await;
        let _ = tx.send(());
        let _ = native_stop.send(true);
        let _ = server.await;
        if let Some(native) = native {
            let _ = native.await;
        }
        signal
    })?;
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
