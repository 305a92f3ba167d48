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
    c.log.direct_writes = harness::direct_writes();
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

/// `ReadBatch::record_span` (the bytes the native read path sends as they are) holds exactly
/// the records `read` returns, in the segment's record layout, for reads that start and end
/// mid-batch, across sealed (mapped or pread) and active segments.
#[test]
fn record_spans_hold_exactly_the_returned_records() {
    use shardline_engine::log::batch::RECORD_HEADER_LEN;
    use shardline_engine::log::ReadMode;
    for mode in [ReadMode::Mmap, ReadMode::Pread] {
        let dir = tempfile::tempdir().unwrap();
        let engine = harness::open(dir.path(), config(IoMode::Sync).with_read_mode(mode)).unwrap();
        let s = engine.create_stream(CreateStream::new("sp", 1)).unwrap();
        for b in 0..60 {
            let keys: Vec<String> = (0..5).map(|i| format!("k{b}-{i}")).collect();
            let data: Vec<Vec<u8>> = (0..5).map(|i| vec![b as u8; (b * 13 + i) % 90]).collect();
            let records: Vec<PutRecord<'_>> = keys
                .iter()
                .zip(&data)
                .map(|(k, d)| PutRecord {
                    partition_key: k,
                    explicit_hash_key: None,
                    data: d,
                })
                .collect();
            assert!(s.put_records(&records).iter().all(Result::is_ok));
        }
        let shard = s.shard(ShardId(0)).unwrap();
        assert!(shard.disk_usage().1 > 1, "segments rolled at 4 KiB");
        for (from, max_records, max_bytes) in [
            (0, 10_000, 10 << 20),
            (3, 7, 1 << 20),
            (17, 300, 700),
            (123, 2, 1),
        ] {
            let want = shard.read(Offset(from), max_records, max_bytes).unwrap();
            let got = shard
                .read_batches(Offset(from), max_records, max_bytes)
                .unwrap();
            let mut decoded = Vec::new();
            for b in &got.batches {
                let (first, base_ts, bytes) = b.record_span();
                let mut pos = 0;
                let mut offset = first.0;
                while pos < bytes.len() {
                    let h = &bytes[pos..pos + RECORD_HEADER_LEN];
                    let delta = u64::from(u32::from_le_bytes(h[0..4].try_into().unwrap()));
                    let key_len = usize::from(u16::from_le_bytes(h[4..6].try_into().unwrap()));
                    let data_len = u32::from_le_bytes(h[6..10].try_into().unwrap()) as usize;
                    let key_at = pos + RECORD_HEADER_LEN;
                    let data_at = key_at + key_len;
                    decoded.push((
                        offset,
                        base_ts + delta,
                        bytes.slice(key_at..data_at),
                        bytes.slice(data_at..data_at + data_len),
                    ));
                    pos = data_at + data_len;
                    offset += 1;
                }
                assert_eq!(pos, bytes.len());
            }
            let want: Vec<_> = want
                .records
                .into_iter()
                .map(|r| (r.offset.0, r.timestamp_ms, r.partition_key, r.data))
                .collect();
            assert!(!want.is_empty());
            assert_eq!(decoded, want, "{mode:?} from {from}");
        }
    }
}

