//! `--emulate-limits`: AWS's per-shard throughput quotas as token buckets.
//!
//! Design constraints:
//! - Off by default. When off, [`crate::api::Api::limits`] is `None` and no action touches
//!   this module: no routing, no locks, no clock reads.
//! - One [`ShardLimiter`] per (stream, shard), looked up once per request and shard, never
//!   per record. Its buckets sit behind two small mutexes (writes, reads) held only for
//!   arithmetic.
//! - Buckets start full and hold one second's worth of tokens, so a shard may burst to its
//!   per-second quota and then sustain the quota's rate.
//! - A request larger than a bucket's capacity (a 10 MiB GetRecords, or a record above 1 MiB
//!   on a stream whose MaxRecordSize allows it) is admitted when the bucket is full and drives
//!   it into debt, which refills at the quota's rate. That is how AWS behaves after a 10 MiB
//!   GetRecords: further calls on the shard fail for about five seconds.
//! - Time is a parameter ([`Instant`]), so tests step the clock instead of sleeping.
//!
//! Operations: [`put_records`] wraps the engine's put with [`ShardLimiter::admit_writes`]
//! (PutRecord/PutRecords, per record, in request order); [`admit_read`] runs before a
//! GetRecords read and [`ShardLimiter::charge_read`] after it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use shardline_engine::hashkey::HashKey;
use shardline_engine::meta::StreamMeta;
use shardline_engine::{PutRecord, PutResult, ShardId, Stream};

use super::error::ApiError;
use super::Api;

/// Per-shard write bytes per second: 1 MiB/s (Kinesis Data Streams quotas and limits).
pub const WRITE_BYTES_PER_SEC: f64 = (1u64 << 20) as f64;
/// Per-shard write records per second: 1,000 (Kinesis Data Streams quotas and limits).
pub const WRITE_RECORDS_PER_SEC: f64 = 1_000.0;
/// Per-shard GetRecords calls per second, shared by all readers: 5 (GetRecords API reference).
pub const READ_CALLS_PER_SEC: f64 = 5.0;
/// Per-shard read bytes per second, shared by all readers: 2 MiB/s (GetRecords API reference).
pub const READ_BYTES_PER_SEC: f64 = (2u64 << 20) as f64;

/// A token bucket whose balance may go negative (debt) when a request larger than its
/// capacity is admitted.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Most tokens the bucket holds: one second of `per_sec`.
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket refilling at `per_sec`, holding one second's worth.
    pub fn full(per_sec: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            capacity: per_sec,
            per_sec,
            tokens: per_sec,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        // A clock that goes backwards (callers race between reading `now` and locking) adds
        // nothing rather than removing tokens.
        if now > self.updated {
            let elapsed = now.duration_since(self.updated).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
            self.updated = now;
        }
    }

    /// Tokens available at `now`; negative while in debt.
    pub fn available(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.tokens
    }

    /// Whether `n` tokens could be taken at `now`: the balance covers `n`, or `n` exceeds the
    /// capacity and the bucket is full.
    fn can_take(&mut self, n: f64, now: Instant) -> bool {
        self.available(now) >= n.min(self.capacity)
    }

    /// Takes `n` tokens, possibly into debt. Call after [`TokenBucket::can_take`].
    fn take(&mut self, n: f64) {
        self.tokens -= n;
    }

    /// Takes `n` tokens if [`TokenBucket::can_take`] allows; otherwise leaves the balance.
    #[cfg(test)]
    fn try_take(&mut self, n: f64, now: Instant) -> bool {
        let ok = self.can_take(n, now);
        if ok {
            self.take(n);
        }
        ok
    }

    /// Takes `n` tokens unconditionally (a cost known only after the work is done).
    pub fn charge(&mut self, n: f64, now: Instant) {
        self.refill(now);
        self.take(n);
    }
}

#[derive(Debug)]
struct WriteBuckets {
    bytes: TokenBucket,
    records: TokenBucket,
}

#[derive(Debug)]
struct ReadBuckets {
    calls: TokenBucket,
    bytes: TokenBucket,
}

/// One shard's write and read quotas.
#[derive(Debug)]
pub struct ShardLimiter {
    write: Mutex<WriteBuckets>,
    read: Mutex<ReadBuckets>,
}

