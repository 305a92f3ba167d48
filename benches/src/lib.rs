//! Shared fixtures for the storage-engine benchmarks in `benches/` (one file per hot path:
//! `append`, `replay`, `seek`, `recovery`; results and commands in `docs/performance.md`).
//!
//! # Layout
//!
//! - [`group`]: a criterion group with the suite's short settings.
//! - [`bench_dir`]: every benchmark writes under a fresh temporary directory in `/tmp`, never
//!   in the repository, removed when the benchmark ends.
//! - [`config`], [`Records`]: engine settings and generated records (a record's size is its
//!   data; every partition key is [`KEY_LEN`] bytes on top).
//! - [`fill_shard`], [`seal_active`]: build a shard of a given size outside any measurement.
//! - [`raw_fdatasync`]: the disk's sequential `pwrite` + `fdatasync` bandwidth, the baseline
//!   that synced appends are compared with.
//! - [`evict_page_cache`]: drop a directory's files from the page cache for cold-cache runs.
//! - [`Rng`]: a tiny deterministic generator, so runs seek to the same places.

use std::num::NonZeroU64;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use shardline_engine::config::Durability;
use shardline_engine::io::IoMode;
use shardline_engine::log::ReadMode;
use shardline_engine::{CreateStream, Engine, EngineConfig, PendingBatch, RecordRef, Shard};

/// Bytes of every generated partition key (`pk-NNNNN`).
pub const KEY_LEN: usize = 8;

/// Name of the stream every benchmark creates.
pub const STREAM: &str = "bench";

/// A criterion group with the suite's short settings: 10 samples, 1 s of warm-up and
/// `measure` of measurement, so that the whole suite runs in a few minutes on a shared machine.
pub fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
    measure: Duration,
) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(measure);
    g
}

/// A fresh temporary directory under `/tmp`, named for the benchmark.
///
/// # Panics
/// If `/tmp` is not writable (nothing can be measured then).
pub fn bench_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("shardline-bench-{tag}-"))
        .tempdir_in("/tmp")
        .expect("benchmarks need a writable /tmp")
}

/// Engine settings for a benchmark: the given durability, the I/O backend `SHARDLINE_IO`
/// names (default `auto`: io_uring when the kernel allows it), and a maintenance interval
/// long enough never to run unasked.
///
/// # Panics
/// If `SHARDLINE_IO` is set to something other than `auto`, `uring` or `sync`.
pub fn config(durability: Durability, read_mode: ReadMode) -> EngineConfig {
    let mut c = EngineConfig::default().with_read_mode(read_mode);
    c.durability = durability;
    c.io = IoMode::from_env().expect("SHARDLINE_IO is auto, uring or sync");
    c.maintenance_interval = Duration::from_secs(3600);
    c
}

/// Opens an engine on `dir`, creating stream [`STREAM`] with `shards` shards if it is new.
///
/// # Panics
/// If the engine cannot open or create the stream: the benchmark cannot run.
pub fn open_with_stream(
    dir: &Path,
    config: EngineConfig,
    shards: u32,
    shard_byte_cap: Option<u64>,
) -> (Arc<Engine>, Arc<shardline_engine::Stream>) {
    let engine = Engine::open(dir, config).expect("benchmark engine opens");
    let stream = match engine.stream(STREAM) {
        Ok(s) => s,
        Err(_) => {
            let mut spec = CreateStream::new(STREAM, shards);
            spec.shard_byte_cap = shard_byte_cap;
            engine.create_stream(spec).expect("benchmark stream is new")
        }
    };
    (engine, stream)
}

/// Generated records of one size, with distinct partition keys.
#[derive(Debug, Clone)]
pub struct Records {
    keys: Vec<String>,
    data: Vec<Vec<u8>>,
}

impl Records {
    /// `count` records of `size` data bytes each, filled with pseudo-random bytes.
    pub fn new(count: usize, size: usize) -> Records {
        let mut rng = Rng::new(size as u64 + 1);
        Records {
            keys: (0..count)
                .map(|i| format!("pk-{:05}", i % 100_000))
                .collect(),
            data: (0..count)
                .map(|_| (0..size).map(|_| rng.next_u64() as u8).collect())
                .collect(),
        }
    }

    /// The records as the engine takes them.
    pub fn refs(&self) -> Vec<RecordRef<'_>> {
        self.keys
            .iter()
            .zip(&self.data)
            .map(|(k, d)| RecordRef {
                partition_key: k.as_bytes(),
                data: d,
            })
            .collect()
    }

    /// The records encoded as one batch.
    ///
    /// # Panics
    /// If the records exceed a batch's limits (the benchmarks' sizes are far below them).
    pub fn batch(&self) -> PendingBatch {
        PendingBatch::encode(&self.refs()).expect("benchmark batches are within limits")
    }

    /// Bytes the batch takes in the log (headers included).
    pub fn encoded_len(&self) -> usize {
        self.batch().len()
    }
}

/// Appends batches of `batch` records of `size` bytes to `shard` until its log holds at
/// least `bytes` bytes. Returns the number of records appended.
///
/// # Panics
/// If an append fails.
pub fn fill_shard(shard: &Arc<Shard>, bytes: u64, size: usize, batch: usize) -> u64 {
    let records = Records::new(batch, size);
    let refs = records.refs();
    let per_batch = records.encoded_len() as u64;
    let mut written = shard.disk_usage().0;
    let mut count = 0u64;
    // Keep several batches in flight so the fill is quick: group commit merges them.
    let mut inflight = std::collections::VecDeque::new();
    while written < bytes {
        let b = PendingBatch::encode(&refs).expect("benchmark batches are within limits");
        inflight.push_back(shard.submit(b).expect("fill append is accepted"));
        written += per_batch;
        count += batch as u64;
        if inflight.len() >= 64 {
            if let Some(rx) = inflight.pop_front() {
                wait(rx);
            }
        }
    }
    for rx in inflight {
        wait(rx);
    }
    count
}

