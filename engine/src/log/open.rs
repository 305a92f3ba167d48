//! Opening a shard's log: listing its segments, checking the sealed ones against their
//! indexes (or rebuilding those), and recovering the active segment's tail (torn writes,
//! direct writes' padding, mid-log damage). What each case does: docs/formats/segment.md,
//! "What recovery does when each is wrong".

use std::collections::VecDeque;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::datadir::{fsync_dir, write_atomic};
use crate::error::{Error, Result};
use crate::ids::{SegmentId, ShardId};

use super::batch::{self, BatchHeader};
use super::index::SparseIndex;
use super::recovery::{self, RecoveryMode, Scan};
use super::{mmap, new_active, segment, Active, DirectTarget, LogOptions, Sealed, ShardLog};

impl ShardLog {
    /// Opens (creating if empty) the log in `dir`, recovering the active segment's tail.
    ///
    /// # Errors
    /// I/O errors; [`Error::Corrupt`] for mid-log damage under [`RecoveryMode::Refuse`];
    /// [`Error::BadFormat`] for files that are not segments of this format.
    pub fn open(
        dir: &Path,
        shard: ShardId,
        start_offset: u64,
        opts: LogOptions,
    ) -> Result<ShardLog> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create shard directory", dir, e))?;
        let mut ids = Vec::new();
        for entry in
            std::fs::read_dir(dir).map_err(|e| Error::io("list shard directory", dir, e))?
        {
            let entry = entry.map_err(|e| Error::io("list shard directory", dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = segment::parse_log_name(name) {
                ids.push(id);
            } else if name.ends_with(".tmp") {
                // An index write interrupted by a crash: derived data, rebuilt as needed.
                let _ = std::fs::remove_file(entry.path());
            }
        }
        ids.sort();
        let Some((&last, sealed_ids)) = ids.split_last() else {
            return Self::create_fresh(dir, shard, start_offset, opts);
        };
        let mut sealed = Vec::with_capacity(sealed_ids.len());
        let mut last_ts = 0;
        for &id in sealed_ids {
            let Some(s) = open_sealed(dir, shard, id, last_ts, &opts)? else {
                continue;
            };
            last_ts = s.last_timestamp_ms;
            sealed.push(Arc::new(s));
        }
        let expected_base = sealed
            .last()
            .map_or(last.0, |s: &Arc<Sealed>| s.next_offset);
        let active = open_active(dir, shard, last, last_ts, &opts)?;
        let (active, scan) = active;
        let trim_offset = sealed
            .first()
            .map_or(scan.first_offset.unwrap_or(last.0), |s| s.first_offset);
        if expected_base > last.0 {
            return Err(Error::Corrupt {
                shard,
                segment: last,
                path: active.path.clone(),
                offset: 0,
                reason: format!(
                    "segment starts at offset {} but the previous segment ends at {expected_base}",
                    last.0
                ),
            });
        }
        active.start_zeroing(false);
        Ok(ShardLog {
            dir: dir.to_path_buf(),
            shard,
            opts,
            sealed: Arc::new(sealed),
            next_offset: scan.next_offset,
            last_timestamp_ms: scan.last_timestamp_ms,
            trim_offset,
            active,
        })
    }

    fn create_fresh(dir: &Path, shard: ShardId, start: u64, opts: LogOptions) -> Result<ShardLog> {
        let id = SegmentId(start);
        let file = segment::create(dir, id)?;
        fsync_dir(dir)?;
        // The shard directory itself must survive a crash too.
        if let Some(parent) = dir.parent() {
            fsync_dir(parent)?;
        }
        Ok(ShardLog {
            dir: dir.to_path_buf(),
            shard,
            sealed: Arc::new(Vec::new()),
            active: {
                let path = segment::log_path(dir, id);
                let direct =
                    DirectTarget::for_segment(&opts, &path, &file, segment::HEADER_LEN as u64);
                let active = new_active(dir, id, file, direct);
                active.start_zeroing(false);
                active
            },
            opts,
            next_offset: start,
            last_timestamp_ms: 0,
            trim_offset: start,
        })
    }
}

fn corrupt(shard: ShardId, id: SegmentId, path: &Path, pos: u64, reason: String) -> Error {
    Error::Corrupt {
        shard,
        segment: id,
        path: path.to_path_buf(),
        offset: pos,
        reason,
    }
}

/// Drops bytes `[from, to)` of a segment file by rewriting it (skip-corrupt recovery).
fn cut_range(path: &Path, bytes: &[u8], from: u64, to: u64) -> Result<()> {
    let mut v = Vec::with_capacity(bytes.len() - (to - from) as usize);
    v.extend_from_slice(&bytes[..from as usize]);
    v.extend_from_slice(&bytes[to as usize..]);
    write_atomic(path, &v)
}

fn open_sealed(
    dir: &Path,
    shard: ShardId,
    id: SegmentId,
    min_ts: u64,
    opts: &LogOptions,
) -> Result<Option<Sealed>> {
    let path = segment::log_path(dir, id);
    let (file, len) = segment::open(dir, id)?;
    let idx_path = segment::index_path(dir, id);
    // Skip-corrupt recovery verifies every sealed segment by scanning it, ignoring indexes.
    let trust_index = opts.recovery == RecoveryMode::Refuse;
    let from_file = std::fs::read(&idx_path)
        .ok()
        .filter(|_| trust_index)
        .and_then(|b| SparseIndex::decode(&b, len).ok())
        .filter(|ix| !ix.entries().is_empty());
    if let Some(index) = from_file {
        // Trust the index for positions; read the first and last batch headers for the
        // segment's offsets and times (cheap, and checks the index against the log).
        if let Some(s) = summarize_with_index(&file, len, &index, &path) {
            return Ok(Some(Sealed {
                id,
                path,
                file: Arc::new(file),
                len,
                first_offset: s.0,
                next_offset: s.1,
                first_timestamp_ms: s.2,
                last_timestamp_ms: s.3,
                index,
                map: OnceLock::new(),
            }));
        }
    }
    // Missing, stale or damaged index: rebuild it by scanning (which also verifies every batch).
    let bytes = mmap::map_sealed(&file, len).map_err(|e| Error::io("map segment", &path, e))?;
    let mut scan = recovery::scan(&bytes, id.0, min_ts, opts.index_interval_bytes);
    let mut len = len;
    if let Some(d) = scan.damage.clone() {
        match (opts.recovery, d.resume_at) {
            (RecoveryMode::SkipCorrupt, resume) => {
                let to = resume.unwrap_or(len);
                tracing::warn!(
                    "skipping corrupt bytes {}..{to} of {} ({})",
                    d.pos,
                    path.display(),
                    d.reason
                );
                drop(bytes);
                let raw = std::fs::read(&path).map_err(|e| Error::io("read segment", &path, e))?;
                cut_range(&path, &raw, d.pos, to)?;
                return open_sealed(dir, shard, id, min_ts, opts);
            }
            (RecoveryMode::Refuse, _) => {
                return Err(corrupt(shard, id, &path, d.pos, d.reason));
            }
        }
    }
    len = len.min(scan.valid_len);
    if scan.index.entries().is_empty() {
        if opts.recovery == RecoveryMode::SkipCorrupt {
            // Skipping left nothing (its only batch was damaged): drop the segment, so that
            // the shard opens, now and in any mode later.
            tracing::warn!("removing {}: no intact batch left", path.display());
            drop(file);
            std::fs::remove_file(&path).map_err(|e| Error::io("remove segment", &path, e))?;
            let _ = std::fs::remove_file(&idx_path);
            fsync_dir(dir)?;
            return Ok(None);
        }
        return Err(corrupt(
            shard,
            id,
            &path,
            segment::HEADER_LEN as u64,
            "sealed segment holds no batch".into(),
        ));
    }
    if let Err(e) = write_atomic(&idx_path, &scan.index.encode(len)) {
        tracing::warn!("rewriting index {}: {e}", idx_path.display());
    }
    let index = std::mem::take(&mut scan.index);
    Ok(Some(Sealed {
        id,
        path,
        file: Arc::new(file),
        len,
        first_offset: scan.first_offset.unwrap_or(id.0),
        next_offset: scan.next_offset,
        first_timestamp_ms: scan.first_timestamp_ms.unwrap_or(min_ts),
        last_timestamp_ms: scan.last_timestamp_ms,
        index,
        map: OnceLock::new(),
    }))
}

/// First offset, next offset, first and last timestamps of a sealed segment, from its first
/// indexed batch and a walk of the batches after its last index entry. `None` if anything
/// does not line up (the caller then rebuilds by scanning).
fn summarize_with_index(
    file: &File,
    len: u64,
    index: &SparseIndex,
    _path: &Path,
) -> Option<(u64, u64, u64, u64)> {
    let first = index.entries().first()?;
    let last = index.entries().last()?;
    // The index must be this log's, not another segment's of the same length: its first
    // entry names the log's first batch.
    let head = segment::read_at(file, first.pos, batch::HEADER_LEN).ok()?;
    let field = |at: usize| {
        head.get(at..at + 8)?
            .try_into()
            .ok()
            .map(u64::from_le_bytes)
    };
    if first.pos != segment::HEADER_LEN as u64
        || field(batch::BASE_OFFSET_OFFSET)? != first.offset
        || field(batch::FIRST_TS_OFFSET)? != first.timestamp_ms
    {
        return None;
    }
    let tail = segment::read_at(file, last.pos, (len - last.pos) as usize).ok()?;
    let mut pos = 0usize;
    let mut h_last: Option<BatchHeader> = None;
    while pos < tail.len() {
        let h = batch::decode_header(&tail[pos..]).ok()?;
        pos += h.len as usize;
        h_last = Some(h);
    }
    let h_last = h_last?;
    if pos != tail.len() {
        return None;
    }
    Some((
        first.offset,
        h_last.next_offset().0,
        first.timestamp_ms,
        h_last.last_timestamp_ms,
    ))
}

fn open_active(
    dir: &Path,
    shard: ShardId,
    id: SegmentId,
    min_ts: u64,
    opts: &LogOptions,
) -> Result<(Active, Scan)> {
    let path = segment::log_path(dir, id);
    let raw_len = std::fs::metadata(&path)
        .map_err(|e| Error::io("stat segment", &path, e))?
        .len();
    if raw_len < segment::HEADER_LEN as u64 {
        // A crash while the segment was being created, before its header was synced: it
        // holds no batch, so start it again.
        std::fs::remove_file(&path).map_err(|e| Error::io("remove torn segment", &path, e))?;
        let file = segment::create(dir, id)?;
        fsync_dir(dir)?;
        let scan = Scan {
            valid_len: segment::HEADER_LEN as u64,
            next_offset: id.0,
            last_timestamp_ms: min_ts,
            ..Scan::default()
        };
        let direct = DirectTarget::for_segment(opts, &path, &file, scan.valid_len);
        return Ok((new_active(dir, id, file, direct), scan));
    }
    let (file, len) = segment::open(dir, id)?;
    let bytes = segment::read_at(&file, 0, len as usize)
        .map_err(|e| Error::io("read segment", &path, e))?;
    let scan = recovery::scan(&bytes, id.0, min_ts, opts.index_interval_bytes);
    if let Some(d) = &scan.damage {
        match (d.resume_at, opts.recovery) {
            (None, _) => {
                let dropped = len - d.pos;
                // Direct writes pad to a block, and zero-ahead writes zeros further on.
                let padding = bytes[d.pos as usize..].iter().all(|b| *b == 0);
                if padding {
                    tracing::debug!(
                        "cutting {dropped} bytes of zeros (direct-write padding) off {}",
                        path.display()
                    );
                } else {
                    tracing::info!(
                        "truncating torn tail of {} at byte {} ({}; {dropped} bytes dropped)",
                        path.display(),
                        d.pos,
                        d.reason,
                    );
                }
                file.set_len(d.pos)
                    .map_err(|e| Error::io("truncate torn tail", &path, e))?;
                file.sync_all()
                    .map_err(|e| Error::io("sync truncated segment", &path, e))?;
            }
            (Some(resume), RecoveryMode::SkipCorrupt) => {
                tracing::warn!(
                    "skipping corrupt bytes {}..{resume} of {} ({})",
                    d.pos,
                    path.display(),
                    d.reason
                );
                drop(file);
                cut_range(&path, &bytes, d.pos, resume)?;
                return open_active(dir, shard, id, min_ts, opts);
            }
            (Some(_), RecoveryMode::Refuse) => {
                return Err(corrupt(shard, id, &path, d.pos, d.reason.clone()));
            }
        }
    }
    let _ = std::fs::remove_file(segment::index_path(dir, id));
    let direct = DirectTarget::for_segment(opts, &path, &file, scan.valid_len);
    let active = Active {
        direct,
        tail: VecDeque::new(),
        tail_bytes: 0,
        id,
        path,
        file: Arc::new(file),
        reserved_len: scan.valid_len,
        visible_len: scan.valid_len,
        index: scan.index.clone(),
        first_offset: scan.first_offset,
        first_timestamp_ms: scan.first_timestamp_ms,
    };
    Ok((active, scan))
}
