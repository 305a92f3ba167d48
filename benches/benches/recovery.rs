//! Recovery time: `Engine::open` of a data directory holding one stream with one shard of
//! 1 GiB of log (model: raft-engine `tests/benches/bench_recovery.rs`).
//!
//! The log is written once, outside any measurement, with the default settings (128 MiB
//! segments) and stops 1 MiB short of 1 GiB, so it is 7 sealed segments (with their `.idx`
//! files) and an active segment of about 127 MiB: the worst case for the active segment,
//! which recovery reads and CRC-checks whole. Each iteration opens the engine (timed) and
//! drops it (not timed). Variants:
//! - `warm`: the files are in the page cache (just written or read);
//! - `cold`: every file of the data directory is evicted from the page cache
//!   (`posix_fadvise(DONTNEED)`) before each open, so recovery reads from the disk;
//! - `no_index`: the sealed segments' `.idx` files are deleted before each open, so recovery
//!   scans and CRC-checks every segment and rewrites the indexes (page cache warm).
//!
//! With `SHARDLINE_BENCH_BIG=1` the same runs on a 10 GiB log too (STYLE.md section 9).
//!
//! `recovery/torn_tail_8MiB`: a shard whose active segment holds 1 MiB of log followed by
//! 8 MiB of zeros, as a crash leaves a file that grew before its data reached the disk.
//! Recovery looks past the damage for a batch that starts a write (which would make it
//! mid-log corruption), finds none and truncates. The zeros are appended again before each
//! open (not timed).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shardline_benches::{
    bench_dir, config, dir_bytes, evict_page_cache, fill_shard, group, open_with_stream,
};
use shardline_engine::config::Durability;
use shardline_engine::log::ReadMode;
use shardline_engine::{Engine, ShardId};

fn remove_indexes(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).expect("benchmark directory lists") {
        let path = entry.expect("benchmark directory lists").path();
        if path.is_dir() {
            remove_indexes(&path);
        } else if path.extension().is_some_and(|e| e == "idx") {
            std::fs::remove_file(&path).expect("index file removes");
        }
    }
}

fn recovery_of(c: &mut Criterion, gib: u64) {
    let dir = bench_dir("recovery");
    let cfg = config(Durability::None, ReadMode::Mmap);
    {
        let (engine, stream) = open_with_stream(dir.path(), cfg.clone(), 1, None);
        let shard = stream.shard(ShardId(0)).expect("stream has its shard");
        let records = fill_shard(&shard, (gib << 30) - (1 << 20), 1024, 500);
        let (bytes, segments) = shard.disk_usage();
        println!(
            "recovery fixture: {records} records of 1 KiB, {bytes} bytes of log in {segments} \
             segments; data directory {} bytes",
            dir_bytes(dir.path())
        );
        engine.shutdown();
    }
    let mut g = group(c, "recovery", Duration::from_secs(5));
    g.throughput(Throughput::Bytes(dir_bytes(dir.path())));
    let open = |iters: u64, before: &dyn Fn()| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            before();
            let start = Instant::now();
            let engine = Engine::open(dir.path(), cfg.clone()).expect("recovery succeeds");
            total += start.elapsed();
            drop(engine);
        }
        total
    };
    g.bench_function(format!("{gib}GiB/warm"), |b| {
        b.iter_custom(|iters| open(iters, &|| {}))
    });
    g.bench_function(format!("{gib}GiB/cold"), |b| {
        b.iter_custom(|iters| open(iters, &|| evict_page_cache(dir.path())))
    });
    g.bench_function(format!("{gib}GiB/no_index"), |b| {
        b.iter_custom(|iters| open(iters, &|| remove_indexes(dir.path())))
    });
    g.finish();
}

/// The newest `.log` file under `dir` (a one-shard data directory): the active segment.
fn active_segment(dir: &std::path::Path) -> std::path::PathBuf {
    let mut logs = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("benchmark directory lists") {
            let path = entry.expect("benchmark directory lists").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "log") {
                logs.push(path);
            }
        }
    }
    logs.into_iter().max().expect("the shard has a segment")
}

fn torn_tail(c: &mut Criterion) {
    const TAIL: u64 = 8 << 20;
    let dir = bench_dir("recovery-torn");
    let cfg = config(Durability::None, ReadMode::Mmap);
    {
        let (engine, stream) = open_with_stream(dir.path(), cfg.clone(), 1, None);
        let shard = stream.shard(ShardId(0)).expect("stream has its shard");
        fill_shard(&shard, 1 << 20, 1024, 500);
        engine.shutdown();
    }
    let segment = active_segment(dir.path());
    let mut g = group(c, "recovery", Duration::from_secs(5));
    g.throughput(Throughput::Bytes(TAIL));
    g.bench_function("torn_tail_8MiB", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&segment)
                    .expect("active segment opens");
                let len = file.metadata().expect("active segment stats").len();
                file.set_len(len + TAIL).expect("active segment grows");
                drop(file);
                let start = Instant::now();
                let engine = Engine::open(dir.path(), cfg.clone()).expect("recovery succeeds");
                total += start.elapsed();
                assert_eq!(
                    std::fs::metadata(&segment)
                        .expect("active segment stats")
                        .len(),
                    len,
                    "recovery truncates the torn tail"
                );
                drop(engine);
            }
            total
        })
    });
    g.finish();
}

fn recovery(c: &mut Criterion) {
    torn_tail(c);
    recovery_of(c, 1);
    if std::env::var_os("SHARDLINE_BENCH_BIG").is_some_and(|v| v == "1") {
        recovery_of(c, 10);
    }
}

criterion_group!(benches, recovery);
criterion_main!(benches);
