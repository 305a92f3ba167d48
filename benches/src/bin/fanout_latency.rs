//! Enhanced fan-out latency (issue 4, performance): the time from a PutRecords
//! acknowledgement to the record's arrival at a SubscribeToShard subscriber, as
//! p50/p99/p99.9 (hdrhistogram), at several producer rates and subscriber counts on one
//! shard; then the server's RSS while one of two subscribers stops reading (it lags) and the
//! producer keeps writing.
//!
//! It starts `shardline serve` (by default `target/release/shardline`) on 127.0.0.1 port 0
//! with a fresh temporary data directory, talks plain HTTP/1.1 JSON to it (PutRecords,
//! RegisterStreamConsumer, SubscribeToShard with the event stream decoded by
//! `aws-smithy-eventstream`), and stops it at the end. Every phase runs for a fixed time, so
//! the whole run is bounded (about `(2 + 1) * --seconds` per configuration plus the lag
//! phase).
//!
//! Latency is measured on one clock: the producer notes when each PutRecords answer arrived,
//! each subscriber when each record arrived; a record's latency is the difference (0 if the
//! record arrived before its PutRecords answer was read, which happens: the server pushes a
//! record as soon as it is acknowledged). Producer, subscribers and server share the
//! machine's cores, so the figures include their contention.
//!
//! ```text
//! cargo build --release --bin shardline
//! cargo run --release -p shardline-benches --bin fanout_latency -- --seconds 10
//! ```

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

/// PutRecords calls per second: the producer sends `rate / TICKS_PER_SEC` records per call.
const TICKS_PER_SEC: u64 = 100;
/// PutRecords' record cap (Kinesis API reference).
const MAX_BATCH: u64 = 500;

#[derive(Parser, Debug)]
struct Args {
    /// The server binary.
    #[arg(long, default_value = "target/release/shardline")]
    bin: PathBuf,
    /// Seconds of producing per latency configuration.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of producing while one subscriber lags (the RSS phase); `--seconds` if absent.
    #[arg(long)]
    lag_seconds: Option<u64>,
    /// Producer rates, records per second (at most 50,000: 500 records x 100 calls/s).
    #[arg(long, value_delimiter = ',', default_value = "1000,50000")]
    rates: Vec<u64>,
    /// Subscribers per shard.
    #[arg(long, value_delimiter = ',', default_value = "1,5")]
    subscribers: Vec<usize>,
    /// Data bytes per record (the first 8 carry the record's id).
    #[arg(long, default_value_t = 100)]
    record_bytes: usize,
    /// `--durability` for the server.
    #[arg(long, default_value = "sync")]
    durability: String,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Nanoseconds since `t0`, 0 meaning "not yet"; one slot per record id.
struct Times {
    t0: Instant,
    slots: Vec<AtomicU64>,
}

impl Times {
    fn new(t0: Instant, n: usize) -> Arc<Times> {
        Arc::new(Times {
            t0,
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    fn mark(&self, id: u64) {
        if let Some(slot) = self.slots.get(id as usize) {
            let now = (self.t0.elapsed().as_nanos() as u64).max(1);
            let _ = slot.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn get(&self, id: usize) -> u64 {
        self.slots[id].load(Ordering::Relaxed)
    }
}

struct Server {
    child: tokio::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

async fn start_server(args: &Args) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let mut child = tokio::process::Command::new(&args.bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--durability",
            &args.durability,
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", args.bin.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).await?;
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .with_context(|| format!("unexpected first line {line:?}"))?
        .to_string();
    Ok(Server {
        child,
        addr,
        _dir: dir,
    })
}

/// Resident set size of `pid` in KiB (`VmRSS` in /proc).
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}

async fn call(
    http: &HttpClient,
    addr: &str,
    op: &str,
    body: serde_json::Value,
) -> anyhow::Result<Incoming> {
    let req = hyper::Request::post(format!("http://{addr}/"))
        .header("x-amz-target", format!("Kinesis_20131202.{op}"))
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(serde_json::to_vec(&body)?)))?;
    let resp = http.request(req).await?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.into_body().collect().await?.to_bytes();
        bail!("{op}: HTTP {status}: {}", String::from_utf8_lossy(&text));
    }
    Ok(resp.into_body())
}

async fn call_json(
    http: &HttpClient,
    addr: &str,
    op: &str,
    body: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let bytes = call(http, addr, op, body)
        .await?
        .collect()
        .await?
        .to_bytes();
    if bytes.is_empty() {
        return Ok(serde_json::Value::Null);
    }
    Ok(serde_json::from_slice(&bytes)?)
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<EventRecord<'a>>,
}

#[derive(Deserialize)]
struct EventRecord<'a> {
    #[serde(rename = "Data", borrow)]
    data: &'a str,
}

/// Subscribes from LATEST and marks each record's arrival until the stream ends or `stop`
/// is set. With `lag`, stops reading for that long after the first event.
async fn subscribe(
    http: HttpClient,
    addr: String,
    consumer_arn: String,
    received: Arc<Times>,
    ready: tokio::sync::oneshot::Sender<()>,
    lag: Option<Duration>,
) -> anyhow::Result<()> {
    let mut body = call(
        &http,
        &addr,
        "SubscribeToShard",
        json!({"ConsumerARN": consumer_arn, "ShardId": "shardId-000000000000",
               "StartingPosition": {"Type": "LATEST"}}),
    )
    .await?;
    let mut ready = Some(ready);
    let mut decoder = MessageFrameDecoder::new();
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let DecodedFrame::Complete(message) = decoder.decode_frame(&mut buf)? {
            let is_event = message.headers().iter().any(|h| {
                h.name().as_str() == ":event-type"
                    && h.value()
                        .as_string()
                        .is_ok_and(|v| v.as_str() == "SubscribeToShardEvent")
            });
            if !is_event {
                continue;
            }
            let event: Event<'_> = serde_json::from_slice(message.payload())?;
            for r in &event.records {
                // The first 12 base64 characters hold the 8-byte id (and one more byte).
                let head = r.data.get(..12).context("short record")?;
                let raw = base64::engine::general_purpose::STANDARD.decode(head)?;
                let id = u64::from_le_bytes(raw[..8].try_into()?);
                received.mark(id);
            }
            if let Some(tx) = ready.take() {
                let _ = tx.send(());
                if let Some(lag) = lag {
                    tokio::time::sleep(lag).await;
                }
            }
        }
    }
    Ok(())
}

/// Produces `rate` records per second for `seconds`; marks when each id's PutRecords call
/// was sent and when its answer arrived.
#[expect(clippy::too_many_arguments, reason = "one run's settings")]
async fn produce(
    http: &HttpClient,
    addr: &str,
    stream: &str,
    rate: u64,
    seconds: u64,
    record_bytes: usize,
    sent: &Times,
    acked: &Times,
) -> anyhow::Result<u64> {
    let per_call = (rate / TICKS_PER_SEC).clamp(1, MAX_BATCH);
    let calls = rate * seconds / per_call;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / (rate / per_call) as u32);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let padding = vec![0u8; record_bytes.saturating_sub(8)];
    let mut id = 0u64;
    for _ in 0..calls {
        tick.tick().await;
        let first = id;
        let records: Vec<serde_json::Value> = (0..per_call)
            .map(|_| {
                let mut data = id.to_le_bytes().to_vec();
                data.extend_from_slice(&padding);
                id += 1;
                json!({"Data": base64::engine::general_purpose::STANDARD.encode(&data),
                       "PartitionKey": "k"})
            })
            .collect();
        for i in first..id {
            sent.mark(i);
        }
        let out = call_json(
            http,
            addr,
            "PutRecords",
            json!({"StreamName": stream, "Records": records}),
        )
        .await?;
        ensure!(out["FailedRecordCount"] == 0, "records failed: {out}");
        for i in first..id {
            acked.mark(i);
        }
    }
    Ok(id)
}

