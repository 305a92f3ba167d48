//! One run of the workload against one target, and the whole command (one or two runs).
//!
//! Order within a run: streams ready; consumers positioned (iterators at LATEST, or a
//! fan-out consumer registered and subscriptions starting at the run's start time); then
//! producers for `--duration`; then consumers drain until they have received as many
//! records as were acknowledged (at most [`DRAIN_TIMEOUT`]); replay reads afterwards.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use shardline_client::consumer::fetch::fanout::register_consumer;
use shardline_client::kinesis::IteratorStart;
use shardline_client::sign::Signer;
use shardline_client::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::stats::{Percentiles, Point, SideResult, Stats};
use super::transport::{http, native, native_read, ProducerPlan};
use super::workload::wall_ns;
use super::{compare, progress, report, setup, table, BenchArgs, Workload};

/// How long consumers may take, once producers stop, to receive what was acknowledged.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The fan-out consumer bench registers (reused across runs).
const FAN_OUT_CONSUMER: &str = "shardline-bench";
/// Default calls in flight per HTTP producer.
const HTTP_IN_FLIGHT: u32 = 8;
/// Default batches in flight per native producer (the window bounds them too).
const NATIVE_IN_FLIGHT: u32 = 64;
/// Replay stops after this long even if some shard never reports being caught up.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(600);
/// Region signed for when the environment names none (the AWS SDKs' usual default).
const DEFAULT_REGION: &str = "us-east-1";

/// Where one run sends its load.
struct Target {
    endpoint: Option<String>,
    native: Option<std::net::SocketAddr>,
}

/// Everything measured in one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The Kinesis endpoint (setup, reads, and writes unless native).
    pub endpoint: String,
    /// `http` or `native ADDR`.
    pub transport: String,
    pub streams: Vec<String>,
    pub shards: usize,
    /// Producer side: acknowledged records, acknowledgement latency.
    pub produce: Option<SideResult>,
    /// Consumer side: received records, call latency (GetRecords round trip).
    pub consume: Option<SideResult>,
    /// Send-to-receipt latency of received records.
    pub end_to_end_latency: Option<Percentiles>,
    /// Replay from TRIM_HORIZON: records read, GetRecords latency.
    pub replay: Option<SideResult>,
    pub errors: BTreeMap<String, u64>,
    pub throttles: BTreeMap<String, u64>,
    pub timeline: Vec<Point>,
    pub replay_timeline: Vec<Point>,
    /// /proc/loadavg at the end of the run (1, 5, 15 minutes), for context.
    pub load_average: Option<[f64; 3]>,
}

/// The configuration echoed in the output.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub record_size: String,
    pub mean_record_bytes: f64,
    pub batch_size: u32,
    pub producers: u32,
    pub consumers: Option<u32>,
    pub fan_out: bool,
    pub keys: u64,
    pub streams: u32,
    pub shards: u32,
    pub duration_secs: f64,
    pub warmup_secs: f64,
    pub rate: Option<f64>,
    pub in_flight: Option<u32>,
}

/// The whole output: `--json` prints it, the table and the report render it.
#[derive(Debug, Clone, Serialize)]
pub struct Output {
    pub workload: Workload,
    pub config: Config,
    pub runs: Vec<RunResult>,
    pub comparison: Option<compare::Comparison>,
}

/// Runs the command.
///
/// # Errors
/// Setup failed (unreachable endpoint, stream not creatable), or the report not writable.
pub async fn main(args: BenchArgs) -> anyhow::Result<()> {
    let mut targets = vec![Target {
        endpoint: args.endpoint.clone(),
        native: args.native,
    }];
    if let Some(url2) = &args.compare {
        targets.push(Target {
            endpoint: Some(url2.clone()),
            native: None,
        });
    }
    // Every target's streams first, so a second target that cannot take them fails the
    // command before any load is sent.
    for target in &targets {
        let client = client_for(target.endpoint.as_deref())?;
        setup::ensure_streams(&client, &stream_names(&args), args.shards).await?;
    }
    let mut runs = Vec::new();
    for target in &targets {
        runs.push(run_one(&args, target).await?);
    }
    let comparison = match runs.as_slice() {
        [a, b] => Some(compare::compare(args.workload, a, b)),
        _ => None,
    };
    let output = Output {
        workload: args.workload,
        config: Config {
            record_size: args.record_size.to_string(),
            mean_record_bytes: args.record_size.mean(),
            batch_size: args.batch_size,
            producers: args.producers,
            consumers: args.consumers,
            fan_out: args.fan_out,
            keys: args.keys,
            streams: args.streams,
            shards: args.shards,
            duration_secs: args.duration,
            warmup_secs: args.warmup,
            rate: args.rate,
            in_flight: args.in_flight,
        },
        runs,
        comparison,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&output)?);
    } else {
        print!("{}", table::render(&output));
    }
    if let Some(path) = &args.report {
        std::fs::write(path, report::html(&output))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A client for `endpoint`, signing with dummy credentials when the environment has none.
fn client_for(endpoint: Option<&str>) -> anyhow::Result<Client> {
    let client = Client::new(endpoint)?;
    if client.is_signed() {
        return Ok(client);
    }
    let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_REGION.to_string());
    Ok(client.with_signer(Signer::new(
        "shardline-bench",
        "shardline-bench",
        None,
        &region,
    )))
}

