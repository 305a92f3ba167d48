//! Per-batch and per-record errors: answered in the protocol's shape, connection kept.

use shardline_protocol::frame::{RequestId, MAX_BATCH_RECORDS};
use shardline_protocol::{ErrorCode, ExplicitHashKey, PutBatchBuilder};

use crate::harness::{written_or_invalid, Client, Outcome, Reply, Server};

/// An unknown stream, an empty batch and an over-long batch fail as a whole with an Error
/// frame carrying the batch's request id; the connection stays open and the next batch is
/// written.
#[tokio::test]
async fn batch_errors_carry_the_request_id_and_keep_the_connection() {
    let server = Server::start(&["errs:1"], &[]);
    let (mut c, _) = Client::greeted(server.native).await;
    let mut b = PutBatchBuilder::new();

    b.push("pk", None, b"x");
    c.send(&b.finish(RequestId(7), "no-such-stream")).await;
    match c.reply().await {
        Reply::Error(id, code, message) => {
            assert_eq!((id, code), (RequestId(7), ErrorCode::ResourceNotFound));
            assert!(message.contains("no-such-stream"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    c.send(&b.finish(RequestId(8), "errs")).await;
    match c.reply().await {
        Reply::Error(id, code, _) => {
            assert_eq!((id, code), (RequestId(8), ErrorCode::InvalidArgument))
        }
        other => panic!("{other:?}"),
    }

    for i in 0..=MAX_BATCH_RECORDS {
        b.push(&format!("k{i}"), None, b"");
    }
    c.send(&b.finish(RequestId(9), "errs")).await;
    match c.reply().await {
        Reply::Error(id, code, message) => {
            assert_eq!((id, code), (RequestId(9), ErrorCode::InvalidArgument));
            assert!(message.contains("10000"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    b.push("pk", None, b"ok");
    c.send(&b.finish(RequestId(10), "errs")).await;
    assert!(
        matches!(c.reply().await, Reply::Result(RequestId(10), ref o) if matches!(o[..], [Outcome::Written(_)]))
    );
    assert_eq!(server.read_shard("errs", 0).await.len(), 1);
}

/// Invalid records fail alone with InvalidArgument; the valid records around them are
/// written, and only they can be read back.
#[tokio::test]
async fn invalid_records_fail_alone() {
    let server = Server::start(&["recs:1"], &[]);
    let (mut c, _) = Client::greeted(server.native).await;
    let max_key = "é".repeat(256);
    let long_key = "k".repeat(257);
    let one_mib = vec![1u8; 1 << 20];
    let too_big = vec![1u8; 1 << 20];
    let mut b = PutBatchBuilder::new();
    // (partition key, explicit hash key, data, valid)
    let records: Vec<(&str, Option<ExplicitHashKey<'_>>, &[u8], bool)> = vec![
        ("good-0", None, b"a", true),
        ("", None, b"empty key", false),
        (&long_key, None, b"257 chars", false),
        (&max_key, None, b"256 chars, 512 bytes", true),
        ("k", None, &one_mib[..(1 << 20) - 1], true),
        ("kk", None, &too_big, false),
        (
            "d",
            Some(ExplicitHashKey::Decimal("01")),
            b"leading zero",
            false,
        ),
        (
            "d",
            Some(ExplicitHashKey::Decimal("12a")),
            b"not digits",
            false,
        ),
        (
            "d",
            Some(ExplicitHashKey::Decimal(
                "340282366920938463463374607431768211456",
            )),
            b"2^128",
            false,
        ),
        ("d", Some(ExplicitHashKey::Decimal("0")), b"zero", true),
        ("good-1", None, b"b", true),
    ];
    for (key, hash, data, _) in &records {
        b.push(key, *hash, data);
    }
    c.send(&b.finish(RequestId(1), "recs")).await;
    let Reply::Result(_, outcomes) = c.reply().await else {
        panic!("expected a PutResult")
    };
    let expected: Vec<(&str, &[u8], bool)> =
        records.iter().map(|(k, _, d, v)| (*k, *d, *v)).collect();
    let written = written_or_invalid(&outcomes, &expected);
    let got: Vec<_> = server
        .read_shard("recs", 0)
        .await
        .into_iter()
        .map(|(_, k, d)| (k, d))
        .collect();
    assert_eq!(got, written);
}

/// With `--emulate-limits`, records over their shard's write quota (1,000 records/s) fail
/// alone with ProvisionedThroughputExceeded, as in PutRecords; the others are written.
#[tokio::test]
async fn records_over_the_shard_quota_are_throttled_alone() {
    let server = Server::start(&["quota:1"], &["--emulate-limits"]);
    let (mut c, _) = Client::greeted(server.native).await;
    let mut b = PutBatchBuilder::new();
    for i in 0..3000 {
        b.push(&format!("k{i}"), None, b"x");
    }
    c.send(&b.finish(RequestId(1), "quota")).await;
    let Reply::Result(_, outcomes) = c.reply().await else {
        panic!("expected a PutResult")
    };
    let written = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Written(_)))
        .count();
    let throttled = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o,
                Outcome::Failed(ErrorCode::ProvisionedThroughputExceeded, _)
            )
        })
        .count();
    assert_eq!(written + throttled, 3000, "{outcomes:?}");
    // A full bucket holds one second of quota; a little refills while the batch is admitted.
    assert!((1000..1100).contains(&written), "{written} written");
    assert_eq!(server.read_shard("quota", 0).await.len(), written);
}