async fn setup_stream(
    http: &HttpClient,
    addr: &str,
    stream: &str,
    consumers: usize,
) -> anyhow::Result<Vec<String>> {
    call_json(
        http,
        addr,
        "CreateStream",
        json!({"StreamName": stream, "ShardCount": 1}),
    )
    .await?;
    let arn = format!("arn:aws:kinesis:us-east-1:000000000000:stream/{stream}");
    let mut arns = Vec::new();
    for i in 0..consumers {
        let out = call_json(
            http,
            addr,
            "RegisterStreamConsumer",
            json!({"StreamARN": arn, "ConsumerName": format!("c{i}")}),
        )
        .await?;
        arns.push(
            out["Consumer"]["ConsumerARN"]
                .as_str()
                .context("no ConsumerARN")?
                .to_string(),
        );
    }
    Ok(arns)
}

/// Starts one subscriber per ARN and waits for each one's first event.
async fn start_subscribers(
    http: &HttpClient,
    addr: &str,
    arns: &[String],
    times: &[Arc<Times>],
    lags: &[Option<Duration>],
) -> anyhow::Result<Vec<tokio::task::JoinHandle<anyhow::Result<()>>>> {
    let mut tasks = Vec::new();
    for ((arn, received), lag) in arns.iter().zip(times).zip(lags) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        tasks.push(tokio::spawn(subscribe(
            http.clone(),
            addr.to_string(),
            arn.clone(),
            received.clone(),
            tx,
            *lag,
        )));
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .context("no first event within 10 s")??;
    }
    Ok(tasks)
}

