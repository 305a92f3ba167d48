//! Record retrieval for one shard: [`polling`] (GetShardIterator + GetRecords) or
//! [`fanout`] (SubscribeToShard over an enhanced fan-out consumer). Both yield [`Batch`]es
//! in shard order and end with [`Batch::ShardEnd`] when a closed shard is drained.

pub mod fanout;
pub mod polling;

use crate::kinesis::{ChildShard, IteratorStart};
use crate::leases::{AT_TIMESTAMP, LATEST, SHARD_END, TRIM_HORIZON};

use super::record::{ExtendedSequenceNumber, Record};

/// What a fetcher yields.
#[derive(Debug)]
pub enum Batch {
    /// Records in shard order (never empty).
    Records {
        records: Vec<Record>,
        millis_behind_latest: Option<u64>,
    },
    /// The shard is closed and every record has been delivered.
    ShardEnd { child_shards: Vec<ChildShard> },
}

/// A shard's fetcher, by transport.
pub(crate) enum Fetcher {
    Polling(polling::PollingFetcher),
    FanOut(fanout::FanOutFetcher),
}

impl Fetcher {
    pub(crate) async fn next(&mut self) -> Result<Batch, crate::error::Error> {
        match self {
            Fetcher::Polling(f) => f.next().await,
            Fetcher::FanOut(f) => f.next().await,
        }
    }
}

/// Where to start reading after `checkpoint`, or `None` for `SHARD_END` (nothing left).
///
/// A sequence number resumes `AT` it, as the KCL does: the record it names may be a KPL
/// aggregate whose later user records were not processed yet. The shard consumer then drops
/// the user records at or before the checkpoint ([`already_processed`]), so a plain record is
/// not delivered twice and a partly processed aggregate resumes after its last
/// checkpointed user record.
/// `at_timestamp_ms` is the table's initial timestamp, for the `AT_TIMESTAMP` sentinel.
pub fn start_after(
    checkpoint: &ExtendedSequenceNumber,
    at_timestamp_ms: Option<i64>,
) -> Option<IteratorStart> {
    Some(match checkpoint.sequence_number.as_str() {
        TRIM_HORIZON => IteratorStart::TrimHorizon,
        LATEST => IteratorStart::Latest,
        AT_TIMESTAMP => match at_timestamp_ms {
            Some(ms) => IteratorStart::AtTimestamp(ms),
            None => IteratorStart::TrimHorizon,
        },
        SHARD_END => return None,
        seq => IteratorStart::AtSequenceNumber(seq.to_string()),
    })
}

/// Whether `record` is at or before `checkpoint` and so was processed before the restart
/// that read it again (see [`start_after`]).
pub fn already_processed(record: &Record, checkpoint: &ExtendedSequenceNumber) -> bool {
    !checkpoint.is_sentinel() && record.position() <= *checkpoint
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_map_to_iterator_types() {
        let e = ExtendedSequenceNumber::new;
        assert_eq!(
            start_after(&e(TRIM_HORIZON, 0), None),
            Some(IteratorStart::TrimHorizon)
        );
        assert_eq!(
            start_after(&e(LATEST, 0), None),
            Some(IteratorStart::Latest)
        );
        assert_eq!(
            start_after(&e(AT_TIMESTAMP, 0), Some(1_700_000_000_000)),
            Some(IteratorStart::AtTimestamp(1_700_000_000_000))
        );
        assert_eq!(start_after(&e(SHARD_END, 0), None), None);
        assert_eq!(
            start_after(&e("42", 0), None),
            Some(IteratorStart::AtSequenceNumber("42".into()))
        );
        assert_eq!(
            start_after(&e("42", 3), None),
            Some(IteratorStart::AtSequenceNumber("42".into()))
        );
    }

    #[test]
    fn records_up_to_the_checkpoint_were_processed() {
        let record = |seq: &str, sub| Record {
            data: Vec::new(),
            partition_key: "k".into(),
            sequence_number: seq.into(),
            sub_sequence_number: sub,
            approximate_arrival_timestamp_ms: None,
        };
        let checkpoint = ExtendedSequenceNumber::new("42", 2);
        assert!(already_processed(&record("42", 0), &checkpoint));
        assert!(already_processed(&record("42", 2), &checkpoint));
        assert!(!already_processed(&record("42", 3), &checkpoint));
        assert!(!already_processed(&record("43", 0), &checkpoint));
        assert!(already_processed(&record("41", 9), &checkpoint));
        let plain = ExtendedSequenceNumber::new("42", 0);
        assert!(already_processed(&record("42", 0), &plain));
        assert!(!already_processed(&record("42", 1), &plain));
        let horizon = ExtendedSequenceNumber::new(TRIM_HORIZON, 0);
        assert!(!already_processed(&record("1", 0), &horizon));
    }
}
