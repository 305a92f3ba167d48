//! Replay over the native protocol's Read frames (`docs/formats/native.md`, "Reading"):
//! one connection per replay task, one Read in flight per shard of the task, each shard
//! read from TRIM_HORIZON with the largest reads allowed until it is caught up (an empty
//! answer with nothing behind) or ended.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use shardline_engine::ShardId;
use shardline_protocol::error_frame::{code_name, is_retryable};
use shardline_protocol::frame::{FrameType, RequestId, READ_PROTOCOL_VERSION};
use shardline_protocol::read::{MAX_READ_BYTES, MAX_READ_RECORDS};
use shardline_protocol::records::MAX_RECORDS_FRAME_BYTES;
use shardline_protocol::{ErrorFrame, FrameDecoder, Read, ReadPosition, RecordsView};
use tokio::io::AsyncWriteExt;

use super::super::stats::Stats;
use super::native::{connect, read_frame};

/// Pause before a Read that failed with a retryable code is sent again.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// One shard being replayed.
struct Cursor {
    stream: String,
    shard: u32,
    position: ReadPosition,
    sent: Instant,
}

/// Replays `shards` (stream name, shard id) over one connection until each is caught up or
/// `deadline` passes.
///
/// # Errors
/// The connection failed, the server does not speak Read frames, or a shard id does not
/// parse.
pub async fn replay(
    addr: SocketAddr,
    shards: Vec<(String, String)>,
    stats: Arc<Stats>,
    deadline: Instant,
) -> anyhow::Result<()> {
    let (mut socket, mut buf, ack) = connect(addr, 4 << 20).await?;
    if ack.protocol_version < READ_PROTOCOL_VERSION {
        bail!(
            "the server speaks native protocol version {}, reads need {READ_PROTOCOL_VERSION}",
            ack.protocol_version
        );
    }
    let decoder = FrameDecoder::new(MAX_RECORDS_FRAME_BYTES);
    let mut pending: HashMap<u64, Cursor> = HashMap::new();
    let mut next_id = 0u64;
    for (stream, shard_id) in shards {
        let shard = ShardId::parse(&shard_id)
            .with_context(|| format!("shard id {shard_id}"))?
            .0;
        next_id += 1;
        let cursor = Cursor {
            stream,
            shard,
            position: ReadPosition::TrimHorizon,
            sent: Instant::now(),
        };
        socket.write_all(&read_frame_for(next_id, &cursor)).await?;
        pending.insert(next_id, cursor);
    }
    while !pending.is_empty() && Instant::now() < deadline {
        let Some(frame) = read_frame(&mut socket, &mut buf, &decoder).await? else {
            bail!(
                "the server closed the connection with {} reads unanswered",
                pending.len()
            );
        };
        match frame.frame_type {
            FrameType::Records => {
                let view = RecordsView::parse(&frame.payload)?;
                let Some(mut cursor) = pending.remove(&view.request_id().0) else {
                    bail!("Records for unknown request {}", view.request_id().0);
                };
                let call_ns = cursor.sent.elapsed().as_nanos() as u64;
                let bytes: u64 = view.records().map(|r| r.data.len() as u64).sum();
                stats.consumed(view.len() as u64, bytes, Some(call_ns));
                let caught_up = view.is_empty() && view.millis_behind_latest() == 0;
                if caught_up || view.end_of_shard() {
                    continue;
                }
                cursor.position = ReadPosition::Continue {
                    epoch_secs: view.epoch_secs(),
                    counter: view.next_counter(),
                };
                cursor.sent = Instant::now();
                next_id += 1;
                socket.write_all(&read_frame_for(next_id, &cursor)).await?;
                pending.insert(next_id, cursor);
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
                stats.error(&code_name(e.code), 1);
                let cursor = pending.remove(&e.request_id.0);
                // Throttling and internal failures are retried after a pause (which holds
                // up this connection's other shards too); other errors end the shard's
                // replay.
                if let Some(mut cursor) = cursor.filter(|_| is_retryable(e.code)) {
                    tokio::time::sleep(RETRY_PAUSE).await;
                    cursor.sent = Instant::now();
                    next_id += 1;
                    socket.write_all(&read_frame_for(next_id, &cursor)).await?;
                    pending.insert(next_id, cursor);
                }
            }
            other => bail!("unexpected {other} frame from the server"),
        }
    }
    Ok(())
}

fn read_frame_for(id: u64, cursor: &Cursor) -> Vec<u8> {
    Read {
        request_id: RequestId(id),
        stream_name: &cursor.stream,
        shard: cursor.shard,
        position: Ok(cursor.position),
        max_records: MAX_READ_RECORDS,
        max_bytes: MAX_READ_BYTES,
    }
    .encode()
}
