//! One Read: the starting position, the engine read, and its Records or Error frame.
//!
//! # Zero copy
//!
//! `Shard::read_batches` returns whole CRC-checked batches shared with the segment map (or
//! the read buffer of the active segment). A batch's returned records are one contiguous
//! span in the segment format's record layout, which is also the Records frame's block
//! layout (`docs/formats/native.md`, "Records"), so the answer is a small prefix (frame
//! header, fixed part, run table) built here and the spans themselves, which the writer
//! sends with one vectored write. No record byte is copied in user space.
//!
//! # Flow control
//!
//! Before a Read runs, the connection's reader takes window permits for the largest answer
//! the Read allows ([`permits_for`]), so a client that asks faster than it reads stalls the
//! reader instead of growing the server's memory; the permits travel with the answer and
//! return once it is written.
//!
//! # Errors
//!
//! A payload that is not a Read, or request id 0, is connection-level ([`Fatal`]). An
//! unknown stream or shard (`ResourceNotFound`), limits out of range, an unknown position
//! kind or a sequence number the shard did not hand out (`InvalidArgument`) fail the one
//! request with an Error frame carrying its id.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use shardline_engine::seqno::ENDING_COUNTER;
use shardline_engine::{Offset, ShardId};
use shardline_protocol::frame::RequestId;
use shardline_protocol::read::{MAX_READ_BYTES, MAX_READ_RECORDS};
use shardline_protocol::records::answer_bound;
use shardline_protocol::{ErrorCode, ErrorFrame, Read, ReadPosition, RecordsBuilder, RecordsHead};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::batch::wire_error;
use super::connection::{Fatal, Outgoing};
use crate::api::actions::common::require_readable;
use crate::api::error::ApiError;
use crate::api::{limits, now_ms, Api};

/// A Read, owned so that it can move to a blocking thread.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    pub id: RequestId,
    pub stream_name: String,
    pub shard: u32,
    pub position: Result<ReadPosition, u8>,
    pub max_records: u32,
    pub max_bytes: u32,
}

/// Parses a Read payload.
///
/// # Errors
/// [`Fatal`] if the payload is malformed or uses request id 0.
pub fn parse(payload: &[u8]) -> Result<ReadRequest, Fatal> {
    let r = Read::decode(payload)?;
    if r.request_id == RequestId::CONNECTION {
        return Err(Fatal::new(
            ErrorCode::ProtocolViolation,
            "request id 0 is reserved for connection-level errors",
        ));
    }
    Ok(ReadRequest {
        id: r.request_id,
        stream_name: r.stream_name.to_owned(),
        shard: r.shard,
        position: r.position,
        max_records: r.max_records,
        max_bytes: r.max_bytes,
    })
}

/// Window permits the Read's answer takes: its largest answer, at most the whole window
/// (a single record larger than the window is still sent, as its own answer).
pub fn permits_for(req: &ReadRequest, window_bytes: usize) -> u32 {
    let bound = answer_bound(req.max_records.max(1), req.max_bytes.max(1));
    u32::try_from(bound.min(window_bytes)).unwrap_or(u32::MAX)
}

/// Runs the Read on a blocking thread and sends its answer to `tx` with `permit`.
pub fn start(
    api: &Arc<Api>,
    req: ReadRequest,
    permit: OwnedSemaphorePermit,
    tx: mpsc::UnboundedSender<Outgoing>,
) {
    let api = api.clone();
    tokio::spawn(async move {
        let id = req.id;
        let answer = tokio::task::spawn_blocking(move || execute(&api, &req))
            .await
            .unwrap_or_else(|e| Err(ApiError::Internal(format!("read task failed: {e}"))));
        let outgoing = match answer {
            Ok((frame, chunks)) => Outgoing {
                frame,
                chunks,
                permit: Some(permit),
            },
            Err(e) => {
                let (code, message) = wire_error(&e);
                Outgoing {
                    frame: ErrorFrame {
                        request_id: id,
                        code,
                        message: &message,
                    }
                    .encode(),
                    chunks: Vec::new(),
                    permit: Some(permit),
                }
            }
        };
        // A failed send means the connection is gone; dropping the answer returns the permit.
        let _ = tx.send(outgoing);
    });
}

fn invalid(message: String) -> ApiError {
    ApiError::InvalidArgument(message)
}

