//! Records: the answer to a Read, the records of one shard and where to continue.
//!
//! The payload is a fixed little-endian part, the child shards, a table of runs, and the
//! record block (`docs/formats/native.md`, "Records"). A run is a span of records with
//! consecutive counters, laid out back to back exactly as in a segment's record batch
//! (`docs/formats/segment.md`, "Record": `ts_delta_ms`, `key_len`, `data_len`, key, data),
//! so a server can send the bytes it read from a segment without touching them: it writes
//! the prefix this module builds, then each run's bytes, with one vectored write.
//!
//! # Invariants
//!
//! - [`RecordsView::parse`] checks everything before any record is handed out: the fixed
//!   part, the tables' lengths, and every record's header, key and data against its run
//!   and the payload; the counts must add up and the runs must end exactly where the
//!   payload does. After it, iterating cannot fail or read out of bounds.
//! - A client trusts nothing else the server says: a counter that would overflow, a
//!   timestamp delta past `u64`, are refused too.

use std::mem::size_of;

use crate::error::Error;
use crate::frame::{FrameHeader, FrameType, RequestId, HEADER_LEN};
use crate::read::{u32_at, u64_at, MAX_READ_BYTES, MAX_READ_RECORDS};

const REQUEST_ID_OFFSET: usize = 0;
const SHARD_OFFSET: usize = REQUEST_ID_OFFSET + size_of::<u64>();
const FLAGS_OFFSET: usize = SHARD_OFFSET + size_of::<u32>();
const CHILD_COUNT_OFFSET: usize = FLAGS_OFFSET + size_of::<u16>();
const EPOCH_OFFSET: usize = CHILD_COUNT_OFFSET + size_of::<u16>();
const NEXT_COUNTER_OFFSET: usize = EPOCH_OFFSET + size_of::<u64>();
const BEHIND_OFFSET: usize = NEXT_COUNTER_OFFSET + size_of::<u64>();
const RUN_COUNT_OFFSET: usize = BEHIND_OFFSET + size_of::<u64>();
const RECORD_COUNT_OFFSET: usize = RUN_COUNT_OFFSET + size_of::<u32>();
/// Bytes of a Records payload before the child shards.
pub const FIXED_LEN: usize = RECORD_COUNT_OFFSET + size_of::<u32>();

const CHILD_LEN: usize = size_of::<u32>();

const RUN_FIRST_COUNTER_OFFSET: usize = 0;
const RUN_BASE_TS_OFFSET: usize = RUN_FIRST_COUNTER_OFFSET + size_of::<u64>();
const RUN_RECORD_COUNT_OFFSET: usize = RUN_BASE_TS_OFFSET + size_of::<u64>();
const RUN_BYTE_LEN_OFFSET: usize = RUN_RECORD_COUNT_OFFSET + size_of::<u32>();
/// Bytes of one entry of the run table.
pub const RUN_LEN: usize = RUN_BYTE_LEN_OFFSET + size_of::<u32>();

const REC_TS_DELTA_OFFSET: usize = 0;
const REC_KEY_LEN_OFFSET: usize = REC_TS_DELTA_OFFSET + size_of::<u32>();
const REC_DATA_LEN_OFFSET: usize = REC_KEY_LEN_OFFSET + size_of::<u16>();
/// Bytes of a record's header in the block (the segment format's record header).
pub const RECORD_HEADER_LEN: usize = REC_DATA_LEN_OFFSET + size_of::<u32>();

/// `flags` bit: the shard is closed (split or merged) and the read reached its end;
/// `child_shards` names the shards that continue it.
pub const FLAG_END_OF_SHARD: u16 = 1;
const KNOWN_FLAGS: u16 = FLAG_END_OF_SHARD;

use crate::seqno::MAX_TIME_SECS;

/// Largest Records frame a server sends for a Read within the limits (header included):
/// [`MAX_READ_BYTES`] of keys and data, the per-record and per-run overhead of
/// [`MAX_READ_RECORDS`] records, and room for child shards; a single record larger than the
/// asked bytes (at most 10 MiB plus its key) also fits. Clients size their decoder with it.
pub const MAX_RECORDS_FRAME_BYTES: usize = 32 << 20;

/// The largest Records frame (header included) that answers a Read of `max_records` and
/// `max_bytes`, not counting the one-record exception (a record alone may exceed
/// `max_bytes`) and at most 2 child shards.
pub fn answer_bound(max_records: u32, max_bytes: u32) -> usize {
    let records = max_records.min(MAX_READ_RECORDS) as usize;
    HEADER_LEN
        + FIXED_LEN
        + 2 * CHILD_LEN
        + records * (RUN_LEN + RECORD_HEADER_LEN)
        + max_bytes.min(MAX_READ_BYTES) as usize
}

