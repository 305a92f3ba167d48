//! Crash-safe stream metadata: one `stream.meta` file per stream directory.
//!
//! # Invariants
//!
//! - `stream.meta` is only ever replaced whole, through [`crate::datadir::write_atomic`]
//!   (temp file, fsync, rename, fsync directory). After a crash it holds the last metadata
//!   whose [`write_stream`] returned, or the one being written; never a mix.
//! - A leftover `stream.meta.tmp` is never read; the next write overwrites it.
//! - Every byte of the file is checked on read (magic, format version, length, CRC32,
//!   flatbuffers verifier, known enum values). Anything wrong is [`Error::BadFormat`]
//!   naming the file; decoding never panics, whatever the bytes.
//! - Decoding checks the *format*, not stream rules (ranges covering the hash space,
//!   parents existing): the stream layer owns those.
//!
//! # Format
//!
//! A fixed little-endian header followed by a flatbuffer (`engine/schema/meta.fbs`);
//! see `docs/formats/metadata.md`.
//!
//! # Operations
//!
//! [`write_stream`] / [`read_stream`] on a stream directory; [`encode_stream`] /
//! [`decode_stream`] for the bytes alone.

use std::fs;
use std::path::{Path, PathBuf};

use crate::datadir::write_atomic;
use crate::error::{Error, Result};
use crate::ids::ShardId;

mod codec;

// flatc output (do not edit): regenerate with `scripts/gen-flatbuffers` from
// `engine/schema/meta.fbs`. Generated accessors use `unsafe` internally, sound only on
// buffers that passed the flatbuffers verifier, which `codec` always runs first.
#[allow(
    unsafe_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    clippy::unwrap_used
)]
mod meta_generated;

#[cfg(test)]
mod tests;

pub use codec::{decode_stream, encode_stream, FORMAT_VERSION, HEADER_LEN, MAGIC};

/// Name of the metadata file inside a stream's directory.
pub const STREAM_META_FILE: &str = "stream.meta";

/// A stream's lifecycle state, as Kinesis reports it in `StreamStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamStatus {
    Creating,
    Active,
    Updating,
    Deleting,
}

/// A stream's capacity mode, as Kinesis reports it in `StreamModeDetails`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamMode {
    Provisioned,
    OnDemand,
}

/// One shard of a stream, open or closed. Closed shards stay in the metadata until
/// retention has expired their records, so consumers can finish reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMeta {
    pub id: ShardId,
    /// The shard this one was split from, or the first of two merged shards.
    pub parent: Option<ShardId>,
    /// The second shard of a merge.
    pub adjacent_parent: Option<ShardId>,
    /// First hash key routed to this shard (inclusive).
    pub hash_start: u128,
    /// Last hash key routed to this shard (inclusive).
    pub hash_end: u128,
    /// Sequence-number epoch (see `seqno`); larger than the parents' epochs so children's
    /// sequence numbers sort after their parents'.
    pub seq_epoch_secs: u64,
    pub created_ms: u64,
    /// `Some` once split or merged: the shard takes no more writes.
    pub closed_ms: Option<u64>,
    /// Log offset one past the last record, set when closed, so readers know where the
    /// shard ends without scanning its log.
    pub end_offset: Option<u64>,
}

impl ShardMeta {
    /// Whether the shard still takes writes (not split or merged away).
    pub fn is_open(&self) -> bool {
        self.closed_ms.is_none()
    }
}

/// A stream tag (`AddTagsToStream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// An enhanced fan-out consumer's lifecycle state, as Kinesis reports it in
/// `ConsumerStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumerStatus {
    Creating,
    Active,
    Deleting,
}

/// An enhanced fan-out consumer registered on the stream (`RegisterStreamConsumer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMeta {
    pub name: String,
    /// Registration time; its whole seconds end the consumer's ARN, so a consumer
    /// re-registered under the same name gets a new ARN.
    pub created_ms: u64,
    pub status: ConsumerStatus,
    /// When the current CREATING/DELETING transition completes (0 = none).
    pub status_until_ms: u64,
    /// Tags set with the consumer's ARN (`TagResource`).
    pub tags: Vec<Tag>,
}

/// Everything the engine persists about one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMeta {
    pub name: String,
    pub arn: String,
    /// Unique directory name of this incarnation of the stream, so a stream deleted and
    /// recreated under the same name never sees the old one's files.
    pub dir_name: String,
    pub status: StreamStatus,
    /// When the current CREATING/UPDATING/DELETING transition completes (0 = none).
    pub status_until_ms: u64,
    pub created_ms: u64,
    pub retention_hours: u32,
    pub mode: StreamMode,
    pub max_record_bytes: u32,
    /// Per-shard log size cap, if configured.
    pub shard_byte_cap: Option<u64>,
    /// Index of the next shard to create; indexes are never reused.
    pub next_shard_index: u32,
    /// All shards, open and closed.
    pub shards: Vec<ShardMeta>,
    pub tags: Vec<Tag>,
    pub encryption_type: Option<String>,
    pub key_id: Option<String>,
    pub enhanced_metrics: Vec<String>,
    pub warm_throughput_mibps: Option<u32>,
    /// Times of `UpdateShardCount` calls, for the AWS rate-limit window.
    pub reshard_history_ms: Vec<u64>,
    /// The resource-based policy document (`PutResourcePolicy`), kept verbatim.
    pub resource_policy: Option<String>,
    /// Enhanced fan-out consumers, in registration order.
    pub consumers: Vec<ConsumerMeta>,
}

/// Path of the metadata file in a stream directory.
pub fn stream_meta_path(dir: &Path) -> PathBuf {
    dir.join(STREAM_META_FILE)
}

/// Durably replaces `<dir>/stream.meta` with `meta`.
///
/// # Errors
///
/// [`Error::Io`] naming the failed step; the previous metadata is then still in place
/// (see [`write_atomic`]).
pub fn write_stream(dir: &Path, meta: &StreamMeta) -> Result<()> {
    write_atomic(&stream_meta_path(dir), &encode_stream(meta))
}

/// Reads and checks `<dir>/stream.meta`.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read (including `NotFound`);
/// [`Error::BadFormat`] naming the file if its content is not valid metadata.
pub fn read_stream(dir: &Path) -> Result<StreamMeta> {
    let path = stream_meta_path(dir);
    let bytes = fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
    decode_stream(&bytes, &path)
}
