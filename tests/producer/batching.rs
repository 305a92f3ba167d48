//! Batches go out when full (records or bytes) or when their oldest record has lingered.

use std::time::Duration;

use shardline_client::producer::{Producer, ProducerConfig};

use crate::harness::{Kind, Server};

/// Linger so long that only a full batch (or a flush) can send anything.
const FOREVER: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn full_batches_go_out_without_waiting_for_linger() {
    let server = Server::start(&["s:1"], &[]);
    let transport = server.transport(Kind::Http).await;
    let mut config = ProducerConfig::new("s");
    config.linger = FOREVER;
    config.max_batch_records = 10;
    let producer = Producer::new(config, transport.clone()).await.unwrap();
    let mut futures = Vec::new();
    for i in 0..25u32 {
        futures.push(
            producer
                .put(&format!("k{i}"), None, i.to_le_bytes().to_vec())
                .await
                .unwrap(),
        );
    }
    let rest = futures.split_off(20);
    for f in futures {
        f.await.unwrap();
    }
    let sizes: Vec<usize> = transport.calls().iter().map(|c| c.entries.len()).collect();
    assert_eq!(sizes, [10, 10]);
    // The last five wait for linger (an hour) or a flush.
    producer.flush().await.unwrap();
    for f in rest {
        f.await.unwrap();
    }
    let sizes: Vec<usize> = transport.calls().iter().map(|c| c.entries.len()).collect();
    assert_eq!(sizes, [10, 10, 5]);
    producer.close().await.unwrap();
}

#[tokio::test]
async fn byte_limit_cuts_batches() {
    let server = Server::start(&["s:1"], &[]);
    let transport = server.transport(Kind::Native).await;
    let mut config = ProducerConfig::new("s");
    config.linger = FOREVER;
    config.max_batch_bytes = 1000;
    let producer = Producer::new(config, transport.clone()).await.unwrap();
    let mut futures = Vec::new();
    for i in 0..10 {
        // 2-byte key + 298 bytes of data = 300 bytes: three fit in 1000.
        futures.push(
            producer
                .put(&format!("k{i}"), None, vec![i; 298])
                .await
                .unwrap(),
        );
    }
    // Full batches go out; the tenth record (300 bytes queued) waits for a flush.
    let last = futures.pop().unwrap();
    for f in futures {
        f.await.unwrap();
    }
    let sizes: Vec<usize> = transport.calls().iter().map(|c| c.entries.len()).collect();
    assert_eq!(sizes, [3, 3, 3]);
    producer.flush().await.unwrap();
    last.await.unwrap();
    let sizes: Vec<usize> = transport.calls().iter().map(|c| c.entries.len()).collect();
    assert_eq!(sizes, [3, 3, 3, 1]);
    producer.close().await.unwrap();
}

#[tokio::test]
async fn a_partial_batch_goes_out_after_linger() {
    let server = Server::start(&["s:1"], &[]);
    let transport = server.transport(Kind::Native).await;
    let mut config = ProducerConfig::new("s");
    config.linger = Duration::from_millis(300);
    let producer = Producer::new(config, transport.clone()).await.unwrap();
    let started = tokio::time::Instant::now();
    let futures = [
        producer.put("a", None, b"1".to_vec()).await.unwrap(),
        producer.put("b", None, b"2".to_vec()).await.unwrap(),
        producer.put("c", None, b"3".to_vec()).await.unwrap(),
    ];
    for f in futures {
        f.await.unwrap();
    }
    // Resolved without a flush, and not before the linger time.
    assert!(started.elapsed() >= Duration::from_millis(300));
    let sizes: Vec<usize> = transport.calls().iter().map(|c| c.entries.len()).collect();
    assert_eq!(sizes, [3]);
    producer.close().await.unwrap();
}

/// With aggregation, user records of one shard share aggregates up to the aggregation size,
/// and a record too large to aggregate goes alone.
#[tokio::test]
async fn aggregates_respect_their_size_and_large_records_go_alone() {
    let server = Server::start(&["s:1"], &[]);
    let transport = server.transport(Kind::Http).await;
    let mut config = ProducerConfig::new("s");
    config.linger = FOREVER;
    config.aggregation = true;
    config.aggregation_max_bytes = 4096;
    let producer = Producer::new(config, transport.clone()).await.unwrap();
    let mut futures = Vec::new();
    for i in 0..40u8 {
        futures.push(
            producer
                .put(&format!("k{}", i % 5), None, vec![i; 500])
                .await
                .unwrap(),
        );
    }
    futures.push(producer.put("big", None, vec![9; 10_000]).await.unwrap());
    producer.flush().await.unwrap();
    let mut subs = Vec::new();
    for f in futures {
        subs.push(f.await.unwrap().sub_sequence_number);
    }
    assert_eq!(
        subs.last().unwrap(),
        &None,
        "the large record went as a plain record"
    );
    let entries: Vec<_> = transport
        .calls()
        .into_iter()
        .flat_map(|c| c.entries)
        .collect();
    let is_aggregate =
        |e: &&shardline_client::producer::PutEntry| e.data.starts_with(&[0xF3, 0x89, 0x9A, 0xC2]);
    for e in entries.iter().filter(is_aggregate) {
        assert!(
            e.partition_key.len() + e.data.len() <= 4096,
            "{}",
            e.data.len()
        );
    }
    let plain: Vec<_> = entries.iter().filter(|e| !is_aggregate(e)).collect();
    assert_eq!(plain.len(), 1);
    assert_eq!(
        (plain[0].partition_key.as_str(), plain[0].data.len()),
        ("big", 10_000)
    );
    let aggregates = entries.iter().filter(is_aggregate).count();
    // 40 records of 500 bytes in aggregates of at most 4 KiB: at least 5 aggregates.
    assert!(aggregates >= 5, "{aggregates}");
    assert!(entries.len() < 41);
    let stored = server.read_all("s").await;
    assert_eq!(stored.len(), 41);
    producer.close().await.unwrap();
}
