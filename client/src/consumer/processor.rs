//! The record processor interface (KCL's `ShardRecordProcessor`): one processor per owned
//! shard, called by one task, one call at a time.
//!
//! # Life cycle
//!
//! `initialize` once, then `process_records` for each non-empty batch in order, then
//! exactly one of:
//! - `shard_ended`: the shard was read to its end; the processor must checkpoint
//!   (`checkpointer.checkpoint()` writes `SHARD_END`), else the lease is handed back
//!   unfinished and processed again later;
//! - `lease_lost`: another worker has the lease; no checkpoint is possible;
//! - `shutdown_requested`: the worker is stopping; the processor may checkpoint.
//!
//! An error returned by a callback (or a panic) stops the shard's processing and hands the
//! lease back; processing resumes (here or on another worker) from the last checkpoint.

use std::future::Future;

use crate::error::Error;

use super::checkpointer::Checkpointer;
use super::record::{ExtendedSequenceNumber, Record};

/// What `initialize` is told.
#[derive(Debug, Clone)]
pub struct InitializeInput {
    pub shard_id: String,
    /// The lease's checkpoint: where processing resumes (after it), or a start sentinel.
    pub checkpoint: ExtendedSequenceNumber,
}

/// One batch of records.
#[derive(Debug, Clone)]
pub struct ProcessRecordsInput {
    pub records: Vec<Record>,
    pub millis_behind_latest: Option<u64>,
}

/// A shard's record processor.
pub trait RecordProcessor: Send + 'static {
    /// Called once before any records.
    fn initialize(
        &mut self,
        input: InitializeInput,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Called with each non-empty batch, in shard order.
    fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Another worker has taken the lease; checkpointing is no longer possible.
    fn lease_lost(&mut self) -> impl Future<Output = Result<(), Error>> + Send;

    /// The shard has been read to its end; the processor must checkpoint.
    fn shard_ended(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The worker is shutting down; the processor may checkpoint.
    fn shutdown_requested(
        &mut self,
        checkpointer: &mut Checkpointer,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Makes a processor for each shard the worker starts processing.
pub trait ProcessorFactory: Send + Sync + 'static {
    type Processor: RecordProcessor;

    /// A processor for `shard_id`.
    ///
    /// # Errors
    /// Any: the lease is handed back and the shard tried again later.
    fn create(&self, shard_id: &str) -> Result<Self::Processor, Error>;
}

impl<P, F> ProcessorFactory for F
where
    P: RecordProcessor,
    F: Fn(&str) -> Result<P, Error> + Send + Sync + 'static,
{
    type Processor = P;

    fn create(&self, shard_id: &str) -> Result<P, Error> {
        self(shard_id)
    }
}
