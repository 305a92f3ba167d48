//! Direct writes (`O_DIRECT`): whole blocks on disk, zero padding past the log's end that
//! rolls, closes and recovery cut off, and the log read back byte for byte throughout.

use shardline_engine::log::{direct, segment};
use shardline_engine::{CreateStream, EngineConfig, ShardId};

use crate::harness;

/// The harness config with direct writes and segments of `segment_max_bytes`, or `None`
/// (saying that the test checks nothing) if `dir`'s file system takes no direct writes.
fn direct_config(dir: &std::path::Path, segment_max_bytes: u64) -> Option<EngineConfig> {
    let probe = dir.join("probe");
    std::fs::write(&probe, b"").unwrap();
    if direct::open(&probe).is_none() {
        eprintln!("this file system takes no direct writes; direct path not exercised");
        return None;
    }
    let mut c = harness::config();
    c.log.direct_writes = true;
    c.log.segment_max_bytes = segment_max_bytes;
    Some(c)
}

#[test]
fn direct_writes_pad_whole_blocks_and_every_path_cuts_the_padding() {
    let dir = tempfile::tempdir().unwrap();
    let Some(c) = direct_config(dir.path(), 64 << 10) else {
        return;
    };
    let engine = harness::open(dir.path(), c.clone()).unwrap();
    let s = engine.create_stream(CreateStream::new("d", 1)).unwrap();
    let shard_dir = harness::shard_dir(&s, ShardId(0));
    assert!(s.shard(ShardId(0)).unwrap().writes_direct());
    // Batches of uneven sizes, so that writes end anywhere in a block.
    let mut want = Vec::new();
    let put = |want: &mut Vec<Vec<u8>>, s: &shardline_engine::Stream, i: usize| {
        let data: Vec<Vec<u8>> = (0..1 + i % 4)
            .map(|k| vec![(i * 7 + k) as u8; 37 + 301 * ((i + k) % 13)])
            .collect();
        let recs: Vec<(&str, &[u8])> = data.iter().map(|d| ("k", &d[..])).collect();
        harness::put_batch(s, ShardId(0), &recs);
        want.extend(data);
    };
    for i in 0..150 {
        put(&mut want, &s, i);
    }
    let files = harness::segment_files(&shard_dir);
    assert!(files.len() > 2, "segments rolled");
    // Sealed segments hold their batches and nothing else: the roll cut the padding off.
    for (_, path) in &files[..files.len() - 1] {
        harness::batch_ranges(&std::fs::read(path).unwrap());
    }
    // The active segment is whole blocks: the log, then zeros up to the block's end.
    let active = &files.last().unwrap().1;
    let bytes = std::fs::read(active).unwrap();
    let end = harness::log_end(&bytes);
    assert!(
        end > segment::HEADER_LEN,
        "the active segment holds batches"
    );
    assert_eq!(bytes.len() % direct::BLOCK, 0, "whole blocks");
    assert!(
        bytes.len() - end < direct::BLOCK,
        "less than a block of padding"
    );
    assert!(bytes[end..].iter().all(|b| *b == 0), "zero padding");
    let check = |engine: &shardline_engine::Engine, want: &[Vec<u8>]| {
        let s = engine.stream("d").unwrap();
        let got = harness::read_all(&s.shard(ShardId(0)).unwrap());
        let got: Vec<&[u8]> = got.iter().map(|r| &r.data[..]).collect();
        let want: Vec<&[u8]> = want.iter().map(|d| &d[..]).collect();
        harness::assert_same(&got, &want, "records");
    };
    check(&engine, &want);

    // A crash (no close): recovery cuts the padding and finds every record.
    drop(s);
    harness::crash(engine);
    let engine = harness::open(dir.path(), c.clone()).unwrap();
    assert_eq!(std::fs::read(active).unwrap(), bytes[..end], "padding cut");
    check(&engine, &want);

    // Writes go on from the middle of a block; a close cuts their padding.
    let s = engine.stream("d").unwrap();
    assert!(s.shard(ShardId(0)).unwrap().writes_direct());
    for i in 150..170 {
        put(&mut want, &s, i);
    }
    drop(s);
    let engine = harness::reopen(engine, c);
    for (_, path) in harness::segment_files(&shard_dir) {
        harness::batch_ranges(&std::fs::read(path).unwrap());
    }
    check(&engine, &want);
    harness::close(engine);
}

