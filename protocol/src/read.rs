//! Read: a client asks for the records of one shard from a starting position.
//!
//! The payload is not a flatbuffer but a fixed little-endian layout followed by the stream
//! name (`docs/formats/native.md`, "Read"): it is small, and its twin [`crate::records`]
//! carries bulk data that a flatbuffer would have to copy. Offsets derive from field sizes;
//! a test checks them against the documented ones.
//!
//! Structural faults (a length that does not add up, reserved bytes not zero, a stream name
//! that is not UTF-8) are "bad bytes" ([`Error::InvalidField`], connection-level). Values
//! that are well-formed but unacceptable (an unknown position kind, limits out of range,
//! a sequence number from another shard) are the server's to refuse for the one request.

use std::mem::size_of;

use crate::error::Error;
use crate::frame::{frame_bytes, FrameType, RequestId};

const REQUEST_ID_OFFSET: usize = 0;
const SHARD_OFFSET: usize = REQUEST_ID_OFFSET + size_of::<u64>();
const KIND_OFFSET: usize = SHARD_OFFSET + size_of::<u32>();
const RESERVED_OFFSET: usize = KIND_OFFSET + size_of::<u8>();
const NAME_LEN_OFFSET: usize = RESERVED_OFFSET + size_of::<u8>();
const EPOCH_OFFSET: usize = NAME_LEN_OFFSET + size_of::<u16>();
const VALUE_OFFSET: usize = EPOCH_OFFSET + size_of::<u64>();
const MAX_RECORDS_OFFSET: usize = VALUE_OFFSET + size_of::<u64>();
const MAX_BYTES_OFFSET: usize = MAX_RECORDS_OFFSET + size_of::<u32>();
/// Bytes of a Read payload before the stream name.
pub const FIXED_LEN: usize = MAX_BYTES_OFFSET + size_of::<u32>();

/// Most records one Read may ask for: GetRecords' `Limit` (Kinesis API reference,
/// `GetRecords.Limit`, 1 to 10,000).
pub const MAX_READ_RECORDS: u32 = 10_000;

/// Most bytes (partition keys plus data) one Read may ask for. GetRecords returns at most
/// 10 MiB; a native read may take more, since its answer costs no base64.
pub const MAX_READ_BYTES: u32 = 16 << 20;

/// Longest stream name (Kinesis API reference, `StreamName`: 1 to 128 characters).
pub const MAX_STREAM_NAME_BYTES: usize = 128;

/// Where a Read starts. Wire values are in `docs/formats/native.md` and append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPosition {
    /// The oldest retained record.
    TrimHorizon,
    /// After the newest record (nothing is returned until more is written).
    Latest,
    /// The record with this sequence number (its parts: the shard's epoch and the counter).
    AtSequenceNumber { epoch_secs: u64, counter: u64 },
    /// The record after this sequence number.
    AfterSequenceNumber { epoch_secs: u64, counter: u64 },
    /// The first record that arrived at or after this time (ms since the Unix epoch).
    AtTimestamp { timestamp_ms: u64 },
    /// Where a previous Records frame for this shard said to continue (its `epoch_secs`
    /// and `next_counter`); unlike `AtSequenceNumber` it may name the shard's tip.
    Continue { epoch_secs: u64, counter: u64 },
}

impl ReadPosition {
    fn to_wire(self) -> (u8, u64, u64) {
        match self {
            ReadPosition::TrimHorizon => (1, 0, 0),
            ReadPosition::Latest => (2, 0, 0),
            ReadPosition::AtSequenceNumber {
                epoch_secs,
                counter,
            } => (3, epoch_secs, counter),
            ReadPosition::AfterSequenceNumber {
                epoch_secs,
                counter,
            } => (4, epoch_secs, counter),
            ReadPosition::AtTimestamp { timestamp_ms } => (5, 0, timestamp_ms),
            ReadPosition::Continue {
                epoch_secs,
                counter,
            } => (6, epoch_secs, counter),
        }
    }

    fn from_wire(kind: u8, epoch_secs: u64, value: u64) -> Option<ReadPosition> {
        let counter = value;
        Some(match kind {
            1 => ReadPosition::TrimHorizon,
            2 => ReadPosition::Latest,
            3 => ReadPosition::AtSequenceNumber {
                epoch_secs,
                counter,
            },
            4 => ReadPosition::AfterSequenceNumber {
                epoch_secs,
                counter,
            },
            5 => ReadPosition::AtTimestamp {
                timestamp_ms: value,
            },
            6 => ReadPosition::Continue {
                epoch_secs,
                counter,
            },
            _ => return None,
        })
    }
}

