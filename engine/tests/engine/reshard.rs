//! Sequence numbers and data across resharding: a split or merge closes its parents (appends
//! go to the children), the parents' records stay readable, every child sequence number
//! sorts after every parent's, and all of it survives a reopen.

use std::collections::BTreeMap;
use std::sync::Arc;

use shardline_engine::hashkey::HashKey;
use shardline_engine::{
    Error, Offset, PendingBatch, PutRecord, PutResult, RecordRef, SequenceNumber, ShardId, Stream,
};

use crate::harness::{self, close, config, read_all, reopen};

/// What was put, by shard: (sequence number, partition key, data), in offset order.
type Puts = BTreeMap<ShardId, Vec<(SequenceNumber, String, Vec<u8>)>>;

fn put_keys(s: &Stream, prefix: &str, n: usize, puts: &mut Puts) -> Vec<PutResult> {
    let keys: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let records: Vec<PutRecord<'_>> = keys
        .iter()
        .map(|k| PutRecord {
            partition_key: k,
            explicit_hash_key: None,
            data: k.as_bytes(),
        })
        .collect();
    let results: Vec<PutResult> = s
        .put_records(&records)
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    for (k, r) in keys.iter().zip(&results) {
        puts.entry(r.shard).or_default().push((
            r.sequence_number,
            k.clone(),
            k.clone().into_bytes(),
        ));
    }
    results
}

fn max_seq(puts: &Puts, shards: &[u32]) -> SequenceNumber {
    shards
        .iter()
        .flat_map(|s| puts[&ShardId(*s)].iter().map(|p| p.0))
        .max()
        .unwrap()
}

fn min_seq(puts: &Puts, shards: &[u32]) -> SequenceNumber {
    shards
        .iter()
        .flat_map(|s| puts[&ShardId(*s)].iter().map(|p| p.0))
        .min()
        .unwrap()
}

/// Every shard holds exactly its puts, at the offsets and with the sequence numbers the
/// puts were given.
fn check_shards(s: &Stream, puts: &Puts) {
    for (id, expected) in puts {
        let shard = s.shard(*id).unwrap();
        let got = read_all(&shard);
        assert_eq!(got.len(), expected.len(), "{id}");
        for (r, (seq, key, data)) in got.iter().zip(expected) {
            assert_eq!(r.offset, seq.offset(), "{id}");
            assert_eq!(&r.partition_key[..], key.as_bytes(), "{id}");
            assert_eq!(&r.data[..], &data[..], "{id}");
            let again = s.sequence_number(*id, r.offset, r.timestamp_ms).unwrap();
            assert_eq!(again, *seq, "{id} offset {}", r.offset);
            assert_eq!(SequenceNumber::parse(&again.to_string()).unwrap(), again);
        }
        for w in expected.windows(2) {
            assert!(w[0].0 < w[1].0, "{id}: sequence numbers increase");
        }
    }
}

/// Sequence numbers are 56-digit decimals: as strings they order as the numbers do.
fn assert_after(later: SequenceNumber, earlier: SequenceNumber, what: &str) {
    assert!(later > earlier, "{what}: {later} > {earlier}");
    let (l, e) = (later.to_string(), earlier.to_string());
    assert_eq!((l.len(), e.len()), (56, 56));
    assert!(l > e, "{what}: as decimal strings too");
}

fn assert_closed(s: &Stream, id: ShardId, end: u64) {
    let shard = s.shard(id).unwrap();
    assert!(shard.is_closed(), "{id} is closed");
    let meta = s.shard_meta(id).unwrap();
    assert!(meta.closed_ms.is_some(), "{id} records when it closed");
    assert_eq!(meta.end_offset, Some(end), "{id} records where it ended");
    let batch = PendingBatch::encode(&[RecordRef {
        partition_key: b"k",
        data: b"late",
    }])
    .unwrap();
    match shard.append(batch) {
        Err(Error::ShardClosed { shard, .. }) => assert_eq!(shard, id),
        other => panic!("append to closed {id}: expected Error::ShardClosed, got {other:?}"),
    }
}

