//! The one seam between the producer and the wire: put a batch of entries, list the shards.
//!
//! Two implementations: [`super::http::HttpTransport`] (PutRecords, so the same producer
//! drives AWS) and [`super::native::NativeTransport`] (Shardline's native protocol).

use std::future::Future;
use std::pin::Pin;

use crate::error::Error;

/// A boxed future, so that the trait can be used as `dyn Transport`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One Kinesis record to put: a user record, or a KPL aggregate of several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutEntry {
    pub partition_key: String,
    /// Decimal, below 2^128.
    pub explicit_hash_key: Option<String>,
    /// The hash key that routes the entry: the explicit hash key's value, else the
    /// partition key's MD5. The native transport sends it so the server need not hash; the
    /// HTTP transport sends only what PutRecords takes.
    pub hash_key: u128,
    pub data: Vec<u8>,
}

impl PutEntry {
    /// Bytes the entry counts for in batch limits: partition key plus data (and the hash key,
    /// which the request carries too).
    pub fn size_bytes(&self) -> usize {
        self.partition_key.len()
            + self.data.len()
            + self.explicit_hash_key.as_ref().map_or(0, String::len)
    }
}

/// What became of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryOutcome {
    Written {
        shard_id: String,
        /// The 56-digit decimal sequence number.
        sequence_number: String,
    },
    Failed(RecordFailure),
}

/// Why an entry (or a whole batch) was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    /// The error's name: PutRecords' `ErrorCode`, the native protocol's error code name, or
    /// a transport error's description.
    pub code: String,
    pub message: String,
    /// Whether sending it again may succeed: throttling, server faults, lost connections.
    pub retryable: bool,
}

impl RecordFailure {
    /// A failure from a call error, retryable when the error is.
    pub fn from_error(e: &Error) -> RecordFailure {
        RecordFailure {
            code: e.kind().unwrap_or("TransportError").to_owned(),
            message: e.to_string(),
            retryable: e.is_retryable(),
        }
    }
}

/// An open shard's hash key range, inclusive at both ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRange {
    pub shard_id: String,
    pub starting_hash_key: u128,
    pub ending_hash_key: u128,
}

/// A way to put records.
pub trait Transport: Send + Sync {
    /// Puts `entries` in one call; one outcome per entry, in order. `Err` when the call as a
    /// whole failed (nothing is known of any entry), with its retryability.
    fn put<'a>(
        &'a self,
        stream: &'a str,
        entries: &'a [PutEntry],
    ) -> BoxFuture<'a, Result<Vec<EntryOutcome>, RecordFailure>>;

    /// The stream's open shards (the producer's shard map).
    fn list_shards<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Vec<ShardRange>, Error>>;

    /// Most entries one [`put`](Transport::put) takes.
    fn max_batch_records(&self) -> usize;

    /// Most bytes (keys and data) one [`put`](Transport::put) takes.
    fn max_batch_bytes(&self) -> usize;
}
