//! Record batches: the unit of framing, checksumming and writing.
//!
//! Invariants:
//! - A batch holds one or more records with consecutive offsets starting at `base_offset`.
//! - The CRC32 covers every byte after the CRC field, so a torn or flipped batch never
//!   decodes. A batch is the unit of atomicity: recovery keeps or drops it whole.
//! - Timestamps never decrease within a shard, so the first record's timestamp of a batch is
//!   a lower bound for everything after it (the time index relies on this).
//! - Decoders take `&[u8]` and never panic: they separate "need more bytes"
//!   ([`DecodeError::Incomplete`]) from "bad bytes" ([`DecodeError::Bad`]).
//!
//! The byte layout is documented in `docs/formats/segment.md`; the constants below derive
//! each field's offset from the sizes before it.

use bytes::Bytes;

use crate::ids::Offset;

pub(crate) const LEN_OFFSET: usize = 0;
pub(crate) const CRC_OFFSET: usize = LEN_OFFSET + size_of::<u32>();
pub(crate) const BASE_OFFSET_OFFSET: usize = CRC_OFFSET + size_of::<u32>();
pub(crate) const COUNT_OFFSET: usize = BASE_OFFSET_OFFSET + size_of::<u64>();
pub(crate) const FLAGS_OFFSET: usize = COUNT_OFFSET + size_of::<u32>();
pub(crate) const FIRST_TS_OFFSET: usize = FLAGS_OFFSET + size_of::<u32>();
pub(crate) const LAST_TS_OFFSET: usize = FIRST_TS_OFFSET + size_of::<u64>();
/// Size of the fixed batch header.
pub const HEADER_LEN: usize = LAST_TS_OFFSET + size_of::<u64>();

pub(crate) const REC_TS_DELTA_OFFSET: usize = 0;
pub(crate) const REC_KEY_LEN_OFFSET: usize = REC_TS_DELTA_OFFSET + size_of::<u32>();
pub(crate) const REC_DATA_LEN_OFFSET: usize = REC_KEY_LEN_OFFSET + size_of::<u16>();
/// Size of the fixed per-record header.
pub const RECORD_HEADER_LEN: usize = REC_DATA_LEN_OFFSET + size_of::<u32>();

/// Flag: this batch is the first of a write (one group commit). Recovery uses it to tell a
/// torn last write from damage before a later, completed write.
pub const FLAG_WRITE_START: u32 = 1;
const KNOWN_FLAGS: u32 = FLAG_WRITE_START;

/// Largest batch the log accepts (one append of the biggest records).
pub const MAX_BATCH_BYTES: usize = 256 << 20;

/// Why bytes did not decode as a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The slice ends before the batch does: at the end of a log this is a torn tail.
    Incomplete,
    /// The bytes are not a valid batch.
    Bad(String),
}

/// The fixed header of a decoded batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Total length of the batch in bytes, header included.
    pub len: u32,
    pub base_offset: Offset,
    pub record_count: u32,
    pub first_timestamp_ms: u64,
    pub last_timestamp_ms: u64,
    /// [`FLAG_WRITE_START`] or nothing; other bits must be zero.
    pub flags: u32,
}

impl BatchHeader {
    /// The offset one past the batch's last record.
    pub fn next_offset(&self) -> Offset {
        Offset(self.base_offset.0 + u64::from(self.record_count))
    }
}

/// A record as read back from the log. `partition_key` and `data` share the buffer they
/// were read from (a segment map or a read buffer): no copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: Offset,
    /// Approximate arrival time, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    pub partition_key: Bytes,
    pub data: Bytes,
}

/// A record to append, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    pub partition_key: &'a [u8],
    pub data: &'a [u8],
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Bytes one record takes in a batch.
pub fn encoded_record_len(r: &RecordRef<'_>) -> usize {
    RECORD_HEADER_LEN + r.partition_key.len() + r.data.len()
}

/// An encoded batch whose offset and timestamp are assigned later, under the shard's lock.
///
/// Encoding (and checksumming the record area) happens outside the lock, in the producer's
/// thread; [`PendingBatch::seal`] then writes the header and finishes the CRC by combining.
pub struct PendingBatch {
    pub(crate) buf: Vec<u8>,
    records_crc: u32,
    record_count: u32,
}

