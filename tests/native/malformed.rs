//! Bad bytes close the connection that sent them with an Error frame, and only that one.

use shardline_protocol::frame::{
    FrameHeader, FrameType, RequestId, DEFAULT_MAX_FRAME_BYTES, HEADER_LEN,
};
use shardline_protocol::{ErrorCode, Hello, PackedBatchBuilder, PutBatchBuilder};

use crate::harness::{Client, Outcome, Reply, Server};

fn hello_frame(protocol_version: u16) -> Vec<u8> {
    Hello {
        protocol_version,
        client: "malformed-tests",
    }
    .encode()
}

fn batch_frame(id: u64) -> Vec<u8> {
    let mut b = PutBatchBuilder::new();
    b.push("pk", None, b"payload");
    b.finish(RequestId(id), "bad")
}

fn packed_frame(id: u64) -> Vec<u8> {
    let mut b = PackedBatchBuilder::new();
    b.push("pk", None, b"payload");
    b.push("pk2", Some(5), b"more");
    b.finish(RequestId(id), "bad")
}

fn header(frame_type: u8, payload_len: u32) -> Vec<u8> {
    let mut h = FrameHeader {
        frame_type: FrameType::Hello,
        payload_len,
    }
    .to_bytes()
    .to_vec();
    h[4] = frame_type;
    h
}

/// What a case sends, whether it greets first, whether it then closes its write side, and
/// the code the server must answer with.
struct Case {
    name: &'static str,
    greet: bool,
    bytes: Vec<u8>,
    half_close: bool,
    code: ErrorCode,
}

fn cases() -> Vec<Case> {
    let batch = batch_frame(1);
    let mut bad_version = batch.clone();
    bad_version[5] = 2;
    let mut reserved = batch.clone();
    reserved[7] = 1;
    // A length 10 bytes short of the flatbuffer: the frame ends inside it.
    let mut short = batch.clone();
    let cut = (batch.len() - HEADER_LEN - 10) as u32;
    short[..4].copy_from_slice(&cut.to_le_bytes());
    short.truncate(HEADER_LEN + cut as usize);
    let mut garbage_payload = header(FrameType::PutBatch as u8, 64);
    garbage_payload.extend((0..64u8).map(|i| i.wrapping_mul(37)));
    let mut bad_hello = header(FrameType::Hello as u8, 12);
    bad_hello.extend([0xff; 12]);
    let id_zero = batch_frame(0);
    let packed = packed_frame(1);
    // PackedBatch layout (docs/formats/native.md): 16 fixed bytes, the name "bad", then the
    // first record's 7-byte header (data length, key length, flags) and its key "pk".
    let first_record = HEADER_LEN + 16 + 3;
    let mut packed_overcount = packed.clone();
    packed_overcount[HEADER_LEN + 8] = 3;
    let mut packed_long_data = packed.clone();
    packed_long_data[first_record..first_record + 4].copy_from_slice(&1000u32.to_le_bytes());
    let mut packed_flags = packed.clone();
    packed_flags[first_record + 6] = 0x80;
    let mut packed_key = packed.clone();
    packed_key[first_record + 7] = 0xc3;
    let mut packed_extra = packed.clone();
    packed_extra.push(0);
    packed_extra[..4].copy_from_slice(&((packed.len() - HEADER_LEN + 1) as u32).to_le_bytes());
    let packed_id_zero = packed_frame(0);
    vec![
        Case {
            name: "PackedBatch with fewer records than record_count",
            greet: true,
            bytes: packed_overcount,
            half_close: false,
            code: ErrorCode::MalformedFrame,
        },
        Case {
            name: "PackedBatch record longer than the frame",
            greet: true,
            bytes: packed_long_data,
            half_close: false,
            code: ErrorCode::MalformedFrame,
        },
        Case {
            name: "PackedBatch record with unknown flags",
            greet: true,
            bytes: packed_flags,
            half_close: false,
            code: ErrorCode::MalformedFrame,
        },
        Case {
            name: "PackedBatch partition key not UTF-8",
            greet: true,
            bytes: packed_key,
            half_close: false,
            code: ErrorCode::MalformedFrame,
        },
        Case {
            name: "PackedBatch bytes after its records",
            greet: true,
            bytes: packed_extra,
            half_close: false,
            code: ErrorCode::MalformedFrame,
        },
        Case {
            name: "PackedBatch with request id 0",
            greet: true,
            bytes: packed_id_zero,
            half_close: false,
            code: ErrorCode::ProtocolViolation,
        },
        Case {
            name: "PackedBatch before Hello",
            greet: false,
            bytes: packed.clone(),
            half_close: false,
            code: ErrorCode::ProtocolViolation,
        },
        Case {
            name: "EOF inside a PackedBatch",
            greet: true,
            bytes: packed[..packed.len() - 3].to_vec(),
            half_close: true,
            code: ErrorCode::TruncatedFrame,
        },
        Case {
            name: "oversized frame",
            greet: true,
            bytes: header(
                FrameType::PutBatch as u8,
                (DEFAULT_MAX_FRAME_BYTES - HEADER_LEN + 1) as u32,
            ),
            half_close: false,
            code: ErrorCode::FrameTooLarge,
        },
        Case {
            name: "an HTTP request instead of frames",
            greet: false,
            bytes: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            half_close: false,
            code: ErrorCode::FrameTooLarge,
        },
        Case {
            name: "length shorter than the flatbuffer",
            greet: true,
            bytes: short,
            half_close: false,
            code: ErrorCode::MalformedFrame,
        },
        Case {
            name: "EOF inside a header",
            greet: true,
            bytes: batch[..5].to_vec(),
            half_close: true,
            code: ErrorCode::TruncatedFrame,
        },
        Case {
            name: "EOF inside a payload",
            greet: true,
            bytes: batch[..batch.len() / 2].to_vec(),
            half_close: true,
            code: ErrorCode::TruncatedFrame,
        },
        Case {
            name: "EOF inside the first frame",
            greet: false,
            bytes: hello_frame(1)[..3].to_vec(),
            half_close: true,
            code: ErrorCode::TruncatedFrame,
        },
        Case {
            name: "garbage payload",
            greet: true,
            bytes: garbage_payload,
            half_close: false,
            code: ErrorCode::MalformedFrame,
        },
        Case {
            name: "invalid Hello flatbuffer",
            greet: false,
            bytes: bad_hello,
            half_close: false,
            code: ErrorCode::MalformedFrame,
        },
        Case {
            name: "bad header version",
            greet: true,
            bytes: bad_version,
            half_close: false,
            code: ErrorCode::UnsupportedVersion,
        },
        Case {
            name: "nonzero reserved bytes",
            greet: true,
            bytes: reserved,
            half_close: false,
            code: ErrorCode::MalformedFrame,
        },
        Case {
            name: "unknown frame type",
            greet: true,
            bytes: header(99, 0),
            half_close: false,
            code: ErrorCode::UnknownFrameType,
        },
        Case {
            name: "a server frame type from the client",
            greet: true,
            bytes: header(FrameType::PutResult as u8, 0),
            half_close: false,
            code: ErrorCode::ProtocolViolation,
        },
        Case {
            name: "PutBatch before Hello",
            greet: false,
            bytes: batch.clone(),
            half_close: false,
            code: ErrorCode::ProtocolViolation,
        },
        Case {
            name: "a second Hello",
            greet: true,
            bytes: hello_frame(1),
            half_close: false,
            code: ErrorCode::ProtocolViolation,
        },
        Case {
            name: "Hello with protocol version 0",
            greet: false,
            bytes: hello_frame(0),
            half_close: false,
            code: ErrorCode::UnsupportedVersion,
        },
        Case {
            name: "request id 0",
            greet: true,
            bytes: id_zero,
            half_close: false,
            code: ErrorCode::ProtocolViolation,
        },
    ]
}