fn stream_names(args: &BenchArgs) -> Vec<String> {
    if args.streams == 1 {
        return vec![args.stream.clone()];
    }
    (0..args.streams)
        .map(|i| format!("{}-{i}", args.stream))
        .collect()
}

fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// Prints a progress line every second until aborted.
fn ticker(stats: Arc<Stats>, label: &'static str, show: bool) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        interval.tick().await;
        loop {
            interval.tick().await;
            let point = stats.tick();
            if show {
                eprintln!("{}", progress::line(label, &point));
            }
        }
    })
}

async fn run_one(args: &BenchArgs, target: &Target) -> anyhow::Result<RunResult> {
    let client = client_for(target.endpoint.as_deref())?;
    let names = stream_names(args);
    let shards = setup::ensure_streams(&client, &names, args.shards).await?;
    let show = args.progress || std::io::stderr().is_terminal();
    let mut result = RunResult {
        endpoint: client.endpoint().to_string(),
        transport: target
            .native
            .map_or_else(|| "http".to_string(), |a| format!("native {a}")),
        streams: names.clone(),
        shards: shards.len(),
        produce: None,
        consume: None,
        end_to_end_latency: None,
        replay: None,
        errors: BTreeMap::new(),
        throttles: BTreeMap::new(),
        timeline: Vec::new(),
        replay_timeline: Vec::new(),
        load_average: None,
    };
    let consumers = matches!(args.workload, Workload::Consume | Workload::EndToEnd);
    if args.workload != Workload::Replay || !args.no_fill {
        let stats = load_phase(args, target, &client, &names, &shards, consumers, show).await?;
        result.timeline = stats.0.timeline();
        result.produce = Some(stats.0.side_result(&stats.0.produce, stats.1));
        if consumers {
            result.consume = Some(stats.0.side_result(&stats.0.consume, stats.2));
            result.end_to_end_latency = Some(stats.0.end_to_end_result());
        }
        merge_failures(&mut result, &stats.0);
    }
    if args.workload == Workload::Replay {
        let (stats, secs) = match target.native {
            Some(addr) => native_replay_phase(args, addr, &shards, show).await,
            None => replay_phase(args, &client, &shards, show).await?,
        };
        result.replay = Some(stats.side_result(&stats.consume, secs));
        result.replay_timeline = stats.timeline();
        merge_failures(&mut result, &stats);
    }
    if args.cleanup {
        setup::delete_streams(&client, &names).await?;
    }
    result.load_average = load_average();
    Ok(result)
}

fn merge_failures(result: &mut RunResult, stats: &Stats) {
    let (errors, throttles) = stats.failures();
    for (k, v) in errors {
        *result.errors.entry(k).or_default() += v;
    }
    for (k, v) in throttles {
        *result.throttles.entry(k).or_default() += v;
    }
}

