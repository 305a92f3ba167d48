use std::sync::Arc;

use shardline_engine::config::Durability;
use shardline_engine::io::IoMode;
use shardline_engine::{CreateStream, EngineConfig, Offset, PutRecord, ShardId};

use crate::harness;

fn config(io: IoMode) -> EngineConfig {
    let mut c = EngineConfig {
        io,
        ..EngineConfig::default()
    };
    c.log.segment_max_bytes = 4096;
    c
}

#[test]
fn put_read_reopen() {
    for io in [IoMode::Sync, IoMode::Uring] {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = Vec::new();
        {
            let engine = harness::open(dir.path(), config(io.clone())).unwrap();
            let s = engine.create_stream(CreateStream::new("s1", 2)).unwrap();
            for i in 0..200 {
                let key = format!("key-{i}");
                let data = format!("value-{i}");
                let r = s.put_records(&[PutRecord {
                    partition_key: &key,
                    explicit_hash_key: None,
                    data: data.as_bytes(),
                }]);
                let r = r.into_iter().next().unwrap().unwrap();
                expected.push((r.shard, r.sequence_number, data));
            }
            drop(s);
            harness::close(engine);
        }
        let engine = harness::open(dir.path(), config(io.clone())).unwrap();
        let s = engine.stream("s1").unwrap();
        let mut got = Vec::new();
        for id in [ShardId(0), ShardId(1)] {
            let shard = s.shard(id).unwrap();
            let out = shard.read(Offset(0), 10_000, 10 << 20).unwrap();
            for r in out.records {
                let seq = s.sequence_number(id, r.offset, r.timestamp_ms).unwrap();
                got.push((id, seq, String::from_utf8(r.data.to_vec()).unwrap()));
            }
        }
        expected.sort_by_key(|a| (a.0, a.1));
        got.sort_by_key(|a| (a.0, a.1));
        assert_eq!(got, expected);
        let (_, segments) = s.shard(ShardId(0)).unwrap().disk_usage();
        assert!(segments > 1, "segments rolled at 4 KiB");
    }
}

#[test]
fn concurrent_producers_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(IoMode::Auto);
    c.durability = Durability::Sync;
    let engine = harness::open(dir.path(), c).unwrap();
    let s = engine.create_stream(CreateStream::new("s", 1)).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for i in 0..100 {
                    let k = format!("{t}");
                    let d = format!("{t}-{i}");
                    let r = s.put_records(&[PutRecord {
                        partition_key: &k,
                        explicit_hash_key: None,
                        data: d.as_bytes(),
                    }]);
                    r[0].as_ref().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let out = s
        .shard(ShardId(0))
        .unwrap()
        .read(Offset(0), 10_000, 10 << 20)
        .unwrap();
    assert_eq!(out.records.len(), 800);
    for (i, r) in out.records.iter().enumerate() {
        assert_eq!(r.offset, Offset(i as u64));
    }
}
