//! After a split the producer learns the new shards (its answers name shards its map did not
//! predict), and every partition key's records stay in order across parent and children.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use shardline_client::kpl::partition_key_hash;
use shardline_client::producer::{Producer, ProducerConfig};

use crate::harness::{Kind, Server};

async fn put_round(producer: &Producer, round: usize) -> Vec<String> {
    let mut futures = Vec::new();
    for i in 0..200 {
        let data = format!("{round}-{i:04}").into_bytes();
        futures.push(
            producer
                .put(&format!("k{}", i % 20), None, data)
                .await
                .unwrap(),
        );
    }
    let mut shards = Vec::new();
    for f in futures {
        shards.push(f.await.unwrap().shard_id);
    }
    shards
}

#[tokio::test]
async fn a_split_refreshes_the_shard_map_and_keeps_per_key_order() {
    let server = Server::start(&["s:1"], &[]);
    let client = server.client();
    let transport = server.transport(Kind::Native).await;
    let mut config = ProducerConfig::new("s");
    config.linger = Duration::from_millis(10);
    let producer = Producer::new(config, transport.clone()).await.unwrap();
    let first = put_round(&producer, 0).await;
    assert!(first.iter().all(|s| s == "shardId-000000000000"));
    assert_eq!(transport.list_calls.load(Ordering::SeqCst), 1);

    let _: serde_json::Value = client
        .call(
            "SplitShard",
            &serde_json::json!({
                "StreamName": "s",
                "ShardToSplit": "shardId-000000000000",
                "NewStartingHashKey": (1u128 << 127).to_string(),
            }),
        )
        .await
        .unwrap();
    loop {
        let d: serde_json::Value = client
            .call(
                "DescribeStreamSummary",
                &serde_json::json!({"StreamName": "s"}),
            )
            .await
            .unwrap();
        if d["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = put_round(&producer, 1).await;
    // The refresh runs beside the puts; give it time before the third round.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while transport.list_calls.load(Ordering::SeqCst) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the shard map was not listed again after the split"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let third = put_round(&producer, 2).await;
    producer.close().await.unwrap();
    for s in second.iter().chain(&third) {
        assert!(
            s == "shardId-000000000001" || s == "shardId-000000000002",
            "{s}"
        );
    }
    // With the new map, the third round's batches each went to one child: the producer
    // grouped by the children's ranges (a batch of the stale map would span both).
    let third_round: Vec<_> = transport
        .calls()
        .into_iter()
        .filter(|c| c.entries.iter().any(|e| e.data.starts_with(b"2-")))
        .collect();
    assert!(third_round.len() >= 2, "both children got batches");
    for call in third_round {
        let children: std::collections::HashSet<bool> = call
            .entries
            .iter()
            .map(|e| partition_key_hash(&e.partition_key) >= 1u128 << 127)
            .collect();
        assert_eq!(children.len(), 1, "a batch spanned both children");
    }

    // Parent first, then the children (read_all goes in shard order): per key, put order.
    let stored = server.read_all("s").await;
    assert_eq!(stored.len(), 600);
    let mut last: HashMap<String, String> = HashMap::new();
    for (_, r) in stored {
        let data = String::from_utf8(r.data).unwrap();
        if let Some(prev) = last.insert(r.partition_key.clone(), data.clone()) {
            assert!(
                prev < data,
                "{}: {data} stored after {prev}",
                r.partition_key
            );
        }
    }
}
