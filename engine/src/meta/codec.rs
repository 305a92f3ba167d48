//! Bytes of `stream.meta`: a fixed little-endian header, then a flatbuffer.
//!
//! The byte layout is documented in `docs/formats/metadata.md`; offsets here are derived
//! from field sizes and a test checks them against the document.
//!
//! Decoding never panics and never trusts the flatbuffer before checking, in order:
//! header length, magic, format version, reserved field, body length, CRC32, then the
//! flatbuffers verifier. Only then are the generated accessors (which use `unsafe`
//! internally) called.

use std::cmp::Ordering;
use std::mem::size_of;
use std::path::Path;

use flatbuffers::{FlatBufferBuilder, WIPOffset};

use super::meta_generated::shardline::meta as fb;
use super::{ConsumerMeta, ConsumerStatus, ShardMeta, StreamMeta, StreamMode, StreamStatus, Tag};
use crate::error::{Error, Result};
use crate::ids::ShardId;

/// First bytes of every metadata file.
pub const MAGIC: [u8; 8] = *b"SHLNMETA";

/// The only format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

pub(crate) const MAGIC_OFFSET: usize = 0;
pub(crate) const VERSION_OFFSET: usize = MAGIC_OFFSET + MAGIC.len();
pub(crate) const LEN_OFFSET: usize = VERSION_OFFSET + size_of::<u32>();
pub(crate) const CRC_OFFSET: usize = LEN_OFFSET + size_of::<u32>();
pub(crate) const RESERVED_OFFSET: usize = CRC_OFFSET + size_of::<u32>();

/// Size of the fixed header before the flatbuffer.
pub const HEADER_LEN: usize = RESERVED_OFFSET + size_of::<u32>();

/// Serializes `meta` into the bytes of a `stream.meta` file.
///
/// # Panics
///
/// Only if the flatbuffer exceeds 2 GiB, which the flatbuffers builder itself refuses
/// (metadata is kilobytes).
pub fn encode_stream(meta: &StreamMeta) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(1024);
    let root = build_stream(&mut fbb, meta);
    fbb.finish(root, None);
    let body = fbb.finished_data();
    let body_len = u32::try_from(body.len())
        .expect("flatbuffers caps buffers at 2 GiB, so the length fits in u32");

    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    debug_assert_eq!(out.len(), HEADER_LEN);
    out.extend_from_slice(body);
    out
}

/// Parses and checks the bytes of a `stream.meta` file.
///
/// # Errors
///
/// [`Error::BadFormat`] with `path_for_errors` and the first problem found: short or
/// torn file, wrong magic, unsupported version, nonzero reserved field, length mismatch,
/// CRC mismatch, a flatbuffer that fails verification, or an unknown enum value.
pub fn decode_stream(bytes: &[u8], path_for_errors: &Path) -> Result<StreamMeta> {
    decode(bytes).map_err(|reason| Error::BadFormat {
        path: path_for_errors.to_path_buf(),
        reason,
    })
}

