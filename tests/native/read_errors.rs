//! Bad Read requests fail alone; malformed Read frames close the connection; a reader that
//! asks and never reads is held to the window.

use std::time::Duration;

use shardline_protocol::frame::{FrameHeader, FrameType, RequestId};
use shardline_protocol::read::{MAX_READ_BYTES, MAX_READ_RECORDS};
use shardline_protocol::{ErrorCode, FrameDecoder, Hello, Read, ReadPosition, RecordsView};

use crate::harness::{read_frame, Client, Server};
use crate::read::{answer, put_native, read};

fn read_request(id: u64, stream: &str, position: Result<ReadPosition, u8>) -> Read<'_> {
    Read {
        request_id: RequestId(id),
        stream_name: stream,
        shard: 0,
        position,
        max_records: 10,
        max_bytes: 1 << 20,
    }
}

/// Each bad request gets an Error frame with its id and the code the doc gives; the
/// connection keeps serving.
#[tokio::test]
async fn bad_requests_fail_alone() {
    let server = Server::start(&["be:1"], &[]);
    let (mut c, _) = Client::greeted(server.native).await;
    put_native(&mut c, 1, "be", "k", 10).await;
    let epoch = read(&mut c, 2, "be", 0, ReadPosition::TrimHorizon, 1, 1)
        .await
        .unwrap()
        .epoch_secs;
    let cases: Vec<(&str, Read<'_>, ErrorCode)> = vec![
        (
            "unknown stream",
            read_request(10, "nope", Ok(ReadPosition::TrimHorizon)),
            ErrorCode::ResourceNotFound,
        ),
        (
            "unknown shard",
            Read {
                shard: 5,
                ..read_request(11, "be", Ok(ReadPosition::TrimHorizon))
            },
            ErrorCode::ResourceNotFound,
        ),
        (
            "zero records",
            Read {
                max_records: 0,
                ..read_request(12, "be", Ok(ReadPosition::TrimHorizon))
            },
            ErrorCode::InvalidArgument,
        ),
        (
            "too many records",
            Read {
                max_records: MAX_READ_RECORDS + 1,
                ..read_request(13, "be", Ok(ReadPosition::TrimHorizon))
            },
            ErrorCode::InvalidArgument,
        ),
        (
            "zero bytes",
            Read {
                max_bytes: 0,
                ..read_request(14, "be", Ok(ReadPosition::TrimHorizon))
            },
            ErrorCode::InvalidArgument,
        ),
        (
            "too many bytes",
            Read {
                max_bytes: MAX_READ_BYTES + 1,
                ..read_request(15, "be", Ok(ReadPosition::TrimHorizon))
            },
            ErrorCode::InvalidArgument,
        ),
        (
            "unknown position kind",
            read_request(16, "be", Err(99)),
            ErrorCode::InvalidArgument,
        ),
        (
            "another shard's epoch",
            read_request(
                17,
                "be",
                Ok(ReadPosition::AtSequenceNumber {
                    epoch_secs: epoch + 1,
                    counter: 0,
                }),
            ),
            ErrorCode::InvalidArgument,
        ),
        (
            "a sequence number never handed out",
            read_request(
                18,
                "be",
                Ok(ReadPosition::AfterSequenceNumber {
                    epoch_secs: epoch,
                    counter: 10,
                }),
            ),
            ErrorCode::InvalidArgument,
        ),
        (
            "a continuation past the tip",
            read_request(
                19,
                "be",
                Ok(ReadPosition::Continue {
                    epoch_secs: epoch,
                    counter: 11,
                }),
            ),
            ErrorCode::InvalidArgument,
        ),
        (
            "a timestamp in the future",
            read_request(
                20,
                "be",
                Ok(ReadPosition::AtTimestamp {
                    timestamp_ms: u64::MAX / 2,
                }),
            ),
            ErrorCode::InvalidArgument,
        ),
    ];
    for (name, r, code) in cases {
        c.send(&r.encode()).await;
        let got = answer(&mut c, r.request_id.0).await;
        match got {
            Err((got, message)) => {
                assert_eq!(got, code, "{name}: {message}");
                assert!(!message.is_empty(), "{name}");
            }
            Ok(a) => panic!("{name}: answered with {} records", a.records.len()),
        }
    }
    // Still serving: the continuation at the tip is empty, not an error.
    let a = read(
        &mut c,
        30,
        "be",
        0,
        ReadPosition::Continue {
            epoch_secs: epoch,
            counter: 10,
        },
        10,
        100,
    )
    .await
    .unwrap();
    assert!(a.records.is_empty());
}

fn raw_read(payload: &[u8]) -> Vec<u8> {
    let mut f = FrameHeader {
        frame_type: FrameType::Read,
        payload_len: payload.len() as u32,
    }
    .to_bytes()
    .to_vec();
    f.extend_from_slice(payload);
    f
}

