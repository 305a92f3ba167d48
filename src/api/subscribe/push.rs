//! The push task of one subscription: reads the shard and sends `SubscribeToShardEvent`s.
//!
//! # Invariants
//!
//! - Push, not poll: the task sleeps on the shard's append notification
//!   ([`shardline_engine::Shard::subscribe`]), which also fires when a reshard closes the
//!   shard, and on a timer only for the 5-second heartbeat and the lifetime.
//! - Every event carries the records from the position up to a bounded read
//!   ([`MAX_RECORDS_PER_EVENT`], [`MAX_BYTES_PER_EVENT`]), in order, with no gap or repeat
//!   between events; `ContinuationSequenceNumber` is the last delivered record's number (or,
//!   before any, the number just before the position), so resuming `AFTER_SEQUENCE_NUMBER`
//!   it loses and repeats nothing.
//! - Bounded memory: one event is read at a time, and the task awaits room in the body's
//!   bounded channel before reading the next (see [`super::body`]).
//! - At a closed shard's end the last event has `ChildShards` and no
//!   `ContinuationSequenceNumber`; then the stream ends.
//! - The subscription ends after `--subscription-lifetime-ms` (AWS: 5 minutes), when a newer
//!   call takes over, at server shutdown, or when the client goes away. Failures while
//!   streaming (stream or consumer deleted, checked every 5 s; read errors) are exception
//!   events, then the end.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use shardline_engine::{Offset, SequenceNumber, Shard, ShardId, Stream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::registry::Claim;
use crate::api::actions::common::{blocking, child_shards};
use crate::api::actions::consumers;
use crate::api::error::ApiError;
use crate::api::eventstream;
use crate::api::limits::TokenBucket;
use crate::api::metrics::ShardMetrics;
use crate::api::value::{Protocol, RecordList, Value};
use crate::api::{now_ms, Api};

/// Most records in one event (as one GetRecords call).
pub const MAX_RECORDS_PER_EVENT: usize = 10_000;
/// Most record bytes read for one event; with the channel bound, what a subscriber costs.
pub const MAX_BYTES_PER_EVENT: usize = 1 << 20;
/// Longest silence: an event at least this often, without records if none arrived
/// (SubscribeToShard API reference: "an event ... every 5 seconds" when idle).
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// `--emulate-limits`: 2 MiB/s per consumer per shard (Kinesis quotas: enhanced fan-out).
pub const CONSUMER_BYTES_PER_SEC: f64 = (2u64 << 20) as f64;

/// One running subscription.
pub struct Subscription {
    pub api: Arc<Api>,
    pub protocol: Protocol,
    pub stream: Arc<Stream>,
    pub consumer_arn: String,
    pub shard: Arc<Shard>,
    pub id: ShardId,
    pub epoch_secs: u64,
    /// Next offset to deliver.
    pub pos: u64,
    /// The shard's metric series (SubscribeToShardEvent.*).
    pub metrics: Arc<ShardMetrics>,
    /// Holds the (consumer, shard) slot until the task ends. Declared before `tx` so that
    /// it drops first: a client that sees the stream end may subscribe again at once.
    pub claim: Claim,
    pub tx: mpsc::Sender<Bytes>,
}

/// Why sending stopped.
enum Stop {
    /// The client went away, a newer call took over, the server stops, or the lifetime
    /// ended while the client was not reading.
    Ended,
}

/// Sends `message`, waiting for room (backpressure) unless the subscription must end.
async fn send(
    tx: &mpsc::Sender<Bytes>,
    cancel: &mut watch::Receiver<bool>,
    shutdown: &mut watch::Receiver<bool>,
    deadline: Instant,
    message: Bytes,
) -> Result<(), Stop> {
    tokio::select! {
        sent = tx.send(message) => sent.map_err(|_| Stop::Ended),
        _ = cancel.changed() => Err(Stop::Ended),
        _ = shutdown.changed() => Err(Stop::Ended),
        () = tokio::time::sleep_until(deadline) => Err(Stop::Ended),
    }
}

impl Subscription {
    fn ending(&self) -> bool {
        *self.claim.cancel.borrow() || *self.claim.shutdown.borrow()
    }

    /// The continuation for a position with nothing delivered yet: the number just before it.
    fn continuation_before(&self, pos: u64) -> SequenceNumber {
        match pos.checked_sub(1) {
            None => SequenceNumber::before_first(self.epoch_secs, self.id),
            Some(prev) => SequenceNumber::for_record(
                self.epoch_secs,
                self.id,
                Offset(prev),
                self.shard.last_timestamp_ms(),
            ),
        }
    }

