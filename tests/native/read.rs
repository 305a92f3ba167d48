//! Reading over the native protocol (Read and Records frames): records written through
//! PutBatch and PutRecords read back exactly as GetRecords returns them, from every kind of
//! starting position, within the asked limits, and a closed parent ends with its children.

use base64::Engine as _;
use shardline_engine::{SequenceNumber, ShardId};
use shardline_protocol::frame::{FrameType, RequestId, READ_PROTOCOL_VERSION};
use shardline_protocol::read::{MAX_READ_BYTES, MAX_READ_RECORDS};
use shardline_protocol::{ErrorCode, ErrorFrame, PutBatchBuilder, Read, ReadPosition, RecordsView};

use crate::harness::{Client, Reply, Server};

/// One record as read back: (sequence number, arrival ms, partition key, data).
pub type Got = (String, u64, Vec<u8>, Vec<u8>);

/// A Records frame, owned.
#[derive(Debug)]
pub struct Answer {
    pub epoch_secs: u64,
    pub next_counter: u64,
    pub millis_behind_latest: u64,
    pub end_of_shard: bool,
    pub child_shards: Vec<u32>,
    pub records: Vec<Got>,
}

/// Sends one Read and returns its Records frame, or the Error frame's code and message.
pub async fn read(
    c: &mut Client,
    id: u64,
    stream: &str,
    shard: u32,
    position: ReadPosition,
    max_records: u32,
    max_bytes: u32,
) -> Result<Answer, (ErrorCode, String)> {
    c.send(
        &Read {
            request_id: RequestId(id),
            stream_name: stream,
            shard,
            position: Ok(position),
            max_records,
            max_bytes,
        }
        .encode(),
    )
    .await;
    answer(c, id).await
}

/// The next frame, which must answer request `id`.
pub async fn answer(c: &mut Client, id: u64) -> Result<Answer, (ErrorCode, String)> {
    let f = c.next_frame().await.expect("an answer to the Read");
    match f.frame_type {
        FrameType::Records => {
            let v = RecordsView::parse(&f.payload).unwrap();
            assert_eq!(v.request_id(), RequestId(id));
            let shard = v.shard();
            let epoch = v.epoch_secs();
            let records = v
                .records()
                .map(|r| {
                    let seq = SequenceNumber {
                        epoch_secs: epoch,
                        shard: ShardId(shard),
                        counter: r.counter,
                        arrival_secs: r.arrival_secs(epoch),
                    };
                    (
                        seq.to_string(),
                        r.arrival_ms,
                        r.partition_key.to_vec(),
                        r.data.to_vec(),
                    )
                })
                .collect();
            Ok(Answer {
                epoch_secs: epoch,
                next_counter: v.next_counter(),
                millis_behind_latest: v.millis_behind_latest(),
                end_of_shard: v.end_of_shard(),
                child_shards: v.child_shards().collect(),
                records,
            })
        }
        FrameType::Error => {
            let e = ErrorFrame::decode(&f.payload).unwrap();
            assert_eq!(e.request_id, RequestId(id), "{}", e.message);
            Err((e.code, e.message.to_string()))
        }
        t => panic!("unexpected {t} frame"),
    }
}

/// Every record of a shard through GetRecords, with ApproximateArrivalTimestamp in ms.
pub async fn get_records(server: &Server, stream: &str, shard: u32) -> Vec<Got> {
    let it = server
        .kinesis(
            "GetShardIterator",
            serde_json::json!({
                "StreamName": stream,
                "ShardId": ShardId(shard).to_string(),
                "ShardIteratorType": "TRIM_HORIZON",
            }),
        )
        .await;
    let mut iterator = it["ShardIterator"].as_str().unwrap().to_string();
    let mut out = Vec::new();
    loop {
        let r = server
            .kinesis(
                "GetRecords",
                serde_json::json!({"ShardIterator": iterator, "Limit": 10000}),
            )
            .await;
        let records = r["Records"].as_array().unwrap();
        for rec in records {
            let secs = rec["ApproximateArrivalTimestamp"].as_f64().unwrap();
            out.push((
                rec["SequenceNumber"].as_str().unwrap().to_string(),
                (secs * 1000.0).round() as u64,
                rec["PartitionKey"].as_str().unwrap().as_bytes().to_vec(),
                base64::engine::general_purpose::STANDARD
                    .decode(rec["Data"].as_str().unwrap())
                    .unwrap(),
            ));
        }
        if records.is_empty() {
            return out;
        }
        iterator = r["NextShardIterator"].as_str().unwrap().to_string();
    }
}

