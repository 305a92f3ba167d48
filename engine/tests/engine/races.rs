//! Readers, writers, rolls and retention at the same time: every record a reader sees is
//! the one acknowledged at that offset, readers never go backwards, and afterwards every
//! acknowledged record the byte cap left is there.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shardline_engine::{CreateStream, Offset, PutRecord, ShardId};

use crate::harness::{self, close, config, key_of, read_all, reopen};

/// Data that says who wrote it, and is of varied length (zero included).
fn data(producer: usize, i: usize) -> Vec<u8> {
    let mut d = format!("{producer}-{i}-").into_bytes();
    d.resize(d.len() + (i * 37 + producer * 101) % 300, b'.');
    if i.is_multiple_of(17) {
        d.clear();
    }
    d
}

#[test]
fn readers_racing_writers_rolls_and_retention_see_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config();
    c.log.segment_max_bytes = 1024;
    let engine = harness::open(dir.path(), c.clone()).unwrap();
    let mut spec = CreateStream::new("s", 1);
    spec.shard_byte_cap = Some(8 << 10);
    let s = engine.create_stream(spec).unwrap();
    let shard = s.shard(ShardId(0)).unwrap();
    let key = key_of(&s, ShardId(0));
    let done = Arc::new(AtomicBool::new(false));

    let producers: Vec<_> = (0..3)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..150 {
                    let d = data(t, i);
                    let r = s.put_records(&[PutRecord {
                        partition_key: "k",
                        explicit_hash_key: Some(key),
                        data: &d,
                    }]);
                    let r = r.into_iter().next().unwrap().unwrap();
                    acked.push((r.sequence_number.offset().0, d));
                }
                acked
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let shard = shard.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut next = 0;
                let mut limit = 1;
                loop {
                    let finished = done.load(Ordering::Acquire);
                    limit = limit % 7 + 1 + t;
                    let out = shard.read(Offset(next), limit, 2000).unwrap();
                    let mut prev = None;
                    for r in &out.records {
                        assert!(r.offset.0 >= next, "a read never goes back");
                        assert!(prev.is_none_or(|p| r.offset.0 == p + 1), "dense offsets");
                        prev = Some(r.offset.0);
                        seen.push((r.offset.0, r.data.to_vec()));
                    }
                    assert!(out.next.0 >= next);
                    next = out.next.0;
                    if out.records.is_empty() {
                        if finished {
                            return seen;
                        }
                        shard.wait_for_records_after(Offset(next), Duration::from_millis(10));
                    }
                }
            })
        })
        .collect();
    let maintenance = {
        let engine = engine.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut runs = 0;
            while !done.load(Ordering::Acquire) {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64;
                engine.run_maintenance(now).unwrap();
                runs += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            runs
        })
    };

    let mut acked = BTreeMap::new();
    for p in producers {
        for (offset, d) in p.join().unwrap() {
            assert!(
                acked.insert(offset, d).is_none(),
                "offset {offset} given twice"
            );
        }
    }
    done.store(true, Ordering::Release);
    assert!(maintenance.join().unwrap() > 0);
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        (0..450).collect::<Vec<u64>>(),
        "offsets are dense"
    );
    for r in readers {
        let seen = r.join().unwrap();
        assert!(!seen.is_empty());
        for (offset, d) in seen {
            assert_eq!(acked[&offset], d, "offset {offset} read as acknowledged");
        }
    }

    let check = |shard: &shardline_engine::Shard| {
        let trim = shard.trim_offset().0;
        assert!(trim > 0, "the byte cap deleted segments");
        let got = read_all(shard);
        let want: Vec<(u64, Vec<u8>)> = acked.range(trim..).map(|(o, d)| (*o, d.clone())).collect();
        let got: Vec<(u64, Vec<u8>)> = got.iter().map(|r| (r.offset.0, r.data.to_vec())).collect();
        assert_eq!(got, want);
    };
    check(&shard);
    drop((shard, s));
    let engine = reopen(engine, c);
    check(&engine.stream("s").unwrap().shard(ShardId(0)).unwrap());
    close(engine);
}
