//! SIGTERM with native connections open.

use shardline_protocol::frame::RequestId;
use shardline_protocol::{ErrorCode, PutBatchBuilder};

use crate::harness::{Client, Outcome, Reply, Server};

/// On SIGTERM the server answers the batches it has read, sends each open connection a
/// `ShuttingDown` Error frame, closes it, and exits cleanly; the records it acknowledged
/// are there after a restart on the same data directory.
#[tokio::test]
async fn sigterm_answers_batches_then_says_shutting_down() {
    let mut server = Server::start(&["stop:2"], &[]);
    let (mut idle, _) = Client::greeted(server.native).await;
    let (mut busy, _) = Client::greeted(server.native).await;
    let mut b = PutBatchBuilder::new();
    let mut frames = Vec::new();
    for id in 1..=20u64 {
        for i in 0..500 {
            b.push(&format!("k{i}"), None, &[id as u8; 64]);
        }
        frames.extend(b.finish(RequestId(id), "stop"));
    }
    busy.send(&frames).await;
    // The first answer proves the server is working through the batches.
    let first = busy.reply().await;
    let status = tokio::task::spawn_blocking(move || {
        let status = server.terminate();
        (server, status)
    });
    let (code, _, mut before) = busy.expect_closed_with().await;
    assert_eq!(code, ErrorCode::ShuttingDown);
    before.insert(0, first);
    let (idle_code, _, idle_before) = idle.expect_closed_with().await;
    assert_eq!(idle_code, ErrorCode::ShuttingDown);
    assert!(idle_before.is_empty());
    let (server, status) = status.await.unwrap();
    assert!(status.success(), "{status}");

    // Every batch read was answered before the Error frame, and only those were written.
    let mut acknowledged = 0;
    for r in &before {
        let Reply::Result(_, outcomes) = r else {
            panic!("{r:?}")
        };
        assert!(outcomes.iter().all(|o| matches!(o, Outcome::Written(_))));
        acknowledged += outcomes.len();
    }
    assert!(acknowledged >= 500);
    let server = server.restart();
    let stored =
        server.read_shard("stop", 0).await.len() + server.read_shard("stop", 1).await.len();
    assert_eq!(stored, acknowledged);
}