/// A Read request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read<'a> {
    /// Chosen by the client: nonzero, unique among its requests in flight.
    pub request_id: RequestId,
    pub stream_name: &'a str,
    /// The shard index: `shardId-000000000007` is 7.
    pub shard: u32,
    /// `Ok` for a known kind; `Err(kind)` for a wire value this codec does not know (the
    /// server refuses the request, not the connection).
    pub position: Result<ReadPosition, u8>,
    /// 1 to [`MAX_READ_RECORDS`].
    pub max_records: u32,
    /// 1 to [`MAX_READ_BYTES`]; at least one record is returned even if it is larger.
    pub max_bytes: u32,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl<'a> Read<'a> {
    /// The whole frame, header included.
    ///
    /// # Panics
    /// If the stream name is longer than `u16::MAX` bytes; stream names have at most
    /// [`MAX_STREAM_NAME_BYTES`].
    pub fn encode(&self) -> Vec<u8> {
        let (kind, epoch, value) = match self.position {
            Ok(p) => p.to_wire(),
            Err(kind) => (kind, 0, 0),
        };
        let name = self.stream_name.as_bytes();
        let name_len =
            u16::try_from(name.len()).expect("invariant: stream names are far below 64 KiB");
        let mut p = Vec::with_capacity(FIXED_LEN + name.len());
        p.extend_from_slice(&self.request_id.0.to_le_bytes());
        p.extend_from_slice(&self.shard.to_le_bytes());
        p.push(kind);
        p.push(0);
        p.extend_from_slice(&name_len.to_le_bytes());
        p.extend_from_slice(&epoch.to_le_bytes());
        p.extend_from_slice(&value.to_le_bytes());
        p.extend_from_slice(&self.max_records.to_le_bytes());
        p.extend_from_slice(&self.max_bytes.to_le_bytes());
        p.extend_from_slice(name);
        frame_bytes(FrameType::Read, &p)
    }

    /// Reads a Read payload.
    ///
    /// # Errors
    /// [`Error::InvalidField`] if the payload is shorter than its fixed part, its length does
    /// not match the stream name's, the reserved byte is not zero, or the name is not UTF-8.
    pub fn decode(payload: &'a [u8]) -> Result<Read<'a>, Error> {
        let invalid = |reason: String| Error::InvalidField {
            frame_type: FrameType::Read,
            reason,
        };
        if payload.len() < FIXED_LEN {
            return Err(invalid(format!(
                "payload of {} bytes is shorter than the {FIXED_LEN} fixed bytes",
                payload.len()
            )));
        }
        let name_len = usize::from(u16_at(payload, NAME_LEN_OFFSET));
        if payload.len() != FIXED_LEN + name_len {
            return Err(invalid(format!(
                "payload of {} bytes does not match a stream name of {name_len} bytes",
                payload.len()
            )));
        }
        if payload[RESERVED_OFFSET] != 0 {
            return Err(invalid(format!(
                "reserved byte is {:#04x}, not zero",
                payload[RESERVED_OFFSET]
            )));
        }
        let stream_name = std::str::from_utf8(&payload[FIXED_LEN..])
            .map_err(|e| invalid(format!("stream name is not UTF-8: {e}")))?;
        let kind = payload[KIND_OFFSET];
        let epoch = u64_at(payload, EPOCH_OFFSET);
        let value = u64_at(payload, VALUE_OFFSET);
        Ok(Read {
            request_id: RequestId(u64_at(payload, REQUEST_ID_OFFSET)),
            stream_name,
            shard: u32_at(payload, SHARD_OFFSET),
            position: ReadPosition::from_wire(kind, epoch, value).ok_or(kind),
            max_records: u32_at(payload, MAX_RECORDS_OFFSET),
            max_bytes: u32_at(payload, MAX_BYTES_OFFSET),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::HEADER_LEN;

    /// docs/formats/native.md, "Read": offsets 0, 8, 12, 13, 14, 16, 24, 32, 36; name at 40.
    #[test]
    fn layout_matches_the_doc() {
        assert_eq!(
            [
                REQUEST_ID_OFFSET,
                SHARD_OFFSET,
                KIND_OFFSET,
                RESERVED_OFFSET,
                NAME_LEN_OFFSET,
                EPOCH_OFFSET,
                VALUE_OFFSET,
                MAX_RECORDS_OFFSET,
                MAX_BYTES_OFFSET,
                FIXED_LEN
            ],
            [0, 8, 12, 13, 14, 16, 24, 32, 36, 40]
        );
    }

    #[test]
    fn every_position_round_trips() {
        let positions = [
            Ok(ReadPosition::TrimHorizon),
            Ok(ReadPosition::Latest),
            Ok(ReadPosition::AtSequenceNumber {
                epoch_secs: 7,
                counter: 9,
            }),
            Ok(ReadPosition::AfterSequenceNumber {
                epoch_secs: 7,
                counter: u64::MAX,
            }),
            Ok(ReadPosition::AtTimestamp {
                timestamp_ms: 1_700_000_000_000,
            }),
            Ok(ReadPosition::Continue {
                epoch_secs: 1,
                counter: 2,
            }),
            Err(77),
        ];
        for position in positions {
            let r = Read {
                request_id: RequestId(5),
                stream_name: "ström",
                shard: 3,
                position,
                max_records: 10,
                max_bytes: 1 << 20,
            };
            let bytes = r.encode();
            assert_eq!(bytes[4], FrameType::Read as u8);
            assert_eq!(Read::decode(&bytes[HEADER_LEN..]).unwrap(), r);
        }
    }

    #[test]
    fn structural_faults_are_bad_bytes() {
        let r = Read {
            request_id: RequestId(1),
            stream_name: "s",
            shard: 0,
            position: Ok(ReadPosition::TrimHorizon),
            max_records: 1,
            max_bytes: 1,
        }
        .encode();
        let p = &r[HEADER_LEN..];
        assert!(Read::decode(&p[..FIXED_LEN - 1]).is_err());
        assert!(Read::decode(&p[..FIXED_LEN]).is_err());
        let mut longer = p.to_vec();
        longer.push(b'x');
        assert!(Read::decode(&longer).is_err());
        let mut reserved = p.to_vec();
        reserved[RESERVED_OFFSET] = 1;
        assert!(Read::decode(&reserved).is_err());
        let mut bad_utf8 = p.to_vec();
        bad_utf8[FIXED_LEN] = 0xff;
        assert!(Read::decode(&bad_utf8).is_err());
    }
}
