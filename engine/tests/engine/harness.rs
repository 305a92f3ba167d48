//! What the engine tests share: a configuration that honours `SHARDLINE_IO`, puts aimed at
//! one shard, whole-shard reads, reopening, and the on-disk names of segments and batches.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use shardline_engine::hashkey::HashKey;
use shardline_engine::io::IoMode;
use shardline_engine::log::{batch, direct, segment};
use shardline_engine::{
    Engine, EngineConfig, Offset, PutRecord, PutResult, Record, Shard, ShardId, Stream,
};

/// The backend `scripts/test` asks for (`SHARDLINE_IO=uring|sync`), `auto` when unset.
pub fn io_mode() -> IoMode {
    IoMode::from_env().unwrap_or_else(|bad| panic!("{bad}"))
}

/// Whether `scripts/test` asks for direct writes (`SHARDLINE_DIRECT_WRITES=1`).
pub fn direct_writes() -> bool {
    std::env::var("SHARDLINE_DIRECT_WRITES").is_ok_and(|v| v == "1")
}

/// Small segments so that rolls happen, dense sparse indexes so that lookups use them, and
/// no background maintenance: retention runs only when a test calls `run_maintenance`.
/// The backend and direct writes as `scripts/test` asks.
pub fn config() -> EngineConfig {
    let mut c = EngineConfig {
        io: io_mode(),
        ..EngineConfig::default()
    };
    c.log.direct_writes = direct_writes();
    c.log.segment_max_bytes = 4096;
    c.log.index_interval_bytes = 256;
    c.maintenance_interval = Duration::from_secs(3600);
    c
}

/// Held while a test spawns a process, and while engines open and close.
///
/// Spawning copies this process's file descriptors into the child until it execs, and the
/// copies share their open files with ours, so a data directory lock (`flock`) released
/// meanwhile stays held by the child: the next open of that directory fails with
/// `Error::Locked`. Holding the gate, no lock is released (by a close, or by an open that
/// fails) while a child holds copies.
static SPAWN_GATE: Mutex<()> = Mutex::new(());

fn spawn_gate() -> MutexGuard<'static, ()> {
    SPAWN_GATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Spawns `command` through the gate.
pub fn spawn(command: &mut Command) -> Child {
    let _gate = spawn_gate();
    command.spawn().unwrap()
}

/// `Engine::open`, through the gate.
pub fn open(dir: &Path, config: EngineConfig) -> shardline_engine::Result<Arc<Engine>> {
    let _gate = spawn_gate();
    Engine::open(dir, config)
}

/// Shuts the engine down and drops it (releasing the data directory lock, if this was the
/// last reference), through the gate.
pub fn close(engine: Arc<Engine>) {
    engine.shutdown();
    let _gate = spawn_gate();
    drop(engine);
}

/// Drops the engine without shutting it down, as a crash would leave its files (the
/// committer is stopped, nothing else is done), through the gate.
pub fn crash(engine: Arc<Engine>) {
    let _gate = spawn_gate();
    drop(engine);
}

/// Closes the engine, then opens its directory again with `config`.
pub fn reopen(engine: Arc<Engine>, config: EngineConfig) -> Arc<Engine> {
    let dir = engine.path().to_path_buf();
    close(engine);
    open(&dir, config).unwrap()
}

/// The explicit hash key that routes a record to `shard` (the start of its range).
pub fn key_of(stream: &Stream, shard: ShardId) -> HashKey {
    HashKey(stream.shard_meta(shard).unwrap().hash_start)
}

