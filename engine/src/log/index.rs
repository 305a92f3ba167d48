//! Sparse per-segment indexes: log offset → file position, and arrival time → file position.
//!
//! Invariants:
//! - One entry per batch that starts at least `interval_bytes` after the previous entry's
//!   batch (and one for the segment's first batch), so lookups read at most about
//!   `interval_bytes` of log beyond the target.
//! - Entries are in log order; offsets strictly increase and timestamps never decrease,
//!   because a shard's arrival times never decrease. Both lookups are binary searches.
//! - The index is derived data: the `.idx` file is written when a segment is sealed and is
//!   rebuilt from the log whenever it is missing, damaged or does not match the log's length.
//!
//! Layout of `.idx` files: `docs/formats/segment.md`.

use crate::log::batch::BatchHeader;
use crate::log::segment;

/// One index point: the batch starting at file position `pos` begins with record `offset`,
/// which arrived at `timestamp_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub offset: u64,
    pub pos: u64,
    pub timestamp_ms: u64,
}

/// An in-memory sparse index of one segment.
#[derive(Debug, Clone, Default)]
pub struct SparseIndex {
    entries: Vec<IndexEntry>,
}

/// First bytes of every index file.
pub const MAGIC: [u8; 8] = *b"SHLNIDX\0";
/// The index format version this code writes and reads.
pub const VERSION: u32 = 1;
const VERSION_OFFSET: usize = MAGIC.len();
const COUNT_OFFSET: usize = VERSION_OFFSET + size_of::<u32>();
const SEGMENT_LEN_OFFSET: usize = COUNT_OFFSET + size_of::<u32>();
const CRC_OFFSET: usize = SEGMENT_LEN_OFFSET + size_of::<u64>();
const RESERVED_OFFSET: usize = CRC_OFFSET + size_of::<u32>();
/// Size of the index file header.
pub const HEADER_LEN: usize = RESERVED_OFFSET + size_of::<u32>();
/// Size of one entry on disk.
pub const ENTRY_LEN: usize = 3 * size_of::<u64>();

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

impl SparseIndex {
    /// Records the batch at `pos` if it is the first or at least `interval_bytes` past the
    /// last entry.
    pub fn observe(&mut self, header: &BatchHeader, pos: u64, interval_bytes: u64) {
        let due = match self.entries.last() {
            None => true,
            Some(last) => pos >= last.pos + interval_bytes,
        };
        if due {
            self.entries.push(IndexEntry {
                offset: header.base_offset.0,
                pos,
                timestamp_ms: header.first_timestamp_ms,
            });
        }
    }

    /// Where to start scanning for `offset`: the last indexed batch starting at or before it.
    pub fn position_for_offset(&self, offset: u64) -> u64 {
        let i = self.entries.partition_point(|e| e.offset <= offset);
        if i == 0 {
            segment::HEADER_LEN as u64
        } else {
            self.entries[i - 1].pos
        }
    }

    /// Where to start scanning for the first record that arrived at or after `timestamp_ms`:
    /// every batch before the returned position holds only earlier records.
    pub fn position_for_time(&self, timestamp_ms: u64) -> u64 {
        let i = self
            .entries
            .partition_point(|e| e.timestamp_ms < timestamp_ms);
        if i == 0 {
            segment::HEADER_LEN as u64
        } else {
            self.entries[i - 1].pos
        }
    }

