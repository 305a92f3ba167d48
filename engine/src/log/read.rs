//! The read path: records from an offset, and offsets from a time, without the shard lock.
//!
//! Invariants:
//! - A [`LogView`] is a snapshot: it sees exactly the records visible when it was taken, even
//!   if segments are rolled or deleted meanwhile (it holds their files and maps open).
//! - Every batch read is CRC-checked; a bad one is reported as [`Error::Corrupt`] with the
//!   file and byte offset, never returned as data.
//! - Sealed segments are read through maps and records share the map (no copy); the active
//!   segment is read with `pread` into a buffer the records then share.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use super::batch::{self, BatchHeader, DecodeError, Record};
use super::Sealed;
use crate::error::{Error, Result};
use crate::ids::{Offset, SegmentId, ShardId};
use crate::log::{bufpool, segment};

/// How sealed segments are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadMode {
    /// Memory maps shared as `Bytes` (default).
    #[default]
    Mmap,
    /// `pread` into buffers (the portable path, and the benchmark's baseline).
    Pread,
}

/// What a view is positioned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The record at this offset, or the next one after it.
    Offset(u64),
    /// The first record that arrived at or after this time (ms since the epoch).
    Time(u64),
}

/// A snapshot of a shard log for reading.
#[derive(Debug, Clone)]
pub struct LogView {
    pub(crate) sealed: Arc<Vec<Arc<Sealed>>>,
    pub(crate) active_id: SegmentId,
    pub(crate) active_path: PathBuf,
    pub(crate) active_file: Arc<File>,
    pub(crate) active_visible_len: u64,
    pub(crate) active_start_pos: u64,
    /// Cached recent writes of the active segment (position, bytes), in order.
    pub(crate) active_tail: Vec<(u64, Bytes)>,
    pub(crate) next_offset: u64,
    pub(crate) trim_offset: u64,
    pub(crate) shard: ShardId,
    pub(crate) read_mode: ReadMode,
}

/// Records read, and where to continue.
#[derive(Debug, Clone, Default)]
pub struct ReadOutcome {
    pub records: Vec<Record>,
    /// The offset to read from next time.
    pub next: Offset,
    /// Sum of partition key and data bytes returned.
    pub bytes: usize,
}

/// Where batches come from: a whole mapped segment, or a file read in chunks.
enum Source<'a> {
    Map(Bytes),
    File {
        file: &'a File,
        end: u64,
        chunk: Bytes,
        chunk_pos: u64,
        /// The next read's size: it starts small (a seek or a small read touches little)
        /// and doubles, up to `MAX_READ_SPAN`, as a long read goes on.
        chunk_hint: usize,
        /// Whole writes already in memory; consulted before reading the file.
        cached: &'a [(u64, Bytes)],
    },
}

/// The most bytes one read walks through; views hand out cached writes up to this span.
pub(crate) const MAX_READ_SPAN: u64 = 16 << 20;
/// Size of a read's first `pread`; later ones double.
const FIRST_READ_BYTES: usize = 64 << 10;

