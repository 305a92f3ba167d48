//! Wire codec of Shardline's native protocol, shared by the server, producers and readers.
//!
//! The protocol is described in `docs/formats/native.md`: length-prefixed frames over one TCP
//! connection, each an 8-byte little-endian header and a payload: a flatbuffer
//! (`protocol/schema/native.fbs`), or for Read, Records and PackedBatch a fixed little-endian
//! layout. This crate turns bytes into frames and frames into bytes;
//! it does no I/O and knows nothing of the engine.
//!
//! # Layout
//!
//! - [`frame`]: the frame header, frame types, protocol limits and request ids.
//! - [`decode`]: the incremental decoder: "need more bytes" (`Ok(None)`) vs "bad bytes"
//!   (`Err`).
//! - [`hello`]: Hello and HelloAck, the handshake.
//! - [`batch`]: PutBatch, its builder and its borrowed view.
//! - [`packed`]: PackedBatch, the same request in a fixed layout (protocol version 3).
//! - [`result`]: PutResult, its builder and its borrowed view.
//! - [`seqno`]: sequence number parts and their 56-digit decimal layout (shared with the
//!   engine).
//! - [`read`]: Read, a client's request for one shard's records (protocol version 2).
//! - [`records`]: Records, the answer to a Read, and its checked view.
//! - [`error_frame`]: the Error frame and the [`ErrorCode`]s.
//! - [`error`]: the crate's one error type.
//!
//! # Invariants
//!
//! - Decoding never panics, whatever the bytes: every flatbuffers payload passes the
//!   verifier before any field is read, the fixed-layout Read, Records and PackedBatch
//!   payloads are checked field by field with bounds-checked reads, and views check
//!   cross-references (and, for Records and PackedBatch, every record's bounds) up front.
//! - Every builder produces a whole frame (header included) that its own view accepts.

pub mod batch;
pub mod decode;
pub mod error;
pub mod error_frame;
pub mod frame;
pub mod hello;
pub mod packed;
pub mod read;
pub mod records;
pub mod result;
pub mod seqno;

// flatc output (do not edit): regenerate with `scripts/gen-native-flatbuffers` from
// `protocol/schema/native.fbs`. Generated accessors use `unsafe` internally, sound only on
// buffers that passed the flatbuffers verifier, which every view runs first.
#[allow(
    unsafe_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    clippy::unwrap_used
)]
mod native_generated;

pub use batch::{ExplicitHashKey, PutBatchBuilder, PutBatchView, RecordView};
pub use decode::{FrameDecoder, RawFrame};
pub use error::Error;
pub use error_frame::{ErrorCode, ErrorFrame};
pub use frame::{FrameHeader, FrameType, RequestId};
pub use hello::{Hello, HelloAck};
pub use packed::{PackedBatchBuilder, PackedBatchView, PackedRecord};
pub use read::{Read, ReadPosition};
pub use records::{ReadRecord, RecordsBuilder, RecordsHead, RecordsView};
pub use result::{PutResultBuilder, PutResultView, RecordOutcome, SequenceParts};

use native_generated::shardline::native as fb;

/// Verifies `payload` as a flatbuffer whose root is `T`, reporting failures for `frame_type`.
fn verified_root<'a, T>(payload: &'a [u8], frame_type: FrameType) -> Result<T::Inner, Error>
where
    T: flatbuffers::Follow<'a> + flatbuffers::Verifiable + 'a,
{
    flatbuffers::root::<T>(payload).map_err(|source| Error::InvalidPayload { frame_type, source })
}
