//! Every record's future resolves to the shard, sequence number and sub-sequence number under
//! which GetRecords returns it.

use std::collections::HashMap;

use shardline_client::producer::{Producer, ProducerConfig, Receipt};
use shardline_client::Error;

use crate::harness::{Kind, Server};

async fn receipts_match_get_records(kind: Kind, aggregation: bool) {
    let server = Server::start(&["s:3"], &[]);
    let transport = server.transport(kind).await;
    let mut config = ProducerConfig::new("s");
    config.aggregation = aggregation;
    let producer = Producer::new(config, transport.clone()).await.unwrap();
    let mut futures = Vec::new();
    for i in 0..300 {
        let key = format!("key-{}", i % 17);
        let data = format!("record {i}").into_bytes();
        futures.push((
            key.clone(),
            data.clone(),
            producer.put(&key, None, data).await.unwrap(),
        ));
    }
    let mut expected: HashMap<(String, String, u64), (String, Vec<u8>)> = HashMap::new();
    let mut aggregated = 0;
    for (key, data, future) in futures {
        let Receipt {
            shard_id,
            sequence_number,
            sub_sequence_number,
        } = future.await.unwrap();
        assert_eq!(sequence_number.len(), 56, "{sequence_number}");
        aggregated += usize::from(sub_sequence_number.is_some());
        let at = (shard_id, sequence_number, sub_sequence_number.unwrap_or(0));
        assert!(
            expected.insert(at, (key, data)).is_none(),
            "two records share a position"
        );
    }
    producer.close().await.unwrap();
    if aggregation {
        assert!(
            aggregated > 0,
            "with aggregation on, some records went as aggregates"
        );
        assert!(transport.calls().iter().flat_map(|c| &c.entries).count() < 300);
    } else {
        assert_eq!(aggregated, 0);
    }

    let stored = server.read_all("s").await;
    assert_eq!(stored.len(), 300);
    for (shard, r) in stored {
        let at = (shard, r.sequence_number.clone(), r.sub_sequence_number);
        let (key, data) = expected
            .remove(&at)
            .unwrap_or_else(|| panic!("GetRecords returned {at:?}, which no receipt named"));
        assert_eq!((r.partition_key, r.data), (key, data));
    }
    assert!(expected.is_empty());
}

#[tokio::test]
async fn http_receipts_match_get_records() {
    receipts_match_get_records(Kind::Http, false).await;
}

#[tokio::test]
async fn native_receipts_match_get_records() {
    receipts_match_get_records(Kind::Native, false).await;
}

#[tokio::test]
async fn http_aggregated_receipts_match_get_records() {
    receipts_match_get_records(Kind::Http, true).await;
}

#[tokio::test]
async fn native_aggregated_receipts_match_get_records() {
    receipts_match_get_records(Kind::Native, true).await;
}

/// Explicit hash keys route records (and aggregates) to the shard whose range holds them.
#[tokio::test]
async fn explicit_hash_keys_pick_the_shard() {
    let server = Server::start(&["s:2"], &[]);
    let transport = server.transport(Kind::Native).await;
    let mut config = ProducerConfig::new("s");
    config.aggregation = true;
    let producer = Producer::new(config, transport).await.unwrap();
    let high = (u128::MAX - 5).to_string();
    let mut futures = Vec::new();
    for i in 0..20 {
        let (ehk, want) = if i % 2 == 0 {
            ("7", "shardId-000000000000")
        } else {
            (high.as_str(), "shardId-000000000001")
        };
        let f = producer
            .put(&format!("k{i}"), Some(ehk), vec![i])
            .await
            .unwrap();
        futures.push((f, want));
    }
    for (f, want) in futures {
        assert_eq!(f.await.unwrap().shard_id, want);
    }
    producer.close().await.unwrap();
}

#[tokio::test]
async fn invalid_records_are_refused_before_sending() {
    let server = Server::start(&["s:1"], &[]);
    let producer = Producer::new(ProducerConfig::new("s"), server.transport(Kind::Http).await)
        .await
        .unwrap();
    for (key, ehk, len) in [
        ("", None, 1),
        (&"k".repeat(257)[..], None, 1),
        ("k", Some("-1"), 1),
        ("k", Some("340282366920938463463374607431768211456"), 1),
        ("k", Some("007"), 1),
        ("k", None, 1 << 20),
    ] {
        let err = producer.put(key, ehk, vec![0; len]).await.err();
        assert!(
            matches!(err, Some(Error::InvalidRecord { .. })),
            "{key:?} {ehk:?} {len}: {err:?}"
        );
    }
    producer.close().await.unwrap();
}

#[tokio::test]
async fn a_missing_stream_fails_at_start() {
    let server = Server::start(&[], &[]);
    let err = Producer::new(
        ProducerConfig::new("nope"),
        server.transport(Kind::Http).await,
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.kind(), Some("ResourceNotFoundException"), "{err}");
}

/// A failure retrying cannot fix (the stream was deleted) resolves each record's future
/// with the server's error after one attempt.
async fn non_retryable_failures_resolve_at_once(kind: Kind) {
    let server = Server::start(&["s:1"], &[]);
    let transport = server.transport(kind).await;
    let producer = Producer::new(ProducerConfig::new("s"), transport.clone())
        .await
        .unwrap();
    let _: serde_json::Value = server
        .client()
        .call("DeleteStream", &serde_json::json!({"StreamName": "s"}))
        .await
        .unwrap();
    let futures = [
        producer.put("a", None, b"one".to_vec()).await.unwrap(),
        producer.put("b", None, b"two".to_vec()).await.unwrap(),
    ];
    for f in futures {
        match f.await {
            Err(Error::RecordFailed { code, attempts, .. }) => {
                assert!(code.contains("ResourceNotFound"), "{code}");
                assert_eq!(attempts, 1);
            }
            other => panic!("expected RecordFailed, got {other:?}"),
        }
    }
    assert_eq!(transport.calls().len(), 1);
    producer.close().await.unwrap();
}

#[tokio::test]
async fn http_non_retryable_failures_resolve_at_once() {
    non_retryable_failures_resolve_at_once(Kind::Http).await;
}

#[tokio::test]
async fn native_non_retryable_failures_resolve_at_once() {
    non_retryable_failures_resolve_at_once(Kind::Native).await;
}
