//! The producer's task: per-shard queues, batches, answers, retries and the shard map.
//!
//! Invariants (why per-partition-key order holds, see also the [module docs](super)):
//! - A user record joins the queue of its shard (by the shard map); a queue is first in,
//!   first out, and only its front is ever taken.
//! - A queue has at most one batch in flight. Records of the batch that must be retried go
//!   back to the front of the queue, in their order, before the queue sends again.
//! - Within a batch a partition key appears in one entry only (one record, or one
//!   aggregate), so a PutRecords entry that fails never has a later record of its key written
//!   beside it.
//! - A new shard map is applied only when no batch is in flight: the queues are emptied in
//!   order and their records routed again, so a key's records never sit in two queues.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::config::ProducerConfig;
use super::shard_map::ShardMap;
use super::transport::{EntryOutcome, PutEntry, RecordFailure, ShardRange, Transport};
use super::Receipt;
use crate::error::Error;
use crate::kpl::{partition_key_hash, Aggregator};

/// Bytes an aggregate's explicit hash key adds to a batch, at most (39 decimal digits).
const AGGREGATE_HASH_KEY_BYTES: usize = 39;

/// Most commands taken from the handle before the queues are looked at again.
const COMMANDS_PER_PASS: usize = 4096;

/// Least time between two ListShards calls of the shard map.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// What the [`super::Producer`] handle sends its task.
pub(super) enum Command {
    Put(Pending),
    /// Resolved once every record put before it is resolved.
    Flush(oneshot::Sender<()>),
}

/// A user record waiting to be written.
pub(super) struct Pending {
    pub(super) serial: u64,
    pub(super) partition_key: String,
    pub(super) explicit_hash_key: Option<String>,
    pub(super) hash: u128,
    pub(super) data: Vec<u8>,
    pub(super) done: oneshot::Sender<Result<Receipt, Error>>,
    /// Room in `max_outstanding_records`, given back when the record is resolved.
    pub(super) _permit: OwnedSemaphorePermit,
    pub(super) accepted: Instant,
    pub(super) attempts: u32,
}

/// One Kinesis record of a batch and the user records it carries.
struct Entry {
    users: Vec<Pending>,
    /// The aggregate being built (copies of the user records' data); `None` for a record
    /// too large to aggregate, or with aggregation off.
    aggregator: Option<Aggregator>,
    /// Whether the entry went out as an aggregate (two or more user records).
    aggregated: bool,
}

/// A shard's queue.
#[derive(Default)]
struct Queue {
    /// The shard the map expects; `None` for records no open shard's range holds.
    shard_id: Option<String>,
    records: VecDeque<Pending>,
    bytes: usize,
    /// The batch in flight.
    in_flight: Option<Vec<Entry>>,
    /// Retry backoff: no batch before this.
    not_before: Option<Instant>,
    /// Consecutive failed attempts, for the backoff.
    failures: u32,
}

type Answer = (usize, Result<Vec<EntryOutcome>, RecordFailure>);

/// What woke the task.
enum Event {
    Command(Option<Command>),
    Answer(Result<(tokio::task::Id, Answer), tokio::task::JoinError>),
    Refreshed(Result<Result<Vec<ShardRange>, Error>, tokio::task::JoinError>),
    Timer,
}

pub(super) struct Batcher {
    config: ProducerConfig,
    transport: Arc<dyn Transport>,
    max_batch_records: usize,
    max_batch_bytes: usize,
    map: ShardMap,
    /// Indexes into `queues` by expected shard id (`None`: unmapped).
    queue_of: HashMap<Option<String>, usize>,
    queues: Vec<Queue>,
    in_flight: JoinSet<Answer>,
    /// The queue of each put task, to fail its records if the task panics.
    task_queue: HashMap<tokio::task::Id, usize>,
    /// Serials of records accepted and not yet resolved.
    outstanding: BTreeSet<u64>,
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    last_serial: u64,
    refresh_wanted: bool,
    refreshing: Option<tokio::task::JoinHandle<Result<Vec<ShardRange>, Error>>>,
    last_refresh: Instant,
    /// A map to apply once nothing is in flight.
    next_map: Option<ShardMap>,
    closing: bool,
}

