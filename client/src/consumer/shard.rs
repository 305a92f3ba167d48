//! The consumer of one leased shard: waits for the parents, runs the record processor
//! through its life cycle, and tells the worker how it ended.
//!
//! # Parent before child
//!
//! A lease is processed only once every parent lease still in the table has checkpoint
//! `SHARD_END` (polled every `parent_poll_interval`, the lease held and renewed meanwhile),
//! so the records of one partition key keep their order across splits and merges.

use std::sync::Arc;

use tokio::sync::watch;

use crate::error::Error;
use crate::http::Client;
use crate::leases::{Lease, LeaseTable};

use super::checkpointer::{Checkpointer, Phase};
use super::fetch::fanout::FanOutFetcher;
use super::fetch::polling::PollingFetcher;
use super::fetch::{self, Batch, Fetcher};
use super::held::{HeldLease, Signal};
use super::processor::{InitializeInput, ProcessRecordsInput, RecordProcessor};
use super::record::ExtendedSequenceNumber;
use super::worker::{Transport, WorkerConfig};

/// How a shard consumer ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The shard was read to its end and checkpointed `SHARD_END`.
    ShardEnded,
    /// Another worker has the lease.
    Lost,
    /// The worker asked it to stop.
    Shutdown,
    /// The processor or the fetcher failed; the lease should be handed back.
    Failed(Error),
}

pub(crate) struct ShardConsumer<P> {
    pub(crate) config: Arc<WorkerConfig>,
    pub(crate) client: Client,
    pub(crate) table: LeaseTable,
    /// The enhanced fan-out consumer, with [`Transport::FanOut`].
    pub(crate) consumer_arn: Option<Arc<str>>,
    pub(crate) lease: Lease,
    pub(crate) held: Arc<HeldLease>,
    pub(crate) signal: watch::Receiver<Signal>,
    pub(crate) processor: P,
}

impl<P: RecordProcessor> ShardConsumer<P> {
    pub(crate) async fn run(mut self) -> Outcome {
        match self.wait_for_parents().await {
            Ok(None) => {}
            Ok(Some(signal)) => return self.stopped_before_start(signal),
            Err(e) => return Outcome::Failed(e),
        }
        let shard_id = self.lease.lease_key.clone();
        let start = ExtendedSequenceNumber::new(
            &self.lease.checkpoint,
            self.lease.checkpoint_sub_sequence_number,
        );
        let mut checkpointer = Checkpointer::new(
            self.held.clone(),
            self.table.clone(),
            &self.config.worker_id,
            start.clone(),
        );
        let input = InitializeInput {
            shard_id: shard_id.clone(),
            checkpoint: start.clone(),
        };
        if let Err(e) = self.processor.initialize(input).await {
            return Outcome::Failed(e);
        }
        let Some(from) = fetch::start_after(&start, self.config.at_timestamp_ms()) else {
            return self.end_shard(&mut checkpointer).await;
        };
        let mut fetcher = match (&self.config.transport, &self.consumer_arn) {
            (Transport::Polling { idle, max_records }, _) => Fetcher::Polling(PollingFetcher::new(
                self.client.clone(),
                &self.config.stream,
                &shard_id,
                from,
                *idle,
                *max_records,
            )),
            (Transport::FanOut { .. }, Some(arn)) => Fetcher::FanOut(FanOutFetcher::new(
                self.client.clone(),
                arn,
                &shard_id,
                from,
            )),
            (Transport::FanOut { consumer_name }, None) => {
                return Outcome::Failed(Error::Config {
                    detail: format!("consumer {consumer_name} is not registered"),
                })
            }
        };
        // Reading restarts at the checkpointed record: drop what was processed until the
        // first record after it.
        let mut resume_after = (!start.is_sentinel()).then(|| start.clone());
        loop {
            let signal = *self.signal.borrow_and_update();
            match signal {
                Signal::Run => {}
                Signal::Lost => return self.lose(&mut checkpointer).await,
                Signal::Shutdown => return self.shut_down(&mut checkpointer).await,
            }
            let batch = tokio::select! {
                biased;
                _ = self.signal.changed() => continue,
                batch = fetcher.next() => batch,
            };
            match batch {
                Ok(Batch::Records {
                    mut records,
                    millis_behind_latest,
                }) => {
                    if let Some(checkpoint) = &resume_after {
                        records.retain(|r| !fetch::already_processed(r, checkpoint));
                        if records.is_empty() {
                            continue;
                        }
                        resume_after = None;
                    }
                    if let Some(last) = records.last() {
                        checkpointer.set_last_delivered(last.position());
                    }
                    let input = ProcessRecordsInput {
                        records,
                        millis_behind_latest,
                    };
                    if let Err(e) = self
                        .processor
                        .process_records(input, &mut checkpointer)
                        .await
                    {
                        if self.held.counter().await.is_none() {
                            return self.lose(&mut checkpointer).await;
                        }
                        return Outcome::Failed(e);
                    }
                }
                Ok(Batch::ShardEnd { .. }) => return self.end_shard(&mut checkpointer).await,
                Err(e) => return Outcome::Failed(e),
            }
        }
    }