impl Source<'_> {
    /// The verified batch at `pos`, sharing the source's buffer.
    fn batch_at(&mut self, pos: u64) -> std::result::Result<(BatchHeader, Bytes), (u64, String)> {
        match self {
            Source::Map(bytes) => {
                let b = bytes
                    .get(pos as usize..)
                    .ok_or((pos, "position past the end".to_string()))?;
                let h = batch::verify(b).map_err(|e| (pos, describe(e)))?;
                Ok((h, bytes.slice(pos as usize..pos as usize + h.len as usize)))
            }
            Source::File {
                file,
                end,
                chunk,
                chunk_pos,
                chunk_hint,
                cached,
            } => {
                let i = cached.partition_point(|(p, b)| p + b.len() as u64 <= pos);
                if let Some((cpos, bytes)) = cached.get(i).filter(|(p, _)| *p <= pos) {
                    // Writes hold whole batches, so a batch never spans two cached writes.
                    let rel = (pos - cpos) as usize;
                    let h = batch::verify(&bytes[rel..]).map_err(|e| (pos, describe(e)))?;
                    return Ok((h, bytes.slice(rel..rel + h.len as usize)));
                }
                let covered = |chunk: &Bytes, chunk_pos: u64, want: u64| {
                    pos >= chunk_pos && pos + want <= chunk_pos + chunk.len() as u64
                };
                if !covered(chunk, *chunk_pos, batch::HEADER_LEN as u64) {
                    let n = (*end - pos).min(*chunk_hint as u64) as usize;
                    *chunk_hint = (*chunk_hint * 2).min(MAX_READ_SPAN as usize);
                    *chunk = read(file, pos, n)?;
                    *chunk_pos = pos;
                }
                let rel = (pos - *chunk_pos) as usize;
                let need = match batch::decode_header(&chunk[rel..]) {
                    Ok(h) => h.len as u64,
                    Err(DecodeError::Incomplete) if chunk.len() - rel >= batch::HEADER_LEN => {
                        let mut a = [0u8; 4];
                        a.copy_from_slice(&chunk[rel..rel + 4]);
                        u64::from(u32::from_le_bytes(a))
                    }
                    Err(e) => return Err((pos, describe(e))),
                };
                if pos + need > *end {
                    return Err((pos, "batch runs past the readable end".into()));
                }
                if !covered(chunk, *chunk_pos, need) {
                    let n = (*end - pos).min(need.max(*chunk_hint as u64)) as usize;
                    *chunk_hint = (*chunk_hint * 2).min(MAX_READ_SPAN as usize);
                    *chunk = read(file, pos, n)?;
                    *chunk_pos = pos;
                }
                let rel = (pos - *chunk_pos) as usize;
                let h = batch::verify(&chunk[rel..]).map_err(|e| (pos, describe(e)))?;
                Ok((h, chunk.slice(rel..rel + h.len as usize)))
            }
        }
    }
}

fn read(file: &File, pos: u64, n: usize) -> std::result::Result<Bytes, (u64, String)> {
    segment::read_into(file, pos, n, bufpool::take(n))
        .map(bufpool::into_bytes)
        .map_err(|e| (pos, format!("read failed: {e}")))
}

fn describe(e: DecodeError) -> String {
    match e {
        DecodeError::Incomplete => "incomplete batch".into(),
        DecodeError::Bad(r) => r,
    }
}

/// One batch of a [`BatchRead`]: the records `skip .. skip + take` of it are returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBatch {
    header: BatchHeader,
    /// The whole batch, shared with the segment map, the tail cache or a read buffer.
    bytes: Bytes,
    skip: u32,
    take: u32,
}

impl ReadBatch {
    /// The returned records, borrowed from the batch.
    pub fn records(&self) -> impl Iterator<Item = batch::RecordView<'_>> {
        // The read already walked (and bounds-checked) these records.
        batch::iter_records(&self.header, &self.bytes)
            .skip(self.skip as usize)
            .take(self.take as usize)
            .map_while(std::result::Result::ok)
    }

    /// The returned records as one span of the batch's bytes, shared (no copy): the offset
    /// of the first, the batch's `first_timestamp_ms` (the base of every record's
    /// `ts_delta_ms`), and the records back to back in the segment format's record layout
    /// (`docs/formats/segment.md`, "Record"). The native read path sends these bytes as
    /// they are.
    pub fn record_span(&self) -> (Offset, u64, Bytes) {
        let ts = self.header.first_timestamp_ms;
        if self.skip == 0 && self.take == self.header.record_count {
            // The whole batch: its record area, with no walk (the read checked its bounds).
            return (
                self.header.base_offset,
                ts,
                self.bytes.slice(batch::HEADER_LEN..),
            );
        }
        let base = self.bytes.as_ptr() as usize;
        let mut first = None;
        let mut start = batch::HEADER_LEN;
        let mut end = start;
        for r in self.records() {
            // Keys and data are subslices of `self.bytes`: their positions follow from the
            // pointers, and a record's header sits right before its key.
            let key_at = r.partition_key.as_ptr() as usize - base;
            if first.is_none() {
                first = Some(r.offset);
                start = key_at - batch::RECORD_HEADER_LEN;
            }
            end = r.data.as_ptr() as usize - base + r.data.len();
        }
        let first = first.unwrap_or(self.header.base_offset);
        (
            first,
            self.header.first_timestamp_ms,
            self.bytes.slice(start..end),
        )
    }

    /// Number of returned records in this batch.
    pub fn len(&self) -> usize {
        self.take as usize
    }

    /// Never true: batches without a returned record are left out.
    pub fn is_empty(&self) -> bool {
        self.take == 0
    }
}

