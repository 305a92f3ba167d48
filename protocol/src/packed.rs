//! PackedBatch: records for one stream, packed back to back (protocol version 3).
//!
//! The same request as [`crate::batch`]'s PutBatch, answered the same way (one PutResult or
//! Error frame), in a fixed little-endian layout instead of a flatbuffer
//! (`docs/formats/native.md`, "PackedBatch"): a short fixed part and the stream name, then
//! each record as a 7-byte header, an optional 16-byte hash key, the partition key and the
//! data. A flatbuffer makes every record a table, which its builder writes and its verifier
//! walks field by field; here building is a few copies and checking is one pass over the
//! record headers (`cargo bench -p shardline-benches --bench native_codec` compares them).
//!
//! # Invariants
//!
//! - [`PackedBatchView::parse`] checks everything before any record is handed out: the fixed
//!   part, the stream name, and every record's header, flags, bounds and partition key
//!   (UTF-8); the record count must match and the records must end exactly where the payload
//!   does. After it, iterating cannot fail or read out of bounds.
//! - A partition key's length and a record's size are the server's to judge per record, as
//!   for PutBatch; the codec takes any lengths its fields can carry.

use std::mem::size_of;

use crate::error::Error;
use crate::frame::{FrameHeader, FrameType, RequestId, HEADER_LEN};
use crate::read::{u32_at, u64_at};

const REQUEST_ID_OFFSET: usize = 0;
const RECORD_COUNT_OFFSET: usize = REQUEST_ID_OFFSET + size_of::<u64>();
const NAME_LEN_OFFSET: usize = RECORD_COUNT_OFFSET + size_of::<u32>();
const RESERVED_OFFSET: usize = NAME_LEN_OFFSET + size_of::<u16>();
/// Bytes of a PackedBatch payload before the stream name.
pub const FIXED_LEN: usize = RESERVED_OFFSET + size_of::<u16>();

const REC_DATA_LEN_OFFSET: usize = 0;
const REC_KEY_LEN_OFFSET: usize = REC_DATA_LEN_OFFSET + size_of::<u32>();
const REC_FLAGS_OFFSET: usize = REC_KEY_LEN_OFFSET + size_of::<u16>();
/// Bytes of a record's header.
pub const RECORD_HEADER_LEN: usize = REC_FLAGS_OFFSET + size_of::<u8>();
/// Bytes of a hash key (a u128, little-endian) when a record carries one.
pub const HASH_KEY_LEN: usize = size_of::<u128>();

/// Record flag: a hash key follows the header and routes the record instead of its
/// partition key's MD5.
pub const FLAG_HASH_KEY: u8 = 1;
const KNOWN_FLAGS: u8 = FLAG_HASH_KEY;

/// Builds PackedBatch frames; reusable across batches.
///
/// Records are written straight into the frame, after room left for the header, the fixed
/// part and a stream name as long as the last batch's. So once the builder has made one
/// batch for a stream, [`PackedBatchBuilder::finish`] fills in that room and hands the
/// buffer over without copying the records; a batch for a name of another length costs
/// one copy.
#[derive(Debug, Default)]
pub struct PackedBatchBuilder {
    /// The frame being built: `prefix_room()` bytes for the header, fixed part and name,
    /// then the records pushed so far. Empty until the first push.
    frame: Vec<u8>,
    /// The stream name length the room at the front of `frame` is for.
    name_room: usize,
    /// The last frame's length: the next frame's starting capacity.
    last_frame_len: usize,
    count: u32,
}

impl PackedBatchBuilder {
    /// An empty builder.
    pub fn new() -> PackedBatchBuilder {
        PackedBatchBuilder::default()
    }

    /// Appends a record, routed by `hash_key` if given (as PutRecords' `ExplicitHashKey`),
    /// else by the MD5 of `partition_key`.
    ///
    /// # Panics
    /// If the key is longer than 65,535 bytes or the data than 4 GiB. Kinesis allows keys of
    /// 256 characters (at most 1,024 bytes) and records of at most 10 MiB; producers check
    /// both before batching.
    pub fn push(&mut self, partition_key: &str, hash_key: Option<u128>, data: &[u8]) {
        let key_len =
            u16::try_from(partition_key.len()).expect("invariant: partition keys are checked");
        let data_len = u32::try_from(data.len()).expect("invariant: record sizes are checked");
        let flags = if hash_key.is_some() { FLAG_HASH_KEY } else { 0 };
        self.start_frame();
        let f = &mut self.frame;
        f.extend_from_slice(&data_len.to_le_bytes());
        f.extend_from_slice(&key_len.to_le_bytes());
        f.push(flags);
        if let Some(h) = hash_key {
            f.extend_from_slice(&h.to_le_bytes());
        }
        f.extend_from_slice(partition_key.as_bytes());
        f.extend_from_slice(data);
        self.count += 1;
    }

