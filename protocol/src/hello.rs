//! The handshake: the client's Hello and the server's HelloAck.
//!
//! A connection starts with exactly one Hello; the server answers HelloAck with the agreed
//! protocol version and the limits the client must respect (frame size, window, records
//! per batch), or an Error frame and closes.

use crate::error::Error;
use crate::fb;
use crate::frame::{frame_bytes, FrameType};

/// Client -> server, the first frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello<'a> {
    /// The highest protocol version the client speaks.
    pub protocol_version: u16,
    /// Names the client software, for the server's logs.
    pub client: &'a str,
}

impl<'a> Hello<'a> {
    /// The whole frame, header included.
    pub fn encode(&self) -> Vec<u8> {
        let mut fbb = flatbuffers::FlatBufferBuilder::with_capacity(64 + self.client.len());
        let client = fbb.create_string(self.client);
        let root = fb::Hello::create(
            &mut fbb,
            &fb::HelloArgs {
                protocol_version: self.protocol_version,
                client: Some(client),
            },
        );
        fbb.finish_minimal(root);
        frame_bytes(FrameType::Hello, fbb.finished_data())
    }

    /// Reads a Hello payload.
    ///
    /// # Errors
    /// [`Error::InvalidPayload`] if it is not a valid `Hello` flatbuffer.
    pub fn decode(payload: &'a [u8]) -> Result<Hello<'a>, Error> {
        let h = crate::verified_root::<fb::Hello>(payload, FrameType::Hello)?;
        Ok(Hello {
            protocol_version: h.protocol_version(),
            client: h.client().unwrap_or_default(),
        })
    }
}

/// Server -> client, the answer to Hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloAck<'a> {
    /// The version both sides speak from now on.
    pub protocol_version: u16,
    /// Largest frame, header included, the server accepts.
    pub max_frame_bytes: u32,
    /// PutBatch frame bytes the server reads ahead of their results.
    pub window_bytes: u32,
    /// Most records per PutBatch.
    pub max_batch_records: u32,
    /// Names the server software.
    pub server: &'a str,
}

impl<'a> HelloAck<'a> {
    /// The whole frame, header included.
    pub fn encode(&self) -> Vec<u8> {
        let mut fbb = flatbuffers::FlatBufferBuilder::with_capacity(64 + self.server.len());
        let server = fbb.create_string(self.server);
        let root = fb::HelloAck::create(
            &mut fbb,
            &fb::HelloAckArgs {
                protocol_version: self.protocol_version,
                max_frame_bytes: self.max_frame_bytes,
                window_bytes: self.window_bytes,
                max_batch_records: self.max_batch_records,
                server: Some(server),
            },
        );
        fbb.finish_minimal(root);
        frame_bytes(FrameType::HelloAck, fbb.finished_data())
    }

    /// Reads a HelloAck payload.
    ///
    /// # Errors
    /// [`Error::InvalidPayload`] if it is not a valid `HelloAck` flatbuffer.
    pub fn decode(payload: &'a [u8]) -> Result<HelloAck<'a>, Error> {
        let h = crate::verified_root::<fb::HelloAck>(payload, FrameType::HelloAck)?;
        Ok(HelloAck {
            protocol_version: h.protocol_version(),
            max_frame_bytes: h.max_frame_bytes(),
            window_bytes: h.window_bytes(),
            max_batch_records: h.max_batch_records(),
            server: h.server().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::HEADER_LEN;

    #[test]
    fn hello_and_ack_round_trip() {
        let h = Hello {
            protocol_version: 1,
            client: "test-client/1",
        };
        let bytes = h.encode();
        assert_eq!(bytes[4], FrameType::Hello as u8);
        assert_eq!(Hello::decode(&bytes[HEADER_LEN..]).unwrap(), h);
        let a = HelloAck {
            protocol_version: 1,
            max_frame_bytes: 16 << 20,
            window_bytes: 64 << 20,
            max_batch_records: 10_000,
            server: "shardline 0.1.0",
        };
        let bytes = a.encode();
        assert_eq!(HelloAck::decode(&bytes[HEADER_LEN..]).unwrap(), a);
        assert!(matches!(
            HelloAck::decode(&bytes[HEADER_LEN..HEADER_LEN + 3]),
            Err(Error::InvalidPayload { .. })
        ));
    }
}