fn decode(bytes: &[u8]) -> Result<StreamMeta, String> {
    let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
        let seen = bytes.len().min(MAGIC.len());
        if bytes[..seen] != MAGIC[..seen] {
            return Err(bad_magic(&bytes[..seen]));
        }
        return Err(format!(
            "truncated: {} bytes, shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        ));
    };
    let magic = &header[MAGIC_OFFSET..VERSION_OFFSET];
    if magic != MAGIC {
        return Err(bad_magic(magic));
    }
    let version = u32_at(header, VERSION_OFFSET);
    if version != FORMAT_VERSION {
        return Err(format!(
            "unsupported format version {version} (this build reads version {FORMAT_VERSION})"
        ));
    }
    let reserved = u32_at(header, RESERVED_OFFSET);
    if reserved != 0 {
        return Err(format!("reserved header field is {reserved:#x}, must be 0"));
    }
    let body_len = u32_at(header, LEN_OFFSET);
    let body = &bytes[HEADER_LEN..];
    // u32 -> usize is lossless on every target we build for; saturate rather than assume.
    let len = usize::try_from(body_len).unwrap_or(usize::MAX);
    match len.cmp(&body.len()) {
        Ordering::Equal => {}
        Ordering::Greater => {
            return Err(format!(
                "truncated: header says the flatbuffer is {body_len} bytes, file has {}",
                body.len()
            ))
        }
        Ordering::Less => {
            return Err(format!(
                "{} trailing bytes after the {body_len}-byte flatbuffer",
                body.len() - len
            ))
        }
    }
    let expected = u32_at(header, CRC_OFFSET);
    let actual = crc32fast::hash(body);
    if expected != actual {
        return Err(format!(
            "checksum mismatch: header says {expected:#010x}, flatbuffer has {actual:#010x}"
        ));
    }
    let stream = flatbuffers::root::<fb::Stream>(body)
        .map_err(|e| format!("flatbuffer fails verification: {e}"))?;
    stream_from_fb(stream)
}

fn bad_magic(found: &[u8]) -> String {
    format!(
        "not a Shardline metadata file: starts with {}, expected {:?}",
        found.escape_ascii(),
        MAGIC.escape_ascii().to_string()
    )
}

fn u32_at(header: &[u8; HEADER_LEN], offset: usize) -> u32 {
    let mut le = [0; size_of::<u32>()];
    le.copy_from_slice(&header[offset..offset + size_of::<u32>()]);
    u32::from_le_bytes(le)
}

fn u128_to_fb(v: u128) -> fb::U128 {
    fb::U128::new(v as u64, (v >> 64) as u64)
}

fn u128_from_fb(v: &fb::U128) -> u128 {
    (u128::from(v.hi()) << 64) | u128::from(v.lo())
}

fn status_to_fb(status: StreamStatus) -> fb::StreamStatus {
    match status {
        StreamStatus::Creating => fb::StreamStatus::Creating,
        StreamStatus::Active => fb::StreamStatus::Active,
        StreamStatus::Updating => fb::StreamStatus::Updating,
        StreamStatus::Deleting => fb::StreamStatus::Deleting,
    }
}

fn status_from_fb(status: fb::StreamStatus) -> Result<StreamStatus, String> {
    match status {
        fb::StreamStatus::Creating => Ok(StreamStatus::Creating),
        fb::StreamStatus::Active => Ok(StreamStatus::Active),
        fb::StreamStatus::Updating => Ok(StreamStatus::Updating),
        fb::StreamStatus::Deleting => Ok(StreamStatus::Deleting),
        fb::StreamStatus(other) => Err(format!("unknown stream status {other}")),
    }
}

fn consumer_status_to_fb(status: ConsumerStatus) -> fb::ConsumerStatus {
    match status {
        ConsumerStatus::Creating => fb::ConsumerStatus::Creating,
        ConsumerStatus::Active => fb::ConsumerStatus::Active,
        ConsumerStatus::Deleting => fb::ConsumerStatus::Deleting,
    }
}

fn consumer_status_from_fb(status: fb::ConsumerStatus) -> Result<ConsumerStatus, String> {
    match status {
        fb::ConsumerStatus::Creating => Ok(ConsumerStatus::Creating),
        fb::ConsumerStatus::Active => Ok(ConsumerStatus::Active),
        fb::ConsumerStatus::Deleting => Ok(ConsumerStatus::Deleting),
        fb::ConsumerStatus(other) => Err(format!("unknown consumer status {other}")),
    }
}

fn mode_to_fb(mode: StreamMode) -> fb::StreamMode {
    match mode {
        StreamMode::Provisioned => fb::StreamMode::Provisioned,
        StreamMode::OnDemand => fb::StreamMode::OnDemand,
    }
}

fn mode_from_fb(mode: fb::StreamMode) -> Result<StreamMode, String> {
    match mode {
        fb::StreamMode::Provisioned => Ok(StreamMode::Provisioned),
        fb::StreamMode::OnDemand => Ok(StreamMode::OnDemand),
        fb::StreamMode(other) => Err(format!("unknown stream mode {other}")),
    }
}

fn build_stream<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    meta: &StreamMeta,
) -> WIPOffset<fb::Stream<'b>> {
    // Children first: a flatbuffer table can only refer to objects already written.
    let shards: Vec<_> = meta.shards.iter().map(|s| build_shard(fbb, s)).collect();
    let shards = fbb.create_vector(&shards);
    let tags = build_tags(fbb, &meta.tags);
    let consumers: Vec<_> = meta
        .consumers
        .iter()
        .map(|c| build_consumer(fbb, c))
        .collect();
    let consumers = fbb.create_vector(&consumers);
    let metrics: Vec<_> = meta
        .enhanced_metrics
        .iter()
        .map(|m| fbb.create_string(m))
        .collect();
    let enhanced_metrics = fbb.create_vector(&metrics);
    let args = fb::StreamArgs {
        name: Some(fbb.create_string(&meta.name)),
        arn: Some(fbb.create_string(&meta.arn)),
        dir_name: Some(fbb.create_string(&meta.dir_name)),
        status: status_to_fb(meta.status),
        status_until_ms: meta.status_until_ms,
        created_ms: meta.created_ms,
        retention_hours: meta.retention_hours,
        mode: mode_to_fb(meta.mode),
        max_record_bytes: meta.max_record_bytes,
        shard_byte_cap: meta.shard_byte_cap,
        next_shard_index: meta.next_shard_index,
        shards: Some(shards),
        tags: Some(tags),
        encryption_type: meta
            .encryption_type
            .as_deref()
            .map(|s| fbb.create_string(s)),
        key_id: meta.key_id.as_deref().map(|s| fbb.create_string(s)),
        enhanced_metrics: Some(enhanced_metrics),
        warm_throughput_mibps: meta.warm_throughput_mibps,
        reshard_history_ms: Some(fbb.create_vector(&meta.reshard_history_ms)),
        resource_policy: meta
            .resource_policy
            .as_deref()
            .map(|s| fbb.create_string(s)),
        consumers: Some(consumers),
    };
    fb::Stream::create(fbb, &args)
}

