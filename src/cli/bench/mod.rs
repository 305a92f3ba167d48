//! `shardline bench`: a load generator for Shardline or any Kinesis endpoint.
//!
//! # Layout
//!
//! - this file: the command line.
//! - [`workload`]: record sizes, keys, stamped payloads, the open-loop schedule.
//! - [`setup`]: streams created if missing, shards listed, `--cleanup`.
//! - [`transport`]: PutRecords/GetRecords/SubscribeToShard over HTTP, PackedBatch (or
//!   PutBatch) and Read over the native protocol.
//! - [`run`]: one run against one target: producers, consumers, replay, drain.
//! - [`stats`]: counters, hdrhistogram latencies, the once-a-second timeline.
//! - [`progress`]: the live line on stderr.
//! - [`table`]: the table people read; [`compare`]: ratios between two targets.
//! - [`report`]: the self-contained HTML page with SVG plots.
//!
//! Latency is always measured from when a batch was due (open loop with `--rate`), so a
//! slow server cannot hide its queueing by slowing the producer (no coordinated omission).

mod compare;
mod progress;
mod report;
mod run;
mod setup;
mod stats;
mod table;
mod transport;
mod workload;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;

use workload::RecordSize;

/// What `shardline bench` measures.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Producers only: acknowledged records/s and acknowledgement latency.
    Produce,
    /// Producers and consumers; the consumer side is the headline (records/s received,
    /// GetRecords round-trip latency).
    Consume,
    /// Producers and consumers; latency from each record's send time to its receipt.
    EndToEnd,
    /// Fill the stream for --duration (unless --no-fill), then read everything retained
    /// from TRIM_HORIZON as fast as possible (over the native protocol with --native, else
    /// GetRecords).
    Replay,
}

/// How native batches are laid out (`docs/formats/native.md`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NativeLayout {
    /// PackedBatch frames: records back to back (protocol version 3).
    Packed,
    /// PutBatch frames: a flatbuffer with a table per record.
    Table,
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// The workload.
    #[arg(value_enum, default_value_t = Workload::Produce)]
    workload: Workload,
    /// The Kinesis endpoint (default: $AWS_ENDPOINT_URL_KINESIS, else $AWS_ENDPOINT_URL,
    /// else http://127.0.0.1:4567). Credentials come from $AWS_ACCESS_KEY_ID and
    /// $AWS_SECRET_ACCESS_KEY (dummy ones when unset, as local endpoints accept), the region
    /// from $AWS_REGION (default us-east-1). Always used to set up streams and to read.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// Produce over the native protocol to this address (`serve --native-listen`) instead
    /// of PutRecords; replay reads over it too (Read frames) instead of GetRecords.
    #[arg(long, value_name = "ADDR")]
    native: Option<SocketAddr>,
    /// Native batches' layout (default: packed when the server speaks protocol version 3,
    /// else table).
    #[arg(long, value_enum, requires = "native")]
    native_layout: Option<NativeLayout>,
    /// Run the identical workload against this second Kinesis endpoint (over HTTP) and
    /// print the ratios first/second.
    #[arg(long, value_name = "URL2")]
    compare: Option<String>,
    /// Stream name (with --streams N > 1: NAME-0 .. NAME-{N-1}).
    #[arg(long, default_value = "shardline-bench")]
    stream: String,
    /// Number of streams; producers send their batches to them in turn.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    streams: u32,
    /// Shards of each stream created (an existing stream is used as it is).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    shards: u32,
    /// Delete the streams afterwards.
    #[arg(long)]
    cleanup: bool,
    /// Producer tasks (native: one connection each).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    producers: u32,
    /// Consumer tasks; shards are shared among them (default: one per shard). With
    /// --fan-out there is one subscription per shard.
    #[arg(long)]
    consumers: Option<u32>,
    /// Consume through enhanced fan-out (SubscribeToShard) instead of polling GetRecords;
    /// registers the stream consumer `shardline-bench` (left registered, and reused by the
    /// next run).
    #[arg(long)]
    fan_out: bool,
    /// Record data size in bytes: `N`, `fixed:N` or `uniform:MIN-MAX`. Records of at least
    /// 12 bytes carry their send time.
    #[arg(long, default_value = "100", value_parser = RecordSize::parse)]
    record_size: RecordSize,
    /// Distinct partition keys.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    keys: u64,
    /// Records per PutRecords call (at most 500) or per native batch.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: u32,
    /// Calls (HTTP) or batches (native) each producer keeps outstanding (default: 8 over
    /// HTTP, 64 native).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    in_flight: Option<u32>,
    /// Seconds of producing (warm-up included).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds at the start that are not measured.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Target records/s over all producers (open loop: latency counts from each batch's
    /// due time; the producers' batches are spread evenly over time); as fast as possible
    /// when absent.
    #[arg(long)]
    rate: Option<f64>,
    /// Pause after a polling round that found no records.
    #[arg(long, default_value_t = 100)]
    poll_interval_ms: u64,
    /// Replay: read what the streams hold, without filling them first.
    #[arg(long)]
    no_fill: bool,
    /// Print one JSON document on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Write a self-contained HTML report with plots to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Show the live progress line even when stderr is not a terminal.
    #[arg(long)]
    progress: bool,
}

/// HTTP limit of PutRecords (Kinesis API reference: 500 records per call).
const MAX_PUT_RECORDS: u32 = 500;

/// `shardline bench`.
///
/// # Errors
/// Bad arguments, setup failures (unreachable endpoint, stream not creatable), or the
/// report not writable. Failed calls during the run are counted, not returned.
pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    check(&args).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run::main(args))
}

fn check(args: &BenchArgs) -> Result<(), String> {
    if args.native.is_none() && args.batch_size > MAX_PUT_RECORDS {
        return Err(format!(
            "--batch-size {} is above PutRecords' {MAX_PUT_RECORDS} records (only --native takes more)",
            args.batch_size
        ));
    }
    if !(args.duration > 0.0 && args.duration.is_finite()) {
        return Err("--duration must be a positive number of seconds".into());
    }
    if !(args.warmup >= 0.0 && args.warmup < args.duration) {
        return Err("--warmup must be at least 0 and below --duration".into());
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err("--rate must be a positive number of records/s".into());
    }
    if args.fan_out && !matches!(args.workload, Workload::Consume | Workload::EndToEnd) {
        return Err("--fan-out is for the consume and end-to-end workloads".into());
    }
    Ok(())
}
