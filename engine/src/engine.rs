//! The engine: a locked data directory holding streams.
//!
//! Directory layout (see `docs/formats/segment.md`):
//! ```text
//! <data>/LOCK                                   exclusive lock, holder's pid
//! <data>/streams/<created_ms>-<name>/stream.meta
//! <data>/streams/<created_ms>-<name>/shardId-000000000000/00000000000000000000.log, .idx
//! <data>/trash/                                 streams being deleted
//! <data>/leases/<application>.leases            lease tables (see `leases`)
//! ```
//! Invariants:
//! - A stream exists once its `stream.meta` is durable; a directory without one is debris of
//!   a crash during creation and is removed on open.
//! - Deleting a stream renames its directory into `trash/` (atomic), then removes it; open
//!   finishes any deletion a crash interrupted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::commit::Committer;
use crate::config::{
    check_max_record_bytes, check_retention_hours, EngineConfig, DEFAULT_MAX_RECORD_BYTES,
    DEFAULT_RETENTION_HOURS,
};
use crate::datadir::{fsync_dir, DataDir};
use crate::error::{Error, Result};
use crate::hashkey::uniform_ranges;
use crate::ids::ShardId;
use crate::leases::{Leases, LEASES_DIR};
use crate::meta::{self, ShardMeta, StreamMeta, StreamMode, StreamStatus, Tag};
use crate::stream::{now_ms, Stream};

/// What to create.
#[derive(Debug, Clone)]
pub struct CreateStream {
    pub name: String,
    pub shard_count: u32,
    pub mode: StreamMode,
    pub retention_hours: Option<u32>,
    pub max_record_bytes: Option<u32>,
    pub shard_byte_cap: Option<u64>,
    pub tags: Vec<Tag>,
    pub status: StreamStatus,
    pub status_until_ms: u64,
}

impl CreateStream {
    /// An ACTIVE provisioned stream with defaults.
    pub fn new(name: impl Into<String>, shard_count: u32) -> CreateStream {
        CreateStream {
            name: name.into(),
            shard_count,
            mode: StreamMode::Provisioned,
            retention_hours: None,
            max_record_bytes: None,
            shard_byte_cap: None,
            tags: Vec::new(),
            status: StreamStatus::Active,
            status_until_ms: 0,
        }
    }
}

/// The storage engine.
pub struct Engine {
    data: DataDir,
    config: EngineConfig,
    committer: Arc<Committer>,
    streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    /// Applications' lease tables; independent of the streams' locks.
    leases: Leases,
    /// Serializes stream creation and deletion.
    ddl: Mutex<()>,
    stop: Arc<AtomicBool>,
    maintenance: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("dir", &self.data.path())
            .finish()
    }
}

fn streams_dir(root: &Path) -> PathBuf {
    root.join("streams")
}