/// The fixed part of a Records frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsHead {
    pub request_id: RequestId,
    /// The shard index.
    pub shard: u32,
    /// The shard's sequence epoch: with a record's counter and arrival time it makes the
    /// record's sequence number.
    pub epoch_secs: u64,
    /// Continue with `ReadPosition::Continue { epoch_secs, counter: next_counter }`.
    pub next_counter: u64,
    /// How far the last record returned is behind the shard's newest (0 when caught up).
    pub millis_behind_latest: u64,
    /// The shard is closed and this read reached its end.
    pub end_of_shard: bool,
    /// With `end_of_shard`: the shards that continue this one (indexes).
    pub child_shards: Vec<u32>,
}

/// Builds the prefix of a Records frame (everything but the run bytes).
pub struct RecordsBuilder {
    head: RecordsHead,
    runs: Vec<u8>,
    run_count: u32,
    record_count: u32,
    block_len: usize,
}

impl RecordsBuilder {
    pub fn new(head: RecordsHead) -> RecordsBuilder {
        RecordsBuilder {
            head,
            runs: Vec::new(),
            run_count: 0,
            record_count: 0,
            block_len: 0,
        }
    }

    /// Adds a run: `record_count` records from counter `first_counter`, whose arrival times
    /// are `base_timestamp_ms` plus each record's delta, taking `byte_len` bytes in the
    /// block. The caller sends those bytes after [`RecordsBuilder::finish`]'s, in run order.
    pub fn push_run(
        &mut self,
        first_counter: u64,
        base_timestamp_ms: u64,
        record_count: u32,
        byte_len: u32,
    ) {
        self.runs.extend_from_slice(&first_counter.to_le_bytes());
        self.runs
            .extend_from_slice(&base_timestamp_ms.to_le_bytes());
        self.runs.extend_from_slice(&record_count.to_le_bytes());
        self.runs.extend_from_slice(&byte_len.to_le_bytes());
        self.run_count += 1;
        self.record_count += record_count;
        self.block_len += byte_len as usize;
    }

    /// The frame's header and every payload byte before the record block.
    ///
    /// # Panics
    /// If the payload would reach 4 GiB or name more than 65,535 child shards; reads are
    /// bounded far below (at most [`MAX_READ_BYTES`] plus one record).
    pub fn finish(self) -> Vec<u8> {
        let h = &self.head;
        let children =
            u16::try_from(h.child_shards.len()).expect("invariant: a shard has at most 2 children");
        let prefix_payload = FIXED_LEN + h.child_shards.len() * CHILD_LEN + self.runs.len();
        let payload_len = u32::try_from(prefix_payload + self.block_len)
            .expect("invariant: reads are bounded far below 4 GiB");
        let mut out = Vec::with_capacity(HEADER_LEN + prefix_payload);
        out.extend_from_slice(
            &FrameHeader {
                frame_type: FrameType::Records,
                payload_len,
            }
            .to_bytes(),
        );
        out.extend_from_slice(&h.request_id.0.to_le_bytes());
        out.extend_from_slice(&h.shard.to_le_bytes());
        let flags = if h.end_of_shard { FLAG_END_OF_SHARD } else { 0 };
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&children.to_le_bytes());
        out.extend_from_slice(&h.epoch_secs.to_le_bytes());
        out.extend_from_slice(&h.next_counter.to_le_bytes());
        out.extend_from_slice(&h.millis_behind_latest.to_le_bytes());
        out.extend_from_slice(&self.run_count.to_le_bytes());
        out.extend_from_slice(&self.record_count.to_le_bytes());
        for c in &h.child_shards {
            out.extend_from_slice(&c.to_le_bytes());
        }
        out.extend_from_slice(&self.runs);
        out
    }
}

/// One record of a Records frame, borrowed from its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRecord<'a> {
    /// The per-shard counter (the record's offset): its sequence number's counter.
    pub counter: u64,
    /// Arrival time, ms since the Unix epoch (GetRecords' `ApproximateArrivalTimestamp`).
    pub arrival_ms: u64,
    pub partition_key: &'a [u8],
    pub data: &'a [u8],
}