impl PendingBatch {
    /// Encodes `records` (at least one). The caller has checked record and key sizes; keys
    /// are at most `u16::MAX` bytes and data at most `u32::MAX` bytes by construction of the
    /// limits, and the whole batch at most [`MAX_BATCH_BYTES`].
    ///
    /// # Errors
    /// Returns a message if the batch is empty or exceeds the size limits.
    pub fn encode(records: &[RecordRef<'_>]) -> Result<PendingBatch, String> {
        if records.is_empty() {
            return Err("a batch needs at least one record".into());
        }
        let mut len = HEADER_LEN;
        for r in records {
            if r.partition_key.len() > usize::from(u16::MAX) {
                return Err(format!(
                    "partition key of {} bytes exceeds {} bytes",
                    r.partition_key.len(),
                    u16::MAX
                ));
            }
            len += encoded_record_len(r);
        }
        if len > MAX_BATCH_BYTES {
            return Err(format!(
                "batch of {len} bytes exceeds {MAX_BATCH_BYTES} bytes"
            ));
        }
        let count = u32::try_from(records.len())
            .map_err(|_| format!("{} records exceed one batch", records.len()))?;
        let mut buf = Vec::with_capacity(len);
        buf.resize(HEADER_LEN, 0);
        for r in records {
            buf.extend_from_slice(&0u32.to_le_bytes());
            // Lengths were bounded above.
            buf.extend_from_slice(&(r.partition_key.len() as u16).to_le_bytes());
            buf.extend_from_slice(&(r.data.len() as u32).to_le_bytes());
            buf.extend_from_slice(r.partition_key);
            buf.extend_from_slice(r.data);
        }
        let records_crc = crc32fast::hash(&buf[HEADER_LEN..]);
        Ok(PendingBatch {
            buf,
            records_crc,
            record_count: count,
        })
    }

    /// Number of records in the batch.
    pub fn record_count(&self) -> u32 {
        self.record_count
    }

    /// Encoded size in bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Never true: a batch holds at least one record.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Assigns the batch its base offset and arrival time (shared by all its records), marks
    /// whether it starts a write, and completes the header and CRC.
    pub fn seal(&mut self, base_offset: Offset, timestamp_ms: u64, write_start: bool) {
        let len = self.buf.len() as u32;
        let b = &mut self.buf;
        b[LEN_OFFSET..CRC_OFFSET].copy_from_slice(&len.to_le_bytes());
        b[BASE_OFFSET_OFFSET..COUNT_OFFSET].copy_from_slice(&base_offset.0.to_le_bytes());
        b[COUNT_OFFSET..FLAGS_OFFSET].copy_from_slice(&self.record_count.to_le_bytes());
        let flags = if write_start { FLAG_WRITE_START } else { 0 };
        b[FLAGS_OFFSET..FIRST_TS_OFFSET].copy_from_slice(&flags.to_le_bytes());
        b[FIRST_TS_OFFSET..LAST_TS_OFFSET].copy_from_slice(&timestamp_ms.to_le_bytes());
        b[LAST_TS_OFFSET..HEADER_LEN].copy_from_slice(&timestamp_ms.to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&b[BASE_OFFSET_OFFSET..HEADER_LEN]);
        let rest = crc32fast::Hasher::new_with_initial_len(
            self.records_crc,
            (b.len() - HEADER_LEN) as u64,
        );
        h.combine(&rest);
        let crc = h.finalize();
        b[CRC_OFFSET..BASE_OFFSET_OFFSET].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Whether a batch header that starts a write could begin at the start of `b`: its length
/// in range and the write-start flag set. A cheap filter for [`decode_header`], which checks
/// this and more; `b` must hold at least [`HEADER_LEN`] bytes.
pub fn may_start_write(b: &[u8]) -> bool {
    let len = u32_at(b, LEN_OFFSET) as usize;
    (HEADER_LEN + RECORD_HEADER_LEN..=MAX_BATCH_BYTES).contains(&len)
        && u32_at(b, FLAGS_OFFSET) & FLAG_WRITE_START != 0
}

/// Decodes and checks the header at the start of `b`, without the CRC.
///
/// # Errors
/// [`DecodeError::Incomplete`] if `b` is shorter than the header or the batch;
/// [`DecodeError::Bad`] if a field is impossible.
pub fn decode_header(b: &[u8]) -> Result<BatchHeader, DecodeError> {
    if b.len() < HEADER_LEN {
        return Err(DecodeError::Incomplete);
    }
    let len = u32_at(b, LEN_OFFSET);
    let record_count = u32_at(b, COUNT_OFFSET);
    let flags = u32_at(b, FLAGS_OFFSET);
    if (len as usize) < HEADER_LEN + RECORD_HEADER_LEN || len as usize > MAX_BATCH_BYTES {
        return Err(DecodeError::Bad(format!("batch length {len} out of range")));
    }
    if record_count == 0
        || (record_count as usize) > (len as usize - HEADER_LEN) / RECORD_HEADER_LEN
    {
        return Err(DecodeError::Bad(format!(
            "record count {record_count} impossible for a batch of {len} bytes"
        )));
    }
    if flags & !KNOWN_FLAGS != 0 {
        return Err(DecodeError::Bad(format!("unknown flags {flags:#x}")));
    }
    let header = BatchHeader {
        len,
        base_offset: Offset(u64_at(b, BASE_OFFSET_OFFSET)),
        record_count,
        first_timestamp_ms: u64_at(b, FIRST_TS_OFFSET),
        last_timestamp_ms: u64_at(b, LAST_TS_OFFSET),
        flags,
    };
    if header.last_timestamp_ms < header.first_timestamp_ms {
        return Err(DecodeError::Bad(
            "last timestamp precedes first timestamp".into(),
        ));
    }
    if b.len() < len as usize {
        return Err(DecodeError::Incomplete);
    }
    Ok(header)
}

/// Decodes the header at the start of `b` and verifies the batch's CRC.
///
/// # Errors
/// As [`decode_header`], plus [`DecodeError::Bad`] on a checksum mismatch.
pub fn verify(b: &[u8]) -> Result<BatchHeader, DecodeError> {
    let header = decode_header(b)?;
    let stored = u32_at(b, CRC_OFFSET);
    let actual = crc32fast::hash(&b[BASE_OFFSET_OFFSET..header.len as usize]);
    if stored != actual {
        return Err(DecodeError::Bad(format!(
            "checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
        )));
    }
    Ok(header)
}

/// A record borrowed from a batch's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset: Offset,
    /// Approximate arrival time, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    pub partition_key: &'a [u8],
    pub data: &'a [u8],
}

/// Walks the records of a verified batch, checking each record's bounds.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    b: &'a [u8],
    header: BatchHeader,
    pos: usize,
    i: u32,
    failed: bool,
}

/// The records of a verified batch (`b` holds at least `header.len` bytes).
pub fn iter_records<'a>(header: &BatchHeader, b: &'a [u8]) -> RecordIter<'a> {
    RecordIter {
        b,
        header: *header,
        pos: HEADER_LEN,
        i: 0,
        failed: false,
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordView<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let end = self.header.len as usize;
        if self.failed {
            return None;
        }
        let fail = |me: &mut Self, e: DecodeError| {
            me.failed = true;
            Some(Err(e))
        };
        if self.b.len() < end {
            return fail(self, DecodeError::Incomplete);
        }
        let (b, pos, i) = (self.b, self.pos, self.i);
        if i == self.header.record_count {
            if pos != end {
                return fail(
                    self,
                    DecodeError::Bad(format!(
                        "{} bytes left over after the last record",
                        end - pos
                    )),
                );
            }
            return None;
        }
        if end - pos < RECORD_HEADER_LEN {
            return fail(
                self,
                DecodeError::Bad(format!("record {i} header runs past the batch")),
            );
        }
        let ts_delta = u32_at(b, pos + REC_TS_DELTA_OFFSET);
        let key_len = usize::from(u16_at(b, pos + REC_KEY_LEN_OFFSET));
        let data_len = u32_at(b, pos + REC_DATA_LEN_OFFSET) as usize;
        let key_start = pos + RECORD_HEADER_LEN;
        let data_start = key_start + key_len;
        let Some(rec_end) = data_start.checked_add(data_len).filter(|e| *e <= end) else {
            return fail(
                self,
                DecodeError::Bad(format!("record {i} runs past the batch")),
            );
        };
        self.pos = rec_end;
        self.i += 1;
        Some(Ok(RecordView {
            offset: Offset(self.header.base_offset.0 + u64::from(i)),
            timestamp_ms: self.header.first_timestamp_ms + u64::from(ts_delta),
            partition_key: &b[key_start..data_start],
            data: &b[data_start..rec_end],
        }))
    }
}

