//! The worker: KCL's scheduler in lease-count mode. It keeps the application's lease table
//! in sync with the stream's shards, takes and renews leases, and runs one shard consumer
//! (with its own record processor) per lease it holds.
//!
//! # Timing (KCL defaults, reference section 7)
//!
//! - A lease is expired when its counter has not changed for `failover` (10 s).
//! - Renewals every `failover / 3 - 25 ms`; a lease whose renewals keep failing for
//!   `failover` is given up locally (other workers consider it expired by then).
//! - Lease taking at start and every `2 × (failover + 25 ms)` ([`super::taker`]).
//! - Shard sync (`SyncLeases`: leases for new shards) at start, every
//!   `shard_sync_interval` (60 s), and whenever one of this worker's shards ends.
//!
//! # Shutdown
//!
//! When the `shutdown` future passed to [`Worker::run`] completes, every processor gets
//! `shutdown_requested` (and may checkpoint), then every lease still held is evicted (handed
//! back with its owner cleared) so that other workers take it at once, without waiting for
//! it to expire. Renewals continue until then. Processors still busy after
//! `shutdown_timeout` are dropped, their leases left to expire.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::error::Error;
use crate::http::Client;
use crate::leases::{InitialPosition, Lease, LeaseTable};

use super::held::HeldLease;
use super::processor::ProcessorFactory;
use super::shard::{Outcome, ShardConsumer};
use super::taker::{leases_to_take, Candidate, ExpiryClock};

/// KCL's default `failoverTimeMillis`.
pub const DEFAULT_FAILOVER: Duration = Duration::from_secs(10);
/// KCL's default `shardSyncIntervalMillis`.
pub const DEFAULT_SHARD_SYNC_INTERVAL: Duration = Duration::from_secs(60);
/// KCL's default `idleTimeBetweenReadsInMillis`.
pub const DEFAULT_IDLE_TIME_BETWEEN_READS: Duration = Duration::from_millis(1500);
/// How often a child lease checks whether its parents are finished (KCL polls every 10 s;
/// the lease API's DescribeLease is cheap, so this is shorter).
pub const DEFAULT_PARENT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// KCL's margin between the renewal period and a third of the failover time.
const RENEWAL_MARGIN: Duration = Duration::from_millis(25);
/// How long shutdown waits for the processors' `shutdown_requested` by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause before retrying the first SyncLeases when the server is unreachable.
const SYNC_RETRY: Duration = Duration::from_secs(1);

/// How records are read.
#[derive(Debug, Clone)]
pub enum Transport {
    /// GetRecords polling.
    Polling {
        /// The pause after a call that returned no records.
        idle: Duration,
        /// `Limit` of each GetRecords call.
        max_records: u32,
    },
    /// Enhanced fan-out: SubscribeToShard through this stream consumer, registered by the
    /// worker at start if it does not exist.
    FanOut { consumer_name: String },
}

impl Default for Transport {
    fn default() -> Transport {
        Transport::Polling {
            idle: DEFAULT_IDLE_TIME_BETWEEN_READS,
            max_records: super::fetch::polling::MAX_RECORDS_PER_CALL,
        }
    }
}

/// A worker's settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Names the lease table; workers of one application share the shards.
    pub application: String,
    pub stream: String,
    /// Unique among the application's workers (the lease owner).
    pub worker_id: String,
    /// A lease unchanged for this long is expired and may be taken.
    pub failover: Duration,
    /// Where a new lease table starts.
    pub initial_position: InitialPosition,
    /// The most leases this worker holds.
    pub max_leases: usize,
    pub transport: Transport,
    pub shard_sync_interval: Duration,
    pub parent_poll_interval: Duration,
    /// How long shutdown waits for the processors; those still busy then are dropped
    /// (their leases not handed back, so they expire after the failover time).
    pub shutdown_timeout: Duration,
}

