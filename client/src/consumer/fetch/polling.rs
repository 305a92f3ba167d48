//! Polling retrieval: GetShardIterator from the checkpoint, then GetRecords, following
//! `NextShardIterator`.
//!
//! - A call that returned no records is followed by the idle time (KCL
//!   `idleTimeBetweenReadsInMillis`); one that returned records by the next call at once.
//! - Throttling (ProvisionedThroughputExceededException) and transport failures back off
//!   exponentially from [`MIN_BACKOFF`] to [`MAX_BACKOFF`] and retry; an expired iterator is
//!   replaced by one after the last record delivered.
//! - A response without `NextShardIterator` ends the shard: its records are delivered first,
//!   then [`Batch::ShardEnd`] with the response's `ChildShards`.
//!
//! [`PollingFetcher::next`] is cancel-safe in the sense the shard consumer needs: dropping it
//! mid-call loses nothing that was delivered.

use std::time::Duration;

use crate::error::Error;
use crate::http::Client;
use crate::kinesis::{self, ChildShard, IteratorStart};

use super::Batch;
use crate::consumer::record::user_records_of;

/// The first pause after throttling or a transport failure.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between retries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// GetRecords' largest `Limit` (Kinesis API reference), KCL's default `maxRecords`.
pub const MAX_RECORDS_PER_CALL: u32 = 10_000;

/// Reads one shard by polling.
pub struct PollingFetcher {
    client: Client,
    stream: String,
    shard_id: String,
    /// Where a new iterator starts: the checkpoint, then after the last record delivered.
    start: IteratorStart,
    iterator: Option<String>,
    idle: Duration,
    limit: u32,
    /// Pause before the next call (idle time or backoff).
    pause: Option<Duration>,
    backoff: Duration,
    /// Child shards seen in the last response, once the shard has ended.
    ended: Option<Vec<ChildShard>>,
}

impl PollingFetcher {
    /// A fetcher for `shard_id` starting at `start`.
    pub fn new(
        client: Client,
        stream: &str,
        shard_id: &str,
        start: IteratorStart,
        idle: Duration,
        limit: u32,
    ) -> PollingFetcher {
        PollingFetcher {
            client,
            stream: stream.to_string(),
            shard_id: shard_id.to_string(),
            start,
            iterator: None,
            idle,
            limit: limit.clamp(1, MAX_RECORDS_PER_CALL),
            pause: None,
            backoff: MIN_BACKOFF,
            ended: None,
        }
    }

    /// The next non-empty batch, or the end of the shard.
    ///
    /// # Errors
    /// A server error that retrying cannot fix (e.g. ResourceNotFoundException), or a record
    /// with invalid data.
    pub async fn next(&mut self) -> Result<Batch, Error> {
        loop {
            if let Some(child_shards) = self.ended.take() {
                return Ok(Batch::ShardEnd { child_shards });
            }
            if let Some(pause) = self.pause.take() {
                tokio::time::sleep(pause).await;
            }
            match self.poll().await {
                Ok(Some(batch)) => return Ok(batch),
                Ok(None) => self.pause = Some(self.idle),
                Err(e) if e.kind() == Some("ExpiredIteratorException") => self.iterator = None,
                Err(e) if e.is_retryable() => {
                    tracing::debug!(shard = %self.shard_id, error = %e, "GetRecords retry");
                    self.pause = Some(self.backoff);
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One GetRecords call: `Some` batch, or `None` for no records yet.
    async fn poll(&mut self) -> Result<Option<Batch>, Error> {
        let iterator = match self.iterator.take() {
            Some(it) => it,
            None => {
                kinesis::get_shard_iterator(&self.client, &self.stream, &self.shard_id, &self.start)
                    .await?
            }
        };
        let out = match kinesis::get_records(&self.client, &iterator, self.limit).await {
            Ok(out) => out,
            Err(e) => {
                if e.kind() != Some("ExpiredIteratorException") {
                    self.iterator = Some(iterator);
                }
                return Err(e);
            }
        };
        self.backoff = MIN_BACKOFF;
        let records = user_records_of(&out.records)?;
        if let Some(last) = records.last() {
            self.start = IteratorStart::AfterSequenceNumber(last.sequence_number.clone());
        }
        match out.next_shard_iterator {
            Some(next) => self.iterator = Some(next),
            None => self.ended = Some(out.child_shards),
        }
        if records.is_empty() {
            return Ok(self
                .ended
                .take()
                .map(|child_shards| Batch::ShardEnd { child_shards }));
        }
        Ok(Some(Batch::Records {
            records,
            millis_behind_latest: out.millis_behind_latest,
        }))
    }
}