/// Each malformed input gets an Error frame with request id 0 and its code, then the
/// connection closes; a connection opened before them all keeps working throughout, and
/// the server still accepts new connections.
#[tokio::test]
async fn every_malformed_input_closes_only_its_connection() {
    let server = Server::start(&["bad:1"], &[]);
    let (mut bystander, _) = Client::greeted(server.native).await;
    for (n, case) in cases().into_iter().enumerate() {
        let mut c = Client::connect(server.native).await;
        if case.greet {
            c.hello().await;
        }
        c.send(&case.bytes).await;
        if case.half_close {
            use tokio::io::AsyncWriteExt;
            c.socket.shutdown().await.unwrap();
        }
        let (code, message, before) = c.expect_closed_with().await;
        assert_eq!(code, case.code, "{}: {message}", case.name);
        assert!(before.is_empty(), "{}: {before:?}", case.name);
        assert!(!message.is_empty(), "{}", case.name);
        // The bystander is unaffected.
        bystander.send(&batch_frame(n as u64 + 1)).await;
        match bystander.reply().await {
            Reply::Result(id, outcomes) => {
                assert_eq!(id.0, n as u64 + 1);
                assert!(
                    matches!(outcomes[..], [Outcome::Written(_)]),
                    "{outcomes:?}"
                );
            }
            other => panic!("after {}: {other:?}", case.name),
        }
    }
    let (mut fresh, _) = Client::greeted(server.native).await;
    fresh.send(&batch_frame(1)).await;
    assert!(matches!(
        fresh.reply().await,
        Reply::Result(RequestId(1), _)
    ));
}

/// Batches sent before a bad frame are answered before the Error frame that closes the
/// connection; nothing after the bad frame is processed.
#[tokio::test]
async fn batches_before_a_bad_frame_are_answered_first() {
    let server = Server::start(&["bad:1"], &[]);
    let (mut c, _) = Client::greeted(server.native).await;
    let mut bytes = Vec::new();
    for id in 1..=5 {
        bytes.extend(batch_frame(id));
    }
    bytes.extend(header(99, 0));
    bytes.extend(batch_frame(6));
    c.send(&bytes).await;
    let (code, _, before) = c.expect_closed_with().await;
    assert_eq!(code, ErrorCode::UnknownFrameType);
    let mut ids: Vec<u64> = before
        .iter()
        .map(|r| match r {
            Reply::Result(id, _) => id.0,
            other => panic!("{other:?}"),
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2, 3, 4, 5]);
    let records = server.read_shard("bad", 0).await;
    assert_eq!(records.len(), 5, "batch 6 came after the bad frame");
}