fn wait(rx: shardline_engine::shard::AppendReceiver) {
    rx.blocking_recv()
        .expect("committer acknowledges every append")
        .expect("fill append succeeds");
}

/// Seals the active segment of every shard in `dir`'s stream, so that all of its data is
/// in sealed segments (mapped or `pread`, with on-disk indexes), as an old log's is.
///
/// # Panics
/// On any engine error.
pub fn seal_active(dir: &Path) {
    let mut c = config(Durability::None, ReadMode::Mmap);
    // Age 0: the next maintenance pass rolls every non-empty active segment.
    c.log.segment_max_age_ms = 0;
    let engine = Engine::open(dir, c).expect("benchmark engine reopens");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    engine
        .run_maintenance(now)
        .expect("rolling the active segment succeeds");
    engine.shutdown();
}

/// Bandwidth of sequential appending writes of `chunk` bytes, each followed by `fdatasync`,
/// into a new file in `dir`, for `duration`: what the disk gives a log that syncs every
/// write. Returns bytes per second. The file is removed afterwards.
///
/// # Panics
/// On I/O errors in `dir`.
pub fn raw_fdatasync(dir: &Path, chunk: usize, duration: Duration) -> f64 {
    let path = dir.join("raw-fdatasync.dat");
    let file = std::fs::File::options()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .expect("raw bandwidth file opens");
    let buf: Vec<u8> = {
        let mut rng = Rng::new(7);
        (0..chunk).map(|_| rng.next_u64() as u8).collect()
    };
    let start = Instant::now();
    let mut pos = 0u64;
    while start.elapsed() < duration {
        file.write_all_at(&buf, pos).expect("raw write");
        file.sync_data().expect("raw fdatasync");
        pos += chunk as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    pos as f64 / secs
}

/// Like [`raw_fdatasync`], with `files` threads each appending and syncing its own file at
/// once (what a committer round over `files` shards asks of the disk). Returns the total
/// bytes per second.
///
/// # Panics
/// On I/O errors in `dir`.
pub fn raw_fdatasync_parallel(dir: &Path, files: usize, chunk: usize, duration: Duration) -> f64 {
    let threads: Vec<_> = (0..files)
        .map(|i| {
            let sub = dir.join(format!("raw-{i}"));
            std::fs::create_dir_all(&sub).expect("raw bandwidth directory");
            std::thread::spawn(move || raw_fdatasync(&sub, chunk, duration))
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("raw bandwidth thread"))
        .sum()
}

/// One step of a raw `fdatasync` benchmark: appends `buf` at `*pos` of `file` and syncs.
///
/// # Panics
/// On I/O errors.
pub fn raw_fdatasync_step(file: &std::fs::File, buf: &[u8], pos: &mut u64) {
    file.write_all_at(buf, *pos).expect("raw write");
    file.sync_data().expect("raw fdatasync");
    *pos += buf.len() as u64;
}

/// Drops every file under `dir` from the page cache (`posix_fadvise(DONTNEED)`; the files
/// are clean, so nothing is lost), so the next read of them comes from the disk.
///
/// # Panics
/// On I/O errors walking `dir`.
pub fn evict_page_cache(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("benchmark directory lists") {
        let path = entry.expect("benchmark directory lists").path();
        if path.is_dir() {
            evict_page_cache(&path);
        } else if let Ok(f) = std::fs::File::open(&path) {
            // Write-back first: DONTNEED skips dirty pages.
            let _ = f.sync_all();
            let _ = rustix::fs::fadvise(&f, 0, None::<NonZeroU64>, rustix::fs::Advice::DontNeed);
        }
    }
}

/// Bytes of regular files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok())
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    dir_bytes(&p)
                } else {
                    e.metadata().map_or(0, |m| m.len())
                }
            })
            .sum()
    })
}

/// xorshift64*: deterministic, dependency-free pseudo-random numbers for benchmark inputs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value; 0 is remapped).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
}

/// Whether the criterion command line leaves room for benchmarks whose id contains `word`:
/// true without a filter argument, or if the filter contains `word`. Used to skip the
/// non-criterion parts of a bench file (baselines, probes) when another part is asked for.
pub fn filter_allows(word: &str) -> bool {
    let filters = filters();
    filters.is_empty() || filters.iter().any(|f| f.contains(word))
}

/// Whether criterion will run benchmark `full_id` (no filter, or a filter that is a substring
/// of it: criterion's filters are regexes, but plain substrings are what this suite uses).
pub fn filter_matches(full_id: &str) -> bool {
    let filters = filters();
    filters.is_empty() || filters.iter().any(|f| full_id.contains(f.as_str()))
}

/// The filter arguments on criterion's command line.
fn filters() -> Vec<String> {
    // Criterion options that take a value (the value is not a filter).
    const WITH_VALUE: &[&str] = &[
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--profile-time",
        "--measurement-time",
        "--warm-up-time",
        "--sample-size",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--output-format",
        "--color",
        "--plotting-backend",
        "--format",
    ];
    let mut filters = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            filters.push(a);
        }
    }
    filters
}

/// Formats a rate in MiB/s, the unit criterion prints for `Throughput::Bytes`.
pub fn mbps(bytes_per_sec: f64) -> String {
    format!("{:.1} MiB/s", bytes_per_sec / f64::from(1u32 << 20))
}
