//! The engine's one error type.
//!
//! Variants carry the evidence a person needs (file, byte offset, expected and actual
//! values). The engine knows no AWS error names: the API layer maps these to Kinesis
//! errors in one exhaustive `match`.

use std::path::PathBuf;

use crate::ids::{SegmentId, ShardId};

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error, with the operation and file it happened on.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Another process holds the data directory.
    #[error("data directory {path} is in use by {holder} (lock file {lock} is held); stop that process or choose another --data-dir")]
    Locked {
        path: PathBuf,
        lock: PathBuf,
        /// Who holds it, as far as the lock file says (`process 1234`).
        holder: String,
    },

    /// A batch in the middle of a log (not a torn tail) fails its checksum or framing.
    #[error("corrupt log: {reason} in segment {path} at byte {offset} (shard {shard}). Restore the file, or reopen with recovery mode `skip-corrupt` (which verifies every segment) to drop the damaged bytes")]
    Corrupt {
        shard: ShardId,
        segment: SegmentId,
        path: PathBuf,
        offset: u64,
        reason: String,
    },

    /// A file that is not ours or of a format version we do not read.
    #[error("{path}: {reason}")]
    BadFormat { path: PathBuf, reason: String },

    /// A previous write or fsync on this shard failed; the shard refuses writes until reopened.
    #[error("shard {shard} refuses writes after an earlier I/O failure ({cause}); reopen the engine to recover")]
    Poisoned { shard: ShardId, cause: String },

    /// A record or request broke a size or shape limit.
    #[error("{0}")]
    InvalidInput(String),

    /// A sequence number that does not parse or does not belong where it is used.
    #[error("invalid sequence number {value}: {reason}")]
    InvalidSequenceNumber { value: String, reason: String },

    /// Named stream does not exist.
    #[error("stream {0} not found")]
    StreamNotFound(String),

    /// Stream already exists.
    #[error("stream {0} already exists")]
    StreamExists(String),

    /// Named shard does not exist in the stream.
    #[error("shard {shard} not found in stream {stream}")]
    ShardNotFound { stream: String, shard: String },

    /// The shard is closed (split or merged) and takes no writes or further resharding.
    #[error("shard {shard} in stream {stream} is closed")]
    ShardClosed { stream: String, shard: ShardId },

    /// A resharding request that is not allowed by the shard layout.
    #[error("{0}")]
    InvalidReshard(String),

    /// The engine is shutting down.
    #[error("the engine is shutting down")]
    ShuttingDown,

    /// No lease table exists for the application.
    #[error("lease table of application {application} not found")]
    LeaseTableNotFound { application: String },

    /// The application's lease table has no lease for the shard.
    #[error("lease {lease} of application {application} not found")]
    LeaseNotFound { application: String, lease: String },

    /// A conditional lease update found another owner or counter than the caller expected.
    /// `expected_owner` is `None` for a take, which only checks the counter.
    #[error("{}", lease_condition_message(application, *lease, held_by.as_deref(), *counter, expected_owner.as_deref(), *expected_counter))]
    LeaseConditionFailed {
        application: String,
        lease: ShardId,
        /// The stored owner (`None` = unowned).
        held_by: Option<String>,
        /// The stored counter.
        counter: u64,
        expected_owner: Option<String>,
        expected_counter: u64,
    },

    /// The lease table is bound to another stream than the one named.
    #[error("lease table of application {application} belongs to stream {bound}, not {given}")]
    LeaseStreamMismatch {
        application: String,
        bound: String,
        given: String,
    },

    /// The stream the lease table was created for has been deleted (a stream of the same
    /// name may exist again, but its shards are not the ones the leases name).
    #[error("stream {stream} that the lease table of application {application} was created for no longer exists (deleted, or deleted and created again); delete the lease table and sync again")]
    LeaseStreamGone { application: String, stream: String },
}

/// The text of [`Error::LeaseConditionFailed`], e.g. `Lease shardId-000000000001 of
/// application app1 is held by worker-2 at counter 8, not by worker-1 at counter 7`.
fn lease_condition_message(
    application: &str,
    lease: ShardId,
    held_by: Option<&str>,
    counter: u64,
    expected_owner: Option<&str>,
    expected_counter: u64,
) -> String {
    let held = match held_by {
        Some(o) => format!("held by {o}"),
        None => "unowned".to_string(),
    };
    let wanted = match expected_owner {
        Some(o) => format!("by {o} at counter {expected_counter}"),
        None => format!("at counter {expected_counter}"),
    };
    format!(
        "Lease {lease} of application {application} is {held} at counter {counter}, not {wanted}"
    )
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A copy of this error for another waiter of the same failed operation (`std::io::Error`
    /// is not `Clone`; its kind and text are kept).
    pub fn duplicate(&self) -> Error {
        match self {
            Error::Io { op, path, source } => Error::Io {
                op,
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::Locked { path, lock, holder } => Error::Locked {
                path: path.clone(),
                lock: lock.clone(),
                holder: holder.clone(),
            },
            Error::Corrupt {
                shard,
                segment,
                path,
                offset,
                reason,
            } => Error::Corrupt {
                shard: *shard,
                segment: *segment,
                path: path.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            Error::BadFormat { path, reason } => Error::BadFormat {
                path: path.clone(),
                reason: reason.clone(),
            },
            Error::Poisoned { shard, cause } => Error::Poisoned {
                shard: *shard,
                cause: cause.clone(),
            },
            Error::InvalidInput(m) => Error::InvalidInput(m.clone()),
            Error::InvalidSequenceNumber { value, reason } => Error::InvalidSequenceNumber {
                value: value.clone(),
                reason: reason.clone(),
            },
            Error::StreamNotFound(n) => Error::StreamNotFound(n.clone()),
            Error::StreamExists(n) => Error::StreamExists(n.clone()),
            Error::ShardNotFound { stream, shard } => Error::ShardNotFound {
                stream: stream.clone(),
                shard: shard.clone(),
            },
            Error::ShardClosed { stream, shard } => Error::ShardClosed {
                stream: stream.clone(),
                shard: *shard,
            },
            Error::InvalidReshard(m) => Error::InvalidReshard(m.clone()),
            Error::ShuttingDown => Error::ShuttingDown,
            Error::LeaseTableNotFound { application } => Error::LeaseTableNotFound {
                application: application.clone(),
            },
            Error::LeaseNotFound { application, lease } => Error::LeaseNotFound {
                application: application.clone(),
                lease: lease.clone(),
            },
            Error::LeaseConditionFailed {
                application,
                lease,
                held_by,
                counter,
                expected_owner,
                expected_counter,
            } => Error::LeaseConditionFailed {
                application: application.clone(),
                lease: *lease,
                held_by: held_by.clone(),
                counter: *counter,
                expected_owner: expected_owner.clone(),
                expected_counter: *expected_counter,
            },
            Error::LeaseStreamMismatch {
                application,
                bound,
                given,
            } => Error::LeaseStreamMismatch {
                application: application.clone(),
                bound: bound.clone(),
                given: given.clone(),
            },
            Error::LeaseStreamGone {
                application,
                stream,
            } => Error::LeaseStreamGone {
                application: application.clone(),
                stream: stream.clone(),
            },
        }
    }

    /// Wraps an `std::io::Error` with the operation and path it came from.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