/// Records read as whole batches, and where to continue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchRead {
    pub batches: Vec<ReadBatch>,
    /// The offset to read from next time.
    pub next: Offset,
    /// Sum of partition key and data bytes returned.
    pub bytes: usize,
    pub record_count: usize,
}

impl BatchRead {
    /// Every returned record, in order.
    pub fn records(&self) -> impl Iterator<Item = batch::RecordView<'_>> {
        self.batches.iter().flat_map(ReadBatch::records)
    }
}

/// Read limits for one call.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_records: usize,
    pub max_bytes: usize,
}

impl LogView {
    /// One past the last visible record when the view was taken.
    pub fn next_offset(&self) -> Offset {
        Offset(self.next_offset)
    }

    /// The lowest retained offset when the view was taken.
    pub fn trim_offset(&self) -> Offset {
        Offset(self.trim_offset)
    }

    fn corrupt(
        &self,
        id: SegmentId,
        path: &std::path::Path,
        (pos, reason): (u64, String),
    ) -> Error {
        Error::Corrupt {
            shard: self.shard,
            segment: id,
            path: path.to_path_buf(),
            offset: pos,
            reason,
        }
    }

    fn source<'a>(&self, seg: &'a Sealed, hint: usize) -> Result<Source<'a>> {
        Ok(match self.read_mode {
            ReadMode::Mmap => Source::Map(
                seg.bytes()
                    .map_err(|e| Error::io("map segment", &seg.path, e))?,
            ),
            ReadMode::Pread => Source::File {
                file: &seg.file,
                end: seg.len,
                chunk: Bytes::new(),
                chunk_pos: 0,
                chunk_hint: FIRST_READ_BYTES.min(hint),
                cached: &[],
            },
        })
    }

    /// Reads records starting at `from` (or the trim horizon, if `from` is older), up to the
    /// limits. At least one record is returned if any is visible, even if it alone exceeds
    /// `max_bytes`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if a batch fails its checks; I/O errors.
    pub fn read(&self, from: Offset, limits: Limits) -> Result<ReadOutcome> {
        let batches = self.read_batches(from, limits)?;
        let mut records = Vec::with_capacity(batches.record_count);
        for b in &batches.batches {
            records.extend(b.records().map(|r| Record {
                offset: r.offset,
                timestamp_ms: r.timestamp_ms,
                partition_key: b.bytes.slice_ref(r.partition_key),
                data: b.bytes.slice_ref(r.data),
            }));
        }
        Ok(ReadOutcome {
            records,
            next: batches.next,
            bytes: batches.bytes,
        })
    }

    /// Like [`LogView::read`], but returns the batches that hold the records, each shared
    /// whole (one reference count per batch, not two per record): the bulk read path.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if a batch fails its checks; I/O errors.
    pub fn read_batches(&self, from: Offset, limits: Limits) -> Result<BatchRead> {
        let mut from = from.0.max(self.trim_offset);
        let mut out = BatchRead {
            next: Offset(from),
            ..BatchRead::default()
        };
        if from >= self.next_offset || limits.max_records == 0 {
            return Ok(out);
        }
        let hint = limits.max_bytes.saturating_add(64 << 10).min(16 << 20);
        let first = self.sealed.partition_point(|s| s.next_offset <= from);
        for seg in &self.sealed[first..] {
            let pos = seg.index.position_for_offset(from);
            let mut src = self.source(seg, hint)?;
            let done = self
                .read_segment(&mut src, pos, seg.len, &mut from, limits, &mut out)
                .map_err(|e| self.corrupt(seg.id, &seg.path, e))?;
            if done {
                return Ok(out);
            }
        }
        let (pos, mut src) = self.active_source(first, FIRST_READ_BYTES.min(hint));
        self.read_segment(
            &mut src,
            pos,
            self.active_visible_len,
            &mut from,
            limits,
            &mut out,
        )
        .map_err(|e| self.corrupt(self.active_id, &self.active_path, e))?;
        Ok(out)
    }

    /// Where to start in the active segment (its start when the read came through sealed
    /// segments, else the indexed position the view was taken for), and a source for it.
    fn active_source(&self, first_sealed: usize, first_read: usize) -> (u64, Source<'_>) {
        let pos = if first_sealed < self.sealed.len() {
            segment::HEADER_LEN as u64
        } else {
            self.active_start_pos
        };
        let src = Source::File {
            file: &self.active_file,
            end: self.active_visible_len,
            chunk: Bytes::new(),
            chunk_pos: 0,
            chunk_hint: first_read,
            cached: &self.active_tail,
        };
        (pos, src)
    }

    /// Returns true when the limits are reached.
    fn read_segment(
        &self,
        src: &mut Source<'_>,
        mut pos: u64,
        end: u64,
        from: &mut u64,
        limits: Limits,
        out: &mut BatchRead,
    ) -> std::result::Result<bool, (u64, String)> {
        while pos < end {
            if out.record_count >= limits.max_records {
                // Full: do not read (and checksum) a batch none of whose records is returned.
                return Ok(true);
            }
            let (h, bytes) = src.batch_at(pos)?;
            let at = pos;
            pos += u64::from(h.len);
            if h.next_offset().0 <= *from {
                continue;
            }
            let (mut skip, mut take, mut full) = (0u32, 0u32, false);
            for r in batch::iter_records(&h, &bytes) {
                let r = r.map_err(|e| (at, describe(e)))?;
                if r.offset.0 < *from {
                    skip += 1;
                    continue;
                }
                let size = r.data.len() + r.partition_key.len();
                if out.record_count >= limits.max_records
                    || (out.record_count > 0 && out.bytes + size > limits.max_bytes)
                {
                    full = true;
                    break;
                }
                out.bytes += size;
                out.record_count += 1;
                take += 1;
                *from = r.offset.0 + 1;
            }
            if take > 0 {
                out.batches.push(ReadBatch {
                    header: h,
                    bytes,
                    skip,
                    take,
                });
            }
            if full {
                out.next = Offset(*from);
                return Ok(true);
            }
            // Offsets may skip past a batch dropped by skip-corrupt recovery.
            *from = (*from).max(h.next_offset().0);
            out.next = Offset(*from);
        }
        Ok(out.record_count >= limits.max_records)
    }

    /// The offset of the first record that arrived at or after `timestamp_ms`, or the next
    /// offset if none has yet. The view must have been taken for `Target::Time(timestamp_ms)`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if a batch on the way fails its checks; I/O errors.
    pub fn offset_at_time(&self, timestamp_ms: u64) -> Result<Offset> {
        let first = self
            .sealed
            .partition_point(|s| s.last_timestamp_ms < timestamp_ms);
        if let Some(seg) = self.sealed.get(first) {
            let pos = seg.index.position_for_time(timestamp_ms);
            let mut src = self.source(seg, 1 << 20)?;
            if let Some(o) = scan_for_time(&mut src, pos, seg.len, timestamp_ms)
                .map_err(|e| self.corrupt(seg.id, &seg.path, e))?
            {
                return Ok(Offset(o.max(self.trim_offset)));
            }
        }
        let (pos, mut src) = self.active_source(first, FIRST_READ_BYTES);
        let found = scan_for_time(&mut src, pos, self.active_visible_len, timestamp_ms)
            .map_err(|e| self.corrupt(self.active_id, &self.active_path, e))?;
        Ok(Offset(
            found.unwrap_or(self.next_offset).max(self.trim_offset),
        ))
    }
}

fn scan_for_time(
    src: &mut Source<'_>,
    mut pos: u64,
    end: u64,
    timestamp_ms: u64,
) -> std::result::Result<Option<u64>, (u64, String)> {
    let mut recs = Vec::new();
    while pos < end {
        let (h, bytes) = src.batch_at(pos)?;
        if h.last_timestamp_ms >= timestamp_ms {
            recs.clear();
            batch::records(&h, &bytes, h.base_offset, &mut recs).map_err(|e| (pos, describe(e)))?;
            if let Some(r) = recs.iter().find(|r| r.timestamp_ms >= timestamp_ms) {
                return Ok(Some(r.offset.0));
            }
        }
        pos += u64::from(h.len);
    }
    Ok(None)
}
