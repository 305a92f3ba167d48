//! Records put over the native protocol read back through the Kinesis HTTP API.

use shardline_protocol::frame::{
    RequestId, DEFAULT_MAX_FRAME_BYTES, DEFAULT_WINDOW_BYTES, MAX_BATCH_RECORDS, PROTOCOL_VERSION,
};
use shardline_protocol::{ExplicitHashKey, PutBatchBuilder};

use crate::harness::{render, Ack, Client, Outcome, Reply, Server};

/// Every record put comes back from GetRecords on the shard the PutResult named, with the
/// same sequence number (rendered from the result's parts), partition key and data; explicit
/// hash keys in both forms route as PutRecords' do.
#[tokio::test]
async fn records_read_back_with_the_same_sequence_numbers() {
    let server = Server::start(&["rt:2"], &[]);
    let (mut c, ack) = Client::greeted(server.native).await;
    assert_eq!(
        ack,
        Ack {
            protocol_version: PROTOCOL_VERSION,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES as u32,
            window_bytes: DEFAULT_WINDOW_BYTES as u32,
            max_batch_records: MAX_BATCH_RECORDS as u32,
        }
    );
    // Two shards split the hash space at 2^127.
    let mut sent: Vec<(String, Vec<u8>, u32)> = Vec::new();
    let mut b = PutBatchBuilder::new();
    for i in 0..300u32 {
        let key = format!("key-{i}");
        let data: Vec<u8> = (0..(i % 50)).map(|j| (i + j) as u8).collect();
        let (hash, shard) = match i % 3 {
            0 => (None, None),
            1 => (Some(ExplicitHashKey::Binary(u128::from(i))), Some(0)),
            _ => (
                Some(ExplicitHashKey::Decimal(
                    "340282366920938463463374607431768211455",
                )),
                Some(1),
            ),
        };
        b.push(&key, hash, &data);
        sent.push((key, data, shard.unwrap_or(u32::MAX)));
    }
    c.send(&b.finish(RequestId(1), "rt")).await;
    let Reply::Result(id, outcomes) = c.reply().await else {
        panic!("expected a PutResult")
    };
    assert_eq!(id, RequestId(1));
    assert_eq!(outcomes.len(), sent.len());
    let mut want: [Vec<(String, String, Vec<u8>)>; 2] = Default::default();
    for (o, (key, data, shard)) in outcomes.iter().zip(&sent) {
        let Outcome::Written(p) = o else {
            panic!("{key} failed: {o:?}")
        };
        if *shard != u32::MAX {
            assert_eq!(p.shard, *shard, "{key} routed by its explicit hash key");
        }
        want[p.shard as usize].push((render(p), key.clone(), data.clone()));
    }
    assert!(!want[0].is_empty() && !want[1].is_empty());
    for shard in 0..2u32 {
        let got = server.read_shard("rt", shard).await;
        assert_eq!(got, want[shard as usize], "shard {shard}");
        assert!(got.iter().all(|(seq, ..)| seq.len() == 56));
    }
    // The records count in the per-shard IncomingRecords series.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let resp = client
        .get(format!("http://{}/metrics", server.http).parse().unwrap())
        .await
        .unwrap();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    let incoming: u64 = text
        .lines()
        .filter(|l| {
            l.starts_with("shardline_incoming_records_total{") && l.contains("stream=\"rt\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(incoming, 300, "{text}");
}