    /// Bytes at the front of the frame for the header, fixed part and stream name.
    fn prefix_room(&self) -> usize {
        HEADER_LEN + FIXED_LEN + self.name_room
    }

    /// Leaves the room at the front of a new frame.
    fn start_frame(&mut self) {
        if self.frame.is_empty() {
            let room = self.prefix_room();
            self.frame.reserve(self.last_frame_len.max(room));
            self.frame.resize(room, 0);
        }
    }

    /// Bytes of records pushed since the last finish.
    fn records_len(&self) -> usize {
        self.frame.len().saturating_sub(self.prefix_room())
    }

    /// Records pushed since the last [`PackedBatchBuilder::finish`].
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no record was pushed since the last finish.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The exact bytes the frame will take (header included).
    pub fn frame_len(&self, stream_name: &str) -> usize {
        HEADER_LEN + FIXED_LEN + stream_name.len() + self.records_len()
    }

    /// The frame (header included) of the pushed records for `stream_name`; the builder is
    /// then empty and ready for the next batch.
    ///
    /// # Panics
    /// If the stream name is longer than 65,535 bytes (Kinesis allows 128 characters) or the
    /// payload would reach 4 GiB (servers accept frames of at most 16 MiB).
    pub fn finish(&mut self, request_id: RequestId, stream_name: &str) -> Vec<u8> {
        let name = stream_name.as_bytes();
        let name_len = u16::try_from(name.len()).expect("invariant: stream names are short");
        let payload_len = u32::try_from(FIXED_LEN + name.len() + self.records_len())
            .expect("invariant: batches are far below 4 GiB");
        self.start_frame();
        let mut frame = std::mem::take(&mut self.frame);
        if name.len() != self.name_room {
            // The room is for another name's length: move the records once, and leave
            // room for this name from the next batch on.
            let records = &frame[self.prefix_room()..];
            let mut moved = Vec::with_capacity(HEADER_LEN + payload_len as usize);
            moved.resize(HEADER_LEN + FIXED_LEN + name.len(), 0);
            moved.extend_from_slice(records);
            frame = moved;
            self.name_room = name.len();
        }
        let header = FrameHeader {
            frame_type: FrameType::PackedBatch,
            payload_len,
        }
        .to_bytes();
        let mut put = |at: usize, bytes: &[u8]| frame[at..at + bytes.len()].copy_from_slice(bytes);
        put(0, &header);
        put(HEADER_LEN + REQUEST_ID_OFFSET, &request_id.0.to_le_bytes());
        put(HEADER_LEN + RECORD_COUNT_OFFSET, &self.count.to_le_bytes());
        put(HEADER_LEN + NAME_LEN_OFFSET, &name_len.to_le_bytes());
        put(HEADER_LEN + RESERVED_OFFSET, &[0, 0]);
        put(HEADER_LEN + FIXED_LEN, name);
        self.last_frame_len = frame.len();
        self.count = 0;
        frame
    }
}

/// A checked PackedBatch payload.
#[derive(Debug, Clone, Copy)]
pub struct PackedBatchView<'a> {
    request_id: RequestId,
    stream_name: &'a str,
    count: usize,
    records: &'a [u8],
}

/// One record of a checked PackedBatch, borrowed from its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackedRecord<'a> {
    /// Position in the batch.
    pub index: usize,
    /// Valid UTF-8; its length is not checked here.
    pub partition_key: &'a str,
    /// Routes the record instead of the partition key's MD5.
    pub hash_key: Option<u128>,
    pub data: &'a [u8],
}

/// What is wrong with a record; rendered only when a batch is refused.
#[derive(Debug, Clone, Copy)]
enum Fault {
    ShortHeader {
        left: usize,
    },
    UnknownFlags {
        flags: u8,
    },
    ShortHashKey {
        left: usize,
    },
    ShortBody {
        key_len: usize,
        data_len: usize,
        left: usize,
    },
    KeyNotUtf8,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Fault::ShortHeader { left } => write!(
                f,
                "{left} bytes left, short of a {RECORD_HEADER_LEN}-byte record header"
            ),
            Fault::UnknownFlags { flags } => write!(f, "unknown record flags {flags:#04x}"),
            Fault::ShortHashKey { left } => {
                write!(f, "{left} bytes left, short of its hash key")
            }
            Fault::ShortBody {
                key_len,
                data_len,
                left,
            } => write!(
                f,
                "a {key_len}-byte key and {data_len} bytes of data, but {left} bytes left"
            ),
            Fault::KeyNotUtf8 => f.write_str("partition key is not UTF-8"),
        }
    }
}

/// A record split off the front of a buffer, and the bytes after it.
type Split<'a> = (&'a str, Option<u128>, &'a [u8], &'a [u8]);