/// Puts `records` (partition key, data) to `shard` in one call: one batch, one write.
pub fn put_batch(stream: &Stream, shard: ShardId, records: &[(&str, &[u8])]) -> Vec<PutResult> {
    let key = key_of(stream, shard);
    let puts: Vec<PutRecord<'_>> = records
        .iter()
        .map(|(k, d)| PutRecord {
            partition_key: k,
            explicit_hash_key: Some(key),
            data: d,
        })
        .collect();
    stream
        .put_records(&puts)
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

/// Every visible record of `shard`, from its trim horizon.
pub fn read_all(shard: &Shard) -> Vec<Record> {
    let out = shard.read(Offset(0), usize::MAX, usize::MAX).unwrap();
    if let Some(last) = out.records.last() {
        assert!(
            out.next > last.offset,
            "a read continues after what it returned"
        );
    }
    // Equal unless skip-corrupt recovery dropped the last records before an empty segment.
    assert!(
        out.next <= shard.next_offset(),
        "a read continues within the log"
    );
    out.records
}

/// `(offset, partition key, data)` of records, for comparing with what was written.
pub fn contents(records: &[Record]) -> Vec<(u64, Vec<u8>, Vec<u8>)> {
    records
        .iter()
        .map(|r| (r.offset.0, r.partition_key.to_vec(), r.data.to_vec()))
        .collect()
}

/// The directory of `shard`'s log.
pub fn shard_dir(stream: &Stream, shard: ShardId) -> PathBuf {
    stream.dir().join(shard.to_string())
}

/// The segment files of a shard log, oldest first, with their base offsets.
pub fn segment_files(shard_dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(shard_dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let id = segment::parse_log_name(e.file_name().to_str()?)?;
            Some((id.0, e.path()))
        })
        .collect();
    v.sort();
    v
}

/// Where the log ends in a segment file's bytes: after the last whole, valid batch.
pub fn log_end(bytes: &[u8]) -> usize {
    let mut pos = segment::HEADER_LEN;
    while let Ok(h) = batch::verify(&bytes[pos..]) {
        pos += h.len as usize;
    }
    pos
}

/// A segment file's bytes without direct writes' padding (the zeros, fewer than a block,
/// after the last batch of an active segment written with `O_DIRECT` while it is open).
pub fn read_log(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    let end = log_end(&bytes);
    if bytes.len() - end < direct::BLOCK && bytes[end..].iter().all(|b| *b == 0) {
        bytes.truncate(end);
    }
    bytes
}

/// The byte ranges of the batches in a segment file, following their length fields.
pub fn batch_ranges(segment_bytes: &[u8]) -> Vec<Range<usize>> {
    let mut v = Vec::new();
    let mut pos = segment::HEADER_LEN;
    while pos + batch::HEADER_LEN <= segment_bytes.len() {
        let h = batch::verify(&segment_bytes[pos..]).unwrap();
        v.push(pos..pos + h.len as usize);
        pos += h.len as usize;
    }
    assert_eq!(
        pos,
        segment_bytes.len(),
        "the segment ends with a whole batch"
    );
    v
}

/// A copy of every file in a directory, to put back after surgery.
pub struct Snapshot {
    dir: PathBuf,
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl Snapshot {
    pub fn take(dir: &Path) -> Snapshot {
        let files = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect();
        Snapshot {
            dir: dir.to_path_buf(),
            files,
        }
    }

    /// Makes the directory hold exactly the snapshot's files again.
    pub fn restore(&self) {
        for e in std::fs::read_dir(&self.dir).unwrap() {
            let p = e.unwrap().path();
            if !self.files.contains_key(&p) {
                std::fs::remove_file(&p).unwrap();
            }
        }
        for (p, bytes) in &self.files {
            std::fs::write(p, bytes).unwrap();
        }
    }

    /// The snapshot's copy of `path`.
    pub fn bytes(&self, path: &Path) -> &[u8] {
        &self.files[path]
    }
}

/// `assert_eq!` for long sequences: reports the lengths and the first difference, shortened,
/// instead of both sequences whole.
#[track_caller]
pub fn assert_same<T: PartialEq + std::fmt::Debug>(got: &[T], want: &[T], what: &str) {
    if got == want {
        return;
    }
    let short = |x: Option<&T>| {
        let s = format!("{x:?}");
        if s.len() > 300 {
            format!("{}…", &s[..s.floor_char_boundary(300)])
        } else {
            s
        }
    };
    let i = got.iter().zip(want).take_while(|(g, w)| g == w).count();
    panic!(
        "{what}: got {} items, want {}; first difference at index {i}:\n  got  {}\n  want {}",
        got.len(),
        want.len(),
        short(got.get(i)),
        short(want.get(i)),
    );
}