impl Batcher {
    pub(super) fn new(
        config: ProducerConfig,
        transport: Arc<dyn Transport>,
        map: ShardMap,
    ) -> Batcher {
        let max_batch_records = config
            .max_batch_records
            .clamp(1, transport.max_batch_records().max(1));
        let max_batch_bytes = config
            .max_batch_bytes
            .clamp(1, transport.max_batch_bytes().max(1));
        Batcher {
            config,
            transport,
            max_batch_records,
            max_batch_bytes,
            map,
            queue_of: HashMap::new(),
            queues: Vec::new(),
            in_flight: JoinSet::new(),
            task_queue: HashMap::new(),
            outstanding: BTreeSet::new(),
            flushes: Vec::new(),
            last_serial: 0,
            refresh_wanted: false,
            refreshing: None,
            // The first refresh (after a reshard) may come at once.
            last_refresh: Instant::now()
                .checked_sub(MIN_REFRESH_INTERVAL)
                .unwrap_or_else(Instant::now),
            next_map: None,
            closing: false,
        }
    }

    /// Runs until the handle is dropped or closed and every record is resolved.
    pub(super) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            self.send_ready();
            if self.closing && self.outstanding.is_empty() && self.in_flight.is_empty() {
                return;
            }
            let wake = self.next_wake();
            let event = {
                let (closing, busy) = (self.closing, !self.in_flight.is_empty());
                let refreshing = &mut self.refreshing;
                let in_flight = &mut self.in_flight;
                tokio::select! {
                    command = commands.recv(), if !closing => Event::Command(command),
                    Some(answer) = in_flight.join_next_with_id(), if busy => Event::Answer(answer),
                    refreshed = async {
                        match refreshing {
                            Some(handle) => handle.await,
                            None => std::future::pending().await,
                        }
                    } => Event::Refreshed(refreshed),
                    _ = sleep_until(wake) => Event::Timer,
                }
            };
            match event {
                Event::Command(Some(command)) => {
                    self.command(command);
                    // Take what else is waiting before batching: one pass per burst, not
                    // per record.
                    for _ in 0..COMMANDS_PER_PASS {
                        match commands.try_recv() {
                            Ok(command) => self.command(command),
                            Err(_) => break,
                        }
                    }
                }
                Event::Command(None) => self.closing = true,
                Event::Answer(Ok((id, (queue, result)))) => {
                    self.task_queue.remove(&id);
                    self.answered(queue, result);
                }
                // A put task panicked (a transport bug): its records fail, not retried.
                Event::Answer(Err(e)) => {
                    tracing::error!(error = %e, "producer put task failed");
                    if let Some(queue) = self.task_queue.remove(&e.id()) {
                        let failure = RecordFailure {
                            code: "InternalError".into(),
                            message: format!("the put task failed: {e}"),
                            retryable: false,
                        };
                        self.answered(queue, Err(failure));
                    }
                }
                Event::Refreshed(refreshed) => {
                    self.refreshing = None;
                    match refreshed {
                        Ok(Ok(ranges)) => self.next_map = Some(ShardMap::new(ranges)),
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "listing shards for the producer's shard map");
                            self.refresh_wanted = true;
                        }
                        Err(e) => tracing::error!(error = %e, "shard map refresh task failed"),
                    }
                }
                Event::Timer => {}
            }
            self.maybe_refresh();
            self.resolve_flushes();
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Put(p) => self.accept(p),
            Command::Flush(tx) => self.flushes.push((self.last_serial, tx)),
        }
    }

    fn accept(&mut self, p: Pending) {
        self.last_serial = self.last_serial.max(p.serial);
        self.outstanding.insert(p.serial);
        let q = self.queue_for(p.hash);
        let queue = &mut self.queues[q];
        queue.bytes += record_bytes(&p);
        queue.records.push_back(p);
    }

    fn queue_for(&mut self, hash: u128) -> usize {
        let shard_id = self.map.shard_of(hash).map(|r| r.shard_id.clone());
        if shard_id.is_none() {
            self.refresh_wanted = true;
        }
        let queues = &mut self.queues;
        *self.queue_of.entry(shard_id.clone()).or_insert_with(|| {
            queues.push(Queue {
                shard_id,
                ..Queue::default()
            });
            queues.len() - 1
        })
    }

    /// Sends a batch from every queue that is due, within `max_in_flight`.
    fn send_ready(&mut self) {
        if self.next_map.is_some() {
            if !self.in_flight.is_empty() {
                return;
            }
            self.apply_map();
        }
        let now = Instant::now();
        let flushing = self.closing || !self.flushes.is_empty();
        for q in 0..self.queues.len() {
            if self.in_flight.len() >= self.config.max_in_flight.max(1) {
                return;
            }
            if self.due(q, now, flushing) {
                self.send(q);
            }
        }
    }

    fn due(&self, q: usize, now: Instant, flushing: bool) -> bool {
        let queue = &self.queues[q];
        let Some(front) = queue.records.front() else {
            return false;
        };
        if queue.in_flight.is_some() || queue.not_before.is_some_and(|t| now < t) {
            return false;
        }
        let full = queue.bytes >= self.max_batch_bytes
            || (!self.config.aggregation && queue.records.len() >= self.max_batch_records);
        flushing || full || front.attempts > 0 || now >= front.accepted + self.config.linger
    }

    /// When a queue next becomes due (its front lingered long enough, or its backoff ended)
    /// or the shard map may be listed again.
    fn next_wake(&self) -> Option<Instant> {
        let queues = self
            .queues
            .iter()
            .filter(|q| q.in_flight.is_none())
            .filter_map(|q| {
                let front = q.records.front()?;
                let ready = if front.attempts > 0 {
                    front.accepted
                } else {
                    front.accepted + self.config.linger
                };
                Some(q.not_before.map_or(ready, |t| t.max(ready)))
            });
        let refresh = (self.refresh_wanted && self.refreshing.is_none())
            .then_some(self.last_refresh + MIN_REFRESH_INTERVAL);
        queues.chain(refresh).min()
    }

    /// Takes a batch off the front of queue `q` and puts it.
    fn send(&mut self, q: usize) {
        let mut entries = self.take_batch(q);
        let wire: Vec<PutEntry> = entries.iter_mut().map(wire_entry).collect();
        for e in &mut entries {
            for u in &mut e.users {
                self.queues[q].bytes -= record_bytes(u);
                u.attempts += 1;
            }
        }
        self.queues[q].in_flight = Some(entries);
        let transport = self.transport.clone();
        let stream = self.config.stream.clone();
        let task = self
            .in_flight
            .spawn(async move { (q, transport.put(&stream, &wire).await) });
        self.task_queue.insert(task.id(), q);
    }

    fn take_batch(&mut self, q: usize) -> Vec<Entry> {
        let aggregation = self.config.aggregation;
        let agg_max = self.config.aggregation_max_bytes;
        let (max_records, max_bytes) = (self.max_batch_records, self.max_batch_bytes);
        let queue = &mut self.queues[q];
        let mut entries: Vec<Entry> = Vec::new();
        let mut entry_of_key: HashMap<String, usize> = HashMap::new();
        let mut bytes = 0usize;
        while let Some(p) = queue.records.front() {
            let ehk = p.explicit_hash_key.as_deref();
            let size = record_bytes(p);
            let aggregable =
                aggregation && Aggregator::new(agg_max).fits(&p.partition_key, ehk, p.data.len());
            // Where the record goes: an existing entry (index, added bytes) or a new one.
            let target = match entry_of_key.get(&p.partition_key) {
                Some(&i) => match &entries[i].aggregator {
                    Some(a) if aggregable && a.fits(&p.partition_key, ehk, p.data.len()) => Some((
                        i,
                        a.size_with(&p.partition_key, ehk, p.data.len()) - a.size_bytes(),
                    )),
                    // The key's entry cannot take it: it waits for the next batch.
                    _ => break,
                },
                None => match entries.last() {
                    Some(Entry {
                        aggregator: Some(a),
                        ..
                    }) if aggregable && a.fits(&p.partition_key, ehk, p.data.len()) => Some((
                        entries.len() - 1,
                        a.size_with(&p.partition_key, ehk, p.data.len()) - a.size_bytes(),
                    )),
                    _ => None,
                },
            };
            match target {
                Some((i, added)) => {
                    if bytes + added > max_bytes {
                        break;
                    }
                    bytes += added;
                    let p = queue.records.pop_front().expect("invariant: front exists");
                    if let Some(a) = entries[i].aggregator.as_mut() {
                        a.push(
                            &p.partition_key,
                            p.explicit_hash_key.as_deref(),
                            p.data.clone(),
                        );
                    }
                    entry_of_key.insert(p.partition_key.clone(), i);
                    entries[i].users.push(p);
                }
                None => {
                    let added = if aggregable {
                        Aggregator::new(agg_max).size_with(&p.partition_key, ehk, p.data.len())
                            + AGGREGATE_HASH_KEY_BYTES
                    } else {
                        size
                    };
                    if entries.len() >= max_records
                        || (!entries.is_empty() && bytes + added > max_bytes)
                    {
                        break;
                    }
                    bytes += added;
                    let p = queue.records.pop_front().expect("invariant: front exists");
                    let mut aggregator = aggregable.then(|| Aggregator::new(agg_max));
                    if let Some(a) = aggregator.as_mut() {
                        a.push(
                            &p.partition_key,
                            p.explicit_hash_key.as_deref(),
                            p.data.clone(),
                        );
                    }
                    entry_of_key.insert(p.partition_key.clone(), entries.len());
                    entries.push(Entry {
                        users: vec![p],
                        aggregator,
                        aggregated: false,
                    });
                }
            }
        }
        entries
    }

    fn answered(&mut self, q: usize, result: Result<Vec<EntryOutcome>, RecordFailure>) {
        let Some(entries) = self.queues[q].in_flight.take() else {
            return;
        };
        let expected = self.queues[q].shard_id.clone();
        let mut retry: Vec<Pending> = Vec::new();
        let mut failed_any = false;
        let outcomes: Vec<Result<(String, String), RecordFailure>> = match result {
            Ok(outcomes) => outcomes
                .into_iter()
                .map(|o| match o {
                    EntryOutcome::Written {
                        shard_id,
                        sequence_number,
                    } => Ok((shard_id, sequence_number)),
                    EntryOutcome::Failed(f) => Err(f),
                })
                .collect(),
            Err(f) => vec![Err(f); entries.len()],
        };
        for (entry, outcome) in entries.into_iter().zip(outcomes) {
            let aggregated = entry.aggregated;
            match outcome {
                Ok((shard_id, sequence_number)) => {
                    if expected.as_deref() != Some(shard_id.as_str()) {
                        self.refresh_wanted = true;
                    }
                    for (sub, u) in (0..).zip(entry.users) {
                        let receipt = Receipt {
                            shard_id: shard_id.clone(),
                            sequence_number: sequence_number.clone(),
                            sub_sequence_number: aggregated.then_some(sub),
                        };
                        self.resolve(u, Ok(receipt));
                    }
                }
                Err(f) => {
                    failed_any = true;
                    for u in entry.users {
                        let exhausted = self.config.max_attempts.is_some_and(|m| u.attempts >= m);
                        if f.retryable && !exhausted {
                            retry.push(u);
                        } else {
                            let attempts = u.attempts;
                            self.resolve(
                                u,
                                Err(Error::RecordFailed {
                                    code: f.code.clone(),
                                    message: f.message.clone(),
                                    attempts,
                                }),
                            );
                        }
                    }
                    if f.code.contains("ResourceNotFound") {
                        self.refresh_wanted = true;
                    }
                }
            }
        }
        let queue = &mut self.queues[q];
        if failed_any {
            queue.failures += 1;
        } else {
            queue.failures = 0;
        }
        if !retry.is_empty() {
            queue.not_before = Some(Instant::now() + backoff(&self.config, queue.failures));
            for u in retry.into_iter().rev() {
                queue.bytes += record_bytes(&u);
                queue.records.push_front(u);
            }
        } else {
            queue.not_before = None;
        }
    }

    fn resolve(&mut self, p: Pending, result: Result<Receipt, Error>) {
        self.outstanding.remove(&p.serial);
        // A caller that dropped its future does not want the outcome.
        let _ = p.done.send(result);
    }

    fn resolve_flushes(&mut self) {
        let oldest = self.outstanding.first().copied();
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|(upto, _)| oldest.is_none_or(|o| o > *upto));
        self.flushes = waiting;
        for (_, tx) in done {
            let _ = tx.send(());
        }
    }

    fn maybe_refresh(&mut self) {
        if !self.refresh_wanted || self.refreshing.is_some() {
            return;
        }
        let now = Instant::now();
        if now < self.last_refresh + MIN_REFRESH_INTERVAL {
            return;
        }
        self.refresh_wanted = false;
        self.last_refresh = now;
        let transport = self.transport.clone();
        let stream = self.config.stream.clone();
        self.refreshing = Some(tokio::spawn(
            async move { transport.list_shards(&stream).await },
        ));
    }

    /// Routes every queued record again under the new map (nothing is in flight).
    fn apply_map(&mut self) {
        let Some(map) = self.next_map.take() else {
            return;
        };
        self.map = map;
        let old = std::mem::take(&mut self.queues);
        self.queue_of.clear();
        for queue in old {
            let (not_before, failures) = (queue.not_before, queue.failures);
            for p in queue.records {
                let q = self.queue_for(p.hash);
                let new = &mut self.queues[q];
                new.bytes += record_bytes(&p);
                new.records.push_back(p);
                new.not_before = new.not_before.max(not_before);
                new.failures = new.failures.max(failures);
            }
        }
    }
}

