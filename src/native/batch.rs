//! One PutBatch or PackedBatch: validation, the engine put, and its PutResult or Error
//! frame. The two frames carry the same request in two layouts and are served alike.
//!
//! # Ordering
//!
//! [`start`] polls the batch's future once, in the reader, before reading the next frame.
//! Everything up to the engine's submission is synchronous (the stream lookup, validation,
//! `--emulate-limits` admission, and `Stream::put_records_async` queueing the records on
//! their shards before its first await), so that first poll hands the records to the shards
//! in arrival order. Only waiting for durability happens in a spawned task, so batches
//! complete out of order while being appended in order.
//!
//! # Errors
//!
//! A payload that is not a valid batch, or request id 0, is connection-level ([`Fatal`]), found
//! on that first poll. After it, failures are the batch's (an Error frame with its request
//! id: unknown stream, bad record count) or a record's (in the PutResult).

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use shardline_engine::hashkey::HashKey;
use shardline_engine::{PutRecord, PutResult, ShardId};
use shardline_protocol::frame::RequestId;
use shardline_protocol::{
    ErrorCode, ErrorFrame, ExplicitHashKey, PackedBatchView, PutBatchView, PutResultBuilder,
    RecordView, SequenceParts,
};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::connection::{Fatal, Outgoing};
use super::NativeConfig;
use crate::api::actions::common::require_readable;
use crate::api::error::ApiError;
use crate::api::{limits, Api};

/// A batch's payload layout, from its frame type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// PutBatch: a flatbuffer with a table per record.
    Table,
    /// PackedBatch: records back to back (protocol version 3).
    Packed,
}