    /// The entries, in log order.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Encodes the index of a sealed segment whose log is `segment_len` bytes.
    pub fn encode(&self, segment_len: u64) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN + self.entries.len() * ENTRY_LEN);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        b.extend_from_slice(&segment_len.to_le_bytes());
        b.extend_from_slice(&[0u8; 8]);
        for e in &self.entries {
            b.extend_from_slice(&e.offset.to_le_bytes());
            b.extend_from_slice(&e.pos.to_le_bytes());
            b.extend_from_slice(&e.timestamp_ms.to_le_bytes());
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&b[..CRC_OFFSET]);
        h.update(&b[HEADER_LEN..]);
        let crc = h.finalize();
        b[CRC_OFFSET..RESERVED_OFFSET].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes an index file, checking it describes a log of `segment_len` bytes.
    ///
    /// # Errors
    /// A reason, if the bytes are not a valid index for that log: the caller rebuilds.
    pub fn decode(b: &[u8], segment_len: u64) -> Result<SparseIndex, String> {
        if b.len() < HEADER_LEN {
            return Err("index file shorter than its header".into());
        }
        if b[..VERSION_OFFSET] != MAGIC {
            return Err("bad magic number".into());
        }
        let version = u32_at(b, VERSION_OFFSET);
        if version != VERSION {
            return Err(format!(
                "index format version {version}, expected {VERSION}"
            ));
        }
        let count = u32_at(b, COUNT_OFFSET) as usize;
        if b.len() != HEADER_LEN + count * ENTRY_LEN {
            return Err(format!(
                "index length {} does not hold {count} entries",
                b.len()
            ));
        }
        let stored = u32_at(b, CRC_OFFSET);
        let mut h = crc32fast::Hasher::new();
        h.update(&b[..CRC_OFFSET]);
        h.update(&b[HEADER_LEN..]);
        if h.finalize() != stored {
            return Err("index checksum mismatch".into());
        }
        if u32_at(b, RESERVED_OFFSET) != 0 {
            return Err("reserved field not zero".into());
        }
        let covered = u64_at(b, SEGMENT_LEN_OFFSET);
        if covered != segment_len {
            return Err(format!(
                "index covers {covered} bytes of log, the log has {segment_len}"
            ));
        }
        let mut entries = Vec::with_capacity(count);
        for i in 0..count {
            let at = HEADER_LEN + i * ENTRY_LEN;
            let e = IndexEntry {
                offset: u64_at(b, at),
                pos: u64_at(b, at + 8),
                timestamp_ms: u64_at(b, at + 16),
            };
            if let Some(prev) = entries.last() {
                let prev: &IndexEntry = prev;
                if e.offset <= prev.offset
                    || e.pos <= prev.pos
                    || e.timestamp_ms < prev.timestamp_ms
                {
                    return Err(format!("entry {i} is out of order"));
                }
            }
            if e.pos < segment::HEADER_LEN as u64 || e.pos >= segment_len {
                return Err(format!("entry {i} points outside the log"));
            }
            entries.push(e);
        }
        Ok(SparseIndex { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Offset;

    fn header(base: u64, ts: u64) -> BatchHeader {
        BatchHeader {
            len: 100,
            base_offset: Offset(base),
            record_count: 10,
            first_timestamp_ms: ts,
            last_timestamp_ms: ts,
            flags: 0,
        }
    }

    #[test]
    fn sizes_match_the_format_doc() {
        assert_eq!(HEADER_LEN, 32);
        assert_eq!(ENTRY_LEN, 24);
    }

    #[test]
    fn lookups_and_round_trip() {
        let mut ix = SparseIndex::default();
        for i in 0..100u64 {
            ix.observe(&header(i * 10, 1000 + i), 32 + i * 100, 250);
        }
        assert_eq!(ix.entries().len(), 34);
        assert_eq!(ix.position_for_offset(0), 32);
        assert_eq!(ix.position_for_offset(35), 332);
        assert_eq!(ix.position_for_time(0), 32);
        assert_eq!(ix.position_for_time(1004), 332);
        let enc = ix.encode(10_032);
        let back = SparseIndex::decode(&enc, 10_032).unwrap();
        assert_eq!(back.entries(), ix.entries());
        assert!(SparseIndex::decode(&enc, 10_033).is_err());
        for i in 0..enc.len() {
            let mut b = enc.clone();
            b[i] ^= 0x10;
            assert!(SparseIndex::decode(&b, 10_032).is_err(), "flip at {i}");
        }
        for cut in 0..enc.len() {
            assert!(SparseIndex::decode(&enc[..cut], 10_032).is_err());
        }
    }
}
