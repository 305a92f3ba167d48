//! The frame header, frame types and the protocol's limits.
//!
//! Every frame is an 8-byte little-endian header followed by `payload_len` bytes of
//! flatbuffer. The byte table is in `docs/formats/native.md` ("Frame header"); offsets here
//! derive from the field sizes and a test checks them against the documented ones.

use std::fmt;
use std::mem::size_of;

use crate::error::Error;

const LEN_OFFSET: usize = 0;
const TYPE_OFFSET: usize = LEN_OFFSET + size_of::<u32>();
const VERSION_OFFSET: usize = TYPE_OFFSET + size_of::<u8>();
const RESERVED_OFFSET: usize = VERSION_OFFSET + size_of::<u8>();
/// Bytes of the frame header.
pub const HEADER_LEN: usize = RESERVED_OFFSET + size_of::<u16>();

/// The frame header version this codec writes and reads. A change to the header's layout or
/// meaning bumps it; new frame types and fields do not (see the protocol version instead).
pub const FRAME_VERSION: u8 = 1;

/// The highest protocol version (the message set, negotiated by Hello/HelloAck) this codec
/// speaks. Version 2 adds Read and Records ([`crate::read`], [`crate::records`]); version 3
/// adds PackedBatch ([`crate::packed`]).
pub const PROTOCOL_VERSION: u16 = 3;

/// The first protocol version with Read and Records frames.
pub const READ_PROTOCOL_VERSION: u16 = 2;

/// The first protocol version with PackedBatch frames.
pub const PACKED_PROTOCOL_VERSION: u16 = 3;

/// Default and largest frame a server accepts from a client, header included: room for one
/// record of the largest size a stream allows (10 MiB, `IncreaseStreamMaxRecordSize`) plus
/// its key and framing.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 << 20;

/// Default per-connection window of unacknowledged PutBatch bytes (headers included).
pub const DEFAULT_WINDOW_BYTES: usize = 64 << 20;

/// Most records one PutBatch may carry. PutRecords allows 500 (Kinesis API reference,
/// `PutRecords.Records`); a native batch allows more so that one batch can fill a shard's
/// group commit with small records, while its PutResult stays under 200 KiB
/// (16 bytes per record).
pub const MAX_BATCH_RECORDS: usize = 10_000;

/// Identifies a PutBatch and the frame that answers it. Chosen by the client; 0 is reserved
/// for connection-level errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

impl RequestId {
    /// The id of connection-level Error frames.
    pub const CONNECTION: RequestId = RequestId(0);
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a frame's payload holds. Values are on the wire and append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// Client -> server, first frame.
    Hello = 1,
    /// Server -> client, answer to Hello.
    HelloAck = 2,
    /// Client -> server, records for one stream.
    PutBatch = 3,
    /// Server -> client, per-record outcome of a batch.
    PutResult = 4,
    /// Server -> client, a failed batch or connection.
    Error = 5,
    /// Client -> server, a read of one shard (protocol version 2).
    Read = 6,
    /// Server -> client, the records a Read asked for (protocol version 2).
    Records = 7,
    /// Client -> server, records for one stream packed back to back (protocol version 3);
    /// answered as PutBatch is.
    PackedBatch = 8,
}

impl FrameType {
    /// The frame type with wire value `b`.
    pub fn from_u8(b: u8) -> Option<FrameType> {
        Some(match b {
            1 => FrameType::Hello,
            2 => FrameType::HelloAck,
            3 => FrameType::PutBatch,
            4 => FrameType::PutResult,
            5 => FrameType::Error,
            6 => FrameType::Read,
            7 => FrameType::Records,
            8 => FrameType::PackedBatch,
            _ => return None,
        })
    }

    /// Whether clients send this frame type (servers send the others).
    pub fn is_from_client(self) -> bool {
        match self {
            FrameType::Hello | FrameType::PutBatch | FrameType::Read | FrameType::PackedBatch => {
                true
            }
            FrameType::HelloAck | FrameType::PutResult | FrameType::Error | FrameType::Records => {
                false
            }
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameType::Hello => "Hello",
            FrameType::HelloAck => "HelloAck",
            FrameType::PutBatch => "PutBatch",
            FrameType::PutResult => "PutResult",
            FrameType::Error => "Error",
            FrameType::Read => "Read",
            FrameType::Records => "Records",
            FrameType::PackedBatch => "PackedBatch",
        })
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub frame_type: FrameType,
    /// Bytes of flatbuffer after the header.
    pub payload_len: u32,
}

