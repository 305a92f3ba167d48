//! Incremental frame decoding over a growing byte buffer.
//!
//! `Ok(None)` means "need more bytes" and leaves the buffer untouched; `Err` means "bad
//! bytes" and the connection cannot continue (framing is lost). A header is judged as soon
//! as its 8 bytes are in, so an oversized or unknown frame is refused before its payload is
//! read. Payloads are split off the buffer without copying.

use bytes::{Bytes, BytesMut};

use crate::error::Error;
use crate::frame::{FrameHeader, FrameType, HEADER_LEN};

/// One whole frame: its type and its (not yet verified) flatbuffer payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub frame_type: FrameType,
    pub payload: Bytes,
}

impl RawFrame {
    /// Bytes the frame took on the wire, header included.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }
}

/// Splits frames off a byte buffer, refusing frames above a size limit.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
}

impl FrameDecoder {
    /// A decoder accepting frames of at most `max_frame_bytes`, header included.
    pub fn new(max_frame_bytes: usize) -> FrameDecoder {
        FrameDecoder { max_frame_bytes }
    }

    /// The limit this decoder enforces.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// The header of the next frame in `buf`, or `Ok(None)` while fewer than 8 bytes are in.
    ///
    /// # Errors
    /// As [`FrameHeader::parse`].
    pub fn peek_header(&self, buf: &[u8]) -> Result<Option<FrameHeader>, Error> {
        FrameHeader::parse(buf, self.max_frame_bytes)
    }

    /// Splits the next whole frame off the front of `buf`; `Ok(None)` (with `buf` untouched)
    /// until it is all there.
    ///
    /// # Errors
    /// As [`FrameHeader::parse`]; the buffer is then untouched and the stream unusable.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<RawFrame>, Error> {
        let Some(header) = self.peek_header(buf)? else {
            return Ok(None);
        };
        if buf.len() < header.frame_len() {
            return Ok(None);
        }
        let mut frame = buf.split_to(header.frame_len());
        let payload = frame.split_off(HEADER_LEN).freeze();
        Ok(Some(RawFrame {
            frame_type: header.frame_type,
            payload,
        }))
    }

    /// Checks what is left in `buf` when the input ends: nothing, or a truncated frame.
    ///
    /// # Errors
    /// [`Error::Truncated`] if `buf` holds part of a frame (a header's worth of bytes or
    /// fewer are reported against the header's length); a bad header as in
    /// [`FrameDecoder::decode`].
    pub fn finish(&self, buf: &[u8]) -> Result<(), Error> {
        if buf.is_empty() {
            return Ok(());
        }
        let need = match self.peek_header(buf)? {
            Some(h) => h.frame_len() as u64,
            None => HEADER_LEN as u64,
        };
        Err(Error::Truncated {
            have: buf.len(),
            need,
        })
    }
}

#[cfg(test)]
mod tests;
