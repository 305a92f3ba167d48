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
/// A sequence number resumes after it, unless its sub-sequence number is not 0: then the
/// aggregated record it names was only partly processed and is read again (`AT`).
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
        seq if checkpoint.sub_sequence_number > 0 => {
            IteratorStart::AtSequenceNumber(seq.to_string())
        }
        seq => IteratorStart::AfterSequenceNumber(seq.to_string()),
    })
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
            Some(IteratorStart::AfterSequenceNumber("42".into()))
        );
        assert_eq!(
            start_after(&e("42", 3), None),
            Some(IteratorStart::AtSequenceNumber("42".into()))
        );
    }
}