/// Puts `n` records over the native protocol (keys `{prefix}-{i}`, sizes varying) and
/// waits for their PutResult.
pub async fn put_native(c: &mut Client, id: u64, stream: &str, prefix: &str, n: usize) {
    let mut b = PutBatchBuilder::new();
    for i in 0..n {
        let data: Vec<u8> = (0..(i * 7 % 300)).map(|j| (i + j) as u8).collect();
        b.push(&format!("{prefix}-{i}"), None, &data);
    }
    c.send(&b.finish(RequestId(id), stream)).await;
    match c.reply().await {
        Reply::Result(got, outcomes) => {
            assert_eq!(got, RequestId(id));
            assert_eq!(outcomes.len(), n);
        }
        Reply::Error(_, code, message) => panic!("put failed: {code:?} {message}"),
    }
}

/// Reads a whole shard over native with `max_records` per Read, following `next_counter`.
async fn read_all(c: &mut Client, stream: &str, shard: u32, max_records: u32) -> Vec<Got> {
    let mut out = Vec::new();
    let mut position = ReadPosition::TrimHorizon;
    let mut id = 1000;
    loop {
        id += 1;
        let a = read(c, id, stream, shard, position, max_records, MAX_READ_BYTES)
            .await
            .unwrap();
        assert!(a.records.len() <= max_records as usize);
        if a.records.is_empty() {
            assert_eq!(a.millis_behind_latest, 0);
            return out;
        }
        out.extend(a.records);
        position = ReadPosition::Continue {
            epoch_secs: a.epoch_secs,
            counter: a.next_counter,
        };
    }
}

/// Records written through PutBatch and PutRecords read back over native with the same
/// sequence numbers, keys, data and arrival times as GetRecords gives, whether read in one
/// Read or continued across many small ones.
#[tokio::test]
async fn reads_return_what_get_records_returns() {
    let server = Server::start(&["rd:2"], &[]);
    let (mut c, ack) = Client::greeted(server.native).await;
    assert!(ack.protocol_version >= READ_PROTOCOL_VERSION);
    put_native(&mut c, 1, "rd", "native", 500).await;
    let entries: Vec<_> = (0..200)
        .map(|i| {
            serde_json::json!({
                "PartitionKey": format!("http-{i}"),
                "Data": base64::engine::general_purpose::STANDARD.encode(format!("payload {i}")),
            })
        })
        .collect();
    let put = server
        .kinesis(
            "PutRecords",
            serde_json::json!({"StreamName": "rd", "Records": entries}),
        )
        .await;
    assert_eq!(put["FailedRecordCount"], 0);
    put_native(&mut c, 2, "rd", "again", 300).await;
    let mut total = 0;
    for shard in 0..2 {
        let want = get_records(&server, "rd", shard).await;
        assert!(!want.is_empty());
        total += want.len();
        assert_eq!(read_all(&mut c, "rd", shard, MAX_READ_RECORDS).await, want);
        assert_eq!(read_all(&mut c, "rd", shard, 7).await, want);
    }
    assert_eq!(total, 1000);
}

async fn go(c: &mut Client, id: u64, p: ReadPosition) -> Answer {
    read(c, id, "pos", 0, p, MAX_READ_RECORDS, MAX_READ_BYTES)
        .await
        .unwrap()
}

/// Every starting position names the record GetShardIterator's would.
#[tokio::test]
async fn every_starting_position() {
    let server = Server::start(&["pos:1"], &[]);
    let (mut c, _) = Client::greeted(server.native).await;
    put_native(&mut c, 1, "pos", "a", 100).await;
    // A later write, so that AT_TIMESTAMP has a boundary to find.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    put_native(&mut c, 2, "pos", "b", 50).await;
    let all = get_records(&server, "pos", 0).await;
    assert_eq!(all.len(), 150);
    let trim = go(&mut c, 10, ReadPosition::TrimHorizon).await;
    assert_eq!(trim.records, all);
    assert_eq!(trim.next_counter, 150);
    assert_eq!(trim.millis_behind_latest, 0);
    assert!(!trim.end_of_shard && trim.child_shards.is_empty());
    let epoch_secs = trim.epoch_secs;

    let latest = go(&mut c, 11, ReadPosition::Latest).await;
    assert!(latest.records.is_empty());
    assert_eq!(latest.next_counter, 150);

    let at = go(
        &mut c,
        12,
        ReadPosition::AtSequenceNumber {
            epoch_secs,
            counter: 42,
        },
    )
    .await;
    assert_eq!(at.records, all[42..]);
    let after = go(
        &mut c,
        13,
        ReadPosition::AfterSequenceNumber {
            epoch_secs,
            counter: 42,
        },
    )
    .await;
    assert_eq!(after.records, all[43..]);

    // The first record of the second write, by its arrival time.
    let first_b = all.iter().position(|r| r.2.starts_with(b"b-")).unwrap();
    let ts = all[first_b].1;
    let from = all.iter().position(|r| r.1 >= ts).unwrap();
    let at_ts = go(&mut c, 14, ReadPosition::AtTimestamp { timestamp_ms: ts }).await;
    assert_eq!(at_ts.records, all[from..]);
    assert!(from > 0 && from <= first_b);

    // LATEST's continuation sees what is written afterwards, and only that.
    put_native(&mut c, 3, "pos", "c", 5).await;
    let more = read(
        &mut c,
        15,
        "pos",
        0,
        ReadPosition::Continue {
            epoch_secs,
            counter: latest.next_counter,
        },
        MAX_READ_RECORDS,
        MAX_READ_BYTES,
    )
    .await
    .unwrap();
    let keys: Vec<_> = more.records.iter().map(|r| r.2.clone()).collect();
    assert_eq!(
        keys,
        (0..5)
            .map(|i| format!("c-{i}").into_bytes())
            .collect::<Vec<_>>()
    );
    assert_eq!(more.next_counter, 155);
}

