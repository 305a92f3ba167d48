//! Seeks: what `GetShardIterator` + the first `GetRecords` cost.
//!
//! - `seek_seqno`: `SequenceNumber::parse` of a 56-digit sequence number, then
//!   `Shard::read(offset, 1, 10 MiB)` (a GetRecords with `Limit=1` and the default byte cap)
//!   of the record it names.
//! - `seek_time`: `Shard::offset_at_time(t)` (`AT_TIMESTAMP`).
//!
//! Targets are drawn at random (fixed seed) over the whole shard. Two shards:
//! - `sealed`: shard 0, 256 MiB of log in 16 segments of 16 MiB, all sealed (with on-disk
//!   sparse indexes), read with maps (`mmap`) or `pread` (`pread`);
//! - `active`: shard 1, 100 MiB in its active segment (128 MiB default segments), which is
//!   always read with `pread`, whatever the read mode.
//!
//! Records are 100 B with 8 B keys, in batches of 100 (about 11 KiB per batch, so every batch
//! has an index entry). The page cache is warm.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shardline_benches::{bench_dir, config, fill_shard, group, open_with_stream, seal_active, Rng};
use shardline_engine::config::Durability;
use shardline_engine::log::ReadMode;
use shardline_engine::{Offset, SequenceNumber, Shard, ShardId, Stream};

const SEALED_BYTES: u64 = 256 << 20;
const ACTIVE_BYTES: u64 = 100 << 20;
const TARGETS: usize = 4096;

fn seqno_targets(stream: &Stream, shard: &Shard, rng: &mut Rng) -> Vec<String> {
    let end = shard.next_offset().0;
    (0..TARGETS)
        .map(|_| {
            let o = Offset(rng.range(0, end));
            stream
                .sequence_number(shard.id(), o, shard.last_timestamp_ms())
                .expect("shard exists")
                .to_string()
        })
        .collect()
}

fn time_targets(shard: &Shard, rng: &mut Rng) -> Vec<u64> {
    let first = shard
        .read(Offset(0), 1, 1)
        .expect("shard reads")
        .records
        .first()
        .map_or(0, |r| r.timestamp_ms);
    let last = shard.last_timestamp_ms();
    (0..TARGETS).map(|_| rng.range(first, last + 1)).collect()
}

fn bench_shard(c: &mut Criterion, label: &str, stream: &Arc<Stream>, shard: &Arc<Shard>) {
    let mut rng = Rng::new(42);
    let seqnos = seqno_targets(stream, shard, &mut rng);
    let times = time_targets(shard, &mut rng);
    let (bytes, segments) = shard.disk_usage();
    println!(
        "seek fixture {label}: {} records, {bytes} bytes in {segments} segments",
        shard.next_offset().0
    );
    {
        let mut g = group(c, "seek_seqno", Duration::from_secs(3));
        g.throughput(Throughput::Elements(1));
        let mut i = 0usize;
        g.bench_function(label, |b| {
            b.iter(|| {
                i = (i + 1) % seqnos.len();
                let seq = SequenceNumber::parse(&seqnos[i]).expect("valid sequence number");
                let out = shard
                    .read(seq.offset(), 1, 10 << 20)
                    .expect("seek reads a healthy log");
                debug_assert_eq!(out.records[0].offset, seq.offset());
                black_box(out)
            })
        });
        g.finish();
    }
    {
        let mut g = group(c, "seek_time", Duration::from_secs(3));
        g.throughput(Throughput::Elements(1));
        let mut i = 0usize;
        g.bench_function(label, |b| {
            b.iter(|| {
                i = (i + 1) % times.len();
                black_box(
                    shard
                        .offset_at_time(times[i])
                        .expect("seek reads a healthy log"),
                )
            })
        });
        g.finish();
    }
}

fn seek(c: &mut Criterion) {
    let dir = bench_dir("seek");
    {
        let mut cfg = config(Durability::None, ReadMode::Mmap);
        cfg.log.segment_max_bytes = 16 << 20;
        let (engine, stream) = open_with_stream(dir.path(), cfg, 2, None);
        let shard = stream.shard(ShardId(0)).expect("stream has shard 0");
        fill_shard(&shard, SEALED_BYTES, 100, 100);
        engine.shutdown();
    }
    seal_active(dir.path());
    {
        let (engine, stream) = open_with_stream(
            dir.path(),
            config(Durability::None, ReadMode::Mmap),
            2,
            None,
        );
        let shard = stream.shard(ShardId(1)).expect("stream has shard 1");
        fill_shard(&shard, ACTIVE_BYTES, 100, 100);
        engine.shutdown();
    }
    for mode in [ReadMode::Mmap, ReadMode::Pread] {
        let (engine, stream) =
            open_with_stream(dir.path(), config(Durability::None, mode), 2, None);
        let sealed = stream.shard(ShardId(0)).expect("stream has shard 0");
        let active = stream.shard(ShardId(1)).expect("stream has shard 1");
        match mode {
            ReadMode::Mmap => {
                bench_shard(c, "sealed/mmap", &stream, &sealed);
                bench_shard(c, "active/pread", &stream, &active);
            }
            ReadMode::Pread => bench_shard(c, "sealed/pread", &stream, &sealed),
        }
        engine.shutdown();
    }
}

criterion_group!(benches, seek);
criterion_main!(benches);
