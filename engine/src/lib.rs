//! Shardline's storage engine.
//!
//! # Layout
//!
//! - [`error`]: the crate's one error type.
//! - [`ids`]: newtypes for shard, segment and offset identifiers.
//! - [`seqno`]: Kinesis-style 56-digit sequence numbers and their mapping to log offsets.
//! - [`hashkey`]: the 128-bit hash key space, MD5 partition-key routing, shard ranges.
//! - [`datadir`]: the data directory and its exclusive lock.
//! - [`meta`]: crash-safe stream and shard metadata files (flatbuffers).

#![forbid(clippy::dbg_macro)]

pub mod datadir;
pub mod error;
pub mod hashkey;
pub mod ids;
pub mod meta;
pub mod seqno;

pub use error::{Error, Result};
pub use ids::{Offset, SegmentId, ShardId};