impl WorkerConfig {
    /// A configuration with KCL's defaults.
    pub fn new(application: &str, stream: &str, worker_id: &str) -> WorkerConfig {
        WorkerConfig {
            application: application.to_string(),
            stream: stream.to_string(),
            worker_id: worker_id.to_string(),
            failover: DEFAULT_FAILOVER,
            initial_position: InitialPosition::TrimHorizon,
            max_leases: usize::MAX,
            transport: Transport::default(),
            shard_sync_interval: DEFAULT_SHARD_SYNC_INTERVAL,
            parent_poll_interval: DEFAULT_PARENT_POLL_INTERVAL,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }

    /// How often held leases are renewed.
    pub fn renew_interval(&self) -> Duration {
        (self.failover / 3)
            .saturating_sub(RENEWAL_MARGIN)
            .max(Duration::from_millis(10))
    }

    /// How often the worker looks for leases to take.
    pub fn take_interval(&self) -> Duration {
        2 * (self.failover + RENEWAL_MARGIN)
    }

    pub(crate) fn at_timestamp_ms(&self) -> Option<i64> {
        match self.initial_position {
            InitialPosition::AtTimestamp(secs) => Some((secs * 1000.0).round() as i64),
            InitialPosition::TrimHorizon | InitialPosition::Latest => None,
        }
    }

    fn validate(&self) -> Result<(), Error> {
        let bad = |detail: &str| {
            Err(Error::Config {
                detail: detail.to_string(),
            })
        };
        if self.worker_id.is_empty() {
            return bad("the worker id is empty");
        }
        if self.failover < Duration::from_millis(100) {
            return bad("the failover time is under 100 ms");
        }
        if self.max_leases == 0 {
            return bad("max leases is 0");
        }
        Ok(())
    }
}

/// The leases this worker runs, shared with the renewer.
/// The shard consumers' tasks, and the lease each runs.
type Tasks<'a> = (
    &'a mut JoinSet<()>,
    &'a mut HashMap<tokio::task::Id, String>,
);

pub(crate) type Running = Arc<Mutex<HashMap<String, Arc<HeldLease>>>>;

/// A consumer application's worker.
pub struct Worker<F> {
    config: Arc<WorkerConfig>,
    /// The enhanced fan-out consumer's ARN, once registered.
    consumer_arn: Option<Arc<str>>,
    client: Client,
    table: LeaseTable,
    factory: Arc<F>,
}

impl<F: ProcessorFactory> Worker<F> {
    /// A worker reading through `client` and making processors with `factory`.
    pub fn new(config: WorkerConfig, client: Client, factory: F) -> Worker<F> {
        let table = LeaseTable::new(client.clone(), &config.application);
        Worker {
            config: Arc::new(config),
            consumer_arn: None,
            client,
            table,
            factory: Arc::new(factory),
        }
    }