/// Splits a verified batch (exactly `header.len` bytes of `batch`) into records, sharing
/// `batch`'s buffer. Records before `from` are skipped.
///
/// # Errors
/// [`DecodeError::Bad`] if the record area does not add up to the header's count and length.
pub fn records(
    header: &BatchHeader,
    batch: &Bytes,
    from: Offset,
    out: &mut Vec<Record>,
) -> Result<(), DecodeError> {
    for r in iter_records(header, batch) {
        let r = r?;
        if r.offset >= from {
            out.push(Record {
                offset: r.offset,
                timestamp_ms: r.timestamp_ms,
                partition_key: batch.slice_ref(r.partition_key),
                data: batch.slice_ref(r.data),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_sizes_match_the_format_doc() {
        // docs/formats/segment.md: batch header is 40 bytes, record header 10 bytes.
        assert_eq!(HEADER_LEN, 40);
        assert_eq!(RECORD_HEADER_LEN, 10);
        assert_eq!(CRC_OFFSET, 4);
        assert_eq!(BASE_OFFSET_OFFSET, 8);
        assert_eq!(FIRST_TS_OFFSET, 24);
    }

    fn sealed(records: &[(&[u8], &[u8])], base: u64, ts: u64) -> Bytes {
        let refs: Vec<RecordRef<'_>> = records
            .iter()
            .map(|(k, d)| RecordRef {
                partition_key: k,
                data: d,
            })
            .collect();
        let mut p = PendingBatch::encode(&refs).unwrap();
        p.seal(Offset(base), ts, true);
        Bytes::from(p.buf)
    }

    #[test]
    fn round_trip() {
        let b = sealed(&[(b"k1", b"hello"), (b"k2", b""), (b"", b"x")], 7, 1000);
        let h = verify(&b).unwrap();
        assert_eq!(h.base_offset, Offset(7));
        assert_eq!(h.record_count, 3);
        assert_eq!(h.len as usize, b.len());
        let mut out = Vec::new();
        records(&h, &b, Offset(0), &mut out).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(&out[0].partition_key[..], b"k1");
        assert_eq!(&out[0].data[..], b"hello");
        assert_eq!(out[2].offset, Offset(9));
        assert_eq!(out[1].timestamp_ms, 1000);
        out.clear();
        records(&h, &b, Offset(9), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(h.flags, FLAG_WRITE_START);
    }

    #[test]
    fn the_write_start_filter_passes_write_starts_only() {
        let b = sealed(&[(b"k", b"data")], 7, 1000);
        assert!(may_start_write(&b));
        let mut p = PendingBatch::encode(&[RecordRef {
            partition_key: b"k",
            data: b"data",
        }])
        .unwrap();
        p.seal(Offset(8), 1000, false);
        assert!(!may_start_write(&p.buf));
        assert!(!may_start_write(&[0u8; HEADER_LEN]));
    }

    proptest! {
        /// The filter never rejects a header that decodes as the start of a write.
        #[test]
        fn the_write_start_filter_is_sound(
            mut b in proptest::collection::vec(any::<u8>(), 128),
            len in 0u32..160,
            count in 0u32..4,
            flags in 0u32..3,
        ) {
            b[LEN_OFFSET..CRC_OFFSET].copy_from_slice(&len.to_le_bytes());
            b[COUNT_OFFSET..FLAGS_OFFSET].copy_from_slice(&count.to_le_bytes());
            b[FLAGS_OFFSET..FIRST_TS_OFFSET].copy_from_slice(&flags.to_le_bytes());
            // Equal timestamps, so that headers with valid fields decode.
            let ts = u64_at(&b, FIRST_TS_OFFSET).to_le_bytes();
            b[LAST_TS_OFFSET..HEADER_LEN].copy_from_slice(&ts);
            match decode_header(&b) {
                Ok(h) => prop_assert_eq!(may_start_write(&b), h.flags & FLAG_WRITE_START != 0),
                // A header that decodes only once more bytes come, or never: the filter
                // may pass it or not.
                Err(DecodeError::Incomplete | DecodeError::Bad(_)) => {}
            }
        }
    }

    #[test]
    fn combined_crc_equals_plain_crc() {
        let b = sealed(&[(b"key", b"some data here")], 42, 5);
        assert_eq!(
            u32_at(&b, CRC_OFFSET),
            crc32fast::hash(&b[BASE_OFFSET_OFFSET..])
        );
    }

    #[test]
    fn every_truncation_is_incomplete_and_every_flip_is_detected() {
        let b = sealed(&[(b"key", b"data data"), (b"k", b"more")], 1, 2);
        for cut in 0..b.len() {
            assert_eq!(
                decode_header(&b[..cut]).err(),
                Some(DecodeError::Incomplete),
                "cut {cut}"
            );
        }
        for i in 0..b.len() {
            let mut v = b.to_vec();
            v[i] ^= 0x40;
            assert!(verify(&v).is_err(), "flip at {i} undetected");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(v in proptest::collection::vec(any::<u8>(), 0..200)) {
            let b = Bytes::from(v);
            if let Ok(h) = decode_header(&b) {
                let mut out = Vec::new();
                let _ = records(&h, &b, Offset(0), &mut out);
            }
            let _ = verify(&b);
        }

        #[test]
        fn encode_decode(recs in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..20), proptest::collection::vec(any::<u8>(), 0..100)), 1..20),
            base in 0u64..1 << 40, ts in 0u64..1 << 45) {
            let pairs: Vec<(&[u8], &[u8])> = recs.iter().map(|(k, d)| (&k[..], &d[..])).collect();
            let b = sealed(&pairs, base, ts);
            let h = verify(&b).unwrap();
            let mut out = Vec::new();
            records(&h, &b, Offset(0), &mut out).unwrap();
            prop_assert_eq!(out.len(), recs.len());
            for (i, (r, (k, d))) in out.iter().zip(&recs).enumerate() {
                prop_assert_eq!(r.offset, Offset(base + i as u64));
                prop_assert_eq!(&r.partition_key[..], &k[..]);
                prop_assert_eq!(&r.data[..], &d[..]);
            }
        }
    }
}