    /// `None` once every parent lease in the table is finished; the signal if the worker
    /// stopped this consumer first.
    async fn wait_for_parents(&mut self) -> Result<Option<Signal>, Error> {
        loop {
            let mut pending = Vec::new();
            for parent in &self.lease.parent_shard_ids {
                match self.table.describe(parent).await {
                    Ok(lease) if lease.is_finished() => {}
                    Ok(_) => pending.push(parent.clone()),
                    Err(e) if e.kind() == Some("ResourceNotFoundException") => {}
                    Err(e) if e.is_retryable() => pending.push(parent.clone()),
                    Err(e) => return Err(e),
                }
            }
            if pending.is_empty() {
                return Ok(None);
            }
            tracing::debug!(shard = %self.lease.lease_key, ?pending, "waiting for parents");
            tokio::select! {
                _ = tokio::time::sleep(self.config.parent_poll_interval) => {}
                _ = self.signal.changed() => {}
            }
            let signal = *self.signal.borrow_and_update();
            if signal != Signal::Run {
                return Ok(Some(signal));
            }
        }
    }

    fn stopped_before_start(&self, signal: Signal) -> Outcome {
        match signal {
            Signal::Lost => Outcome::Lost,
            Signal::Run | Signal::Shutdown => Outcome::Shutdown,
        }
    }

    async fn lose(&mut self, checkpointer: &mut Checkpointer) -> Outcome {
        checkpointer.set_phase(Phase::Closed);
        if let Err(e) = self.processor.lease_lost().await {
            tracing::warn!(shard = %self.lease.lease_key, error = %e, "lease_lost failed");
        }
        Outcome::Lost
    }

    async fn shut_down(&mut self, checkpointer: &mut Checkpointer) -> Outcome {
        let result = self.processor.shutdown_requested(checkpointer).await;
        checkpointer.set_phase(Phase::Closed);
        match result {
            Ok(()) => Outcome::Shutdown,
            Err(e) => Outcome::Failed(e),
        }
    }

    async fn end_shard(&mut self, checkpointer: &mut Checkpointer) -> Outcome {
        checkpointer.set_phase(Phase::ShardEnded);
        let result = self.processor.shard_ended(checkpointer).await;
        checkpointer.set_phase(Phase::Closed);
        if let Err(e) = result {
            if self.held.counter().await.is_none() {
                return Outcome::Lost;
            }
            return Outcome::Failed(e);
        }
        if !checkpointer.current().is_shard_end() {
            return Outcome::Failed(Error::ShardEndNotCheckpointed {
                lease_key: self.lease.lease_key.clone(),
            });
        }
        Outcome::ShardEnded
    }
}