async fn latency_run(
    args: &Args,
    http: &HttpClient,
    addr: &str,
    rate: u64,
    subscribers: usize,
) -> anyhow::Result<()> {
    let stream = format!("latency-{rate}-{subscribers}");
    let arns = setup_stream(http, addr, &stream, subscribers).await?;
    let t0 = Instant::now();
    let n = (rate * args.seconds + MAX_BATCH) as usize;
    let (put_at, acked) = (Times::new(t0, n), Times::new(t0, n));
    let received: Vec<Arc<Times>> = (0..subscribers).map(|_| Times::new(t0, n)).collect();
    let tasks = start_subscribers(http, addr, &arns, &received, &vec![None; subscribers]).await?;
    let sent = produce(
        http,
        addr,
        &stream,
        rate,
        args.seconds,
        args.record_bytes,
        &put_at,
        &acked,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for t in &tasks {
        t.abort();
    }
    // From the acknowledgement (0 when the record arrived first), and from the call.
    let mut from_ack = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut from_put = from_ack.clone();
    let (mut missing, mut before_ack) = (0u64, 0u64);
    for r in &received {
        for id in 0..sent as usize {
            let (p, a, b) = (put_at.get(id), acked.get(id), r.get(id));
            if b == 0 {
                missing += 1;
                continue;
            }
            before_ack += u64::from(b < a);
            from_ack.record(b.saturating_sub(a).max(1))?;
            from_put.record(b.saturating_sub(p).max(1))?;
        }
    }
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e3;
    println!(
        "| {rate} | {subscribers} | {sent} | {} | {missing} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} % | {:.0} | {:.0} | {:.0} |",
        from_ack.len(),
        us(&from_ack, 0.5),
        us(&from_ack, 0.99),
        us(&from_ack, 0.999),
        from_ack.max() as f64 / 1e3,
        100.0 * before_ack as f64 / from_ack.len().max(1) as f64,
        us(&from_put, 0.5),
        us(&from_put, 0.99),
        us(&from_put, 0.999),
    );
    Ok(())
}

/// Two subscribers, one of which stops reading after its first event; the producer writes
/// at the highest rate meanwhile. Prints the server's RSS over the phase.
async fn lag_run(args: &Args, http: &HttpClient, server: &Server) -> anyhow::Result<()> {
    let rate = args.rates.iter().copied().max().unwrap_or(50_000);
    let seconds = args.lag_seconds.unwrap_or(args.seconds);
    let stream = "lagging";
    let arns = setup_stream(http, &server.addr, stream, 2).await?;
    let pid = server.child.id().context("server exited")?;
    let t0 = Instant::now();
    let n = (rate * seconds + MAX_BATCH) as usize;
    let (put_at, acked) = (Times::new(t0, n), Times::new(t0, n));
    let received = vec![Times::new(t0, n), Times::new(t0, n)];
    let lag = Duration::from_secs(seconds + 5);
    let tasks = start_subscribers(http, &server.addr, &arns, &received, &[None, Some(lag)]).await?;
    let before = rss_kib(pid)?;
    let sampling = tokio::spawn(async move {
        let mut max = 0;
        let mut next_report = Duration::from_secs(10);
        loop {
            if let Ok(kib) = rss_kib(pid) {
                max = max.max(kib);
                if t0.elapsed() >= next_report {
                    println!(
                        "  t={:>4} s: server RSS {:.1} MiB",
                        next_report.as_secs(),
                        kib as f64 / 1024.0
                    );
                    next_report += Duration::from_secs(10);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if t0.elapsed() > lag {
                return max;
            }
        }
    });
    let sent = produce(
        http,
        &server.addr,
        stream,
        rate,
        seconds,
        args.record_bytes,
        &put_at,
        &acked,
    )
    .await?;
    let max = sampling.await?;
    let count = |t: &Times| (0..sent as usize).filter(|&i| t.get(i) != 0).count();
    println!(
        "lagging subscriber: {rate} rec/s x {} s = {sent} records ({:.0} MiB of data); fast subscriber got {}, lagging one {}; server RSS {:.1} MiB before, max {:.1} MiB during",
        seconds,
        (sent as usize * args.record_bytes) as f64 / (1 << 20) as f64,
        count(&received[0]),
        count(&received[1]),
        before as f64 / 1024.0,
        max as f64 / 1024.0
    );
    for t in &tasks {
        t.abort();
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for &rate in &args.rates {
        ensure!(
            (1..=MAX_BATCH * TICKS_PER_SEC).contains(&rate),
            "rate {rate} outside 1..=50000"
        );
    }
    let mut server = start_server(&args).await?;
    let http: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    println!(
        "fanout_latency: server {} ({} durability), {} B records, {} s per run",
        args.bin.display(),
        args.durability,
        args.record_bytes,
        args.seconds
    );
    println!(
        "| rate rec/s | subscribers | records | deliveries | missing | ack→recv p50 µs | p99 µs | p99.9 µs | max µs | arrived before ack | put→recv p50 µs | p99 µs | p99.9 µs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut result = Ok(());
    'runs: for &rate in &args.rates {
        for &subs in &args.subscribers {
            result = latency_run(&args, &http, &server.addr, rate, subs).await;
            if result.is_err() {
                break 'runs;
            }
        }
    }
    if result.is_ok() {
        result = lag_run(&args, &http, &server).await;
    }
    let _ = server.child.kill().await;
    result
}
