//! Append throughput: `Shard::append(PendingBatch::encode(..))`, blocking until acknowledged.
//!
//! Axes: record size (100 B, 1 KiB of data, plus an 8-byte partition key), batch size (1,
//! 100, 500 records: 500 is the PutRecords maximum), durability (`sync`: acknowledged after
//! `fdatasync`; `none`: after the write reached the page cache) and producers:
//! - `1p-1shard`: one producer thread appending to one shard;
//! - `8p-1shard`: eight producer threads appending to the same shard (group commit merges
//!   their batches into one write);
//! - `8p-8shards`: eight producer threads, each appending to its own shard of one stream
//!   (one committer round writes and syncs all shards' buffers in parallel).
//!
//! Encoding the batch is part of each append (producers encode in their own thread).
//!
//! `append_sync` reports bytes written to the log per second (batch and record headers
//! included), next to the disk's raw sequential `pwrite` + `fdatasync` bandwidth measured in
//! the same run (`raw_fdatasync/*`, also printed before and after the group, and for 1 s right
//! around each 8-producer configuration), so the ratio can be quoted. `append_none` reports
//! records per second. The engine's defaults are used (128 MiB segments, the backend
//! `SHARDLINE_IO` names, default io_uring when available); a 256 MiB per-shard byte cap and
//! maintenance every 250 ms keep the data on disk bounded while a benchmark runs.
//!
//! `roll_stall` (run it alone with `-- roll_stall`) is not a criterion benchmark: it prints
//! single-append latencies with durability `none` across segment rolls.
//!
//! Results and commands: `docs/performance.md`.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use shardline_benches::{
    bench_dir, config, filter_allows, filter_matches, group, mbps, open_with_stream, raw_fdatasync,
    raw_fdatasync_parallel, Records,
};
use shardline_engine::config::Durability;
use shardline_engine::log::ReadMode;
use shardline_engine::{Shard, ShardId};

const SIZES: [usize; 2] = [100, 1024];
const BATCHES: [usize; 3] = [1, 100, 500];
const SHARD_BYTE_CAP: u64 = 256 << 20;

#[derive(Clone, Copy)]
enum Layout {
    OneProducer,
    EightOneShard,
    EightShards,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::OneProducer => "1p-1shard",
            Layout::EightOneShard => "8p-1shard",
            Layout::EightShards => "8p-8shards",
        }
    }

    fn producers(self) -> usize {
        match self {
            Layout::OneProducer => 1,
            Layout::EightOneShard | Layout::EightShards => 8,
        }
    }

    fn shards(self) -> u32 {
        match self {
            Layout::EightShards => 8,
            Layout::OneProducer | Layout::EightOneShard => 1,
        }
    }
}

fn run_layout(
    g: &mut BenchmarkGroup<'_, WallTime>,
    durability: Durability,
    layout: Layout,
    size: usize,
    batch: usize,
) {
    let dir = bench_dir("append");
    let mut cfg = config(durability, ReadMode::Mmap);
    cfg.maintenance_interval = Duration::from_millis(250);
    let (engine, stream) = open_with_stream(dir.path(), cfg, layout.shards(), Some(SHARD_BYTE_CAP));
    if matches!(layout, Layout::OneProducer) && size == SIZES[0] && batch == BATCHES[0] {
        println!("engine I/O backend: {}", engine.io_backend());
    }
    let shards: Vec<Arc<Shard>> = (0..layout.shards())
        .map(|i| stream.shard(ShardId(i)).expect("stream has its shards"))
        .collect();
    let records = Arc::new(Records::new(batch, size));
    let encoded = records.encoded_len() as u64;
    let producers = layout.producers() as u64;
    g.throughput(match durability {
        Durability::Sync => Throughput::Bytes(encoded * producers),
        Durability::None => Throughput::Elements(batch as u64 * producers),
    });
    let id = format!("{}/{size}B/batch{batch}", layout.name());
    // The disk's bandwidth drifts on a shared machine: for the 8-producer synced runs (the
    // target's case), measure the raw baseline right before and after, in the same directory.
    let local_raw = durability == Durability::Sync
        && layout.producers() == 8
        && filter_matches(&format!("append_sync/{id}"));
    let raw_before = local_raw.then(|| raw_fdatasync(dir.path(), 1 << 20, Duration::from_secs(1)));
    match layout {
        Layout::OneProducer => {
            let shard = shards[0].clone();
            g.bench_function(&id, |b| {
                b.iter(|| shard.append(records.batch()).expect("append succeeds"))
            });
        }
        Layout::EightOneShard | Layout::EightShards => {
            g.bench_function(&id, |b| {
                b.iter_custom(|iters| {
                    let start_line = Arc::new(Barrier::new(layout.producers() + 1));
                    let threads: Vec<_> = (0..layout.producers())
                        .map(|p| {
                            let shard = shards[p % shards.len()].clone();
                            let records = records.clone();
                            let start_line = start_line.clone();
                            std::thread::spawn(move || {
                                start_line.wait();
                                for _ in 0..iters {
                                    shard.append(records.batch()).expect("append succeeds");
                                }
                            })
                        })
                        .collect();
                    start_line.wait();
                    let start = Instant::now();
                    for t in threads {
                        t.join().expect("producer thread finishes");
                    }
                    start.elapsed()
                })
            });
        }
    }
    if let Some(before) = raw_before {
        let after = raw_fdatasync(dir.path(), 1 << 20, Duration::from_secs(1));
        println!(
            "raw 1 MiB pwrite+fdatasync, 1 file, 1 s, around append_sync/{id}: before {}, after {}",
            mbps(before),
            mbps(after)
        );
    }
    engine.shutdown();
}