/// Zero-ahead (`log::zero_ahead`): with segments large enough for it, the zeroer writes
/// zeros past the log's end; writes then overwrite them, and a crash (recovery) or a close
/// cuts what is left, with every record read back.
#[test]
fn zeros_written_ahead_of_the_log_are_overwritten_and_cut() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut c) = direct_config(dir.path(), 64 << 20) else {
        return;
    };
    c.log.zero_ahead = true;
    let engine = harness::open(dir.path(), c.clone()).unwrap();
    let s = engine.create_stream(CreateStream::new("z", 1)).unwrap();
    let shard_dir = harness::shard_dir(&s, ShardId(0));
    let mut want: Vec<Vec<u8>> = Vec::new();
    let put = |want: &mut Vec<Vec<u8>>, s: &shardline_engine::Stream, i: usize| {
        let data: Vec<Vec<u8>> = (0..3)
            .map(|k| vec![(i * 5 + k) as u8; 500 + 97 * ((i + k) % 11)])
            .collect();
        let recs: Vec<(&str, &[u8])> = data.iter().map(|d| ("k", &d[..])).collect();
        harness::put_batch(s, ShardId(0), &recs);
        want.extend(data);
    };
    let active = || harness::segment_files(&shard_dir).last().unwrap().1.clone();
    let zeroed_past_log = || {
        let bytes = std::fs::read(active()).unwrap();
        let end = harness::log_end(&bytes);
        assert!(
            bytes[end..].iter().all(|b| *b == 0),
            "only zeros past the log"
        );
        bytes.len() - end
    };
    for i in 0..20 {
        put(&mut want, &s, i);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while zeroed_past_log() < 1 << 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the zeroer wrote nothing past the log"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // These writes land on zeroed blocks.
    for i in 20..200 {
        put(&mut want, &s, i);
    }
    let check = |engine: &shardline_engine::Engine, want: &[Vec<u8>]| {
        let s = engine.stream("z").unwrap();
        let got = harness::read_all(&s.shard(ShardId(0)).unwrap());
        let got: Vec<&[u8]> = got.iter().map(|r| &r.data[..]).collect();
        let want: Vec<&[u8]> = want.iter().map(|d| &d[..]).collect();
        harness::assert_same(&got, &want, "records");
    };
    check(&engine, &want);
    assert_eq!(harness::segment_files(&shard_dir).len(), 1, "no roll");
    zeroed_past_log();

    // A crash: recovery cuts the zeros and finds every record. (Opened without zero-ahead,
    // whose thread would otherwise start writing zeros again at once.)
    drop(s);
    harness::crash(engine);
    let mut quiet = c.clone();
    quiet.log.zero_ahead = false;
    let engine = harness::open(dir.path(), quiet).unwrap();
    let bytes = std::fs::read(active()).unwrap();
    assert_eq!(
        bytes.len(),
        harness::log_end(&bytes),
        "zeros cut on recovery"
    );
    check(&engine, &want);

    // Writes go on, the zeroer too; a close cuts the zeros.
    let engine = harness::reopen(engine, c.clone());
    let s = engine.stream("z").unwrap();
    for i in 200..260 {
        put(&mut want, &s, i);
    }
    drop(s);
    harness::close(engine);
    let bytes = std::fs::read(active()).unwrap();
    assert_eq!(bytes.len(), harness::log_end(&bytes), "zeros cut on close");
    // (The reopened log zeroes ahead again.)
    let engine = harness::open(dir.path(), c).unwrap();
    check(&engine, &want);
    harness::close(engine);
}