/// The Read against the engine: the Records frame's prefix and the record spans to send
/// after it.
fn execute(api: &Api, req: &ReadRequest) -> Result<(Vec<u8>, Vec<Bytes>), ApiError> {
    let started = Instant::now();
    if !(1..=MAX_READ_RECORDS).contains(&req.max_records) {
        return Err(invalid(format!(
            "max_records must be 1 to {MAX_READ_RECORDS}, not {}",
            req.max_records
        )));
    }
    if !(1..=MAX_READ_BYTES).contains(&req.max_bytes) {
        return Err(invalid(format!(
            "max_bytes must be 1 to {MAX_READ_BYTES}, not {}",
            req.max_bytes
        )));
    }
    let position = req
        .position
        .map_err(|kind| invalid(format!("unknown starting position kind {kind}")))?;
    let stream = api
        .engine
        .stream(&req.stream_name)
        .map_err(|e| api.engine_error(e))?;
    let meta = stream.meta();
    require_readable(api, &meta)?;
    let id = ShardId(req.shard);
    let not_found = || {
        ApiError::ResourceNotFound(format!(
            "Shard {id} in stream {} does not exist",
            req.stream_name
        ))
    };
    let sm = meta
        .shards
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(not_found)?;
    let shard = stream.shard(id).ok_or_else(not_found)?;
    let tip = sm.end_offset.unwrap_or_else(|| shard.next_offset().0);
    let check_epoch = |epoch_secs: u64| {
        if epoch_secs == sm.seq_epoch_secs {
            Ok(())
        } else {
            Err(invalid(format!(
                "sequence epoch {epoch_secs} is not shard {id}'s ({}): the number did not come from this stream",
                sm.seq_epoch_secs
            )))
        }
    };
    let from = match position {
        ReadPosition::TrimHorizon => shard.trim_offset().0,
        ReadPosition::Latest => tip,
        ReadPosition::AtTimestamp { timestamp_ms } => {
            let now = now_ms();
            if timestamp_ms > now {
                return Err(invalid(format!(
                    "timestamp {timestamp_ms} is after the current time {now}"
                )));
            }
            shard
                .offset_at_time(timestamp_ms)
                .map_err(|e| api.engine_error(e))?
                .0
        }
        ReadPosition::AtSequenceNumber {
            epoch_secs,
            counter,
        }
        | ReadPosition::AfterSequenceNumber {
            epoch_secs,
            counter,
        } => {
            check_epoch(epoch_secs)?;
            let after = matches!(position, ReadPosition::AfterSequenceNumber { .. });
            if counter == ENDING_COUNTER {
                tip
            } else if counter > 0 && counter >= shard.next_offset().0 {
                // A number the shard never handed out would skip whatever is written up to it.
                return Err(invalid(format!(
                    "sequence number counter {counter} is beyond shard {id}'s last record"
                )));
            } else if after {
                counter + 1
            } else {
                counter
            }
        }
        ReadPosition::Continue {
            epoch_secs,
            counter,
        } => {
            check_epoch(epoch_secs)?;
            if counter > tip {
                return Err(invalid(format!(
                    "continuation counter {counter} is beyond shard {id}'s tip {tip}"
                )));
            }
            counter
        }
    };
    let limiter = limits::admit_read(api, &req.stream_name, id)?;
    let out = shard
        .read_batches(
            Offset(from),
            req.max_records as usize,
            req.max_bytes as usize,
        )
        .map_err(|e| api.engine_error(e))?;
    if let Some(l) = limiter {
        l.charge_read(out.bytes, Instant::now());
    }
    let behind = match out.batches.last().and_then(|b| b.records().last()) {
        Some(r) if out.next.0 < shard.next_offset().0 => now_ms().saturating_sub(r.timestamp_ms),
        _ => 0,
    };
    api.metrics.record_get(
        &req.stream_name,
        id,
        started,
        out.record_count,
        out.bytes,
        behind,
    );
    let end_of_shard = sm.end_offset.is_some_and(|end| out.next.0 >= end);
    let child_shards = if end_of_shard {
        meta.shards
            .iter()
            .filter(|c| c.parent == Some(id) || c.adjacent_parent == Some(id))
            .map(|c| c.id.0)
            .collect()
    } else {
        Vec::new()
    };
    let mut builder = RecordsBuilder::new(RecordsHead {
        request_id: req.id,
        shard: req.shard,
        epoch_secs: sm.seq_epoch_secs,
        next_counter: out.next.0,
        millis_behind_latest: behind,
        end_of_shard,
        child_shards,
    });
    let mut chunks = Vec::with_capacity(out.batches.len());
    for b in &out.batches {
        let (first, base_ts, bytes) = b.record_span();
        // A batch is at most 256 MiB and holds at most u32::MAX records (the segment format).
        builder.push_run(first.0, base_ts, b.len() as u32, bytes.len() as u32);
        chunks.push(bytes);
    }
    Ok((builder.finish(), chunks))
}
