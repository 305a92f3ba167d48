//! Records of one partition key are written in the order they were put, even when
//! throttling (`--emulate-limits`: 1 MiB/s and 1,000 records/s per shard) makes the
//! producer retry many of them.

use std::collections::HashMap;
use std::time::Duration;

use shardline_client::producer::{Producer, ProducerConfig};

use crate::harness::{Kind, Server};

const KEYS: usize = 4;
/// 1,200 records of 4 KiB: one full PutRecords batch (500 records, 2 MiB) is already over a
/// shard's 1 MiB/s, so the burst is throttled and takes about 5 s to get through.
const RECORDS: usize = 1_200;
const RECORD_BYTES: usize = 4096;

async fn order_holds_under_throttling(kind: Kind, aggregation: bool) {
    let server = Server::start(&["s:1"], &["--emulate-limits"]);
    let transport = server.transport(kind).await;
    let mut config = ProducerConfig::new("s");
    config.aggregation = aggregation;
    config.linger = Duration::from_millis(20);
    config.initial_backoff = Duration::from_millis(50);
    config.max_backoff = Duration::from_millis(500);
    let producer = Producer::new(config, transport.clone()).await.unwrap();
    let mut futures = Vec::new();
    for i in 0..RECORDS {
        let key = format!("key-{}", i % KEYS);
        let mut data = format!("{i:08}").into_bytes();
        data.resize(RECORD_BYTES, b'.');
        futures.push(producer.put(&key, None, data).await.unwrap());
    }
    for f in futures {
        f.await.unwrap();
    }
    producer.close().await.unwrap();
    assert!(
        transport.failed_entries() > 0,
        "the server throttled nothing: the test did not exercise retries"
    );

    let stored = server.read_all("s").await;
    assert_eq!(stored.len(), RECORDS, "every record exactly once");
    let mut last: HashMap<String, usize> = HashMap::new();
    for (_, r) in &stored {
        let i: usize = std::str::from_utf8(&r.data[..8]).unwrap().parse().unwrap();
        assert_eq!(r.partition_key, format!("key-{}", i % KEYS));
        if let Some(prev) = last.insert(r.partition_key.clone(), i) {
            assert!(
                prev < i,
                "{}: record {i} stored after {prev}",
                r.partition_key
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_per_key_order_holds_under_throttling() {
    order_holds_under_throttling(Kind::Http, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_per_key_order_holds_under_throttling() {
    order_holds_under_throttling(Kind::Native, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_aggregated_per_key_order_holds_under_throttling() {
    order_holds_under_throttling(Kind::Native, true).await;
}