/// Producers (and consumers) for `--duration`; returns the stats and the seconds measured
/// on the producer and consumer sides.
async fn load_phase(
    args: &BenchArgs,
    target: &Target,
    client: &Client,
    names: &[String],
    shards: &[(String, String)],
    consumers: bool,
    show: bool,
) -> anyhow::Result<(Arc<Stats>, f64, f64)> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Position the consumers before anything is produced.
    let mut cursors = Vec::new();
    let mut fan_out = Vec::new();
    let start_ms = (wall_ns() / 1_000_000) as i64;
    if consumers && args.fan_out {
        for name in names {
            let arn = register_consumer(client, name, FAN_OUT_CONSUMER)
                .await
                .with_context(|| format!("registering a fan-out consumer on {name}"))?;
            for (stream, shard) in shards.iter().filter(|(s, _)| s == name) {
                fan_out.push((stream.clone(), shard.clone(), arn.clone()));
            }
        }
    } else if consumers {
        cursors = http::cursors(client, shards, &IteratorStart::Latest)
            .await
            .context("positioning the consumers at LATEST")?;
    }
    let start = Instant::now();
    let start_wall_ns = wall_ns();
    let stats = Arc::new(Stats::new(
        start,
        start + Duration::from_secs_f64(args.warmup),
    ));
    let mut consumer_tasks = Vec::new();
    for (_, shard, arn) in fan_out {
        consumer_tasks.push(tokio::spawn(http::consume_fanout(
            client.clone(),
            arn,
            shard,
            IteratorStart::AtTimestamp(start_ms),
            stats.clone(),
            stop_rx.clone(),
        )));
    }
    if !cursors.is_empty() {
        let tasks = args
            .consumers
            .map_or(cursors.len(), |c| c as usize)
            .clamp(1, cursors.len());
        let mut groups: Vec<Vec<http::ShardCursor>> = (0..tasks).map(|_| Vec::new()).collect();
        for (i, cursor) in cursors.into_iter().enumerate() {
            groups[i % tasks].push(cursor);
        }
        for group in groups {
            consumer_tasks.push(tokio::spawn(http::consume_polling(
                client.clone(),
                group,
                stats.clone(),
                stop_rx.clone(),
                Duration::from_millis(args.poll_interval_ms),
            )));
        }
    }
    let tick = ticker(stats.clone(), "", show);

    let streams: Arc<Vec<Arc<str>>> =
        Arc::new(names.iter().map(|n| Arc::from(n.as_str())).collect());
    let in_flight = args.in_flight.unwrap_or(if target.native.is_some() {
        NATIVE_IN_FLIGHT
    } else {
        HTTP_IN_FLIGHT
    }) as usize;
    let mut producers = Vec::new();
    for index in 0..args.producers as usize {
        let plan = ProducerPlan {
            index,
            streams: streams.clone(),
            batch_records: args.batch_size as usize,
            record_size: args.record_size,
            key_count: args.keys as usize,
            records_per_sec: args.rate.map(|r| r / f64::from(args.producers)),
            phase: index as f64 / f64::from(args.producers),
            in_flight,
            start,
            start_wall_ns,
            deadline: start + Duration::from_secs_f64(args.duration),
            native_layout: args.native_layout,
        };
        let stats = stats.clone();
        producers.push(match target.native {
            Some(addr) => tokio::spawn(native::produce(addr, plan, stats)),
            None => {
                let client = client.clone();
                tokio::spawn(async move {
                    http::produce(client, plan, stats).await;
                    Ok(())
                })
            }
        });
    }
    for p in producers {
        match p.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("shardline bench: native producer: {e:#}");
                stats.error("NativeConnectionFailed", 1);
            }
            Err(e) => {
                eprintln!("shardline bench: producer task: {e}");
                stats.error("ProducerPanicked", 1);
            }
        }
    }
    let produce_secs = stats.measure_from().elapsed().as_secs_f64();
    let mut consume_secs = 0.0;
    if consumers {
        let drain_until = Instant::now() + DRAIN_TIMEOUT;
        loop {
            let (produced, consumed) = stats.totals();
            if consumed >= produced || Instant::now() > drain_until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        consume_secs = stats.measure_from().elapsed().as_secs_f64();
        let _ = stop_tx.send(true);
        for task in consumer_tasks {
            let _ = task.await;
        }
    }
    tick.abort();
    Ok((stats, produce_secs, consume_secs))
}

/// Reads every shard from TRIM_HORIZON over the native protocol until caught up; returns
/// the stats and seconds.
async fn native_replay_phase(
    args: &BenchArgs,
    addr: std::net::SocketAddr,
    shards: &[(String, String)],
    show: bool,
) -> (Arc<Stats>, f64) {
    let start = Instant::now();
    let stats = Arc::new(Stats::new(start, start));
    let tick = ticker(stats.clone(), "replay ", show);
    let tasks = args
        .consumers
        .map_or(shards.len(), |c| c as usize)
        .clamp(1, shards.len().max(1));
    let mut groups: Vec<Vec<(String, String)>> = (0..tasks).map(|_| Vec::new()).collect();
    for (i, shard) in shards.iter().enumerate() {
        groups[i % tasks].push(shard.clone());
    }
    let handles: Vec<_> = groups
        .into_iter()
        .map(|g| {
            tokio::spawn(native_read::replay(
                addr,
                g,
                stats.clone(),
                start + REPLAY_TIMEOUT,
            ))
        })
        .collect();
    for h in handles {
        match h.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("shardline bench: native replay: {e:#}");
                stats.error("NativeConnectionFailed", 1);
            }
            Err(e) => {
                eprintln!("shardline bench: replay task: {e}");
                stats.error("ReplayPanicked", 1);
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    tick.abort();
    (stats, secs)
}

/// Reads every shard from TRIM_HORIZON until caught up; returns the stats and seconds.
async fn replay_phase(
    args: &BenchArgs,
    client: &Client,
    shards: &[(String, String)],
    show: bool,
) -> anyhow::Result<(Arc<Stats>, f64)> {
    let cursors = http::cursors(client, shards, &IteratorStart::TrimHorizon)
        .await
        .context("positioning the replay at TRIM_HORIZON")?;
    let start = Instant::now();
    let stats = Arc::new(Stats::new(start, start));
    let tick = ticker(stats.clone(), "replay ", show);
    let tasks = args
        .consumers
        .map_or(cursors.len(), |c| c as usize)
        .clamp(1, cursors.len().max(1));
    let mut groups: Vec<Vec<http::ShardCursor>> = (0..tasks).map(|_| Vec::new()).collect();
    for (i, cursor) in cursors.into_iter().enumerate() {
        groups[i % tasks].push(cursor);
    }
    let handles: Vec<_> = groups
        .into_iter()
        .map(|g| {
            tokio::spawn(http::replay(
                client.clone(),
                g,
                stats.clone(),
                start + REPLAY_TIMEOUT,
            ))
        })
        .collect();
    for h in handles {
        let _ = h.await;
    }
    let secs = start.elapsed().as_secs_f64();
    tick.abort();
    Ok((stats, secs))
}