impl Engine {
    /// Opens (creating if needed) the data directory, takes its lock, and recovers every
    /// stream. Starts the committer and the maintenance thread (retention, segment rolls).
    ///
    /// # Errors
    /// [`Error::Locked`] if another process holds the directory; recovery errors
    /// ([`Error::Corrupt`], [`Error::BadFormat`]); I/O errors.
    pub fn open(path: &Path, config: EngineConfig) -> Result<Arc<Engine>> {
        let data = DataDir::open(path)?;
        let root = data.path().to_path_buf();
        let sdir = streams_dir(&root);
        std::fs::create_dir_all(&sdir).map_err(|e| Error::io("create directory", &sdir, e))?;
        let trash = root.join("trash");
        if trash.exists() {
            std::fs::remove_dir_all(&trash).map_err(|e| Error::io("empty trash", &trash, e))?;
        }
        let committer = Committer::start(
            &config.io,
            config.durability,
            config.committer_threads,
            config.commit_observer.clone(),
        )?;
        let recovered = recover_streams(&sdir, &committer, &config)
            .and_then(|streams| Ok((streams, Leases::open(&root.join(LEASES_DIR))?)));
        let (streams, leases) = match recovered {
            Ok(recovered) => recovered,
            Err(e) => {
                // Its threads keep the committer alive: stop them, or every refused open
                // would leak them (and, with io_uring, their rings).
                committer.shutdown();
                return Err(e);
            }
        };
        let engine = Arc::new(Engine {
            data,
            config,
            committer,
            streams: RwLock::new(streams),
            leases,
            ddl: Mutex::new(()),
            stop: Arc::new(AtomicBool::new(false)),
            maintenance: Mutex::new(None),
        });
        let weak = Arc::downgrade(&engine);
        let stop = engine.stop.clone();
        let interval = engine.config.maintenance_interval;
        let handle = std::thread::Builder::new()
            .name("shardline-maintenance".into())
            .spawn(move || {
                // Parked between runs; `shutdown` unparks it so that it stops at once.
                let mut due = Instant::now() + interval;
                while !stop.load(Ordering::Acquire) {
                    let now = Instant::now();
                    if now < due {
                        std::thread::park_timeout(due - now);
                        continue;
                    }
                    due = now + interval;
                    let Some(engine) = weak.upgrade() else { return };
                    if let Err(e) = engine.run_maintenance(now_ms()) {
                        tracing::error!("maintenance: {e}");
                    }
                }
            })
            .map_err(|e| Error::io("start maintenance thread", PathBuf::new(), e))?;
        *engine.maintenance.lock() = Some(handle);
        Ok(engine)
    }