impl ShardLimiter {
    /// Full buckets at `now`.
    pub fn new(now: Instant) -> ShardLimiter {
        ShardLimiter {
            write: Mutex::new(WriteBuckets {
                bytes: TokenBucket::full(WRITE_BYTES_PER_SEC, now),
                records: TokenBucket::full(WRITE_RECORDS_PER_SEC, now),
            }),
            read: Mutex::new(ReadBuckets {
                calls: TokenBucket::full(READ_CALLS_PER_SEC, now),
                bytes: TokenBucket::full(READ_BYTES_PER_SEC, now),
            }),
        }
    }

    /// Admits records of `sizes` bytes (partition key plus data) in order; `admitted` gets
    /// one flag per size. A rejected record takes no tokens, so a later, smaller record may
    /// still pass, as with AWS's per-record PutRecords results.
    pub fn admit_writes(
        &self,
        sizes: impl IntoIterator<Item = usize>,
        now: Instant,
        mut admitted: impl FnMut(bool),
    ) {
        let mut w = self.write.lock();
        for size in sizes {
            let bytes = size as f64;
            let ok = w.records.can_take(1.0, now) && w.bytes.can_take(bytes, now);
            if ok {
                w.records.take(1.0);
                w.bytes.take(bytes);
            }
            admitted(ok);
        }
    }

    /// Whether a GetRecords call may run now: a call token is left and the byte budget is
    /// not in debt. Takes the call token when it may.
    pub fn admit_read(&self, now: Instant) -> bool {
        let mut r = self.read.lock();
        let ok = r.bytes.available(now) > 0.0 && r.calls.can_take(1.0, now);
        if ok {
            r.calls.take(1.0);
        }
        ok
    }

    /// Charges the bytes a GetRecords call returned.
    pub fn charge_read(&self, bytes: usize, now: Instant) {
        self.read.lock().bytes.charge(bytes as f64, now);
    }
}

/// The limiters of every shard that has seen traffic, by stream name and shard.
///
/// Entries are never removed: a deleted stream's buckets are a few dozen bytes per shard,
/// and a re-created stream of the same name starts its shards from full buckets anyway
/// after a second.
#[derive(Debug, Default)]
pub struct Limits {
    streams: RwLock<HashMap<String, HashMap<ShardId, Arc<ShardLimiter>>>>,
}

impl Limits {
    /// The limiter of `shard` in `stream`, created with full buckets on first use.
    pub fn shard(&self, stream: &str, shard: ShardId) -> Arc<ShardLimiter> {
        if let Some(l) = self.streams.read().get(stream).and_then(|m| m.get(&shard)) {
            return l.clone();
        }
        self.streams
            .write()
            .entry(stream.to_string())
            .or_default()
            .entry(shard)
            .or_insert_with(|| Arc::new(ShardLimiter::new(Instant::now())))
            .clone()
    }
}

/// The open shards' hash key ranges, sorted, for routing records to the limiter of the
/// shard the engine will append them to.
///
/// The engine routes again on append; if a reshard lands in between, a record is charged
/// to its parent shard's quota. That is the only inexactness.
pub struct Routes(Vec<(u128, u128, ShardId)>);

impl Routes {
    /// Routes of `meta`'s open shards.
    pub fn new(meta: &StreamMeta) -> Routes {
        let mut v: Vec<_> = meta
            .shards
            .iter()
            .filter(|s| s.is_open())
            .map(|s| (s.hash_start, s.hash_end, s.id))
            .collect();
        v.sort_unstable_by_key(|r| r.0);
        Routes(v)
    }

    /// The open shard whose inclusive range holds the record's hash key.
    pub fn route(&self, partition_key: &str, explicit: Option<HashKey>) -> Option<ShardId> {
        let key = HashKey::of_record(partition_key, explicit).0;
        let i = self.0.partition_point(|r| r.0 <= key).checked_sub(1)?;
        let (start, end, id) = self.0[i];
        (start <= key && key <= end).then_some(id)
    }
}

