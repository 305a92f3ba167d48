//! PackedBatch (protocol version 3): the same request as PutBatch in a fixed layout, served
//! the same way.

use shardline_protocol::frame::{RequestId, HEADER_LEN, PACKED_PROTOCOL_VERSION};
use shardline_protocol::{ErrorCode, Hello, PackedBatchBuilder, PutBatchBuilder};

use crate::harness::{render, written_or_invalid, Client, Outcome, Reply, Server};

/// Records put in PackedBatch frames read back from GetRecords on the shard their result
/// names, with the same sequence number, key and data; a hash key routes a record as
/// PutRecords' `ExplicitHashKey` does. PackedBatch and PutBatch frames pipelined on one
/// connection are appended in the order they were sent.
#[tokio::test]
async fn packed_records_read_back_and_mix_with_put_batches() {
    let server = Server::start(&["pk:2"], &[]);
    let (mut c, ack) = Client::greeted(server.native).await;
    assert!(ack.protocol_version >= PACKED_PROTOCOL_VERSION);

    // Two shards split the hash space at 2^127.
    let mut sent: Vec<(String, Vec<u8>, Option<u32>)> = Vec::new();
    let mut packed = PackedBatchBuilder::new();
    let mut table = PutBatchBuilder::new();
    let mut frames = Vec::new();
    for batch in 0..4u64 {
        for i in 0..100u32 {
            let n = batch as u32 * 100 + i;
            let key = format!("key-{n}");
            let data: Vec<u8> = (0..(n % 60)).map(|j| (n + j) as u8).collect();
            let (hash, shard) = match n % 3 {
                0 => (None, None),
                1 => (Some(u128::from(n)), Some(0)),
                _ => (Some(u128::MAX - u128::from(n)), Some(1)),
            };
            if batch % 2 == 0 {
                packed.push(&key, hash, &data);
            } else {
                table.push(
                    &key,
                    hash.map(shardline_protocol::ExplicitHashKey::Binary),
                    &data,
                );
            }
            sent.push((key, data, shard));
        }
        frames.extend(if batch % 2 == 0 {
            packed.finish(RequestId(batch + 1), "pk")
        } else {
            table.finish(RequestId(batch + 1), "pk")
        });
    }
    c.send(&frames).await;
    let mut results: Vec<(RequestId, Vec<Outcome>)> = Vec::new();
    for _ in 0..4 {
        match c.reply().await {
            Reply::Result(id, outcomes) => results.push((id, outcomes)),
            other => panic!("{other:?}"),
        }
    }
    results.sort_by_key(|(id, _)| *id);
    let outcomes: Vec<Outcome> = results.into_iter().flat_map(|(_, o)| o).collect();
    assert_eq!(outcomes.len(), sent.len());
    let mut want: [Vec<(String, String, Vec<u8>)>; 2] = Default::default();
    for (o, (key, data, shard)) in outcomes.iter().zip(&sent) {
        let Outcome::Written(p) = o else {
            panic!("{key} failed: {o:?}")
        };
        if let Some(shard) = shard {
            assert_eq!(p.shard, *shard, "{key} routed by its hash key");
        }
        want[p.shard as usize].push((render(p), key.clone(), data.clone()));
    }
    for (shard, want) in want.iter().enumerate() {
        let got = server.read_shard("pk", shard as u32).await;
        // Sequence numbers grow in the order the frames were sent, whatever their layout.
        assert_eq!(&got, want, "shard {shard}");
    }
}

/// Records the server refuses fail alone in a PackedBatch as in a PutBatch; an empty batch
/// and an unknown stream fail as a whole; the connection stays usable.
#[tokio::test]
async fn packed_errors_are_answered_like_put_batch_errors() {
    let server = Server::start(&["pe:1"], &[]);
    let (mut c, _) = Client::greeted(server.native).await;
    let mut b = PackedBatchBuilder::new();
    let long_key = "k".repeat(257);
    let too_big = vec![1u8; 1 << 20];
    let records: Vec<(&str, Option<u128>, &[u8], bool)> = vec![
        ("good-0", None, b"a", true),
        ("", None, b"empty key", false),
        (&long_key, Some(7), b"257 chars", false),
        ("kk", None, &too_big, false),
        ("good-1", Some(u128::MAX), b"b", true),
    ];
    for (key, hash, data, _) in &records {
        b.push(key, *hash, data);
    }
    c.send(&b.finish(RequestId(1), "pe")).await;
    let Reply::Result(_, outcomes) = c.reply().await else {
        panic!("expected a PutResult")
    };
    let expected: Vec<(&str, &[u8], bool)> =
        records.iter().map(|(k, _, d, v)| (*k, *d, *v)).collect();
    let written = written_or_invalid(&outcomes, &expected);
    let got: Vec<_> = server
        .read_shard("pe", 0)
        .await
        .into_iter()
        .map(|(_, k, d)| (k, d))
        .collect();
    assert_eq!(got, written);

    c.send(&b.finish(RequestId(2), "pe")).await;
    assert!(matches!(
        c.reply().await,
        Reply::Error(RequestId(2), ErrorCode::InvalidArgument, _)
    ));
    b.push("pk", None, b"x");
    c.send(&b.finish(RequestId(3), "no-such-stream")).await;
    assert!(matches!(
        c.reply().await,
        Reply::Error(RequestId(3), ErrorCode::ResourceNotFound, _)
    ));
    b.push("pk", None, b"x");
    c.send(&b.finish(RequestId(4), "pe")).await;
    assert!(matches!(c.reply().await, Reply::Result(RequestId(4), _)));
}

/// A client that agreed on protocol version 2 may not send PackedBatch: the connection is
/// closed with ProtocolViolation and nothing is written.
#[tokio::test]
async fn packed_batches_need_protocol_version_3() {
    let server = Server::start(&["pv:1"], &[]);
    let mut c = Client::connect(server.native).await;
    c.send(
        &Hello {
            protocol_version: 2,
            client: "v2-client",
        }
        .encode(),
    )
    .await;
    let ack = c.next_frame().await.expect("HelloAck");
    let ack = shardline_protocol::HelloAck::decode(&ack.payload).unwrap();
    assert_eq!(ack.protocol_version, 2);
    let mut b = PackedBatchBuilder::new();
    b.push("pk", None, b"x");
    let frame = b.finish(RequestId(1), "pv");
    assert!(frame.len() > HEADER_LEN);
    c.send(&frame).await;
    let (code, message, before) = c.expect_closed_with().await;
    assert_eq!(code, ErrorCode::ProtocolViolation, "{message}");
    assert!(message.contains("version 3"), "{message}");
    assert!(before.is_empty());
    assert!(server.read_shard("pv", 0).await.is_empty());
}
