//! A KCL-shaped consumer: a [`Worker`] balances an application's leases among its workers
//! and runs a [`RecordProcessor`] per held shard.
//!
//! # Layout
//!
//! - [`worker`]: configuration, the scheduler loop (take, shard sync), graceful shutdown.
//! - `renewer`: renews every held lease every failover/3.
//! - [`taker`]: which leases to take (lease-count balancing, expiry on the local clock).
//! - `shard`: one shard's consumer: parents first, then the processor's life cycle.
//! - [`processor`]: the [`RecordProcessor`] trait and its inputs.
//! - [`checkpointer`]: checkpoint rules and the conditional Checkpoint write.
//! - [`record`]: records and extended sequence numbers (the KPL de-aggregation seam).
//! - [`fetch`]: record retrieval ([`fetch::polling`]).
//! - `held`: a held lease shared by renewer, consumer and checkpointer.

pub mod checkpointer;
pub mod fetch;
mod held;
pub mod processor;
pub mod record;
mod renewer;
mod shard;
pub mod taker;
pub mod worker;

pub use checkpointer::Checkpointer;
pub use processor::{InitializeInput, ProcessRecordsInput, ProcessorFactory, RecordProcessor};
pub use record::{ExtendedSequenceNumber, Record};
pub use worker::{Transport, Worker, WorkerConfig};