impl FrameHeader {
    /// Bytes of the whole frame, header included.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.payload_len as usize
    }

    /// Reads a header from the first [`HEADER_LEN`] bytes of `b`; `Ok(None)` if `b` is
    /// shorter.
    ///
    /// # Errors
    /// [`Error::UnknownFrameType`], [`Error::UnsupportedFrameVersion`],
    /// [`Error::ReservedNotZero`], or [`Error::FrameTooLarge`] above `max_frame_bytes`.
    pub fn parse(b: &[u8], max_frame_bytes: usize) -> Result<Option<FrameHeader>, Error> {
        let Some(h) = b.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let payload_len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let frame_bytes = HEADER_LEN as u64 + u64::from(payload_len);
        // Size first: a peer speaking another protocol (an HTTP request, TLS) shows up as an
        // absurd length, which is the clearest thing to report.
        if frame_bytes > max_frame_bytes as u64 {
            return Err(Error::FrameTooLarge {
                frame_bytes,
                max_frame_bytes,
            });
        }
        let version = h[VERSION_OFFSET];
        if version != FRAME_VERSION {
            return Err(Error::UnsupportedFrameVersion { version });
        }
        let reserved = u16::from_le_bytes([h[RESERVED_OFFSET], h[RESERVED_OFFSET + 1]]);
        if reserved != 0 {
            return Err(Error::ReservedNotZero { value: reserved });
        }
        let frame_type = FrameType::from_u8(h[TYPE_OFFSET]).ok_or(Error::UnknownFrameType {
            frame_type: h[TYPE_OFFSET],
        })?;
        Ok(Some(FrameHeader {
            frame_type,
            payload_len,
        }))
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[LEN_OFFSET..TYPE_OFFSET].copy_from_slice(&self.payload_len.to_le_bytes());
        h[TYPE_OFFSET] = self.frame_type as u8;
        h[VERSION_OFFSET] = FRAME_VERSION;
        // Reserved bytes stay zero.
        h
    }
}

/// A whole frame (header and `payload`) in a fresh buffer.
///
/// # Panics
/// If `payload` is 4 GiB or larger; builders never make such payloads (their inputs are
/// bounded by [`MAX_BATCH_RECORDS`] and the receivers' frame limits long before).
pub(crate) fn frame_bytes(frame_type: FrameType, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        frame_type,
        payload_len: u32::try_from(payload.len())
            .expect("invariant: builders make payloads under 4 GiB"),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/formats/native.md, "Frame header": offsets 0, 4, 5, 6; 8 bytes in all.
    #[test]
    fn header_layout_matches_the_doc() {
        assert_eq!(
            (LEN_OFFSET, TYPE_OFFSET, VERSION_OFFSET, RESERVED_OFFSET),
            (0, 4, 5, 6)
        );
        assert_eq!(HEADER_LEN, 8);
        let h = FrameHeader {
            frame_type: FrameType::PutBatch,
            payload_len: 0x0102_0304,
        };
        assert_eq!(h.to_bytes(), [4, 3, 2, 1, 3, 1, 0, 0]);
    }

    #[test]
    fn header_round_trips_for_every_type() {
        for b in 0..=u8::MAX {
            let Some(t) = FrameType::from_u8(b) else {
                continue;
            };
            assert_eq!(t as u8, b);
            let h = FrameHeader {
                frame_type: t,
                payload_len: 77,
            };
            assert_eq!(FrameHeader::parse(&h.to_bytes(), 1000).unwrap(), Some(h));
        }
    }

    #[test]
    fn header_errors_name_the_bad_field() {
        let good = FrameHeader {
            frame_type: FrameType::Hello,
            payload_len: 10,
        }
        .to_bytes();
        assert_eq!(FrameHeader::parse(&good[..7], 100).unwrap(), None);
        let mut b = good;
        b[TYPE_OFFSET] = 9;
        assert!(matches!(
            FrameHeader::parse(&b, 100),
            Err(Error::UnknownFrameType { frame_type: 9 })
        ));
        let mut b = good;
        b[VERSION_OFFSET] = 2;
        assert!(matches!(
            FrameHeader::parse(&b, 100),
            Err(Error::UnsupportedFrameVersion { version: 2 })
        ));
        let mut b = good;
        b[RESERVED_OFFSET + 1] = 1;
        assert!(matches!(
            FrameHeader::parse(&b, 100),
            Err(Error::ReservedNotZero { value: 0x100 })
        ));
        assert!(matches!(
            FrameHeader::parse(&good, 17),
            Err(Error::FrameTooLarge {
                frame_bytes: 18,
                max_frame_bytes: 17
            })
        ));
        assert!(FrameHeader::parse(&good, 18).unwrap().is_some());
    }
}
