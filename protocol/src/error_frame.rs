//! The Error frame: a batch failed as a whole, or the connection failed and is closing.
//!
//! [`ErrorCode`] values are on the wire and append-only (`protocol/schema/native.fbs`):
//! codes 1-15 are connection-level, 16 and up batch- or record-level.

use crate::error::Error;
use crate::fb;
use crate::frame::{frame_bytes, FrameType, RequestId};

pub use crate::fb::ErrorCode;

/// Longest message a server puts in an Error frame or record error; longer text is cut at
/// a character boundary, so a frame stays small whatever went wrong.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Whether `code` closes the connection when sent in an Error frame.
pub fn is_connection_level(code: ErrorCode) -> bool {
    (1..16).contains(&code.0)
}

/// Whether a batch or record that failed with `code` may succeed if sent again unchanged
/// (after a backoff): throttling and internal failures. Unknown codes are not retried.
pub fn is_retryable(code: ErrorCode) -> bool {
    code == ErrorCode::ProvisionedThroughputExceeded
        || code == ErrorCode::InternalFailure
        || code == ErrorCode::ShuttingDown
}

/// The name of `code` for people (`MalformedFrame`), or its number if this codec predates it.
pub fn code_name(code: ErrorCode) -> String {
    code.variant_name()
        .map_or_else(|| format!("error code {}", code.0), str::to_owned)
}

/// `message`, cut to at most [`MAX_MESSAGE_BYTES`] at a character boundary.
pub(crate) fn bounded(message: &str) -> &str {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// A decoded or to-be-encoded Error frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFrame<'a> {
    /// The failed batch, or [`RequestId::CONNECTION`] when the connection closes.
    pub request_id: RequestId,
    pub code: ErrorCode,
    pub message: &'a str,
}

impl<'a> ErrorFrame<'a> {
    /// The whole frame, header included; the message is cut to [`MAX_MESSAGE_BYTES`].
    pub fn encode(&self) -> Vec<u8> {
        let mut fbb = flatbuffers::FlatBufferBuilder::with_capacity(64 + self.message.len());
        let message = fbb.create_string(bounded(self.message));
        let root = fb::Error::create(
            &mut fbb,
            &fb::ErrorArgs {
                request_id: self.request_id.0,
                code: self.code,
                message: Some(message),
            },
        );
        fbb.finish_minimal(root);
        frame_bytes(FrameType::Error, fbb.finished_data())
    }

    /// Reads an Error frame's payload.
    ///
    /// # Errors
    /// [`Error::InvalidPayload`] if it is not a valid `Error` flatbuffer.
    pub fn decode(payload: &'a [u8]) -> Result<ErrorFrame<'a>, Error> {
        let e = crate::verified_root::<fb::Error>(payload, FrameType::Error)?;
        Ok(ErrorFrame {
            request_id: RequestId(e.request_id()),
            code: e.code(),
            message: e.message().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_frame_round_trips_and_bounds_its_message() {
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let f = ErrorFrame {
            request_id: RequestId(9),
            code: ErrorCode::ResourceNotFound,
            message: &long,
        };
        let bytes = f.encode();
        let back = ErrorFrame::decode(&bytes[crate::frame::HEADER_LEN..]).unwrap();
        assert_eq!(back.request_id, RequestId(9));
        assert_eq!(back.code, ErrorCode::ResourceNotFound);
        assert_eq!(back.message.len(), MAX_MESSAGE_BYTES);
        assert!(long.starts_with(back.message));
        assert!(!is_connection_level(back.code));
        assert!(is_connection_level(ErrorCode::TruncatedFrame));
        assert_eq!(code_name(ErrorCode(999)), "error code 999");
        assert_eq!(code_name(ErrorCode::FrameTooLarge), "FrameTooLarge");
        assert!(is_retryable(ErrorCode::ProvisionedThroughputExceeded));
        assert!(is_retryable(ErrorCode::InternalFailure));
        assert!(!is_retryable(ErrorCode::InvalidArgument));
        assert!(!is_retryable(ErrorCode::MalformedFrame));
    }
}
