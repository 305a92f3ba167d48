//! The native ingest protocol (`docs/formats/native.md`): one connection per producer,
//! batches pipelined up to the server's window (and `in_flight` batches), each batch's
//! latency measured from when it was due until its PutResult (records durable). Batches are
//! PackedBatch frames when the server speaks protocol version 3, else PutBatch
//! (`--native-layout` picks one). Records carry no hash key: the server computes every
//! partition key's MD5, as it does for PutRecords.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use bytes::BytesMut;
use parking_lot::Mutex;
use shardline_protocol::error_frame::code_name;
use shardline_protocol::frame::{FrameType, RequestId, PACKED_PROTOCOL_VERSION, PROTOCOL_VERSION};
use shardline_protocol::{
    ErrorFrame, FrameDecoder, Hello, HelloAck, PackedBatchBuilder, PutBatchBuilder, PutResultView,
    RawFrame, RecordOutcome,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::super::stats::Stats;
use super::super::NativeLayout;
use super::ProducerPlan;

/// Largest frame read before HelloAck says the server's limit.
const HELLO_ACK_MAX_BYTES: usize = 64 << 10;
/// Largest answer frame accepted: a PutResult of 10,000 records that all failed carries
/// 10,000 messages of at most 1 KiB each (docs/formats/native.md), under 16 MiB.
const MAX_ANSWER_FRAME_BYTES: usize = 32 << 20;

/// A batch sent and not yet answered.
struct InFlight {
    due: Instant,
    records: u64,
    bytes: u64,
    /// Its share of the window and of the batch limit, released with the answer.
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

/// Builds batches in the layout the connection uses.
enum Builder {
    Table(PutBatchBuilder),
    Packed(PackedBatchBuilder),
}

impl Builder {
    /// The builder for `wanted` (`None`: the best the server speaks).
    ///
    /// # Errors
    /// PackedBatch was asked for and the server speaks an older protocol version.
    fn new(wanted: Option<NativeLayout>, protocol_version: u16) -> anyhow::Result<Builder> {
        let packed_ok = protocol_version >= PACKED_PROTOCOL_VERSION;
        Ok(match wanted {
            Some(NativeLayout::Table) => Builder::Table(PutBatchBuilder::new()),
            None if !packed_ok => Builder::Table(PutBatchBuilder::new()),
            Some(NativeLayout::Packed) | None => {
                if !packed_ok {
                    bail!(
                        "the server speaks native protocol version {protocol_version}, PackedBatch needs {PACKED_PROTOCOL_VERSION}"
                    );
                }
                Builder::Packed(PackedBatchBuilder::new())
            }
        })
    }

    fn push(&mut self, partition_key: &str, data: &[u8]) {
        match self {
            Builder::Table(b) => b.push(partition_key, None, data),
            Builder::Packed(b) => b.push(partition_key, None, data),
        }
    }

    fn finish(&mut self, id: RequestId, stream: &str) -> Vec<u8> {
        match self {
            Builder::Table(b) => b.finish(id, stream),
            Builder::Packed(b) => b.finish(id, stream),
        }
    }
}

/// The next frame from `rd`, or `None` when it ends between frames.
pub(super) async fn read_frame<R: AsyncRead + Unpin>(
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

/// What the server's HelloAck settled for the connection.
pub(super) struct Negotiated {
    pub protocol_version: u16,
    pub max_frame_bytes: u32,
    pub window_bytes: u32,
    pub max_batch_records: u32,
}

/// Connects, sends Hello and reads the server's HelloAck. The buffer (of `capacity` bytes)
/// holds whatever arrived after the HelloAck, for the caller's next [`read_frame`].
///
/// # Errors
/// The connection failed, or the server answered with something other than a HelloAck.
pub(super) async fn connect(
    addr: SocketAddr,
    capacity: usize,
) -> anyhow::Result<(TcpStream, BytesMut, Negotiated)> {
    let mut socket = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    socket.set_nodelay(true)?;
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        client: concat!("shardline-bench/", env!("CARGO_PKG_VERSION")),
    };
    socket.write_all(&hello.encode()).await?;
    let mut buf = BytesMut::with_capacity(capacity);
    let ack = read_frame(
        &mut socket,
        &mut buf,
        &FrameDecoder::new(HELLO_ACK_MAX_BYTES),
    )
    .await?
    .context("the server closed before HelloAck")?;
    if ack.frame_type != FrameType::HelloAck {
        bail!("expected HelloAck, got a {} frame", ack.frame_type);
    }
    let ack = HelloAck::decode(&ack.payload)?;
    let negotiated = Negotiated {
        protocol_version: ack.protocol_version,
        max_frame_bytes: ack.max_frame_bytes,
        window_bytes: ack.window_bytes,
        max_batch_records: ack.max_batch_records,
    };
    Ok((socket, buf, negotiated))
}

/// Runs one producer connection until its schedule ends and every batch is answered.
///
/// # Errors
/// The connection failed or the server closed it with a connection-level error.
pub async fn produce(
    addr: SocketAddr,
    plan: ProducerPlan,
    stats: Arc<Stats>,
) -> anyhow::Result<()> {
    let (socket, mut buf, ack) = connect(addr, 1 << 20).await?;
    let window = ack.window_bytes as usize;
    let max_frame = ack.max_frame_bytes as usize;
    if plan.batch_records > ack.max_batch_records as usize {
        bail!(
            "--batch-size {} is above the server's {} records per batch",
            plan.batch_records,
            ack.max_batch_records
        );
    }
    let mut builder = Builder::new(plan.native_layout, ack.protocol_version)?;
    let decoder = FrameDecoder::new(MAX_ANSWER_FRAME_BYTES);
    let (mut rd, mut wr) = socket.into_split();
    let window_left = Arc::new(Semaphore::new(window));
    let batches_left = Arc::new(Semaphore::new(plan.in_flight));
    let pending: Arc<Mutex<HashMap<u64, InFlight>>> = Arc::default();

    let mut writer = {
        let (pending, window_left, batches_left) =
            (pending.clone(), window_left.clone(), batches_left.clone());
        tokio::spawn(async move {
            let mut maker = plan.record_maker();
            let mut schedule = plan.schedule();
            let mut data = Vec::new();
            let mut id = 0u64;
            let mut next_stream = plan.index;
            while let Some((due, due_wall_ns)) = schedule.next().await {
                let batch_permit = batches_left
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("invariant: the semaphore is never closed");
                let mut bytes = 0u64;
                for _ in 0..plan.batch_records {
                    maker.data(due_wall_ns, &mut data);
                    bytes += data.len() as u64;
                    builder.push(maker.key(), &data);
                }
                id += 1;
                let stream = &plan.streams[next_stream % plan.streams.len()];
                next_stream += 1;
                let frame = builder.finish(RequestId(id), stream);
                if frame.len() > max_frame {
                    bail!(
                        "a batch of {} records is {} bytes, above the server's {max_frame}-byte frames",
                        plan.batch_records,
                        frame.len()
                    );
                }
                let window_permit = window_left
                    .clone()
                    .acquire_many_owned(frame.len().min(window) as u32)
                    .await
                    .expect("invariant: the semaphore is never closed");
                pending.lock().insert(
                    id,
                    InFlight {
                        due,
                        records: plan.batch_records as u64,
                        bytes,
                        _permits: (window_permit, batch_permit),
                    },
                );
                wr.write_all(&frame).await?;
            }
            wr.shutdown().await?;
            anyhow::Ok(id)
        })
    };

    let mut answered = 0u64;
    let mut sent = None;
    loop {
        if sent == Some(answered) {
            return Ok(());
        }
        let frame = tokio::select! {
            n = &mut writer, if sent.is_none() => { sent = Some(n??); continue; }
            f = read_frame(&mut rd, &mut buf, &decoder) => f?,
        };
        let Some(frame) = frame else {
            // The server closes once it has answered every batch after the writer's
            // shutdown, which can reach this loop before the writer's end does.
            if sent.is_none() && pending.lock().is_empty() {
                sent = Some((&mut writer).await??);
                continue;
            }
            bail!(
                "the server closed the connection with {} batches unanswered",
                pending.lock().len()
            );
        };
        match frame.frame_type {
            FrameType::PutResult => {
                let result = PutResultView::parse(&frame.payload)?;
                let batch = pending.lock().remove(&result.request_id().0);
                let Some(batch) = batch else {
                    bail!("a PutResult for unknown request {}", result.request_id().0);
                };
                let latency = batch.due.elapsed().as_nanos() as u64;
                let failed = result.failed_count() as u64;
                if failed > 0 {
                    for outcome in result.outcomes() {
                        if let RecordOutcome::Failed { code, .. } = outcome {
                            stats.error(&code_name(code), 1);
                        }
                    }
                }
                let ok = batch.records.saturating_sub(failed);
                let ok_bytes = batch.bytes * ok / batch.records.max(1);
                stats.produced(ok, ok_bytes, latency);
                answered += 1;
            }
            FrameType::Error => {
                let e = ErrorFrame::decode(&frame.payload)?;
                if e.request_id == RequestId::CONNECTION {
                    bail!(
                        "the server closed the connection: {}: {}",
                        code_name(e.code),
                        e.message
                    );
                }
                let batch = pending.lock().remove(&e.request_id.0);
                stats.error(&code_name(e.code), batch.map_or(1, |b| b.records));
                answered += 1;
            }
            other => bail!("unexpected {other} frame from the server"),
        }
    }
}