impl ReadRecord<'_> {
    /// The arrival time field of the record's sequence number, as the server computes it
    /// when it writes the record: seconds, at least the shard's epoch, at most 2^36 - 1.
    pub fn arrival_secs(&self, epoch_secs: u64) -> u64 {
        let epoch = epoch_secs.min(MAX_TIME_SECS);
        (self.arrival_ms / 1000).clamp(epoch, MAX_TIME_SECS)
    }
}

/// A checked Records payload.
#[derive(Debug, Clone, Copy)]
pub struct RecordsView<'a> {
    payload: &'a [u8],
    children: &'a [u8],
    runs: &'a [u8],
    block: &'a [u8],
    record_count: u32,
}

impl<'a> RecordsView<'a> {
    /// Checks a Records payload whole (see the module's invariants).
    ///
    /// # Errors
    /// [`Error::InvalidField`] naming the first thing that does not add up.
    pub fn parse(payload: &'a [u8]) -> Result<RecordsView<'a>, Error> {
        let invalid = |reason: String| Error::InvalidField {
            frame_type: FrameType::Records,
            reason,
        };
        if payload.len() < FIXED_LEN {
            return Err(invalid(format!(
                "payload of {} bytes is shorter than the {FIXED_LEN} fixed bytes",
                payload.len()
            )));
        }
        let flags = u16::from_le_bytes([payload[FLAGS_OFFSET], payload[FLAGS_OFFSET + 1]]);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(invalid(format!("unknown flags {flags:#06x}")));
        }
        let children = usize::from(u16::from_le_bytes([
            payload[CHILD_COUNT_OFFSET],
            payload[CHILD_COUNT_OFFSET + 1],
        ]));
        let run_count = u32_at(payload, RUN_COUNT_OFFSET) as usize;
        let record_count = u32_at(payload, RECORD_COUNT_OFFSET);
        let runs_start = FIXED_LEN + children * CHILD_LEN;
        let block_start = run_count
            .checked_mul(RUN_LEN)
            .and_then(|n| n.checked_add(runs_start))
            .filter(|end| *end <= payload.len())
            .ok_or_else(|| {
                invalid(format!(
                    "{children} child shards and {run_count} runs do not fit in {} bytes",
                    payload.len()
                ))
            })?;
        let runs = &payload[runs_start..block_start];
        let block = &payload[block_start..];
        let mut pos = 0usize;
        let mut total = 0u64;
        for (i, run) in runs.chunks_exact(RUN_LEN).enumerate() {
            let first = u64_at(run, RUN_FIRST_COUNTER_OFFSET);
            let base_ts = u64_at(run, RUN_BASE_TS_OFFSET);
            let count = u32_at(run, RUN_RECORD_COUNT_OFFSET);
            let len = u32_at(run, RUN_BYTE_LEN_OFFSET) as usize;
            if count == 0 {
                return Err(invalid(format!("run {i} has no records")));
            }
            if first.checked_add(u64::from(count)).is_none() {
                return Err(invalid(format!("run {i}'s counters overflow")));
            }
            let bytes = pos
                .checked_add(len)
                .and_then(|end| block.get(pos..end))
                .ok_or_else(|| invalid(format!("run {i} runs past the payload")))?;
            check_run(bytes, count, base_ts).map_err(|r| invalid(format!("run {i}: {r}")))?;
            pos += len;
            total += u64::from(count);
        }
        if pos != block.len() {
            return Err(invalid(format!(
                "{} bytes after the last run",
                block.len() - pos
            )));
        }
        if total != u64::from(record_count) {
            return Err(invalid(format!(
                "runs hold {total} records, the header says {record_count}"
            )));
        }
        Ok(RecordsView {
            payload,
            children: &payload[FIXED_LEN..runs_start],
            runs,
            block,
            record_count,
        })
    }

    pub fn request_id(&self) -> RequestId {
        RequestId(u64_at(self.payload, REQUEST_ID_OFFSET))
    }

    pub fn shard(&self) -> u32 {
        u32_at(self.payload, SHARD_OFFSET)
    }

    pub fn epoch_secs(&self) -> u64 {
        u64_at(self.payload, EPOCH_OFFSET)
    }

    /// Where to continue: `ReadPosition::Continue { epoch_secs, counter: next_counter }`.
    pub fn next_counter(&self) -> u64 {
        u64_at(self.payload, NEXT_COUNTER_OFFSET)
    }

    pub fn millis_behind_latest(&self) -> u64 {
        u64_at(self.payload, BEHIND_OFFSET)
    }