#[test]
fn split_and_merge_close_parents_order_sequence_numbers_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let engine = harness::open(dir.path(), config()).unwrap();
    let s = engine
        .create_stream(shardline_engine::CreateStream::new("s", 1))
        .unwrap();
    let mut puts = Puts::new();
    put_keys(&s, "gen0", 30, &mut puts);

    let mid = HashKey(1 << 127);
    let (low, high) = s.split_shard(ShardId(0), mid).unwrap();
    assert_eq!((low, high), (ShardId(1), ShardId(2)));
    assert_closed(&s, ShardId(0), 30);
    for r in put_keys(&s, "gen1", 60, &mut puts) {
        assert!(r.shard == low || r.shard == high, "routed to a child");
    }
    for (id, recs) in &puts {
        for (_, key, _) in recs {
            if *id != ShardId(0) {
                let low_half = HashKey::of_partition_key(key) < mid;
                assert_eq!(*id == low, low_half, "{key} routed by its hash");
            }
        }
    }
    assert!(puts.contains_key(&low) && puts.contains_key(&high));
    assert_after(
        min_seq(&puts, &[1, 2]),
        max_seq(&puts, &[0]),
        "split children after parent",
    );

    // Splitting a closed shard is refused; so is merging it.
    assert!(matches!(
        s.split_shard(ShardId(0), mid),
        Err(Error::ShardClosed { .. })
    ));
    assert!(matches!(
        s.merge_shards(ShardId(0), low),
        Err(Error::ShardClosed { .. })
    ));

    let merged = s.merge_shards(low, high).unwrap();
    assert_eq!(merged, ShardId(3));
    let ends = (puts[&low].len() as u64, puts[&high].len() as u64);
    assert_closed(&s, low, ends.0);
    assert_closed(&s, high, ends.1);
    for r in put_keys(&s, "gen2", 30, &mut puts) {
        assert_eq!(r.shard, merged, "routed to the merged child");
    }
    assert_after(
        min_seq(&puts, &[3]),
        max_seq(&puts, &[1, 2]),
        "merge child after parents",
    );
    assert_after(
        min_seq(&puts, &[3]),
        max_seq(&puts, &[0]),
        "grandchild after grandparent",
    );
    check_shards(&s, &puts);

    let epochs: Vec<u64> = (0..4)
        .map(|i| s.shard_meta(ShardId(i)).unwrap().seq_epoch_secs)
        .collect();
    drop(s);
    let engine = reopen(engine, config());
    let s: Arc<Stream> = engine.stream("s").unwrap();
    check_shards(&s, &puts);
    for i in 0..4 {
        assert_eq!(
            s.shard_meta(ShardId(i)).unwrap().seq_epoch_secs,
            epochs[i as usize]
        );
    }
    assert_closed(&s, ShardId(0), 30);
    assert_closed(&s, low, ends.0);
    assert_closed(&s, high, ends.1);
    let before = max_seq(&puts, &[3]);
    for r in put_keys(&s, "gen3", 20, &mut puts) {
        assert_eq!(r.shard, merged, "still routed to the merged child");
        assert_after(r.sequence_number, before, "appends after reopen continue");
    }
    check_shards(&s, &puts);
    drop(s);
    close(engine);
}

/// Producers keep putting while the stream is split and merged: each record is either
/// refused or acknowledged, and every acknowledged one is in the shard it was told, at its
/// sequence number's offset, before and after a reopen.
#[test]
fn puts_racing_a_split_and_a_merge_land_where_they_were_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let engine = harness::open(dir.path(), config()).unwrap();
    let s = engine
        .create_stream(shardline_engine::CreateStream::new("s", 1))
        .unwrap();
    let producers: Vec<_> = (0..3)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut puts = Puts::new();
                let mut refused = 0;
                for i in 0..150 {
                    let k = format!("p{t}-{i}");
                    let r = s.put_records(&[PutRecord {
                        partition_key: &k,
                        explicit_hash_key: None,
                        data: k.as_bytes(),
                    }]);
                    match r.into_iter().next().unwrap() {
                        Ok(r) => puts.entry(r.shard).or_default().push((
                            r.sequence_number,
                            k.clone(),
                            k.into_bytes(),
                        )),
                        Err(_) => refused += 1,
                    }
                }
                (puts, refused)
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (low, high) = s.split_shard(ShardId(0), HashKey(1 << 127)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let merged = s.merge_shards(low, high).unwrap();
    let mut puts = Puts::new();
    let mut refused = 0;
    for p in producers {
        let (theirs, r) = p.join().unwrap();
        refused += r;
        for (id, v) in theirs {
            puts.entry(id).or_default().extend(v);
        }
    }
    assert_eq!(
        refused, 0,
        "routing follows the resharding; no put is refused"
    );
    for v in puts.values_mut() {
        v.sort_by_key(|p| p.0);
    }
    check_shards(&s, &puts);
    for (parent, children) in [(0, vec![1, 2, 3]), (1, vec![3]), (2, vec![3])] {
        let children: Vec<u32> = children
            .into_iter()
            .filter(|c| puts.contains_key(&ShardId(*c)))
            .collect();
        if puts.contains_key(&ShardId(parent)) && !children.is_empty() {
            assert_after(
                min_seq(&puts, &children),
                max_seq(&puts, &[parent]),
                "children after parents",
            );
        }
    }
    drop(s);
    let engine = reopen(engine, config());
    let s = engine.stream("s").unwrap();
    check_shards(&s, &puts);
    assert!(!s.shard(merged).unwrap().is_closed());
    assert_eq!(
        s.shard(merged).unwrap().next_offset(),
        Offset(puts.get(&merged).map_or(0, |v| v.len() as u64))
    );
    drop(s);
    close(engine);
}