/// A case's name, what it sends before (`None`: a version 2 Hello; empty: nothing; else
/// these bytes and a HelloAck), the bytes, and the code the server closes with.
type MalformedCase = (&'static str, Option<Vec<u8>>, Vec<u8>, ErrorCode);

/// Malformed Read frames, Reads the connection may not send, and a client sending a
/// Records frame each close the connection with the documented code.
#[tokio::test]
async fn malformed_read_frames_close_the_connection() {
    let server = Server::start(&["mf:1"], &[]);
    let good = read_request(1, "mf", Ok(ReadPosition::TrimHorizon)).encode();
    let payload = &good[shardline_protocol::frame::HEADER_LEN..];
    let mut reserved = payload.to_vec();
    reserved[13] = 1;
    let mut bad_name = payload.to_vec();
    *bad_name.last_mut().unwrap() = 0xff;
    let mut longer = payload.to_vec();
    longer.push(b'x');
    let mut records_frame = FrameHeader {
        frame_type: FrameType::Records,
        payload_len: 48,
    }
    .to_bytes()
    .to_vec();
    records_frame.extend_from_slice(&[0u8; 48]);
    let v1_hello = Hello {
        protocol_version: 1,
        client: "v1",
    }
    .encode();
    let cases: Vec<MalformedCase> = vec![
        (
            "short payload",
            None,
            raw_read(&payload[..39]),
            ErrorCode::MalformedFrame,
        ),
        (
            "name length mismatch",
            None,
            raw_read(&longer),
            ErrorCode::MalformedFrame,
        ),
        (
            "reserved byte",
            None,
            raw_read(&reserved),
            ErrorCode::MalformedFrame,
        ),
        (
            "name not UTF-8",
            None,
            raw_read(&bad_name),
            ErrorCode::MalformedFrame,
        ),
        (
            "request id 0",
            None,
            read_request(0, "mf", Ok(ReadPosition::TrimHorizon)).encode(),
            ErrorCode::ProtocolViolation,
        ),
        (
            "Records from a client",
            None,
            records_frame,
            ErrorCode::ProtocolViolation,
        ),
        (
            "Read before Hello",
            Some(Vec::new()),
            good.clone(),
            ErrorCode::ProtocolViolation,
        ),
        (
            "Read on a version 1 connection",
            Some(v1_hello),
            good.clone(),
            ErrorCode::ProtocolViolation,
        ),
    ];
    for (name, greeting, bytes, code) in cases {
        let mut c = Client::connect(server.native).await;
        match greeting {
            None => {
                c.hello().await;
            }
            Some(g) if g.is_empty() => {}
            Some(g) => {
                c.send(&g).await;
                let ack = c.next_frame().await.unwrap();
                assert_eq!(ack.frame_type, FrameType::HelloAck, "{name}");
            }
        }
        c.send(&bytes).await;
        let (got, message, before) = c.expect_closed_with().await;
        assert_eq!(got, code, "{name}: {message}");
        assert!(before.is_empty(), "{name}");
    }
    // The server still serves.
    let (mut c, _) = Client::greeted(server.native).await;
    assert!(read(&mut c, 1, "mf", 0, ReadPosition::TrimHorizon, 1, 1)
        .await
        .unwrap()
        .records
        .is_empty());
}

const WINDOW_BYTES: usize = 1 << 20;
const READS: u64 = 100;

/// A client asks for the whole stream (about 2 MB) a hundred times and reads nothing: the
/// answers wait behind the window (one at a time), so the server's memory grows by less
/// than 8 MiB (the window, one answer, slack; without the window's permits it grew by
/// 40 MB in the same 3 s); once the client reads, every Read is answered exactly once, in
/// full.
#[tokio::test]
async fn a_reader_that_never_reads_is_held_to_the_window() {
    let server = Server::start(
        &["slow:1"],
        &["--native-window-bytes", &WINDOW_BYTES.to_string()],
    );
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 << 10).unwrap();
    let mut c = Client::over(socket.connect(server.native).await.unwrap());
    c.hello().await;
    for i in 0..4 {
        let mut b = shardline_protocol::PutBatchBuilder::new();
        for j in 0..500 {
            b.push(&format!("k{j}"), None, &[i as u8; 1000]);
        }
        c.send(&b.finish(RequestId(i + 1), "slow")).await;
        assert!(matches!(c.reply().await, crate::harness::Reply::Result(..)));
    }
    let rss_before = server.rss_bytes();
    let mut all = Vec::new();
    for id in 1..=READS {
        all.extend(
            Read {
                request_id: RequestId(id),
                stream_name: "slow",
                shard: 0,
                position: Ok(ReadPosition::TrimHorizon),
                max_records: MAX_READ_RECORDS,
                max_bytes: MAX_READ_BYTES,
            }
            .encode(),
        );
    }
    c.send(&all).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_stalled = server.rss_bytes();
    assert!(
        rss_stalled <= rss_before + (8 << 20),
        "server RSS grew from {rss_before} to {rss_stalled} for a reader that does not read"
    );
    // Another connection is served meanwhile.
    let (mut other, _) = Client::greeted(server.native).await;
    let a = read(
        &mut other,
        1,
        "slow",
        0,
        ReadPosition::TrimHorizon,
        5,
        MAX_READ_BYTES,
    )
    .await
    .unwrap();
    assert_eq!(a.records.len(), 5);

    let (mut socket, mut buf) = c.into_parts();
    let decoder = FrameDecoder::new(64 << 20);
    let mut seen = vec![false; READS as usize + 1];
    for _ in 0..READS {
        let f = read_frame(&mut socket, &mut buf, &decoder)
            .await
            .expect("a Records frame");
        assert_eq!(f.frame_type, FrameType::Records);
        let v = RecordsView::parse(&f.payload).unwrap();
        let id = v.request_id().0 as usize;
        assert!(
            !std::mem::replace(&mut seen[id], true),
            "{id} answered twice"
        );
        assert_eq!(v.len(), 2000);
        assert_eq!(v.next_counter(), 2000);
        assert!(v.records().all(|r| r.data.len() == 1000));
    }
    assert!(seen[1..].iter().all(|s| *s));
}