/// A checked batch of either layout.
enum Batch<'a> {
    Table(PutBatchView<'a>),
    Packed(PackedBatchView<'a>),
}

impl<'a> Batch<'a> {
    fn parse(layout: Layout, payload: &'a [u8]) -> Result<Batch<'a>, Fatal> {
        Ok(match layout {
            Layout::Table => Batch::Table(PutBatchView::parse(payload)?),
            Layout::Packed => Batch::Packed(PackedBatchView::parse(payload)?),
        })
    }

    fn request_id(&self) -> RequestId {
        match self {
            Batch::Table(b) => b.request_id(),
            Batch::Packed(b) => b.request_id(),
        }
    }

    fn stream_name(&self) -> &'a str {
        match self {
            Batch::Table(b) => b.stream_name(),
            Batch::Packed(b) => b.stream_name(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Batch::Table(b) => b.len(),
            Batch::Packed(b) => b.len(),
        }
    }

    /// The records for the engine, in batch order, and the positions of those refused
    /// before it (a bad explicit hash key) with their errors.
    fn records(&self) -> (Vec<PutRecord<'a>>, Vec<(usize, ApiError)>) {
        let mut records = Vec::with_capacity(self.len());
        let mut rejected: Vec<(usize, ApiError)> = Vec::new();
        match self {
            Batch::Table(b) => {
                for r in b.records() {
                    match explicit_hash_key(&r) {
                        Ok(explicit_hash_key) => records.push(PutRecord {
                            partition_key: r.partition_key(),
                            explicit_hash_key,
                            data: r.data(),
                        }),
                        Err(e) => rejected.push((r.index(), e)),
                    }
                }
            }
            Batch::Packed(b) => records.extend(b.records().map(|r| PutRecord {
                partition_key: r.partition_key,
                explicit_hash_key: r.hash_key.map(HashKey),
                data: r.data,
            })),
        }
        (records, rejected)
    }
}

/// Starts a batch: submits its records in arrival order and spawns the wait for them. Its
/// answer goes to `tx` with `permit`, which returns the frame's window share once written.
///
/// # Errors
/// [`Fatal`] if the payload is not a valid batch of `layout` or uses request id 0.
pub fn start(
    api: &Arc<Api>,
    config: &NativeConfig,
    layout: Layout,
    payload: Bytes,
    permit: OwnedSemaphorePermit,
    tx: mpsc::UnboundedSender<Outgoing>,
) -> Result<(), Fatal> {
    let mut fut = Box::pin(run(
        api.clone(),
        config.max_batch_records,
        layout,
        payload,
        permit,
        tx,
    ));
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(done) => done,
        Poll::Pending => {
            // The spawned task polls again with a real waker, which replaces the no-op one.
            tokio::spawn(fut);
            Ok(())
        }
    }
}

/// The whole life of a batch. Returns `Err` only before its first await (see the module
/// docs); afterwards every outcome is a frame sent to `tx`.
async fn run(
    api: Arc<Api>,
    max_batch_records: usize,
    layout: Layout,
    payload: Bytes,
    permit: OwnedSemaphorePermit,
    tx: mpsc::UnboundedSender<Outgoing>,
) -> Result<(), Fatal> {
    let batch = Batch::parse(layout, &payload)?;
    let id = batch.request_id();
    if id == RequestId::CONNECTION {
        return Err(Fatal::new(
            ErrorCode::ProtocolViolation,
            "request id 0 is reserved for connection-level errors",
        ));
    }
    let frame = match put(&api, max_batch_records, &batch).await {
        Ok(frame) => frame,
        Err(e) => {
            let (code, message) = wire_error(&e);
            ErrorFrame {
                request_id: id,
                code,
                message: &message,
            }
            .encode()
        }
    };
    // A failed send means the connection is gone; dropping the frame returns the permit.
    let _ = tx.send(Outgoing {
        frame,
        chunks: Vec::new(),
        permit: Some(permit),
    });
    Ok(())
}

/// Puts the batch's records and renders their PutResult.
async fn put(api: &Api, max_batch_records: usize, batch: &Batch<'_>) -> Result<Vec<u8>, ApiError> {
    let stream = api
        .engine
        .stream(batch.stream_name())
        .map_err(|e| api.engine_error(e))?;
    let meta = stream.meta();
    require_readable(api, &meta)?;
    if batch.len() == 0 || batch.len() > max_batch_records {
        return Err(ApiError::InvalidArgument(format!(
            "a batch carries 1 to {max_batch_records} records, not {}",
            batch.len()
        )));
    }
    // Records the codec or the hash key syntax rejects never reach the engine; the engine
    // checks the partition key's length and the record's size itself.
    let (records, rejected) = batch.records();
    let results = limits::put_records(api, &stream, &meta, &records).await;
    count_incoming(api, &meta.name, &records, &results);
    let mut out = PutResultBuilder::with_capacity(batch.len());
    let mut results = results.iter();
    let mut rejected = rejected.iter().peekable();
    for i in 0..batch.len() {
        let outcome = match rejected.next_if(|(at, _)| *at == i) {
            Some((_, e)) => Err(e),
            None => match results.next() {
                Some(Ok(r)) => Ok(r),
                Some(Err(e)) => Err(e),
                None => Err(&MISSING),
            },
        };
        match outcome {
            Ok(r) => out.push_written(SequenceParts::from(r.sequence_number)),
            Err(e) => {
                let (code, message) = wire_error(e);
                out.push_failed(code, &message);
            }
        }
    }
    Ok(out.finish(batch.request_id()))
}

/// Stands in for a result the engine did not return (it returns one per record).
static MISSING: ApiError = ApiError::Internal(String::new());

fn explicit_hash_key(r: &RecordView<'_>) -> Result<Option<HashKey>, ApiError> {
    let key = r
        .explicit_hash_key()
        .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
    match key {
        None => Ok(None),
        Some(ExplicitHashKey::Binary(v)) => Ok(Some(HashKey(v))),
        Some(ExplicitHashKey::Decimal(s)) => HashKey::parse(s)
            .map(Some)
            .map_err(|e| ApiError::InvalidArgument(e.to_string())),
    }
}

/// Adds the written records to their shards' IncomingRecords and IncomingBytes series.
fn count_incoming(
    api: &Api,
    stream: &str,
    records: &[PutRecord<'_>],
    results: &[Result<PutResult, ApiError>],
) {
    // (shard, records, bytes); a batch spans few shards, so a linear scan beats a map.
    let mut per_shard: Vec<(ShardId, u64, u64)> = Vec::new();
    for (rec, result) in records.iter().zip(results) {
        let Ok(r) = result else { continue };
        let bytes = (rec.partition_key.len() + rec.data.len()) as u64;
        match per_shard.iter_mut().find(|(id, ..)| *id == r.shard) {
            Some((_, n, b)) => {
                *n += 1;
                *b += bytes;
            }
            None => per_shard.push((r.shard, 1, bytes)),
        }
    }
    for (id, n, bytes) in per_shard {
        let s = api.metrics.shard(stream, id);
        s.incoming_records.inc_by(n);
        s.incoming_bytes.inc_by(bytes);
    }
}

/// The wire code and message of an API error. Internal failures keep their detail out of
/// the message, as the HTTP API does.
pub(super) fn wire_error(e: &ApiError) -> (ErrorCode, String) {
    let code = match e {
        ApiError::ResourceNotFound(_) => ErrorCode::ResourceNotFound,
        ApiError::ProvisionedThroughputExceeded(_) => ErrorCode::ProvisionedThroughputExceeded,
        ApiError::Internal(detail) => {
            if !detail.is_empty() {
                tracing::warn!("native put failed: {detail}");
            }
            return (
                ErrorCode::InternalFailure,
                "Internal Service Failure".into(),
            );
        }
        ApiError::Validation(_)
        | ApiError::ValidationMessage(_)
        | ApiError::Serialization(_)
        | ApiError::InvalidArgument(_)
        | ApiError::ResourceInUse(_)
        | ApiError::LimitExceeded(_)
        | ApiError::ExpiredIterator(_)
        | ApiError::ExpiredNextToken(_)
        | ApiError::UnknownOperation
        | ApiError::AccessDenied(_)
        | ApiError::MissingAuthenticationToken
        | ApiError::UnrecognizedClient(_)
        | ApiError::InvalidSignature(_)
        | ApiError::IncompleteSignature(_)
        | ApiError::ConditionalCheckFailed(_) => ErrorCode::InvalidArgument,
    };
    let message = e.message().map(|(_, m)| m).unwrap_or_default();
    (code, message)
}
