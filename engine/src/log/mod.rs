//! One shard's append-only segmented log.
//!
//! Invariants:
//! - The log is a directory of segments ([`segment`]); the last is *active* (appended to),
//!   the others are *sealed*: synced, indexed on disk, never written again, read via maps.
//! - Bytes become *visible* (readable, counted in `next_offset`) only after the write that
//!   carried them completed, and, with durability `sync`, after its `fdatasync`: a reader
//!   never sees a record that a crash could take back.
//! - Space is reserved for a write (`ShardLog::reserve`) before it is issued, and at most
//!   one write per shard is in flight, so the visible length only ever grows by whole
//!   completed writes, in order.
//! - `ShardLog` is not thread-safe by itself: the shard holds it under its lock. Reads take
//!   a [`LogView`] under the lock and then read without it.
//!
//! Submodules: [`batch`] (framing), [`segment`] (files), [`index`] (sparse indexes),
//! [`recovery`] (scanning), [`mmap`] (maps of sealed segments), [`read`] (the read path),
//! [`direct`] (`O_DIRECT` writes), [`zero_ahead`] (blocks zeroed ahead of direct writes),
//! `open` (opening and recovering a log), `bufpool` (reused `pread` buffers).

pub mod batch;
mod bufpool;
pub mod direct;
pub mod index;
pub mod mmap;
mod open;
pub mod read;
pub mod recovery;
pub mod segment;
pub mod zero_ahead;

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::datadir::{fsync_dir, write_atomic};
use crate::error::{Error, Result};
use crate::ids::{SegmentId, ShardId};
use batch::BatchHeader;
use index::SparseIndex;
use recovery::RecoveryMode;

pub use read::{BatchRead, LogView, ReadBatch, ReadMode, ReadOutcome, Target};

/// Log settings that matter to one shard.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Roll the active segment once it holds this many bytes.
    pub segment_max_bytes: u64,
    /// Roll the active segment once its first record is this old (milliseconds).
    pub segment_max_age_ms: u64,
    /// Sparse index spacing.
    pub index_interval_bytes: u64,
    pub recovery: RecoveryMode,
    /// Sealed segments are read through maps (default) or `pread`.
    pub read_mode: ReadMode,
    /// Recent writes to the active segment kept in memory, so readers near the tail (most
    /// consumers) are served without `pread` or copies.
    pub tail_cache_bytes: u64,
    /// Write the active segment with `O_DIRECT` where the file system allows it
    /// ([`direct`]): no copy into the page cache, but sealed segments are then read from the
    /// disk, not from memory, the first time.
    pub direct_writes: bool,
    /// With direct writes, zero the active segment's blocks ahead of the log's end
    /// ([`zero_ahead`]), so that writes overwrite instead of growing the file.
    pub zero_ahead: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_max_bytes: 128 << 20,
            segment_max_age_ms: 3_600_000,
            index_interval_bytes: 4096,
            recovery: RecoveryMode::Refuse,
            read_mode: ReadMode::Mmap,
            tail_cache_bytes: 8 << 20,
            direct_writes: false,
            zero_ahead: true,
        }
    }
}

/// A sealed segment: immutable.
#[derive(Debug)]
pub struct Sealed {
    pub id: SegmentId,
    pub path: PathBuf,
    pub(crate) file: Arc<File>,
    /// Bytes of the file, header included.
    pub len: u64,
    /// First record offset (the base unless a corrupt batch was skipped).
    pub first_offset: u64,
    pub next_offset: u64,
    pub first_timestamp_ms: u64,
    pub last_timestamp_ms: u64,
    pub(crate) index: SparseIndex,
    map: OnceLock<Bytes>,
}

impl Sealed {
    /// The segment's bytes, mapped on first use.
    pub(crate) fn bytes(&self) -> std::io::Result<Bytes> {
        if let Some(b) = self.map.get() {
            return Ok(b.clone());
        }
        let b = mmap::map_sealed(&self.file, self.len)?;
        // A racing reader may have mapped it too; either map is equally valid.
        let _ = self.map.set(b.clone());
        Ok(b)
    }
}

/// The active segment's writer state.
#[derive(Debug)]
pub(crate) struct Active {
    pub id: SegmentId,
    pub path: PathBuf,
    pub file: Arc<File>,
    /// End of the bytes handed to writes (visible or in flight).
    pub reserved_len: u64,
    /// End of the bytes readers may see.
    pub visible_len: u64,
    pub index: SparseIndex,
    pub first_offset: Option<u64>,
    pub first_timestamp_ms: Option<u64>,
    /// The most recent completed writes, by file position: whole batches, as on disk.
    pub tail: VecDeque<(u64, Bytes)>,
    pub tail_bytes: u64,
    /// Set when the segment is written with `O_DIRECT`.
    pub direct: Option<DirectTarget>,
}

