//! PutResult: every record's outcome, sent once the batch's written records are durable.
//!
//! Sequence numbers travel as their parts, not as 56-digit strings: one `ShardStamp`
//! per shard of the batch (shard, epoch, arrival time, which its records share) and a
//! 16-byte `RecordSequence` per record (the per-shard counter and the stamp's index).
//! [`SequenceParts`] holds the four fields of the engine's `SequenceNumber`; its `Display`
//! ([`crate::seqno`]) renders the 56-digit decimal form GetRecords returns.

use crate::error::Error;
use crate::error_frame::{bounded, ErrorCode};
use crate::fb;
use crate::frame::{frame_bytes, FrameType, RequestId};
pub use crate::seqno::SequenceParts;

/// `RecordSequence.stamp` of a record that was not written.
pub const FAILED_STAMP: u32 = u32::MAX;

/// One record's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome<'a> {
    /// Durable, with this sequence number.
    Written(SequenceParts),
    /// Not written.
    Failed { code: ErrorCode, message: &'a str },
}

/// Builds a PutResult frame, one outcome per record in batch order.
#[derive(Default)]
pub struct PutResultBuilder {
    stamps: Vec<fb::ShardStamp>,
    records: Vec<fb::RecordSequence>,
    errors: Vec<(u32, ErrorCode, String)>,
    /// Index of the stamp used last: consecutive records mostly share one.
    last_stamp: usize,
}

impl PutResultBuilder {
    /// A builder for a batch of about `records` records.
    pub fn with_capacity(records: usize) -> PutResultBuilder {
        PutResultBuilder {
            records: Vec::with_capacity(records),
            ..PutResultBuilder::default()
        }
    }

    fn stamp(&mut self, p: &SequenceParts) -> u32 {
        let same = |s: &fb::ShardStamp| {
            s.shard() == p.shard
                && s.epoch_secs() == p.epoch_secs
                && s.arrival_secs() == p.arrival_secs
        };
        if self.stamps.get(self.last_stamp).is_some_and(same) {
            return self.last_stamp as u32;
        }
        let i = match self.stamps.iter().position(same) {
            Some(i) => i,
            None => {
                self.stamps
                    .push(fb::ShardStamp::new(p.epoch_secs, p.arrival_secs, p.shard));
                self.stamps.len() - 1
            }
        };
        self.last_stamp = i;
        i as u32
    }

    /// Appends a written record's outcome.
    pub fn push_written(&mut self, parts: SequenceParts) {
        let stamp = self.stamp(&parts);
        self.records
            .push(fb::RecordSequence::new(parts.counter, stamp));
    }

    /// Appends a failed record's outcome; the message is cut to
    /// [`crate::error_frame::MAX_MESSAGE_BYTES`].
    pub fn push_failed(&mut self, code: ErrorCode, message: &str) {
        let index = self.records.len() as u32;
        self.records.push(fb::RecordSequence::new(0, FAILED_STAMP));
        self.errors.push((index, code, bounded(message).to_owned()));
    }

    /// Outcomes pushed so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no outcome was pushed.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The whole frame, header included.
    pub fn finish(self, request_id: RequestId) -> Vec<u8> {
        let mut fbb = flatbuffers::FlatBufferBuilder::with_capacity(
            64 + self.stamps.len() * 24 + self.records.len() * 16 + self.errors.len() * 64,
        );
        let errors = (!self.errors.is_empty()).then(|| {
            let tables: Vec<_> = self
                .errors
                .iter()
                .map(|(index, code, message)| {
                    let message = fbb.create_string(message);
                    fb::RecordError::create(
                        &mut fbb,
                        &fb::RecordErrorArgs {
                            index: *index,
                            code: *code,
                            message: Some(message),
                        },
                    )
                })
                .collect();
            fbb.create_vector(&tables)
        });
        let stamps = fbb.create_vector(&self.stamps);
        let records = fbb.create_vector(&self.records);
        let root = fb::PutResult::create(
            &mut fbb,
            &fb::PutResultArgs {
                request_id: request_id.0,
                stamps: Some(stamps),
                records: Some(records),
                errors,
            },
        );
        fbb.finish_minimal(root);
        frame_bytes(FrameType::PutResult, fbb.finished_data())
    }
}

/// A verified PutResult payload whose cross-references (stamp indexes, error indexes) are
/// all in range.
#[derive(Clone, Copy)]
pub struct PutResultView<'a> {
    result: fb::PutResult<'a>,
}

impl<'a> PutResultView<'a> {
    /// Verifies a PutResult payload and its cross-references.
    ///
    /// # Errors
    /// [`Error::InvalidPayload`] if it is not a valid `PutResult` flatbuffer;
    /// [`Error::InvalidField`] if a record names a missing stamp, or the failed records and
    /// the error entries do not match one to one, in order.
    pub fn parse(payload: &'a [u8]) -> Result<PutResultView<'a>, Error> {
        let result = crate::verified_root::<fb::PutResult>(payload, FrameType::PutResult)?;
        let invalid = |reason: String| Error::InvalidField {
            frame_type: FrameType::PutResult,
            reason,
        };
        let stamps = result.stamps().len();
        let mut errors = result.errors().into_iter().flatten();
        for (i, r) in result.records().iter().enumerate() {
            if r.stamp() == FAILED_STAMP {
                let e = errors
                    .next()
                    .ok_or_else(|| invalid(format!("record {i} failed but has no error entry")))?;
                if e.index() as usize != i {
                    return Err(invalid(format!(
                        "record {i} failed but the next error entry is for record {}",
                        e.index()
                    )));
                }
            } else if r.stamp() as usize >= stamps {
                return Err(invalid(format!(
                    "record {i} names stamp {} of {stamps}",
                    r.stamp()
                )));
            }
        }
        if let Some(e) = errors.next() {
            return Err(invalid(format!(
                "error entry for record {} does not match a failed record",
                e.index()
            )));
        }
        Ok(PutResultView { result })
    }

    /// The id of the batch this answers.
    pub fn request_id(&self) -> RequestId {
        RequestId(self.result.request_id())
    }

    /// Number of records (the batch's).
    pub fn len(&self) -> usize {
        self.result.records().len()
    }

    /// Whether the result has no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of failed records.
    pub fn failed_count(&self) -> usize {
        self.result.errors().map_or(0, |e| e.len())
    }

    /// Every record's outcome, in batch order.
    pub fn outcomes(&self) -> impl Iterator<Item = RecordOutcome<'a>> + 'a {
        let stamps = self.result.stamps();
        let mut errors = self.result.errors().into_iter().flatten();
        self.result.records().iter().map(move |r| {
            if r.stamp() == FAILED_STAMP {
                // parse() matched every failed record with its error entry, in order.
                let e = errors.next();
                RecordOutcome::Failed {
                    code: e.map_or(ErrorCode::Unspecified, |e| e.code()),
                    message: e.and_then(|e| e.message()).unwrap_or_default(),
                }
            } else {
                // parse() checked every stamp index against the stamps vector.
                let s = stamps.get(r.stamp() as usize);
                RecordOutcome::Written(SequenceParts {
                    shard: s.shard(),
                    epoch_secs: s.epoch_secs(),
                    counter: r.counter(),
                    arrival_secs: s.arrival_secs(),
                })
            }
        })
    }
}