fn raw_baseline(tag: &str) {
    if !filter_allows("sync") && !filter_allows("raw") {
        return;
    }
    let dir = bench_dir("raw");
    let secs = Duration::from_secs(2);
    for chunk in [1 << 20, 64 << 10] {
        println!(
            "raw sequential pwrite+fdatasync, 1 file, {} KiB chunks, 2 s ({tag}): {}",
            chunk >> 10,
            mbps(raw_fdatasync(dir.path(), chunk, secs))
        );
    }
    println!(
        "raw sequential pwrite+fdatasync, 8 files in parallel, 1024 KiB chunks, 2 s ({tag}): {}",
        mbps(raw_fdatasync_parallel(dir.path(), 8, 1 << 20, secs))
    );
}

fn append_sync(c: &mut Criterion) {
    raw_baseline("before append_sync");
    let mut g = group(c, "append_sync", Duration::from_secs(3));
    // The disk's baseline, measured as a benchmark of the same group so that its median sits
    // in the same table as the synced appends'.
    for chunk in [1usize << 20, 64 << 10] {
        let dir = bench_dir("raw");
        let file = std::fs::File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(dir.path().join("raw.dat"))
            .expect("raw bandwidth file opens");
        let buf = vec![0x5a_u8; chunk];
        let mut pos = 0u64;
        g.throughput(Throughput::Bytes(chunk as u64));
        g.bench_function(format!("raw_fdatasync/{}KiB", chunk >> 10), |b| {
            b.iter(|| shardline_benches::raw_fdatasync_step(&file, &buf, &mut pos))
        });
    }
    for layout in [
        Layout::OneProducer,
        Layout::EightOneShard,
        Layout::EightShards,
    ] {
        for size in SIZES {
            for batch in BATCHES {
                run_layout(&mut g, Durability::Sync, layout, size, batch);
            }
        }
    }
    g.finish();
    raw_baseline("after append_sync");
}

fn append_none(c: &mut Criterion) {
    let mut g = group(c, "append_none", Duration::from_secs(3));
    for layout in [
        Layout::OneProducer,
        Layout::EightOneShard,
        Layout::EightShards,
    ] {
        for size in SIZES {
            for batch in BATCHES {
                run_layout(&mut g, Durability::None, layout, size, batch);
            }
        }
    }
    g.finish();
}

/// Not a criterion benchmark: the latency of single appends with durability `none` across
/// segment rolls, to show the stall of the append whose write fills a segment.
fn roll_stall(_c: &mut Criterion) {
    if !filter_allows("roll") || std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = bench_dir("roll");
    let (engine, stream) = open_with_stream(
        dir.path(),
        config(Durability::None, ReadMode::Mmap),
        1,
        None,
    );
    let shard = stream.shard(ShardId(0)).expect("stream has its shard");
    let records = Records::new(500, 1024);
    let mut lat = Vec::new();
    let start = Instant::now();
    // 300 MiB: at least two rolls of 128 MiB segments.
    while shard.disk_usage().0 < 300 << 20 {
        let t = Instant::now();
        shard.append(records.batch()).expect("append succeeds");
        lat.push(t.elapsed());
    }
    let total = start.elapsed();
    let bytes = shard.disk_usage().0;
    lat.sort();
    let median = lat[lat.len() / 2];
    let slow: Vec<Duration> = lat.iter().copied().filter(|l| *l > median * 10).collect();
    let stalled: Duration = slow.iter().sum();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    println!(
        "roll_stall: durability none, 1 producer, 1 KiB x 500: {} appends, {} segments, {} overall; \
         append latency p50 {:?}, p99 {:?}, max {:?}; {:?} of {:?} spent in the {} appends over 10x the median (slowest: {:?})",
        lat.len(),
        shard.disk_usage().1,
        mbps(bytes as f64 / total.as_secs_f64()),
        pct(0.5),
        pct(0.99),
        lat[lat.len() - 1],
        stalled,
        total,
        slow.len(),
        &slow[slow.len().saturating_sub(4)..]
    );
    engine.shutdown();
}

criterion_group!(benches, append_sync, append_none, roll_stall);
criterion_main!(benches);