/// AWS's throttling error for one shard.
pub fn rate_exceeded(shard: ShardId, stream: &str, account: &str) -> ApiError {
    ApiError::ProvisionedThroughputExceeded(format!(
        "Rate exceeded for shard {shard} in stream {stream} under account {account}."
    ))
}

/// Puts `recs` into `stream` (described by `meta`). With limits on, records over their
/// shard's write quota are not written and fail with ProvisionedThroughputExceeded, counted
/// in the shard's `write_provisioned_throughput_exceeded` series. Results are in request
/// order.
pub async fn put_records(
    api: &Api,
    stream: &Stream,
    meta: &StreamMeta,
    recs: &[PutRecord<'_>],
) -> Vec<Result<PutResult, ApiError>> {
    let Some(limits) = &api.limits else {
        let results = stream.put_records_async(recs).await;
        return results
            .into_iter()
            .map(|r| r.map_err(|e| api.engine_error(e)))
            .collect();
    };
    let routes = Routes::new(meta);
    // Records grouped by shard, so each shard's limiter is locked once.
    let mut groups: Vec<(ShardId, Vec<usize>)> = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        // A record no open shard covers goes to the engine, which reports the error.
        let Some(id) = routes.route(r.partition_key, r.explicit_hash_key) else {
            continue;
        };
        match groups.iter_mut().find(|(g, _)| *g == id) {
            Some((_, idx)) => idx.push(i),
            None => groups.push((id, vec![i])),
        }
    }
    let now = Instant::now();
    let mut throttled: Vec<Option<ShardId>> = vec![None; recs.len()];
    for (id, idx) in &groups {
        let sizes = idx
            .iter()
            .map(|&i| recs[i].partition_key.len() + recs[i].data.len());
        let mut refused = 0;
        let mut next = idx.iter();
        limits
            .shard(&meta.name, *id)
            .admit_writes(sizes, now, |ok| {
                let i = *next.next().expect("invariant: one verdict per size");
                if !ok {
                    throttled[i] = Some(*id);
                    refused += 1;
                }
            });
        if refused > 0 {
            api.metrics
                .shard(&meta.name, *id)
                .write_throughput_exceeded
                .inc_by(refused);
        }
    }
    let admitted: Vec<PutRecord<'_>> = recs
        .iter()
        .zip(&throttled)
        .filter(|(_, t)| t.is_none())
        .map(|(r, _)| *r)
        .collect();
    let mut written = stream.put_records_async(&admitted).await.into_iter();
    throttled
        .into_iter()
        .map(|t| match t {
            Some(id) => Err(rate_exceeded(id, &meta.name, api.account())),
            None => written
                .next()
                .unwrap_or(Err(shardline_engine::Error::ShuttingDown))
                .map_err(|e| api.engine_error(e)),
        })
        .collect()
}

