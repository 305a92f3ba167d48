//! Many batches in flight on one connection.

use std::collections::HashMap;

use shardline_protocol::frame::RequestId;
use shardline_protocol::PutBatchBuilder;

use crate::harness::{Client, Outcome, Reply, Server};

/// 100 batches sent before any result is read: each gets exactly one PutResult, tied to it
/// by its request id, with every record written. Batches are appended in the order they
/// were sent, so each partition key's records have increasing sequence numbers in send
/// order, whatever order the results arrive in.
#[tokio::test]
async fn a_hundred_batches_in_flight_each_answered_once_in_append_order() {
    let server = Server::start(&["pipe:4"], &[]);
    let (mut c, _) = Client::greeted(server.native).await;
    let mut b = PutBatchBuilder::new();
    let mut frames = Vec::new();
    for batch in 1..=100u64 {
        for i in 0..50u64 {
            b.push(
                &format!("k{}", i % 10),
                None,
                format!("{batch}/{i}").as_bytes(),
            );
        }
        frames.extend(b.finish(RequestId(batch), "pipe"));
    }
    // One write: the server sees all 100 batches before it answers any.
    c.send(&frames).await;
    let mut results: HashMap<u64, Vec<Outcome>> = HashMap::new();
    for _ in 0..100 {
        let Reply::Result(id, outcomes) = c.reply().await else {
            panic!("expected a PutResult")
        };
        assert!(
            results.insert(id.0, outcomes).is_none(),
            "batch {id} answered twice"
        );
    }
    assert_eq!(results.len(), 100);
    // Per partition key, in send order: (shard, counter) strictly increasing.
    let mut last: HashMap<u64, (u32, u64)> = HashMap::new();
    for batch in 1..=100u64 {
        let outcomes = &results[&batch];
        assert_eq!(outcomes.len(), 50);
        for (i, o) in outcomes.iter().enumerate() {
            let Outcome::Written(p) = o else {
                panic!("batch {batch} record {i}: {o:?}")
            };
            let key = i as u64 % 10;
            if let Some((shard, counter)) = last.get(&key) {
                assert_eq!(*shard, p.shard, "a key always routes to one shard");
                assert!(
                    p.counter > *counter,
                    "key k{key}: batch {batch} appended out of order"
                );
            }
            last.insert(key, (p.shard, p.counter));
        }
    }
    // Nothing else arrives: the connection is idle and still usable.
    b.push("k", None, b"after");
    c.send(&b.finish(RequestId(101), "pipe")).await;
    let Reply::Result(id, _) = c.reply().await else {
        panic!("expected a PutResult")
    };
    assert_eq!(id, RequestId(101));
}
