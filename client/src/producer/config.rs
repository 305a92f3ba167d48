//! The producer's settings, with the KPL's defaults where the KPL has one.

use std::time::Duration;

use crate::kpl::DEFAULT_AGGREGATION_MAX_BYTES;

/// Most records in one PutRecords call (Kinesis API reference, PutRecords: "Each PutRecords
/// request can support up to 500 records").
pub const PUT_RECORDS_MAX_RECORDS: usize = 500;

/// Most bytes in one PutRecords call, keys and data: 5 MiB (Kinesis API reference,
/// PutRecords: "up to a limit of 5 MiB for the entire request").
pub const PUT_RECORDS_MAX_BYTES: usize = 5 << 20;

/// How a [`Producer`](super::Producer) batches, aggregates and retries.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// The stream every record goes to.
    pub stream: String,
    /// How long a record may wait for its batch to fill (KPL `RecordMaxBufferedTime`,
    /// default 100 ms).
    pub linger: Duration,
    /// Most entries (records or aggregates) per batch; capped by the transport's own limit
    /// (500 for PutRecords, the server's `max_batch_records` natively).
    pub max_batch_records: usize,
    /// Most bytes (keys plus data) per batch; a batch is sent as soon as it is full.
    pub max_batch_bytes: usize,
    /// Whether user records are KPL-aggregated into fewer Kinesis records.
    pub aggregation: bool,
    /// Largest aggregated record, partition key included (KPL `AggregationMaxSize`); at most
    /// 1 MiB.
    pub aggregation_max_bytes: usize,
    /// Most batches in flight at once over all shards. Per shard it is always one (see the
    /// module documentation on order).
    pub max_in_flight: usize,
    /// Most user records accepted and not yet resolved; [`put`](super::Producer::put) waits
    /// for room beyond it, so a fast caller cannot grow memory without bound.
    pub max_outstanding_records: usize,
    /// First retry delay; doubled per attempt up to `max_backoff`, with full jitter.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Attempts per record (the first send included) before it fails with its last error;
    /// `None` retries retryable failures for ever.
    pub max_attempts: Option<u32>,
}

impl ProducerConfig {
    /// Defaults for `stream`: 100 ms linger, 500 records or 5 MiB per batch, aggregation
    /// off, 50 KiB aggregates, 64 batches in flight, 100,000 outstanding records, backoff
    /// 100 ms to 5 s, unlimited attempts.
    pub fn new(stream: &str) -> ProducerConfig {
        ProducerConfig {
            stream: stream.to_owned(),
            linger: Duration::from_millis(100),
            max_batch_records: PUT_RECORDS_MAX_RECORDS,
            max_batch_bytes: PUT_RECORDS_MAX_BYTES,
            aggregation: false,
            aggregation_max_bytes: DEFAULT_AGGREGATION_MAX_BYTES,
            max_in_flight: 64,
            max_outstanding_records: 100_000,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_attempts: None,
        }
    }
}
