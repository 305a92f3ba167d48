//! A producer in the spirit of the Kinesis Producer Library: user records submitted one at a
//! time are batched per shard by size and linger time, optionally KPL-aggregated
//! ([`crate::kpl`]), put over a [`Transport`] (the Kinesis HTTP API or Shardline's native
//! protocol), retried with backoff, and resolved through one future per record.
//!
//! # Operations
//!
//! - [`Producer::put`] validates a record, waits for room under
//!   `max_outstanding_records`, and returns a [`RecordFuture`] resolving to a [`Receipt`]
//!   (shard id, sequence number, and the sub-sequence number inside an aggregate) once the
//!   record is durable, or to the error it finally failed with.
//! - [`Producer::flush`] sends everything queued at once and waits until every record put
//!   before it is resolved; [`Producer::close`] flushes and stops the producer's task.
//!   Dropping the producer also sends and resolves what is queued, in the background.
//!
//! # Batching
//!
//! Records are grouped by shard using the shard map (ListShards' hash key ranges of the open
//! shards; the hash key is the explicit one, else MD5 of the partition key). A shard's queue
//! is sent when its bytes reach `max_batch_bytes`, its records reach `max_batch_records`
//! (without aggregation), its oldest record has waited `linger`, or a flush asks. With
//! aggregation, consecutive user records of a shard are packed into aggregates of at most
//! `aggregation_max_bytes`, whose explicit hash key is their first user record's, inside the
//! shard's range; a record too large to aggregate goes alone, and an aggregate of one user
//! record goes as that plain record.
//!
//! # Retries
//!
//! Retryable failures: throttling (`ProvisionedThroughputExceeded` for a PutRecords entry or
//! a native record), server faults (`InternalFailure`, HTTP 5xx), and transport failures
//! (connection refused or lost, timeouts, the native server's `ShuttingDown`). Their records
//! are sent again after an exponential backoff with jitter (`initial_backoff` doubled per
//! consecutive failure of the shard, capped at `max_backoff`), up to `max_attempts`. Other
//! failures resolve the record's future with [`Error::RecordFailed`] at once. A batch whose
//! answer was lost (the connection broke) may have been written: retrying it may write its
//! records twice, as with the KPL.
//!
//! # Order
//!
//! Records with one partition key are written in the order they were put, retries
//! included:
//! - each shard has one queue, first in first out, and at most one batch in flight; its next
//!   batch is sent only when the previous one is answered;
//! - records of an answered batch that must be retried return to the front of their queue,
//!   so a retry of record r holds back every later record of r's shard until r is durable
//!   (or has finally failed);
//! - within a batch a partition key appears in only one entry (one plain record, or one
//!   aggregate), so no later record of a key can be written in the same call as an earlier
//!   record of that key that failed;
//! - a refreshed shard map is applied only once no batch is in flight.
//!
//! Shards proceed independently, up to `max_in_flight` batches at once (pipelined on the
//! native connection). Order holds per producer: two producers sharing a key are not
//! ordered. A record that finally fails leaves a gap: later records of its key go on.

pub mod config;
pub mod http;
pub mod native;
pub mod shard_map;
pub mod transport;

mod batcher;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;

pub use config::ProducerConfig;
pub use http::HttpTransport;
pub use native::NativeTransport;
pub use shard_map::ShardMap;
pub use transport::{EntryOutcome, PutEntry, RecordFailure, ShardRange, Transport};

use crate::error::Error;
use crate::kpl::MAX_RECORD_BYTES;
use batcher::{hash_of, Batcher, Command, Pending};

/// Longest partition key, in Unicode characters (Kinesis API reference, PutRecords).
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// Where a user record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub shard_id: String,
    /// The Kinesis record's 56-digit sequence number (shared by an aggregate's user records).
    pub sequence_number: String,
    /// The user record's index in its aggregate; `None` when it went as a plain record.
    pub sub_sequence_number: Option<u64>,
}

/// Resolves to a record's [`Receipt`] once it is durable, or to its final error.
pub struct RecordFuture(oneshot::Receiver<Result<Receipt, Error>>);

impl Future for RecordFuture {
    type Output = Result<Receipt, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::ProducerClosed)))
    }
}