fn build_tags<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    tags: &[Tag],
) -> WIPOffset<flatbuffers::Vector<'b, flatbuffers::ForwardsUOffset<fb::Tag<'b>>>> {
    let tags: Vec<_> = tags
        .iter()
        .map(|tag| {
            let args = fb::TagArgs {
                key: Some(fbb.create_string(&tag.key)),
                value: Some(fbb.create_string(&tag.value)),
            };
            fb::Tag::create(fbb, &args)
        })
        .collect();
    fbb.create_vector(&tags)
}

fn build_consumer<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    c: &ConsumerMeta,
) -> WIPOffset<fb::Consumer<'b>> {
    let tags = build_tags(fbb, &c.tags);
    let args = fb::ConsumerArgs {
        name: Some(fbb.create_string(&c.name)),
        created_ms: c.created_ms,
        status: consumer_status_to_fb(c.status),
        status_until_ms: c.status_until_ms,
        tags: Some(tags),
    };
    fb::Consumer::create(fbb, &args)
}

fn build_shard<'b>(fbb: &mut FlatBufferBuilder<'b>, shard: &ShardMeta) -> WIPOffset<fb::Shard<'b>> {
    let hash_start = u128_to_fb(shard.hash_start);
    let hash_end = u128_to_fb(shard.hash_end);
    let args = fb::ShardArgs {
        id: shard.id.0,
        parent: shard.parent.map(|p| p.0),
        adjacent_parent: shard.adjacent_parent.map(|p| p.0),
        hash_start: Some(&hash_start),
        hash_end: Some(&hash_end),
        seq_epoch_secs: shard.seq_epoch_secs,
        created_ms: shard.created_ms,
        closed_ms: shard.closed_ms,
        end_offset: shard.end_offset,
    };
    fb::Shard::create(fbb, &args)
}

/// Converts a verified flatbuffer to the model. Absent vectors (allowed by the schema's
/// evolution rules) read as empty.
fn stream_from_fb(s: fb::Stream<'_>) -> Result<StreamMeta, String> {
    Ok(StreamMeta {
        name: s.name().to_owned(),
        arn: s.arn().to_owned(),
        dir_name: s.dir_name().to_owned(),
        status: status_from_fb(s.status())?,
        status_until_ms: s.status_until_ms(),
        created_ms: s.created_ms(),
        retention_hours: s.retention_hours(),
        mode: mode_from_fb(s.mode())?,
        max_record_bytes: s.max_record_bytes(),
        shard_byte_cap: s.shard_byte_cap(),
        next_shard_index: s.next_shard_index(),
        shards: s
            .shards()
            .map(|v| v.iter().map(shard_from_fb).collect())
            .unwrap_or_default(),
        tags: tags_from_fb(s.tags()),
        encryption_type: s.encryption_type().map(str::to_owned),
        key_id: s.key_id().map(str::to_owned),
        enhanced_metrics: s
            .enhanced_metrics()
            .map(|v| v.iter().map(str::to_owned).collect())
            .unwrap_or_default(),
        warm_throughput_mibps: s.warm_throughput_mibps(),
        reshard_history_ms: s
            .reshard_history_ms()
            .map(|v| v.iter().collect())
            .unwrap_or_default(),
        resource_policy: s.resource_policy().map(str::to_owned),
        consumers: s
            .consumers()
            .map(|v| v.iter().map(consumer_from_fb).collect())
            .transpose()?
            .unwrap_or_default(),
    })
}

fn tags_from_fb(
    tags: Option<flatbuffers::Vector<'_, flatbuffers::ForwardsUOffset<fb::Tag<'_>>>>,
) -> Vec<Tag> {
    tags.map(|v| {
        v.iter()
            .map(|t| Tag {
                key: t.key().to_owned(),
                value: t.value().to_owned(),
            })
            .collect()
    })
    .unwrap_or_default()
}

fn consumer_from_fb(c: fb::Consumer<'_>) -> Result<ConsumerMeta, String> {
    Ok(ConsumerMeta {
        name: c.name().to_owned(),
        created_ms: c.created_ms(),
        status: consumer_status_from_fb(c.status())?,
        status_until_ms: c.status_until_ms(),
        tags: tags_from_fb(c.tags()),
    })
}

fn shard_from_fb(s: fb::Shard<'_>) -> ShardMeta {
    ShardMeta {
        id: ShardId(s.id()),
        parent: s.parent().map(ShardId),
        adjacent_parent: s.adjacent_parent().map(ShardId),
        hash_start: u128_from_fb(s.hash_start()),
        hash_end: u128_from_fb(s.hash_end()),
        seq_epoch_secs: s.seq_epoch_secs(),
        created_ms: s.created_ms(),
        closed_ms: s.closed_ms(),
        end_offset: s.end_offset(),
    }
}
