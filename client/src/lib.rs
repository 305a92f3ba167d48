//! Shardline's client library: a small Kinesis HTTP client, the typed client of Shardline's
//! lease API, a consumer library with the Kinesis Client Library's worker model, and a
//! producer library with the Kinesis Producer Library's batching and aggregation. It
//! depends on no server code and talks to any endpoint over HTTP.
//!
//! # Layout
//!
//! - [`http`]: one endpoint, `call` per operation (awsJson1.1 over HTTP/1.1; streaming
//!   SubscribeToShard over h2c), errors from `__type`/`message`.
//! - [`sign`]: SigV4 signing with credentials from the AWS environment variables.
//! - [`kinesis`]: typed ListShards, GetShardIterator, GetRecords.
//! - [`kpl`]: the KPL aggregated record format: aggregation and de-aggregation.
//! - [`producer`]: a KPL-style producer (per-shard batching, aggregation, retries with
//!   per-key order, a future per record) over the Kinesis HTTP API or the native protocol.
//! - [`leases`]: the lease table operations (`ShardlineLeases_20261126.*`).
//! - [`consumer`]: the worker, lease taker and renewer, shard consumers, record processors,
//!   checkpointer, and record fetchers.
//! - [`error`]: the crate's one error type.

pub mod consumer;
pub mod error;
pub mod http;
pub mod kinesis;
pub mod kpl;
pub mod leases;
pub mod producer;
pub mod sign;

pub use error::Error;
pub use http::Client;