impl Active {
    /// Hands the segment to the zeroer, if it is zeroed ahead ([`zero_ahead`]).
    pub(crate) fn start_zeroing(&self, too_fast: bool) {
        if let Some(z) = self.direct.as_ref().and_then(|d| d.zero.as_ref()) {
            z.start(too_fast);
        }
    }
}

/// Where a direct write goes: the segment opened with `O_DIRECT`, and its last partial block.
#[derive(Debug, Clone)]
pub(crate) struct DirectTarget {
    pub file: Arc<File>,
    pub tail: direct::TailBlock,
    /// Blocks zeroed ahead of the log's end, unless the options turn it off.
    pub zero: Option<Arc<zero_ahead::ZeroAhead>>,
}

impl DirectTarget {
    /// Opens `path`, whose log ends at `end`, for direct writes if `opts` asks for them
    /// (`None` where the file system does not take them, or the partial block cannot be
    /// read).
    fn for_segment(opts: &LogOptions, path: &Path, file: &File, end: u64) -> Option<DirectTarget> {
        if !opts.direct_writes {
            return None;
        }
        let direct = Arc::new(direct::open(path)?);
        match direct::TailBlock::read(file, end) {
            Ok(tail) => Some(DirectTarget {
                zero: opts.zero_ahead.then(|| {
                    zero_ahead::ZeroAhead::new(direct.clone(), end, opts.segment_max_bytes)
                }),
                file: direct,
                tail,
            }),
            Err(e) => {
                tracing::warn!("reading the last block of {}: {e}", path.display());
                None
            }
        }
    }

    /// Stops zeroing ahead (waiting for a chunk in progress): before the file is cut at
    /// the log's end, or written other than directly.
    pub(crate) fn stop_zeroing(&self) {
        if let Some(z) = &self.zero {
            z.close();
        }
    }
}

/// Space reserved for a write: where it goes.
pub(crate) struct Reservation {
    pub file: Arc<File>,
    pub pos: u64,
    /// With direct writes: the write is staged from the tail block on instead.
    pub direct: Option<DirectTarget>,
}

/// A planned roll: seal the active segment (sync it, write its index) and create the next.
#[derive(Debug)]
pub(crate) struct RollPlan {
    dir: PathBuf,
    file: Arc<File>,
    /// The old segment's zeroing, stopped before the cut.
    zero: Option<Arc<zero_ahead::ZeroAhead>>,
    path: PathBuf,
    index_path: PathBuf,
    index: Vec<u8>,
    /// The log's end in the sealed file: a direct write's padding after it is cut off.
    len: u64,
    new_id: SegmentId,
    opts: LogOptions,
}

/// A segment created by a roll.
pub(crate) struct NewSegment {
    file: File,
    direct: Option<DirectTarget>,
}

impl RollPlan {
    /// Cuts the old segment at the log's end, syncs it, writes its index, creates the new
    /// segment durably.
    ///
    /// # Errors
    /// I/O errors syncing or creating; nothing is half-created.
    pub(crate) fn execute(&self) -> Result<NewSegment> {
        if let Some(z) = &self.zero {
            z.close();
        }
        self.file
            .set_len(self.len)
            .map_err(|e| Error::io("cut padding off sealed segment", &self.path, e))?;
        self.file
            .sync_all()
            .map_err(|e| Error::io("sync sealed segment", &self.path, e))?;
        // The log is the truth; a lost index write is rebuilt on open.
        if let Err(e) = write_atomic(&self.index_path, &self.index) {
            tracing::warn!("writing index of {}: {e}", self.path.display());
        }
        let file = segment::create(&self.dir, self.new_id)?;
        fsync_dir(&self.dir)?;
        let path = segment::log_path(&self.dir, self.new_id);
        let direct =
            DirectTarget::for_segment(&self.opts, &path, &file, segment::HEADER_LEN as u64);
        Ok(NewSegment { file, direct })
    }
}

/// One shard's log.
#[derive(Debug)]
pub struct ShardLog {
    dir: PathBuf,
    shard: ShardId,
    opts: LogOptions,
    sealed: Arc<Vec<Arc<Sealed>>>,
    pub(crate) active: Active,
    /// One past the last visible record.
    next_offset: u64,
    /// Arrival time of the last visible record.
    last_timestamp_ms: u64,
    /// Lowest offset still retained.
    trim_offset: u64,
}

impl Drop for ShardLog {
    /// The zeroer must not write a file that a new log of the same shard may open.
    fn drop(&mut self) {
        if let Some(d) = &self.active.direct {
            d.stop_zeroing();
        }
    }
}

impl ShardLog {
    /// The shard this log belongs to.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// One past the last visible record.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// The lowest retained offset (the trim horizon).
    pub fn trim_offset(&self) -> u64 {
        self.trim_offset
    }

