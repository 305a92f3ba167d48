//! PutBatch: records for one stream, built by producers and read by the server.
//!
//! Each record is a flatbuffers table (partition key, optional explicit hash key in binary
//! or decimal form, data). The view borrows the frame's payload: reading a record copies
//! nothing.

use flatbuffers::{FlatBufferBuilder, ForwardsUOffset, Vector, WIPOffset};

use crate::error::Error;
use crate::fb;
use crate::frame::{frame_bytes, FrameType, RequestId, HEADER_LEN};

/// Most flatbuffer bytes a record adds beyond its key and data: length prefixes (2 x 4),
/// the key's NUL (1), padding (2 x 3), the table (12), its offset in the records vector (4),
/// and a spare 3; used by [`PutBatchBuilder::frame_len_estimate`]. The vtable is shared.
const RECORD_OVERHEAD_BYTES: usize = 34;
/// Most bytes a binary explicit hash key adds (its struct and the alignment it needs).
const BINARY_KEY_BYTES: usize = 24;
/// Most bytes a decimal explicit hash key adds beyond its digits.
const DECIMAL_KEY_OVERHEAD_BYTES: usize = 12;
/// Estimated bytes of the batch table, stream name excluded.
const BATCH_OVERHEAD_BYTES: usize = 64;

/// An explicit hash key: routes a record instead of its partition key's MD5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExplicitHashKey<'a> {
    /// PutRecords' form, a decimal string (checked by the server, not the codec).
    Decimal(&'a str),
    /// The 128-bit value itself.
    Binary(u128),
}

/// Builds PutBatch frames; reusable across batches (its buffers are kept).
pub struct PutBatchBuilder {
    fbb: FlatBufferBuilder<'static>,
    records: Vec<WIPOffset<fb::Record<'static>>>,
    /// Upper bound of the flatbuffer bytes of the records pushed so far.
    record_bytes: usize,
}

impl Default for PutBatchBuilder {
    fn default() -> Self {
        PutBatchBuilder::new()
    }
}

impl PutBatchBuilder {
    /// An empty builder.
    pub fn new() -> PutBatchBuilder {
        PutBatchBuilder {
            fbb: FlatBufferBuilder::with_capacity(64 << 10),
            records: Vec::new(),
            record_bytes: 0,
        }
    }

    /// Appends a record. The server checks the key's length, the record's size and the
    /// decimal key's syntax; the codec takes anything.
    pub fn push(
        &mut self,
        partition_key: &str,
        explicit_hash_key: Option<ExplicitHashKey<'_>>,
        data: &[u8],
    ) {
        let data_off = self.fbb.create_vector(data);
        let key_off = self.fbb.create_string(partition_key);
        self.record_bytes += RECORD_OVERHEAD_BYTES + partition_key.len() + data.len();
        let (binary, decimal) = match explicit_hash_key {
            None => (None, None),
            Some(ExplicitHashKey::Binary(v)) => {
                self.record_bytes += BINARY_KEY_BYTES;
                (Some(fb::U128::new(v as u64, (v >> 64) as u64)), None)
            }
            Some(ExplicitHashKey::Decimal(s)) => {
                self.record_bytes += DECIMAL_KEY_OVERHEAD_BYTES + s.len();
                (None, Some(self.fbb.create_string(s)))
            }
        };
        let record = fb::Record::create(
            &mut self.fbb,
            &fb::RecordArgs {
                partition_key: Some(key_off),
                explicit_hash_key: binary.as_ref(),
                explicit_hash_key_decimal: decimal,
                data: Some(data_off),
            },
        );
        self.records.push(record);
    }

    /// Records pushed since the last [`PutBatchBuilder::finish`].
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record was pushed since the last finish.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// At least the bytes the frame will take (header included), and within about 10% for
    /// records of 100 bytes or more: for batching by size against the server's
    /// `max_frame_bytes`.
    pub fn frame_len_estimate(&self, stream_name: &str) -> usize {
        HEADER_LEN + BATCH_OVERHEAD_BYTES + stream_name.len() + self.record_bytes
    }

    /// The frame (header included) of the pushed records for `stream_name`; the builder is
    /// then empty and ready for the next batch.
    pub fn finish(&mut self, request_id: RequestId, stream_name: &str) -> Vec<u8> {
        let records = self.fbb.create_vector(&self.records);
        let stream_name = self.fbb.create_string(stream_name);
        let root = fb::PutBatch::create(
            &mut self.fbb,
            &fb::PutBatchArgs {
                request_id: request_id.0,
                stream_name: Some(stream_name),
                records: Some(records),
            },
        );
        self.fbb.finish_minimal(root);
        let frame = frame_bytes(FrameType::PutBatch, self.fbb.finished_data());
        self.fbb.reset();
        self.records.clear();
        self.record_bytes = 0;
        frame
    }
}

/// A verified PutBatch payload.
#[derive(Clone, Copy)]
pub struct PutBatchView<'a> {
    batch: fb::PutBatch<'a>,
    records: Vector<'a, ForwardsUOffset<fb::Record<'a>>>,
}

impl<'a> PutBatchView<'a> {
    /// Verifies a PutBatch payload.
    ///
    /// # Errors
    /// [`Error::InvalidPayload`] if it is not a valid `PutBatch` flatbuffer (required fields
    /// included).
    pub fn parse(payload: &'a [u8]) -> Result<PutBatchView<'a>, Error> {
        let batch = crate::verified_root::<fb::PutBatch>(payload, FrameType::PutBatch)?;
        Ok(PutBatchView {
            batch,
            records: batch.records(),
        })
    }

    /// The client's id for this batch.
    pub fn request_id(&self) -> RequestId {
        RequestId(self.batch.request_id())
    }

    /// The target stream's name.
    pub fn stream_name(&self) -> &'a str {
        self.batch.stream_name()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch has no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records, in batch order.
    pub fn records(&self) -> impl ExactSizeIterator<Item = RecordView<'a>> + 'a {
        self.records
            .iter()
            .enumerate()
            .map(|(index, record)| RecordView { index, record })
    }
}

/// One record of a verified PutBatch.
#[derive(Clone, Copy)]
pub struct RecordView<'a> {
    index: usize,
    record: fb::Record<'a>,
}

impl<'a> RecordView<'a> {
    /// Position in the batch.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The partition key (valid UTF-8; its length is not checked here).
    pub fn partition_key(&self) -> &'a str {
        self.record.partition_key()
    }

    /// The record's payload.
    pub fn data(&self) -> &'a [u8] {
        self.record.data().bytes()
    }

    /// The explicit hash key, if one is set.
    ///
    /// # Errors
    /// [`Error::ConflictingHashKeys`] if both forms are set.
    pub fn explicit_hash_key(&self) -> Result<Option<ExplicitHashKey<'a>>, Error> {
        match (
            self.record.explicit_hash_key(),
            self.record.explicit_hash_key_decimal(),
        ) {
            (None, None) => Ok(None),
            (Some(b), None) => Ok(Some(ExplicitHashKey::Binary(
                (u128::from(b.hi()) << 64) | u128::from(b.lo()),
            ))),
            (None, Some(d)) => Ok(Some(ExplicitHashKey::Decimal(d))),
            (Some(_), Some(_)) => Err(Error::ConflictingHashKeys { index: self.index }),
        }
    }
}