    /// Runs until `shutdown` completes, then shuts down gracefully (see the module doc).
    ///
    /// # Errors
    /// An invalid configuration, a first SyncLeases the server refuses (unknown stream,
    /// table bound to another stream), or (fan-out) a consumer that cannot be registered.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        self.config.validate()?;
        tokio::pin!(shutdown);
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            synced = self.first_sync() => synced?,
        }
        if let Transport::FanOut { consumer_name } = &self.config.transport {
            let arn = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                arn = super::fetch::fanout::register_consumer(
                    &self.client,
                    &self.config.stream,
                    consumer_name,
                ) => arn?,
            };
            tracing::info!(consumer = %arn, "reading through enhanced fan-out");
            self.consumer_arn = Some(arn.into());
        }
        let running: Running = Arc::default();
        let renewer = tokio::spawn(super::renewer::renew_loop(
            self.config.clone(),
            self.table.clone(),
            running.clone(),
        ));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let mut task_keys = HashMap::new();
        let mut clock = ExpiryClock::default();
        let mut take_tick = tokio::time::interval(self.config.take_interval());
        let sync_every = self.config.shard_sync_interval;
        let mut sync_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + sync_every, sync_every);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = take_tick.tick() => self.take(&mut clock, &running, &done_tx, (&mut tasks, &mut task_keys)).await,
                Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => match joined {
                    Ok((id, ())) => {
                        task_keys.remove(&id);
                    }
                    // A panicking processor sends no outcome: stop renewing its lease.
                    Err(e) => {
                        if let Some(key) = task_keys.remove(&e.id()) {
                            let outcome = Outcome::Failed(Error::Processor {
                                shard_id: key.clone(),
                                detail: "the shard consumer panicked".into(),
                            });
                            self.finish(&key, outcome, &running).await;
                        }
                    }
                },
                _ = sync_tick.tick() => self.sync().await,
                Some((key, outcome)) = done_rx.recv() => {
                    let ended = matches!(outcome, Outcome::ShardEnded);
                    self.finish(&key, outcome, &running).await;
                    if ended {
                        self.sync().await;
                        self.take(&mut clock, &running, &done_tx, (&mut tasks, &mut task_keys)).await;
                    }
                }
            }
        }
        tracing::info!(worker = %self.config.worker_id, "shutting down");
        let held: Vec<Arc<HeldLease>> = lock(&running).values().cloned().collect();
        for lease in &held {
            lease.request_shutdown();
        }
        let drained = tokio::time::timeout(self.config.shutdown_timeout, async {
            while !lock(&running).is_empty() {
                match done_rx.recv().await {
                    Some((key, outcome)) => self.finish(&key, outcome, &running).await,
                    None => break,
                }
            }
        })
        .await;
        if drained.is_err() {
            let busy: Vec<String> = lock(&running).keys().cloned().collect();
            tracing::warn!(
                ?busy,
                "processors still busy at the shutdown timeout; dropping them"
            );
            tasks.shutdown().await;
        }
        renewer.abort();
        Ok(())
    }

    async fn first_sync(&self) -> Result<(), Error> {
        loop {
            match self
                .table
                .sync(&self.config.stream, self.config.initial_position)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "SyncLeases failed; retrying");
                    tokio::time::sleep(SYNC_RETRY).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn sync(&self) {
        if let Err(e) = self
            .table
            .sync(&self.config.stream, self.config.initial_position)
            .await
        {
            tracing::warn!(error = %e, "shard sync failed");
        }
    }

    async fn take(
        &self,
        clock: &mut ExpiryClock,
        running: &Running,
        done: &mpsc::UnboundedSender<(String, Outcome)>,
        tasks: Tasks<'_>,
    ) {
        let leases = match self.table.list().await {
            Ok(leases) => leases,
            Err(e) => {
                tracing::warn!(error = %e, "listing leases failed");
                return;
            }
        };
        let now = Instant::now();
        clock.observe(&leases, now);
        let candidates: Vec<Candidate> = {
            let running = lock(running);
            leases
                .iter()
                .filter(|l| !l.is_finished())
                .map(|l| Candidate {
                    lease_key: l.lease_key.clone(),
                    owner: l.lease_owner.clone(),
                    expired: clock.is_expired(&l.lease_key, now, self.config.failover),
                    very_old: clock.is_very_old(&l.lease_key, now, self.config.failover),
                    held: running.contains_key(&l.lease_key),
                })
                .collect()
        };
        let me = &self.config.worker_id;
        for key in leases_to_take(&candidates, me, self.config.max_leases) {
            let Some(lease) = leases.iter().find(|l| l.lease_key == key) else {
                continue;
            };
            match self.table.take(&key, me, lease.lease_counter).await {
                Ok(taken) => {
                    tracing::info!(worker = %me, lease = %key, from = ?lease.lease_owner, "took lease");
                    self.start(taken, running, done, (&mut *tasks.0, &mut *tasks.1))
                        .await;
                }
                Err(e) if e.is_condition_failed() => {
                    tracing::debug!(lease = %key, error = %e, "lease changed before the take");
                }
                Err(e) => tracing::warn!(lease = %key, error = %e, "taking a lease failed"),
            }
        }
    }

    async fn start(
        &self,
        lease: Lease,
        running: &Running,
        done: &mpsc::UnboundedSender<(String, Outcome)>,
        (tasks, task_keys): Tasks<'_>,
    ) {
        let (held, signal) = HeldLease::new(&lease);
        let held = Arc::new(held);
        let key = lease.lease_key.clone();
        let processor = match self.factory.create(&key) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(lease = %key, error = %e, "creating a record processor failed");
                self.evict(&held).await;
                return;
            }
        };
        lock(running).insert(key.clone(), held.clone());
        let consumer = ShardConsumer {
            config: self.config.clone(),
            client: self.client.clone(),
            table: self.table.clone(),
            consumer_arn: self.consumer_arn.clone(),
            lease,
            held,
            signal,
            processor,
        };
        let done = done.clone();
        let task_key = key.clone();
        let handle = tasks.spawn(async move {
            let outcome = consumer.run().await;
            // The worker only drops the receiver when it has stopped waiting for outcomes.
            let _ = done.send((key, outcome));
        });
        task_keys.insert(handle.id(), task_key);
    }

    async fn finish(&self, key: &str, outcome: Outcome, running: &Running) {
        let Some(held) = lock(running).remove(key) else {
            return;
        };
        match outcome {
            Outcome::Lost => tracing::info!(lease = %key, "lease lost"),
            Outcome::ShardEnded => {
                tracing::info!(lease = %key, "shard ended");
                self.evict(&held).await;
            }
            Outcome::Shutdown => self.evict(&held).await,
            Outcome::Failed(e) => {
                tracing::warn!(lease = %key, error = %e, "shard processing failed; handing the lease back");
                self.evict(&held).await;
            }
        }
    }

    async fn evict(&self, held: &HeldLease) {
        let (table, me) = (&self.table, &self.config.worker_id);
        if let Err(e) = held.write(|c| table.evict(held.key(), me, c)).await {
            tracing::debug!(lease = %held.key(), error = %e, "evicting failed");
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