    /// Arrival time of the last visible record (0 if none).
    pub fn last_timestamp_ms(&self) -> u64 {
        self.last_timestamp_ms
    }

    /// Bytes on disk in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.sealed.iter().map(|s| s.len).sum::<u64>() + self.active.visible_len
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.sealed.len() + 1
    }

    /// Reserves `len` bytes at the end of the active segment for a write; says where to
    /// write them.
    pub(crate) fn reserve(&mut self, len: u64) -> Reservation {
        let a = &mut self.active;
        let pos = a.reserved_len;
        a.reserved_len += len;
        Reservation {
            file: a.file.clone(),
            pos,
            direct: a.direct.clone(),
        }
    }

    /// Cuts direct writes' padding off the end of the active segment, so that the file
    /// holds the log and nothing else (when the shard closes; recovery would do it too).
    /// Only with no write in flight.
    pub(crate) fn cut_padding(&self) {
        let a = &self.active;
        if let Some(d) = a
            .direct
            .as_ref()
            .filter(|_| a.reserved_len == a.visible_len)
        {
            d.stop_zeroing();
            if let Err(e) = a.file.set_len(a.visible_len) {
                tracing::warn!("cutting the padding off {}: {e}", a.path.display());
            }
        }
    }

    /// Whether the active segment is written with `O_DIRECT`.
    pub fn writes_direct(&self) -> bool {
        self.active.direct.is_some()
    }

    /// Makes a completed write at `pos` visible; `batches` are its batches' headers with their
    /// positions relative to `pos`, `written` its bytes (whole batches per chunk, in order)
    /// for the tail cache.
    pub(crate) fn complete(
        &mut self,
        pos: u64,
        len: u64,
        batches: &[(u64, BatchHeader)],
        written: Vec<Bytes>,
    ) {
        debug_assert_eq!(pos, self.active.visible_len, "writes complete in order");
        for (rel, h) in batches {
            self.active
                .index
                .observe(h, pos + rel, self.opts.index_interval_bytes);
            self.active.first_offset.get_or_insert(h.base_offset.0);
            self.active
                .first_timestamp_ms
                .get_or_insert(h.first_timestamp_ms);
            self.next_offset = h.next_offset().0;
            self.last_timestamp_ms = h.last_timestamp_ms;
        }
        self.active.visible_len = pos + len;
        let whole = written.iter().map(|b| b.len() as u64).sum::<u64>() == len;
        if let Some(d) = &mut self.active.direct {
            if whole && d.tail.end() == pos {
                d.tail.advance(&written);
            } else {
                // The partial block is unknown: write through the page cache from now on.
                tracing::warn!("{}: direct writes stopped", self.active.path.display());
                d.stop_zeroing();
                self.active.direct = None;
            }
        }
        // Cached only if the chunks are the whole write (a backend may have taken them).
        if whole {
            let a = &mut self.active;
            a.tail_bytes += len;
            let mut at = pos;
            for bytes in written {
                let n = bytes.len() as u64;
                a.tail.push_back((at, bytes));
                at += n;
            }
            while a.tail_bytes > self.opts.tail_cache_bytes {
                match a.tail.pop_front() {
                    Some((_, b)) => a.tail_bytes -= b.len() as u64,
                    None => break,
                }
            }
        }
    }

    /// Whether the active segment is due to roll (only when no write is in flight).
    pub(crate) fn roll_due(&self, now_ms: u64) -> bool {
        let a = &self.active;
        if a.first_offset.is_none() || a.reserved_len != a.visible_len {
            return false;
        }
        a.visible_len >= self.opts.segment_max_bytes
            || a.first_timestamp_ms
                .is_some_and(|t| now_ms.saturating_sub(t) >= self.opts.segment_max_age_ms)
    }

    /// Seals the active segment (sync, write its index) and starts a new one at the next
    /// offset. Must only be called with no write in flight.
    ///
    /// # Errors
    /// I/O errors; the log is unchanged if creating the new segment fails.
    pub(crate) fn roll(&mut self) -> Result<()> {
        let Some(plan) = self.plan_roll() else {
            return Ok(());
        };
        let new = plan.execute()?;
        self.install_roll(plan, new);
        Ok(())
    }

    /// The I/O part of a roll, to run without the shard lock while no write is in flight
    /// (the caller blocks writes meanwhile). `None` if the active segment is empty.
    pub(crate) fn plan_roll(&self) -> Option<RollPlan> {
        let a = &self.active;
        debug_assert_eq!(
            a.reserved_len, a.visible_len,
            "no write in flight during a roll"
        );
        a.first_offset?;
        Some(RollPlan {
            dir: self.dir.clone(),
            file: a.file.clone(),
            zero: a.direct.as_ref().and_then(|d| d.zero.clone()),
            path: a.path.clone(),
            index_path: segment::index_path(&self.dir, a.id),
            index: a.index.encode(a.visible_len),
            len: a.visible_len,
            new_id: SegmentId(self.next_offset),
            opts: self.opts.clone(),
        })
    }

    /// Seals the active segment and makes the planned new segment active. The log must not
    /// have changed since [`ShardLog::plan_roll`].
    pub(crate) fn install_roll(&mut self, plan: RollPlan, new: NewSegment) {
        debug_assert_eq!(
            plan.new_id.0, self.next_offset,
            "no append between plan and install"
        );
        let too_fast = self
            .active
            .direct
            .as_ref()
            .and_then(|d| d.zero.as_ref())
            .is_some_and(|z| z.too_fast());
        let next = new_active(&self.dir, plan.new_id, new.file, new.direct);
        next.start_zeroing(too_fast);
        let old = std::mem::replace(&mut self.active, next);
        let sealed = Sealed {
            id: old.id,
            path: old.path,
            file: old.file,
            len: old.visible_len,
            first_offset: old.first_offset.unwrap_or(old.id.0),
            next_offset: self.next_offset,
            first_timestamp_ms: old.first_timestamp_ms.unwrap_or(self.last_timestamp_ms),
            last_timestamp_ms: self.last_timestamp_ms,
            index: old.index,
            map: OnceLock::new(),
        };
        let mut list = (*self.sealed).clone();
        list.push(Arc::new(sealed));
        self.sealed = Arc::new(list);
    }

    /// Deletes whole segments whose newest record arrived before `cutoff_ms`, then the
    /// oldest segments while the log exceeds `byte_cap`. The active segment is sealed first
    /// if it has expired entirely. Returns the number of segments deleted.
    ///
    /// # Errors
    /// I/O errors from rolling or unlinking.
    pub(crate) fn trim(&mut self, cutoff_ms: u64, byte_cap: Option<u64>) -> Result<usize> {
        let a = &self.active;
        let active_expired = a.first_offset.is_some()
            && self.last_timestamp_ms < cutoff_ms
            && a.reserved_len == a.visible_len;
        if active_expired {
            self.roll()?;
        }
        let mut keep: Vec<Arc<Sealed>> = (*self.sealed).clone();
        let mut deleted = 0;
        let mut total = self.size_bytes();
        while let Some(first) = keep.first() {
            let expired = first.last_timestamp_ms < cutoff_ms;
            let over = byte_cap.is_some_and(|cap| total > cap);
            if !expired && !over {
                break;
            }
            std::fs::remove_file(&first.path)
                .map_err(|e| Error::io("delete segment", &first.path, e))?;
            let _ = std::fs::remove_file(segment::index_path(&self.dir, first.id));
            total -= first.len;
            keep.remove(0);
            deleted += 1;
        }
        if deleted > 0 {
            fsync_dir(&self.dir)?;
            self.trim_offset = keep
                .first()
                .map_or(self.active.first_offset.unwrap_or(self.next_offset), |s| {
                    s.first_offset
                });
            self.sealed = Arc::new(keep);
        }
        Ok(deleted)
    }

    /// A consistent snapshot for reading from `target` without the lock.
    pub fn view(&self, target: Target) -> LogView {
        let active_start_pos = match target {
            Target::Offset(o) => self.active.index.position_for_offset(o),
            Target::Time(t) => self.active.index.position_for_time(t),
        };
        // Cached writes from the one holding the start position on, up to what one read uses.
        let tail = &self.active.tail;
        let first = tail.partition_point(|(p, b)| p + b.len() as u64 <= active_start_pos);
        let mut budget = 0u64;
        let active_tail = tail
            .iter()
            .skip(first)
            .take_while(|(_, b)| {
                let take = budget < read::MAX_READ_SPAN;
                budget += b.len() as u64;
                take
            })
            .cloned()
            .collect();
        LogView {
            sealed: self.sealed.clone(),
            active_tail,
            active_id: self.active.id,
            active_path: self.active.path.clone(),
            active_file: self.active.file.clone(),
            active_visible_len: self.active.visible_len,
            active_start_pos,
            next_offset: self.next_offset,
            trim_offset: self.trim_offset,
            shard: self.shard,
            read_mode: self.opts.read_mode,
        }
    }
}

/// A new segment's writer state.
fn new_active(dir: &Path, id: SegmentId, file: File, direct: Option<DirectTarget>) -> Active {
    let path = segment::log_path(dir, id);
    Active {
        id,
        path,
        direct,
        file: Arc::new(file),
        reserved_len: segment::HEADER_LEN as u64,
        visible_len: segment::HEADER_LEN as u64,
        index: SparseIndex::default(),
        first_offset: None,
        first_timestamp_ms: None,
        tail: VecDeque::new(),
        tail_bytes: 0,
    }
}
