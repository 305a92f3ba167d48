//! Pushes fixed-size records over the native protocol for a while and prints the rate.
//!
//! A throughput check, not a test: point it at a running server (loopback only) whose
//! stream exists, e.g.
//!
//! ```sh
//! shardline serve --durability sync --native-listen 127.0.0.1:4568 --create-stream load:4 &
//! cargo run --release -p shardline-protocol --example native_load -- \
//!     --addr 127.0.0.1:4568 --stream load --connections 2 --seconds 10
//! ```
//!
//! It sends PackedBatch frames (protocol version 3), so the server must speak version 3.
//! Each connection keeps up to the server's window of batches in flight (so it never waits
//! for a round trip while there is room) and counts records once their PutResult says they
//! are durable.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::BytesMut;
use clap::Parser;
use shardline_protocol::frame::{FrameType, RequestId, PACKED_PROTOCOL_VERSION, PROTOCOL_VERSION};
use shardline_protocol::{
    ErrorFrame, FrameDecoder, Hello, HelloAck, PackedBatchBuilder, PutResultView, RawFrame,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

#[derive(Parser)]
struct Args {
    /// The server's --native-listen address (loopback only).
    #[arg(long, default_value = "127.0.0.1:4568")]
    addr: SocketAddr,
    #[arg(long, default_value = "load")]
    stream: String,
    #[arg(long, default_value_t = 2)]
    connections: usize,
    #[arg(long, default_value_t = 100)]
    record_bytes: usize,
    #[arg(long, default_value_t = 5000)]
    batch_records: usize,
    /// Distinct partition keys, used in turn.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Client-side cap on bytes in flight per connection (default: the server's window).
    #[arg(long)]
    inflight_bytes: Option<usize>,
}

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    failed: AtomicU64,
}

async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    decoder: &FrameDecoder,
) -> anyhow::Result<Option<RawFrame>> {
    loop {
        if let Some(f) = decoder.decode(buf)? {
            return Ok(Some(f));
        }
        if rd.read_buf(buf).await? == 0 {
            decoder.finish(buf)?;
            return Ok(None);
        }
    }
}

async fn connection(
    args: Arc<Args>,
    index: usize,
    counters: Arc<Counters>,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut socket = TcpStream::connect(args.addr).await?;
    socket.set_nodelay(true)?;
    socket
        .write_all(
            &Hello {
                protocol_version: PROTOCOL_VERSION,
                client: "native_load",
            }
            .encode(),
        )
        .await?;
    let decoder = FrameDecoder::new(64 << 20);
    let mut buf = BytesMut::new();
    let ack = read_frame(&mut socket, &mut buf, &decoder)
        .await?
        .context("no HelloAck")?;
    let ack = HelloAck::decode(&ack.payload)?;
    if ack.protocol_version < PACKED_PROTOCOL_VERSION {
        bail!(
            "the server speaks native protocol version {}, PackedBatch needs {PACKED_PROTOCOL_VERSION}",
            ack.protocol_version
        );
    }
    let window = args.inflight_bytes.unwrap_or(ack.window_bytes as usize);
    let (mut rd, mut wr) = socket.into_split();
    let inflight = Arc::new(Semaphore::new(window));
    let pending = Arc::new(in_flight::Pending::default());

    let writer = {
        let (args, inflight, pending) = (args.clone(), inflight.clone(), pending.clone());
        tokio::spawn(async move {
            let keys: Vec<String> = (0..args.keys).map(|k| format!("pk-{index}-{k}")).collect();
            let data = vec![0x5au8; args.record_bytes];
            let mut b = PackedBatchBuilder::new();
            let mut next_key = 0;
            let mut id = 0u64;
            while Instant::now() < deadline {
                for _ in 0..args.batch_records {
                    b.push(&keys[next_key], None, &data);
                    next_key = (next_key + 1) % keys.len();
                }
                id += 1;
                let frame = b.finish(RequestId(id), &args.stream);
                let permit = inflight
                    .clone()
                    .acquire_many_owned(frame.len().min(window) as u32)
                    .await?;
                pending.insert(id, permit);
                wr.write_all(&frame).await?;
            }
            anyhow::Ok(id)
        })
    };

    // Read results until every batch sent has been answered.
    let mut answered = 0u64;
    let mut sent = None;
    let mut writer = writer;
    loop {
        if sent == Some(answered) {
            return Ok(());
        }
        let frame = tokio::select! {
            n = &mut writer, if sent.is_none() => { sent = Some(n??); continue; }
            f = read_frame(&mut rd, &mut buf, &decoder) => f?.context("server closed")?,
        };
        match frame.frame_type {
            FrameType::PutResult => {
                let r = PutResultView::parse(&frame.payload)?;
                let failed = r.failed_count() as u64;
                counters.failed.fetch_add(failed, Ordering::Relaxed);
                counters
                    .written
                    .fetch_add(r.len() as u64 - failed, Ordering::Relaxed);
                pending.remove(r.request_id().0);
                answered += 1;
            }
            FrameType::Error => {
                let e = ErrorFrame::decode(&frame.payload)?;
                bail!("server error {:?}: {}", e.code, e.message);
            }
            t => bail!("unexpected {t} frame"),
        }
    }
}

/// Batches in flight and their window permits, by request id.
mod in_flight {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use tokio::sync::OwnedSemaphorePermit;

    #[derive(Default)]
    pub struct Pending(Mutex<HashMap<u64, OwnedSemaphorePermit>>);

    impl Pending {
        pub fn insert(&self, id: u64, permit: OwnedSemaphorePermit) {
            if let Ok(mut m) = self.0.lock() {
                m.insert(id, permit);
            }
        }

        pub fn remove(&self, id: u64) {
            if let Ok(mut m) = self.0.lock() {
                m.remove(&id);
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    if !args.addr.ip().is_loopback() {
        bail!("load is only sent to loopback addresses");
    }
    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let tasks: Vec<_> = (0..args.connections)
        .map(|i| tokio::spawn(connection(args.clone(), i, counters.clone(), deadline)))
        .collect();
    let mut last = (0, started);
    while tasks.iter().any(|t| !t.is_finished()) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let n = counters.written.load(Ordering::Relaxed);
        let now = Instant::now();
        eprintln!(
            "{:>5.1}s  {:>10.0} records/s",
            (now - started).as_secs_f64(),
            (n - last.0) as f64 / (now - last.1).as_secs_f64()
        );
        last = (n, now);
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let written = counters.written.load(Ordering::Relaxed);
    println!(
        "{written} records of {} B acknowledged in {elapsed:.2} s over {} connection(s): {:.0} records/s, {:.1} MB/s of data; {} failed",
        args.record_bytes,
        args.connections,
        written as f64 / elapsed,
        (written as usize * args.record_bytes) as f64 / elapsed / 1e6,
        counters.failed.load(Ordering::Relaxed)
    );
    Ok(())
}
