//! Scanning a segment batch by batch: recovery on open and index rebuilds.
//!
//! Invariants:
//! - A scan stops at the first batch that is incomplete or fails its checks. If a valid batch
//!   that *starts a write* ([`batch::FLAG_WRITE_START`]) lies anywhere after that point, the
//!   damage is mid-log corruption: a shard has at most one write in flight and, with
//!   durability `sync`, a write starts only after the previous one was synced, so damage
//!   before a later write's start hit acknowledged data. It is never silently dropped: the
//!   shard refuses to open unless the operator chose [`RecoveryMode::SkipCorrupt`].
//!   Otherwise the damage lies within the last write, which never completed and so was never
//!   acknowledged (the disk may even have kept a later page of it and lost an earlier one):
//!   a torn tail, which the caller truncates. Only the last segment can have a torn tail;
//!   sealed segments were synced before their successor existed.
//! - Offsets increase from batch to batch (a gap is possible only where a batch was skipped),
//!   and arrival times never decrease.

use crate::log::batch::{self, BatchHeader, DecodeError};
use crate::log::index::SparseIndex;
use crate::log::segment;

/// What recovery does when it finds mid-log corruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Refuse to open the shard, naming the file and byte offset (default).
    #[default]
    Refuse,
    /// Drop the damaged bytes up to the next valid batch, log a warning, and open.
    SkipCorrupt,
}

/// Where and why a scan stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// File position of the first bad byte range.
    pub pos: u64,
    pub reason: String,
    /// Position of the next valid batch that starts a write, if there is one (then the
    /// damage is mid-log corruption rather than a torn tail).
    pub resume_at: Option<u64>,
}

/// The result of scanning one segment's bytes.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Bytes of the segment, from its start, that hold the header and valid batches.
    pub valid_len: u64,
    pub index: SparseIndex,
    /// First record offset in the segment, if it holds any record.
    pub first_offset: Option<u64>,
    /// One past the last record's offset (the segment's base if it is empty).
    pub next_offset: u64,
    pub first_timestamp_ms: Option<u64>,
    pub last_timestamp_ms: u64,
    pub damage: Option<Damage>,
}

fn check_order(h: &BatchHeader, next_offset: u64, last_ts: u64) -> Result<(), DecodeError> {
    if h.base_offset.0 < next_offset {
        return Err(DecodeError::Bad(format!(
            "batch offset {} goes backwards (expected {next_offset} or later)",
            h.base_offset.0
        )));
    }
    if h.first_timestamp_ms < last_ts {
        return Err(DecodeError::Bad(format!(
            "batch timestamp {} precedes the previous batch's {last_ts}",
            h.first_timestamp_ms
        )));
    }
    Ok(())
}

/// Scans `bytes` (a whole segment file, header included) from the first batch. `base` is the
/// segment's base offset, `min_ts` the last timestamp of the segments before it.
pub fn scan(bytes: &[u8], base: u64, min_ts: u64, index_interval_bytes: u64) -> Scan {
    let mut s = Scan {
        valid_len: segment::HEADER_LEN as u64,
        next_offset: base,
        last_timestamp_ms: min_ts,
        ..Scan::default()
    };
    let mut pos = segment::HEADER_LEN;
    while pos < bytes.len() {
        let checked = batch::verify(&bytes[pos..])
            .and_then(|h| check_order(&h, s.next_offset, s.last_timestamp_ms).map(|()| h));
        match checked {
            Ok(h) => {
                s.index.observe(&h, pos as u64, index_interval_bytes);
                s.first_offset.get_or_insert(h.base_offset.0);
                s.first_timestamp_ms.get_or_insert(h.first_timestamp_ms);
                s.next_offset = h.next_offset().0;
                s.last_timestamp_ms = h.last_timestamp_ms;
                pos += h.len as usize;
                s.valid_len = pos as u64;
            }
            Err(e) => {
                let reason = match e {
                    DecodeError::Incomplete => "incomplete batch".to_string(),
                    DecodeError::Bad(r) => r,
                };
                s.damage = Some(Damage {
                    pos: pos as u64,
                    reason,
                    resume_at: find_next_batch(bytes, pos + 1, s.next_offset, s.last_timestamp_ms),
                });
                break;
            }
        }
    }
    s
}