    /// The engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The I/O backend in use.
    pub fn io_backend(&self) -> &'static str {
        self.committer.backend_name()
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        self.data.path()
    }

    /// The ARN of stream `name`.
    pub fn stream_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:stream/{name}",
            self.config.region, self.config.account_id
        )
    }

    /// Creates a stream with `spec.shard_count` shards splitting the hash key space evenly.
    ///
    /// # Errors
    /// [`Error::StreamExists`]; [`Error::InvalidInput`] for a zero shard count; I/O errors.
    pub fn create_stream(&self, spec: CreateStream) -> Result<Arc<Stream>> {
        let _ddl = self.ddl.lock();
        if self.streams.read().contains_key(&spec.name) {
            return Err(Error::StreamExists(spec.name));
        }
        if spec.shard_count == 0 {
            return Err(Error::InvalidInput(
                "a stream needs at least one shard".into(),
            ));
        }
        if let Some(h) = spec.retention_hours {
            check_retention_hours(h)?;
        }
        if let Some(b) = spec.max_record_bytes {
            check_max_record_bytes(b)?;
        }
        let created = now_ms();
        let dir_name = format!("{created}-{}", spec.name);
        let dir = streams_dir(self.data.path()).join(&dir_name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create stream directory", &dir, e))?;
        let epoch = created / 1000;
        let shards = uniform_ranges(spec.shard_count)
            .into_iter()
            .enumerate()
            .map(|(i, r)| ShardMeta {
                id: ShardId(i as u32),
                parent: None,
                adjacent_parent: None,
                hash_start: r.start,
                hash_end: r.end,
                seq_epoch_secs: epoch,
                created_ms: created,
                closed_ms: None,
                end_offset: None,
            })
            .collect();
        let m = StreamMeta {
            arn: self.stream_arn(&spec.name),
            name: spec.name.clone(),
            dir_name,
            status: spec.status,
            status_until_ms: spec.status_until_ms,
            created_ms: created,
            retention_hours: spec.retention_hours.unwrap_or(DEFAULT_RETENTION_HOURS),
            mode: spec.mode,
            max_record_bytes: spec.max_record_bytes.unwrap_or(DEFAULT_MAX_RECORD_BYTES),
            shard_byte_cap: spec.shard_byte_cap,
            next_shard_index: spec.shard_count,
            shards,
            tags: spec.tags,
            encryption_type: None,
            key_id: None,
            enhanced_metrics: Vec::new(),
            warm_throughput_mibps: None,
            reshard_history_ms: Vec::new(),
            resource_policy: None,
            consumers: Vec::new(),
        };
        // Shard logs first (each created durably), then the metadata that names them: a
        // stream.meta never lists a shard whose directory a crash could have lost.
        Stream::create_shard_logs(&dir, &m, &self.config)?;
        meta::write_stream(&dir, &m)?;
        fsync_dir(&streams_dir(self.data.path()))?;
        let stream = Arc::new(Stream::open(
            dir,
            m,
            self.committer.clone(),
            self.config.clone(),
        )?);
        self.streams.write().insert(spec.name, stream.clone());
        Ok(stream)
    }

    /// Deletes a stream and its data.
    ///
    /// # Errors
    /// [`Error::StreamNotFound`]; I/O errors.
    pub fn delete_stream(&self, name: &str) -> Result<()> {
        let _ddl = self.ddl.lock();
        let stream = self
            .streams
            .write()
            .remove(name)
            .ok_or_else(|| Error::StreamNotFound(name.to_string()))?;
        stream.close_all();
        let trash = self.data.path().join("trash");
        std::fs::create_dir_all(&trash).map_err(|e| Error::io("create trash", &trash, e))?;
        let dir = stream.dir().to_path_buf();
        let target = trash.join(dir.file_name().unwrap_or_default());
        std::fs::rename(&dir, &target).map_err(|e| Error::io("move stream to trash", &dir, e))?;
        fsync_dir(&streams_dir(self.data.path()))?;
        std::fs::remove_dir_all(&target).map_err(|e| Error::io("delete stream", &target, e))?;
        Ok(())
    }

    /// A stream by name.
    ///
    /// # Errors
    /// [`Error::StreamNotFound`].
    pub fn stream(&self, name: &str) -> Result<Arc<Stream>> {
        self.streams
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::StreamNotFound(name.to_string()))
    }

    /// The applications' lease tables.
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// All streams, by name.
    pub fn streams(&self) -> Vec<Arc<Stream>> {
        self.streams.read().values().cloned().collect()
    }

    /// Runs retention and segment age rolls on every stream as of `now_ms` (the maintenance
    /// thread calls this periodically; tests call it with a chosen time).
    ///
    /// # Errors
    /// The first I/O error; other streams are still processed.
    pub fn run_maintenance(&self, now_ms: u64) -> Result<()> {
        let mut first_err = None;
        for s in self.streams() {
            if let Err(e) = s.enforce_retention(now_ms) {
                tracing::error!("retention of stream {}: {e}", s.name());
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Stops background threads after pending writes finish. The data directory lock is
    /// released when the last `Arc<Engine>` drops.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        for s in self.streams() {
            s.close_all();
        }
        self.committer.shutdown();
        if let Some(h) = self.maintenance.lock().take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.maintenance.get_mut().take() {
            h.thread().unpark();
        }
        self.committer.shutdown();
    }
}

/// Opens every stream under `sdir`, removing the debris of interrupted creations.
fn recover_streams(
    sdir: &Path,
    committer: &Arc<Committer>,
    config: &EngineConfig,
) -> Result<BTreeMap<String, Arc<Stream>>> {
    let mut streams = BTreeMap::new();
    let entries = std::fs::read_dir(sdir).map_err(|e| Error::io("list streams", sdir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list streams", sdir, e))?;
        let dir = entry.path();
        if !meta::stream_meta_path(&dir).exists() {
            tracing::warn!(
                "removing {} (no stream.meta: creation interrupted)",
                dir.display()
            );
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io("remove debris", &dir, e))?;
            continue;
        }
        let m = meta::read_stream(&dir)?;
        let name = m.name.clone();
        let stream = Stream::open(dir, m, committer.clone(), config.clone())?;
        streams.insert(name, Arc::new(stream));
    }
    Ok(streams)
}