/// Batches queued while a write is in flight go out as one vectored write of their own
/// buffers (small ones coalesced): a mix of small and large (over 64 KiB) batches from
/// concurrent producers reads back byte for byte, from the tail cache and after reopening
/// from disk, on both backends.
#[test]
fn mixed_batch_sizes_from_concurrent_producers_read_back_exactly() {
    for io in [IoMode::Sync, IoMode::Uring] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EngineConfig {
            io: io.clone(),
            ..EngineConfig::default()
        };
        c.durability = Durability::Sync;
        c.log.direct_writes = harness::direct_writes();
        let engine = harness::open(dir.path(), c.clone()).unwrap();
        let s = engine.create_stream(CreateStream::new("s", 1)).unwrap();
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    let mut sent = Vec::new();
                    for i in 0..40usize {
                        // 1, 7 or 90 records of 1 KiB: 1 KiB, 7 KiB or 90 KiB batches.
                        let n = [1, 7, 90][(i + usize::from(t)) % 3];
                        let key = format!("p{t}");
                        let data: Vec<Vec<u8>> = (0..n)
                            .map(|k| vec![t.wrapping_mul(31).wrapping_add((i + k) as u8); 1024])
                            .collect();
                        let puts: Vec<PutRecord<'_>> = data
                            .iter()
                            .map(|d| PutRecord {
                                partition_key: &key,
                                explicit_hash_key: None,
                                data: d,
                            })
                            .collect();
                        for (r, d) in s.put_records(&puts).into_iter().zip(&data) {
                            sent.push((r.unwrap().sequence_number, d.clone()));
                        }
                    }
                    (t, sent)
                })
            })
            .collect();
        let mut by_key: Vec<(u8, Vec<Vec<u8>>)> = threads
            .into_iter()
            .map(|h| {
                let (t, sent) = h.join().unwrap();
                assert!(sent.windows(2).all(|w| w[0].0 < w[1].0), "{io:?}: order");
                (t, sent.into_iter().map(|(_, d)| d).collect())
            })
            .collect();
        by_key.sort();
        let check = |records: &[shardline_engine::Record]| {
            for (t, want) in &by_key {
                let key = format!("p{t}");
                let got: Vec<&[u8]> = records
                    .iter()
                    .filter(|r| r.partition_key[..] == *key.as_bytes())
                    .map(|r| &r.data[..])
                    .collect();
                assert_eq!(got.len(), want.len(), "{io:?}: records of {key}");
                assert!(
                    got.iter().zip(want).all(|(g, w)| *g == &w[..]),
                    "{io:?}: data of {key}"
                );
            }
        };
        check(&harness::read_all(&s.shard(ShardId(0)).unwrap()));
        let engine = harness::reopen(engine, c);
        let s = engine.stream("s").unwrap();
        check(&harness::read_all(&s.shard(ShardId(0)).unwrap()));
    }
}

/// Partition keys are 1 to 256 characters, not bytes, and a one-shard stream (which routes
/// without hashing the key) checks them like any other.
#[test]
fn partition_keys_are_checked_in_characters_on_one_shard_and_on_several() {
    let dir = tempfile::tempdir().unwrap();
    let engine = harness::open(dir.path(), harness::config()).unwrap();
    for shards in [1, 3] {
        let s = engine
            .create_stream(CreateStream::new(format!("keys-{shards}"), shards))
            .unwrap();
        let ok = "é".repeat(256); // 512 bytes
        let too_long = "é".repeat(257);
        let keys = [ok.as_str(), too_long.as_str(), "", "k"];
        let puts: Vec<PutRecord<'_>> = keys
            .iter()
            .map(|k| PutRecord {
                partition_key: k,
                explicit_hash_key: None,
                data: b"d",
            })
            .collect();
        let results = s.put_records(&puts);
        assert!(results[0].is_ok(), "{shards} shards: {:?}", results[0]);
        for r in &results[1..3] {
            let e = r.as_ref().unwrap_err().to_string();
            assert!(
                e.contains("partition key must be 1 to 256 characters"),
                "{e}"
            );
        }
        assert!(results[3].is_ok());
        // Both accepted records are readable, from whichever shard took them.
        let mut read: Vec<String> = Vec::new();
        for id in 0..shards {
            for rec in harness::read_all(&s.shard(ShardId(id)).unwrap()) {
                read.push(String::from_utf8(rec.partition_key.to_vec()).unwrap());
            }
        }
        read.sort();
        let mut want = vec![ok.clone(), "k".to_string()];
        want.sort();
        assert_eq!(read, want, "{shards} shards");
    }
    harness::close(engine);
}
