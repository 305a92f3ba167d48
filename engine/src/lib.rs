//! Shardline's storage engine.
//!
//! # Layout
//!
//! - [`engine`]: the entry point: a locked data directory holding streams.
//! - [`stream`]: shards covering the hash key space, routing, resharding lineage.
//! - [`shard`]: one shard's log with its group-commit write queue and tail waiters.
//! - [`commit`]: the committer threads that write and sync pending data.
//! - [`log`]: the segmented log: batches, segments, sparse indexes, recovery, maps, reads.
//! - [`io`]: the I/O seam under the append path (io_uring, `pwrite`, fault injection).
//! - [`leases`]: KCL-style lease tables per application: conditional take, renew, evict
//!   and checkpoint, sync with a stream's shards, crash-safe files.
//! - [`meta`]: crash-safe stream and shard metadata files (flatbuffers).
//! - [`datadir`]: the data directory's exclusive lock and atomic file replacement.
//! - [`seqno`]: Kinesis-style 56-digit sequence numbers and their mapping to log offsets.
//! - [`hashkey`]: the 128-bit hash key space, MD5 partition-key routing, shard ranges.
//! - [`config`]: settings and the limits they default to.
//! - [`ids`]: newtypes for shard, segment and offset identifiers.
//! - [`error`]: the crate's one error type.
//!
//! The engine's API is synchronous; async callers use the `*_async` variants (which await
//! acknowledgements) or `spawn_blocking`. Formats are documented in `docs/formats/`.

pub mod commit;
pub mod config;
pub mod datadir;
pub mod engine;
pub mod error;
pub mod hashkey;
pub mod ids;
pub mod io;
pub mod leases;
pub mod log;
pub mod meta;
pub mod seqno;
pub mod shard;
pub mod stream;

pub use config::{Durability, EngineConfig};
pub use engine::{CreateStream, Engine};
pub use error::{Error, Result};
pub use ids::{Offset, SegmentId, ShardId};
pub use log::batch::{PendingBatch, Record, RecordRef};
pub use seqno::SequenceNumber;
pub use shard::{Appended, Shard};
pub use stream::{PutRecord, PutResult, Stream};