/// A producer for one stream. Cloning is not offered: share it behind an `Arc`.
pub struct Producer {
    commands: mpsc::UnboundedSender<Command>,
    room: Arc<Semaphore>,
    next_serial: std::sync::atomic::AtomicU64,
    task: JoinHandle<()>,
}

impl Producer {
    /// Lists the stream's shards over `transport` and starts the producer's task.
    ///
    /// # Errors
    /// ListShards' error (e.g. the stream does not exist), or [`Error::Config`] for
    /// unusable settings.
    pub async fn new(
        config: ProducerConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<Producer, Error> {
        if config.max_outstanding_records == 0 {
            return Err(Error::Config {
                detail: "max_outstanding_records must be at least 1".into(),
            });
        }
        let map = ShardMap::new(transport.list_shards(&config.stream).await?);
        let room = Arc::new(Semaphore::new(config.max_outstanding_records));
        let (commands, receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(Batcher::new(config, transport, map).run(receiver));
        Ok(Producer {
            commands,
            room,
            next_serial: std::sync::atomic::AtomicU64::new(1),
            task,
        })
    }

    /// Queues a user record; `explicit_hash_key` (decimal, below 2^128) routes it instead
    /// of the partition key's MD5. Waits while `max_outstanding_records` are unresolved.
    ///
    /// # Errors
    /// [`Error::InvalidRecord`]: a partition key of 0 or more than 256 characters, a
    /// malformed explicit hash key, or key plus data over 1 MiB.
    /// [`Error::ProducerClosed`]: the producer's task has ended.
    pub async fn put(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: Vec<u8>,
    ) -> Result<RecordFuture, Error> {
        validate(partition_key, explicit_hash_key, data.len())?;
        let permit = self
            .room
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::ProducerClosed)?;
        let (done, rx) = oneshot::channel();
        let pending = Pending {
            serial: self
                .next_serial
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            hash: hash_of(partition_key, explicit_hash_key),
            partition_key: partition_key.to_owned(),
            explicit_hash_key: explicit_hash_key.map(str::to_owned),
            data,
            done,
            _permit: permit,
            accepted: tokio::time::Instant::now(),
            attempts: 0,
        };
        self.commands
            .send(Command::Put(pending))
            .map_err(|_| Error::ProducerClosed)?;
        Ok(RecordFuture(rx))
    }

    /// Sends everything queued without waiting for linger and returns once every record put
    /// before the call is resolved (written or finally failed).
    ///
    /// # Errors
    /// [`Error::ProducerClosed`]: the producer's task has ended.
    pub async fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Flush(tx))
            .map_err(|_| Error::ProducerClosed)?;
        rx.await.map_err(|_| Error::ProducerClosed)
    }

    /// Flushes, then stops the producer's task.
    ///
    /// # Errors
    /// [`Error::ProducerClosed`]: the task had already ended abnormally.
    pub async fn close(self) -> Result<(), Error> {
        self.flush().await?;
        drop(self.commands);
        self.task.await.map_err(|_| Error::ProducerClosed)
    }
}

/// The checks PutRecords makes of a record, made before queueing it.
fn validate(
    partition_key: &str,
    explicit_hash_key: Option<&str>,
    data_len: usize,
) -> Result<(), Error> {
    let invalid = |detail: String| Err(Error::InvalidRecord { detail });
    let chars = partition_key.chars().count();
    if chars == 0 || chars > MAX_PARTITION_KEY_CHARS {
        return invalid(format!(
            "a partition key has 1 to {MAX_PARTITION_KEY_CHARS} characters, not {chars}"
        ));
    }
    if let Some(h) = explicit_hash_key {
        let canonical = h == "0" || (!h.starts_with('0') && h.bytes().all(|b| b.is_ascii_digit()));
        if !canonical || h.parse::<u128>().is_err() {
            return invalid(format!(
                "explicit hash key '{h}' is not a decimal integer below 2^128"
            ));
        }
    }
    if partition_key.len() + data_len > MAX_RECORD_BYTES {
        return invalid(format!(
            "partition key and data are {} bytes, over {MAX_RECORD_BYTES}",
            partition_key.len() + data_len
        ));
    }
    Ok(())
}