    /// Runs until the subscription ends; every exit drops the sender, ending the body.
    pub async fn run(mut self) {
        let deadline = Instant::now() + self.api.config.subscription_lifetime;
        let protocol = self.protocol;
        let first = eventstream::initial_response(protocol);
        let Subscription {
            ref tx,
            ref mut claim,
            ..
        } = self;
        if send(tx, &mut claim.cancel, &mut claim.shutdown, deadline, first)
            .await
            .is_err()
        {
            return;
        }
        let mut visible = self.shard.subscribe();
        let mut continuation = self.continuation_before(self.pos);
        let mut limiter = self
            .api
            .limits
            .as_ref()
            .map(|_| TokenBucket::full(CONSUMER_BYTES_PER_SEC, std::time::Instant::now()));
        let mut last_event: Option<Instant> = None;
        let mut checked = Instant::now();
        loop {
            let now = Instant::now();
            if now >= deadline || self.ending() {
                return;
            }
            let tip = *visible.borrow_and_update();
            let end = self.stream.shard_meta(self.id).and_then(|m| m.end_offset);
            if end.is_some_and(|end| self.pos >= end) {
                let last = Value::map([
                    ("Records", Value::List(Vec::new())),
                    ("MillisBehindLatest", Value::Int(0)),
                    ("ChildShards", child_shards(&self.stream.meta(), self.id)),
                ]);
                let message = eventstream::event(protocol, "SubscribeToShardEvent", &last);
                let _ = self.send_now(deadline, message).await;
                return;
            }
            let heartbeat_due = last_event.is_none_or(|t| now >= t + HEARTBEAT);
            if tip > self.pos || heartbeat_due {
                if now >= checked + HEARTBEAT {
                    // Every 5 s, idle or not: notice a deleted stream or consumer.
                    checked = now;
                    if let Err(e) = consumers::resolve_consumer_arn(&self.api, &self.consumer_arn) {
                        let _ = self
                            .send_now(deadline, eventstream::exception(protocol, &e))
                            .await;
                        return;
                    }
                }
                if let Some(bucket) = limiter.as_mut() {
                    let available = bucket.available(std::time::Instant::now());
                    if available < 0.0 {
                        let wait = Duration::from_secs_f64(-available / CONSUMER_BYTES_PER_SEC);
                        tokio::time::sleep(wait.min(HEARTBEAT)).await;
                        continue;
                    }
                }
                let (message, bytes) = match self.next_event(&mut continuation).await {
                    Ok(event) => event,
                    Err(e) => {
                        let _ = self
                            .send_now(deadline, eventstream::exception(protocol, &e))
                            .await;
                        return;
                    }
                };
                if let Some(bucket) = limiter.as_mut() {
                    bucket.charge(bytes as f64, std::time::Instant::now());
                }
                if self.send_now(deadline, message).await.is_err() {
                    return;
                }
                last_event = Some(Instant::now());
                continue;
            }
            let wake = last_event.map_or(now, |t| t + HEARTBEAT).min(deadline);
            tokio::select! {
                changed = visible.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep_until(wake) => {}
                _ = self.claim.cancel.changed() => {}
                _ = self.claim.shutdown.changed() => {}
                // The client went away: free the slot now, not at the next heartbeat.
                () = self.tx.closed() => return,
            }
        }
    }

    async fn send_now(&mut self, deadline: Instant, message: Bytes) -> Result<(), Stop> {
        let Subscription {
            ref tx,
            ref mut claim,
            ..
        } = *self;
        send(
            tx,
            &mut claim.cancel,
            &mut claim.shutdown,
            deadline,
            message,
        )
        .await
    }

    /// Reads the next records (possibly none) and renders their event; returns the message
    /// and the record bytes it carries.
    async fn next_event(
        &mut self,
        continuation: &mut SequenceNumber,
    ) -> Result<(Bytes, usize), ApiError> {
        let reader = self.shard.clone();
        let from = Offset(self.pos);
        let read =
            blocking(move || reader.read_batches(from, MAX_RECORDS_PER_EVENT, MAX_BYTES_PER_EVENT))
                .await?
                .map_err(|e| self.api.engine_error(e))?;
        let tip = self.shard.next_offset();
        let last = read
            .batches
            .last()
            .and_then(|b| b.records().last())
            .map(|r| (r.offset, r.timestamp_ms));
        let behind = match last {
            Some((_, ts)) if read.next < tip => now_ms().saturating_sub(ts),
            _ => 0,
        };
        if let Some((offset, ts)) = last {
            *continuation = SequenceNumber::for_record(self.epoch_secs, self.id, offset, ts);
        }
        self.pos = read.next.0.max(self.pos);
        let bytes = read.bytes;
        self.metrics
            .subscribe_event_records
            .inc_by(read.record_count as u64);
        self.metrics.subscribe_event_bytes.inc_by(bytes as u64);
        self.metrics
            .subscribe_millis_behind
            .set(i64::try_from(behind).unwrap_or(i64::MAX));
        let event = Value::map([
            (
                "Records",
                Value::Records(RecordList {
                    epoch_secs: self.epoch_secs,
                    shard: self.id,
                    read,
                }),
            ),
            (
                "ContinuationSequenceNumber",
                Value::String(continuation.to_string()),
            ),
            ("MillisBehindLatest", Value::Int(i128::from(behind))),
        ]);
        Ok((
            eventstream::event(self.protocol, "SubscribeToShardEvent", &event),
            bytes,
        ))
    }
}