/// Takes a GetRecords call from the shard's read quota; `Ok(None)` when limits are off.
/// Charge the bytes read to the returned limiter afterwards.
///
/// # Errors
/// ProvisionedThroughputExceeded when the shard is over its calls or bytes per second,
/// also counted in its `read_provisioned_throughput_exceeded` series.
pub fn admit_read(
    api: &Api,
    stream: &str,
    shard: ShardId,
) -> Result<Option<Arc<ShardLimiter>>, ApiError> {
    let Some(limits) = &api.limits else {
        return Ok(None);
    };
    let limiter = limits.shard(stream, shard);
    if limiter.admit_read(Instant::now()) {
        return Ok(Some(limiter));
    }
    api.metrics
        .shard(stream, shard)
        .read_throughput_exceeded
        .inc();
    Err(rate_exceeded(shard, stream, api.account()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn admit(l: &ShardLimiter, sizes: &[usize], now: Instant) -> Vec<bool> {
        let mut out = Vec::new();
        l.admit_writes(sizes.iter().copied(), now, |ok| out.push(ok));
        out
    }

    #[test]
    fn bucket_refills_at_its_rate_up_to_capacity() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(10.0, t0);
        assert!(b.try_take(10.0, t0));
        assert!(!b.try_take(1.0, t0));
        assert!(b.try_take(5.0, t0 + Duration::from_millis(500)));
        assert!(!b.try_take(1.0, t0 + Duration::from_millis(500)));
        // An hour idle refills to capacity, not beyond.
        assert_eq!(b.available(t0 + Duration::from_secs(3600)), 10.0);
    }

    #[test]
    fn bucket_ignores_a_clock_that_steps_back() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = TokenBucket::full(10.0, t0);
        assert!(b.try_take(10.0, t0));
        assert_eq!(b.available(t0 - Duration::from_secs(5)), 0.0);
        assert_eq!(b.available(t0 + Duration::from_millis(100)), 1.0);
    }

    #[test]
    fn oversized_take_needs_a_full_bucket_and_leaves_debt() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(2.0, t0);
        assert!(b.try_take(10.0, t0));
        assert_eq!(b.available(t0), -8.0);
        assert!(!b.try_take(10.0, t0 + Duration::from_secs(4)));
        assert!(b.try_take(10.0, t0 + Duration::from_secs(5)));
    }

    #[test]
    fn writes_stop_at_1000_records_per_second() {
        let t0 = Instant::now();
        let l = ShardLimiter::new(t0);
        let ok = admit(&l, &[1; 1001], t0);
        assert_eq!(ok.iter().filter(|&&a| a).count(), 1000);
        assert!(!ok[1000]);
        // One millisecond later one more record's token is back.
        assert_eq!(
            admit(&l, &[1, 1], t0 + Duration::from_millis(1)),
            [true, false]
        );
    }

    #[test]
    fn writes_stop_at_one_mib_per_second_and_smaller_records_still_pass() {
        let t0 = Instant::now();
        let l = ShardLimiter::new(t0);
        let half = 512 << 10;
        assert_eq!(
            admit(&l, &[half, half - 10, half, 10], t0),
            [true, true, false, true]
        );
        assert_eq!(admit(&l, &[1], t0), [false]);
        assert_eq!(admit(&l, &[half], t0 + Duration::from_millis(500)), [true]);
    }

    #[test]
    fn reads_allow_five_calls_per_second() {
        let t0 = Instant::now();
        let l = ShardLimiter::new(t0);
        let calls: Vec<bool> = (0..6).map(|_| l.admit_read(t0)).collect();
        assert_eq!(calls, [true, true, true, true, true, false]);
        assert!(l.admit_read(t0 + Duration::from_millis(200)));
        assert!(!l.admit_read(t0 + Duration::from_millis(200)));
    }

    /// A 10 MiB GetRecords leaves the shard's 2 MiB/s read budget 8 MiB in debt: the next
    /// calls are refused until it has paid back, four seconds later.
    #[test]
    fn a_ten_mib_read_blocks_reads_for_four_seconds() {
        let t0 = Instant::now();
        let l = ShardLimiter::new(t0);
        assert!(l.admit_read(t0));
        l.charge_read(10 << 20, t0);
        assert!(!l.admit_read(t0 + Duration::from_secs(1)));
        assert!(!l.admit_read(t0 + Duration::from_millis(3999)));
        assert!(l.admit_read(t0 + Duration::from_millis(4001)));
    }

    #[test]
    fn limits_hand_out_one_limiter_per_shard() {
        let limits = Limits::default();
        let a = limits.shard("s", ShardId(0));
        assert!(Arc::ptr_eq(&a, &limits.shard("s", ShardId(0))));
        assert!(!Arc::ptr_eq(&a, &limits.shard("s", ShardId(1))));
        assert!(!Arc::ptr_eq(&a, &limits.shard("t", ShardId(0))));
    }

    #[test]
    fn routes_follow_inclusive_hash_ranges_of_open_shards() {
        let routes = Routes(vec![(0, 99, ShardId(1)), (100, u128::MAX, ShardId(2))]);
        assert_eq!(routes.route("", Some(HashKey(0))), Some(ShardId(1)));
        assert_eq!(routes.route("", Some(HashKey(99))), Some(ShardId(1)));
        assert_eq!(routes.route("", Some(HashKey(100))), Some(ShardId(2)));
        assert_eq!(routes.route("", Some(HashKey(u128::MAX))), Some(ShardId(2)));
        assert_eq!(
            Routes(vec![(5, 9, ShardId(0))]).route("", Some(HashKey(3))),
            None
        );
    }
}