/// Bytes a user record counts for in batch limits.
fn record_bytes(p: &Pending) -> usize {
    p.partition_key.len() + p.data.len() + p.explicit_hash_key.as_ref().map_or(0, String::len)
}

/// The wire form of a batch entry: an aggregate when it holds two or more user records.
fn wire_entry(e: &mut Entry) -> PutEntry {
    if e.users.len() > 1 {
        if let Some(r) = e.aggregator.take().and_then(|mut a| a.finish()) {
            e.aggregated = true;
            return PutEntry {
                partition_key: r.partition_key,
                explicit_hash_key: Some(r.explicit_hash_key),
                // The aggregate is routed by its first user record's hash key.
                hash_key: e.users[0].hash,
                data: r.data,
            };
        }
    }
    e.aggregator = None;
    let u = &e.users[0];
    PutEntry {
        partition_key: u.partition_key.clone(),
        explicit_hash_key: u.explicit_hash_key.clone(),
        hash_key: u.hash,
        data: u.data.clone(),
    }
}

/// The delay before retry number `failures` (1-based): exponential, capped, with jitter
/// (half fixed, half random, so retries of many producers spread out).
fn backoff(config: &ProducerConfig, failures: u32) -> Duration {
    let exp = config
        .initial_backoff
        .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    let cap = exp.min(config.max_backoff);
    let half = cap / 2;
    half + half.mul_f64(rand::thread_rng().gen::<f64>())
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The hash key that routes a record.
pub(super) fn hash_of(partition_key: &str, explicit_hash_key: Option<&str>) -> u128 {
    explicit_hash_key
        .and_then(|e| e.parse::<u128>().ok())
        .unwrap_or_else(|| partition_key_hash(partition_key))
}
