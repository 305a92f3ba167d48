//! Sequential replay of sealed segments: a consumer reading a whole shard from the trim
//! horizon with GetRecords-like calls (`Shard::read(from, 10_000, 10 MiB)`), every batch
//! CRC-checked, sealed segments read through maps (`ReadMode::Mmap`, the default) or with
//! `pread` (`ReadMode::Pread`, the portable baseline).
//!
//! The shard holds 256 MiB of log in 32 MiB segments, all sealed (the active segment is
//! rolled before measuring), written in batches of 500 records. One iteration reads the whole
//! shard; throughput counts the bytes returned to the caller (partition keys and data, as
//! `ReadOutcome::bytes`). The page cache is warm: the log was just written and fits in
//! memory, so this measures the engine's CPU cost, not the disk.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shardline_benches::{bench_dir, config, fill_shard, group, open_with_stream, seal_active};
use shardline_engine::config::Durability;
use shardline_engine::log::ReadMode;
use shardline_engine::{Offset, Shard, ShardId};

const LOG_BYTES: u64 = 256 << 20;
const SEGMENT_BYTES: u64 = 32 << 20;
const MAX_RECORDS: usize = 10_000;
const MAX_BYTES: usize = 10 << 20;

/// Reads the whole shard; returns (records, bytes).
fn replay(shard: &Shard) -> (u64, u64) {
    let end = shard.next_offset();
    let mut from = Offset(0);
    let (mut records, mut bytes) = (0u64, 0u64);
    while from < end {
        let out = shard
            .read(from, MAX_RECORDS, MAX_BYTES)
            .expect("replay reads a healthy log");
        records += out.records.len() as u64;
        bytes += out.bytes as u64;
        from = out.next;
        black_box(&out.records);
    }
    (records, bytes)
}

/// Reads the whole shard as shared batches (`Shard::read_batches`, the path GetRecords
/// uses), touching every record's data; returns (records, bytes).
fn replay_batches(shard: &Shard) -> (u64, u64) {
    let end = shard.next_offset();
    let mut from = Offset(0);
    let (mut records, mut bytes) = (0u64, 0u64);
    while from < end {
        let out = shard
            .read_batches(from, MAX_RECORDS, MAX_BYTES)
            .expect("replay reads a healthy log");
        for r in out.records() {
            black_box(r.data);
        }
        records += out.record_count as u64;
        bytes += out.bytes as u64;
        from = out.next;
    }
    (records, bytes)
}

fn replay_sealed(c: &mut Criterion) {
    let mut g = group(c, "replay", Duration::from_secs(8));
    for size in [1024usize, 100] {
        let dir = bench_dir("replay");
        {
            let mut cfg = config(Durability::None, ReadMode::Mmap);
            cfg.log.segment_max_bytes = SEGMENT_BYTES;
            let (engine, stream) = open_with_stream(dir.path(), cfg, 1, None);
            let shard = stream.shard(ShardId(0)).expect("stream has its shard");
            fill_shard(&shard, LOG_BYTES, size, 500);
            engine.shutdown();
        }
        seal_active(dir.path());
        for mode in [ReadMode::Mmap, ReadMode::Pread] {
            let (engine, stream) =
                open_with_stream(dir.path(), config(Durability::None, mode), 1, None);
            let shard = stream.shard(ShardId(0)).expect("stream has its shard");
            let (records, bytes) = replay(&shard);
            assert_eq!(
                records,
                shard.next_offset().0,
                "replay returns every record"
            );
            let (log_bytes, segments) = shard.disk_usage();
            println!(
                "replay fixture: {size} B records, {records} records, {bytes} bytes returned, \
                 {log_bytes} bytes of log in {segments} segments (the last empty)"
            );
            g.throughput(Throughput::Bytes(bytes));
            let name = match mode {
                ReadMode::Mmap => "mmap",
                ReadMode::Pread => "pread",
            };
            g.bench_function(format!("{name}/{size}B"), |b| b.iter(|| replay(&shard)));
            assert_eq!(
                replay_batches(&shard),
                (records, bytes),
                "both read paths agree"
            );
            g.bench_function(format!("{name}-batches/{size}B"), |b| {
                b.iter(|| replay_batches(&shard))
            });
            engine.shutdown();
        }
    }
    g.finish();
}

criterion_group!(benches, replay_sealed);
criterion_main!(benches);