/// At most `max_records` records and `max_bytes` of keys and data, except that one record
/// is always returned; `millis_behind_latest` says when more is waiting.
#[tokio::test]
async fn limits_are_honoured() {
    let server = Server::start(&["lim:1"], &[]);
    let (mut c, _) = Client::greeted(server.native).await;
    put_native(&mut c, 1, "lim", "k", 200).await;
    let all = get_records(&server, "lim", 0).await;
    let a = read(
        &mut c,
        2,
        "lim",
        0,
        ReadPosition::TrimHorizon,
        3,
        MAX_READ_BYTES,
    )
    .await
    .unwrap();
    assert_eq!(a.records, all[..3]);
    assert_eq!(a.next_counter, 3);
    assert!(a.millis_behind_latest < 60_000);
    let size = |r: &Got| r.2.len() + r.3.len();
    for max_bytes in [1u32, 500, 5_000, 20_000] {
        let a = read(
            &mut c,
            3,
            "lim",
            0,
            ReadPosition::TrimHorizon,
            MAX_READ_RECORDS,
            max_bytes,
        )
        .await
        .unwrap();
        let n = a.records.len();
        assert!(n >= 1);
        assert_eq!(a.records, all[..n]);
        let bytes: usize = a.records.iter().map(size).sum();
        assert!(
            n == 1 || bytes <= max_bytes as usize,
            "{bytes} > {max_bytes}"
        );
        // As many as fit: one more would have gone over.
        if n < all.len() {
            assert!(bytes + size(&all[n]) > max_bytes as usize);
        }
    }
}

/// Reading a split parent to its end reports the end and both children, and the children
/// hold what was written after the split.
#[tokio::test]
async fn a_closed_parent_ends_with_its_children() {
    let server = Server::start(&["sp:1"], &[]);
    let (mut c, _) = Client::greeted(server.native).await;
    put_native(&mut c, 1, "sp", "before", 50).await;
    server
        .kinesis(
            "SplitShard",
            serde_json::json!({
                "StreamName": "sp",
                "ShardToSplit": "shardId-000000000000",
                "NewStartingHashKey": "170141183460469231731687303715884105728",
            }),
        )
        .await;
    put_native(&mut c, 2, "sp", "after", 50).await;
    let a = read(
        &mut c,
        3,
        "sp",
        0,
        ReadPosition::TrimHorizon,
        20,
        MAX_READ_BYTES,
    )
    .await
    .unwrap();
    assert_eq!(a.records.len(), 20);
    assert!(!a.end_of_shard && a.child_shards.is_empty());
    let rest = read(
        &mut c,
        4,
        "sp",
        0,
        ReadPosition::Continue {
            epoch_secs: a.epoch_secs,
            counter: a.next_counter,
        },
        MAX_READ_RECORDS,
        MAX_READ_BYTES,
    )
    .await
    .unwrap();
    assert_eq!(rest.records.len(), 30);
    assert!(rest.end_of_shard);
    assert_eq!(rest.child_shards, vec![1, 2]);
    // At the end, LATEST is the end too.
    let latest = read(&mut c, 5, "sp", 0, ReadPosition::Latest, 1, 1)
        .await
        .unwrap();
    assert!(latest.records.is_empty() && latest.end_of_shard);
    let children: usize = [
        read_all(&mut c, "sp", 1, MAX_READ_RECORDS).await,
        read_all(&mut c, "sp", 2, MAX_READ_RECORDS).await,
    ]
    .iter()
    .map(|r| {
        assert!(r.iter().all(|g| g.2.starts_with(b"after-")));
        r.len()
    })
    .sum();
    assert_eq!(children, 50);
}