    pub fn end_of_shard(&self) -> bool {
        let flags =
            u16::from_le_bytes([self.payload[FLAGS_OFFSET], self.payload[FLAGS_OFFSET + 1]]);
        flags & FLAG_END_OF_SHARD != 0
    }

    /// The shards that continue this one (with [`RecordsView::end_of_shard`]).
    pub fn child_shards(&self) -> impl Iterator<Item = u32> + 'a {
        self.children.chunks_exact(CHILD_LEN).map(|c| u32_at(c, 0))
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.record_count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// Bytes of the record block (record headers, keys and data).
    pub fn block_len(&self) -> usize {
        self.block.len()
    }

    /// Every record, in counter order.
    pub fn records(&self) -> impl Iterator<Item = ReadRecord<'a>> + 'a {
        let block = self.block;
        let mut pos = 0usize;
        self.runs.chunks_exact(RUN_LEN).flat_map(move |run| {
            let first = u64_at(run, RUN_FIRST_COUNTER_OFFSET);
            let base_ts = u64_at(run, RUN_BASE_TS_OFFSET);
            let count = u32_at(run, RUN_RECORD_COUNT_OFFSET);
            let len = u32_at(run, RUN_BYTE_LEN_OFFSET) as usize;
            // parse() checked that every run lies within the block.
            let bytes = block.get(pos..pos + len).unwrap_or_default();
            pos += len;
            RunIter {
                bytes,
                pos: 0,
                counter: first,
                left: count,
                base_ts,
            }
        })
    }
}

/// Checks a run's records: `count` of them, each within the run, ending at its end.
fn check_run(b: &[u8], count: u32, base_ts: u64) -> Result<(), String> {
    let mut pos = 0usize;
    for i in 0..count {
        let (rec, end) = record_at(b, pos, base_ts, 0)
            .ok_or_else(|| format!("record {i} runs past the run's {} bytes", b.len()))?;
        if rec.arrival_ms < base_ts {
            return Err(format!("record {i}'s arrival time overflows"));
        }
        pos = end;
    }
    if pos != b.len() {
        return Err(format!("{} bytes after the last record", b.len() - pos));
    }
    Ok(())
}

/// The record whose header starts at `pos`, and where it ends; `None` if it does not fit.
fn record_at(b: &[u8], pos: usize, base_ts: u64, counter: u64) -> Option<(ReadRecord<'_>, usize)> {
    let h = b.get(pos..pos.checked_add(RECORD_HEADER_LEN)?)?;
    let ts_delta = u32_at(h, REC_TS_DELTA_OFFSET);
    let key_len = usize::from(u16::from_le_bytes([
        h[REC_KEY_LEN_OFFSET],
        h[REC_KEY_LEN_OFFSET + 1],
    ]));
    let data_len = u32_at(h, REC_DATA_LEN_OFFSET) as usize;
    let key_start = pos + RECORD_HEADER_LEN;
    let data_start = key_start + key_len;
    let end = data_start.checked_add(data_len)?;
    let partition_key = b.get(key_start..data_start)?;
    let data = b.get(data_start..end)?;
    Some((
        ReadRecord {
            counter,
            // A wrap shows up as a time before the base, which check_run refuses.
            arrival_ms: base_ts.wrapping_add(u64::from(ts_delta)),
            partition_key,
            data,
        },
        end,
    ))
}

struct RunIter<'a> {
    bytes: &'a [u8],
    pos: usize,
    counter: u64,
    left: u32,
    base_ts: u64,
}

impl<'a> Iterator for RunIter<'a> {
    type Item = ReadRecord<'a>;

    fn next(&mut self) -> Option<ReadRecord<'a>> {
        if self.left == 0 {
            return None;
        }
        let (rec, end) = record_at(self.bytes, self.pos, self.base_ts, self.counter)?;
        self.pos = end;
        self.left -= 1;
        self.counter += 1;
        Some(rec)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

/// Encodes records as one run's bytes (the segment format's record layout, delta 0): for
/// tests and for servers that hold records rather than segment bytes.
///
/// # Panics
/// If a key is longer than 65,535 bytes or data longer than 4 GiB.
pub fn encode_run(records: &[(&[u8], &[u8])], out: &mut Vec<u8>) {
    for (key, data) in records {
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(
            &u16::try_from(key.len())
                .expect("invariant: keys fit in u16")
                .to_le_bytes(),
        );
        out.extend_from_slice(
            &u32::try_from(data.len())
                .expect("invariant: data fits in u32")
                .to_le_bytes(),
        );
        out.extend_from_slice(key);
        out.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests;