/// Splits the record at the front of `b`.
#[inline]
fn split_record(b: &[u8]) -> Result<Split<'_>, Fault> {
    let Some((header, rest)) = b.split_first_chunk::<RECORD_HEADER_LEN>() else {
        return Err(Fault::ShortHeader { left: b.len() });
    };
    let [d0, d1, d2, d3, k0, k1, flags] = *header;
    let data_len = u32::from_le_bytes([d0, d1, d2, d3]) as usize;
    let key_len = usize::from(u16::from_le_bytes([k0, k1]));
    if flags & !KNOWN_FLAGS != 0 {
        return Err(Fault::UnknownFlags { flags });
    }
    let (hash_key, rest) = if flags & FLAG_HASH_KEY != 0 {
        let Some((h, rest)) = rest.split_first_chunk::<HASH_KEY_LEN>() else {
            return Err(Fault::ShortHashKey { left: rest.len() });
        };
        (Some(u128::from_le_bytes(*h)), rest)
    } else {
        (None, rest)
    };
    let Some((key, rest)) = rest.split_at_checked(key_len) else {
        return Err(Fault::ShortBody {
            key_len,
            data_len,
            left: rest.len(),
        });
    };
    let Some((data, rest)) = rest.split_at_checked(data_len) else {
        return Err(Fault::ShortBody {
            key_len,
            data_len,
            left: key_len + rest.len(),
        });
    };
    let key = std::str::from_utf8(key).map_err(|_| Fault::KeyNotUtf8)?;
    Ok((key, hash_key, data, rest))
}

impl<'a> PackedBatchView<'a> {
    /// Checks a PackedBatch payload.
    ///
    /// # Errors
    /// [`Error::InvalidField`] if the fixed part is short or its reserved bytes are not
    /// zero, the stream name overruns the payload or is not UTF-8, a record is cut short,
    /// sets unknown flags or has a partition key that is not UTF-8, or the records do not
    /// number `record_count` and end exactly at the payload's end.
    pub fn parse(payload: &'a [u8]) -> Result<PackedBatchView<'a>, Error> {
        let invalid = |reason: String| Error::InvalidField {
            frame_type: FrameType::PackedBatch,
            reason,
        };
        if payload.len() < FIXED_LEN {
            return Err(invalid(format!(
                "payload of {} bytes is shorter than the {FIXED_LEN} fixed bytes",
                payload.len()
            )));
        }
        let reserved = u16::from_le_bytes([payload[RESERVED_OFFSET], payload[RESERVED_OFFSET + 1]]);
        if reserved != 0 {
            return Err(invalid(format!(
                "reserved bytes are {reserved:#06x}, not zero"
            )));
        }
        let name_len = usize::from(u16::from_le_bytes([
            payload[NAME_LEN_OFFSET],
            payload[NAME_LEN_OFFSET + 1],
        ]));
        let Some(name) = payload.get(FIXED_LEN..FIXED_LEN + name_len) else {
            return Err(invalid(format!(
                "a stream name of {name_len} bytes overruns the {}-byte payload",
                payload.len()
            )));
        };
        let stream_name = std::str::from_utf8(name)
            .map_err(|e| invalid(format!("stream name is not UTF-8: {e}")))?;
        let count = u32_at(payload, RECORD_COUNT_OFFSET) as usize;
        let records = &payload[FIXED_LEN + name_len..];
        let mut rest = records;
        for index in 0..count {
            if rest.is_empty() {
                return Err(invalid(format!(
                    "record_count is {count} but the payload ends after {index} records"
                )));
            }
            let (_, _, _, after) = split_record(rest)
                .map_err(|reason| invalid(format!("record {index}: {reason}")))?;
            rest = after;
        }
        if !rest.is_empty() {
            return Err(invalid(format!(
                "{} bytes follow the {count} records of record_count",
                rest.len()
            )));
        }
        Ok(PackedBatchView {
            request_id: RequestId(u64_at(payload, REQUEST_ID_OFFSET)),
            stream_name,
            count,
            records,
        })
    }

    /// The client's id for this batch.
    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// The target stream's name.
    pub fn stream_name(&self) -> &'a str {
        self.stream_name
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the batch has no records.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The records, in batch order.
    pub fn records(&self) -> PackedRecords<'a> {
        PackedRecords {
            rest: self.records,
            index: 0,
            count: self.count,
        }
    }
}

/// The records of a [`PackedBatchView`], in batch order.
#[derive(Debug, Clone)]
pub struct PackedRecords<'a> {
    rest: &'a [u8],
    index: usize,
    count: usize,
}

impl<'a> Iterator for PackedRecords<'a> {
    type Item = PackedRecord<'a>;

    fn next(&mut self) -> Option<PackedRecord<'a>> {
        if self.index == self.count {
            return None;
        }
        // `parse` checked every record, so this never fails; if it did, the iteration would
        // end early rather than read out of bounds.
        let (partition_key, hash_key, data, rest) = split_record(self.rest).ok()?;
        self.rest = rest;
        let index = self.index;
        self.index += 1;
        Some(PackedRecord {
            index,
            partition_key,
            hash_key,
            data,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.count - self.index;
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests;