/// Looks for a position at or after `from` where a valid batch starts a write, with an
/// offset and time that could follow the intact prefix.
fn find_next_batch(bytes: &[u8], from: usize, next_offset: u64, last_ts: u64) -> Option<u64> {
    (from..bytes.len().saturating_sub(batch::HEADER_LEN - 1)).find_map(|p| {
        // Most positions fail this cheap test (zeros always do); decoding the header would
        // build an error message for each of them.
        if !batch::may_start_write(&bytes[p..]) {
            return None;
        }
        let h = batch::decode_header(&bytes[p..]).ok()?;
        if h.flags & batch::FLAG_WRITE_START == 0 {
            return None;
        }
        check_order(&h, next_offset, last_ts).ok()?;
        batch::verify(&bytes[p..]).ok().map(|_| p as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Offset, SegmentId};
    use crate::log::batch::{PendingBatch, RecordRef};

    fn segment_with(batches: usize) -> (Vec<u8>, Vec<usize>) {
        let mut v = segment::encode_header(SegmentId(100)).to_vec();
        let mut ends = Vec::new();
        for i in 0..batches {
            let data = vec![i as u8; 50 + i];
            let mut p = PendingBatch::encode(&[
                RecordRef {
                    partition_key: b"a",
                    data: &data,
                },
                RecordRef {
                    partition_key: b"bb",
                    data: b"x",
                },
            ])
            .unwrap();
            p.seal(Offset(100 + 2 * i as u64), 1000 + i as u64, true);
            v.extend_from_slice(&p.buf);
            ends.push(v.len());
        }
        (v, ends)
    }

    #[test]
    fn clean_segment_scans_whole() {
        let (v, _) = segment_with(5);
        let s = scan(&v, 100, 0, 0);
        assert_eq!(s.valid_len as usize, v.len());
        assert_eq!(s.next_offset, 110);
        assert_eq!(s.first_offset, Some(100));
        assert_eq!(s.index.entries().len(), 5);
        assert!(s.damage.is_none());
    }

    #[test]
    fn truncation_anywhere_in_the_last_batch_is_a_torn_tail() {
        let (v, ends) = segment_with(4);
        for cut in ends[2]..v.len() {
            let s = scan(&v[..cut], 100, 0, 4096);
            assert_eq!(s.valid_len as usize, ends[2], "cut {cut}");
            assert_eq!(s.next_offset, 106);
            if cut > ends[2] {
                let d = s.damage.unwrap();
                assert_eq!(d.resume_at, None, "cut {cut}");
            }
        }
    }

    #[test]
    fn a_flip_in_a_middle_batch_is_corruption_with_a_resume_point() {
        let (mut v, ends) = segment_with(4);
        v[ends[0] + 45] ^= 0xff;
        let s = scan(&v, 100, 0, 4096);
        let d = s.damage.unwrap();
        assert_eq!(d.pos as usize, ends[0]);
        assert_eq!(d.resume_at, Some(ends[1] as u64));
        assert_eq!(s.valid_len as usize, ends[0]);
    }

    /// A write of several batches whose earlier page was lost while a later one survived
    /// (out-of-order writeback at a power loss) is a torn last write, not corruption: none of
    /// it was acknowledged.
    #[test]
    fn damage_inside_the_last_write_is_a_torn_tail_even_if_later_batches_survive() {
        let mut v = segment::encode_header(SegmentId(100)).to_vec();
        let mut ends = Vec::new();
        for i in 0..4u64 {
            let mut p = PendingBatch::encode(&[RecordRef {
                partition_key: b"k",
                data: &[7u8; 60],
            }])
            .unwrap();
            // Batches 0, 1 and 2 each start a write; 2 and 3 form the last write.
            p.seal(Offset(100 + i), 1000, i != 3);
            v.extend_from_slice(&p.buf);
            ends.push(v.len());
        }
        v[ends[1] + 50] ^= 0xff;
        let s = scan(&v, 100, 0, 4096);
        let d = s.damage.unwrap();
        assert_eq!(d.pos as usize, ends[1]);
        assert_eq!(d.resume_at, None);
    }

    /// Zeros past the log's end (a crash after the file grew but before the data reached
    /// the disk): each position is rejected by the cheap filter, none is a resume point.
    #[test]
    fn megabytes_of_zeros_after_the_last_batch_are_a_torn_tail() {
        let (mut v, ends) = segment_with(3);
        v.resize(v.len() + (4 << 20), 0);
        let s = scan(&v, 100, 0, 4096);
        assert_eq!(s.valid_len as usize, ends[2]);
        let d = s.damage.unwrap();
        assert_eq!(d.pos as usize, ends[2]);
        assert_eq!(d.resume_at, None);
    }

    #[test]
    fn garbage_after_the_last_batch_is_a_torn_tail() {
        let (mut v, ends) = segment_with(3);
        v.extend_from_slice(&[0xAB; 300]);
        let s = scan(&v, 100, 0, 4096);
        assert_eq!(s.valid_len as usize, ends[2]);
        assert_eq!(s.damage.unwrap().resume_at, None);
    }
}
