//! The crate's one error type.
//!
//! Every variant is "bad bytes": a decoder that merely needs more input returns `Ok(None)`
//! instead. [`Error::code`] maps each to the [`ErrorCode`] a server sends before closing.

use crate::error_frame::ErrorCode;
use crate::frame::{FrameType, FRAME_VERSION};

/// Everything decoding a frame can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The header announces a frame larger than the receiver accepts.
    #[error("frame of {frame_bytes} bytes (header included) exceeds the limit of {max_frame_bytes} bytes")]
    FrameTooLarge {
        frame_bytes: u64,
        max_frame_bytes: usize,
    },

    /// The header's version byte is not one this codec reads.
    #[error("frame header version {version} is not supported (this side speaks version {FRAME_VERSION})")]
    UnsupportedFrameVersion { version: u8 },

    /// The header's frame type byte names no frame type.
    #[error("unknown frame type {frame_type}")]
    UnknownFrameType { frame_type: u8 },

    /// The header's reserved bytes are not zero.
    #[error("reserved frame header bytes are {value:#06x}, not zero")]
    ReservedNotZero { value: u16 },

    /// The input ended inside a frame.
    #[error("connection ended {have} bytes into a frame of {need} bytes")]
    Truncated { have: usize, need: u64 },

    /// The payload is not a valid flatbuffer of the frame type's root table.
    #[error("invalid {frame_type} payload: {source}")]
    InvalidPayload {
        frame_type: FrameType,
        #[source]
        source: flatbuffers::InvalidFlatbuffer,
    },

    /// A payload that verified but breaks a rule the schema cannot express.
    #[error("invalid {frame_type} payload: {reason}")]
    InvalidField {
        frame_type: FrameType,
        reason: String,
    },

    /// A record sets both the binary and the decimal explicit hash key.
    #[error("record {index} sets both explicit_hash_key and explicit_hash_key_decimal")]
    ConflictingHashKeys { index: usize },

    /// Not a sequence number of the 56-digit layout ([`crate::seqno`]).
    #[error("not a sequence number: {reason}")]
    InvalidSequenceNumber { reason: String },
}

impl Error {
    /// The code a server reports for this error in a connection-level Error frame (or, for
    /// [`Error::ConflictingHashKeys`], in the record's result).
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            Error::UnsupportedFrameVersion { .. } => ErrorCode::UnsupportedVersion,
            Error::UnknownFrameType { .. } => ErrorCode::UnknownFrameType,
            Error::Truncated { .. } => ErrorCode::TruncatedFrame,
            Error::ReservedNotZero { .. }
            | Error::InvalidPayload { .. }
            | Error::InvalidField { .. } => ErrorCode::MalformedFrame,
            Error::ConflictingHashKeys { .. } | Error::InvalidSequenceNumber { .. } => {
                ErrorCode::InvalidArgument
            }
        }
    }
}
