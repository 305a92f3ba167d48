//! The Kinesis Data Streams API layer.
//!
//! # Layout
//!
//! - [`server`]: HTTP/1.1 and HTTP/2 (h2c, or over TLS) on one port, the request envelope,
//!   health, metrics, logs.
//! - [`tls`]: `--tls-cert`/`--tls-key` loading and ALPN.
//! - [`auth`]: SigV4 verification (`--auth`).
//! - [`metrics`]: Prometheus series named after Kinesis's CloudWatch metrics.
//! - [`limits`]: per-shard throughput quotas as token buckets (`--emulate-limits`).
//! - [`value`]: the protocol-neutral body tree; JSON (awsJson1.1) and CBOR codecs.
//! - [`input`]: typed member access with AWS's type and validation messages.
//! - [`error`]: Kinesis error types and statuses; the one engine-error mapping.
//! - [`iterator`]: sealed shard iterator tokens.
//! - [`actions`]: one module per operation: parse -> apply -> render.
//! - [`leases`]: the Lease API (`ShardlineLeases_20261126.*`): KCL-style lease tables, one
//!   module per operation.
//! - [`subscribe`]: SubscribeToShard, the one streaming operation (enhanced fan-out).
//! - [`eventstream`]: event-stream message framing for it.

pub mod actions;
pub mod auth;
pub mod buffers;
pub mod error;
pub mod eventstream;
pub mod input;
pub mod iterator;
pub mod leases;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod subscribe;
pub mod tls;
pub mod value;

use std::sync::Arc;
use std::time::Duration;

use shardline_engine::Engine;

use error::ApiError;
use iterator::IteratorCodec;

/// API settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// How long a shard iterator stays valid (AWS: 5 minutes).
    pub iterator_ttl: Duration,
    /// How long a stream stays CREATING after CreateStream and UPDATING after a reshard or
    /// an encryption change (AWS: seconds to minutes). Zero makes every change immediate.
    pub state_transition: Duration,
    /// `--auth`: keys whose SigV4 signatures are accepted. `None` takes any signature or
    /// none, as local AWS tools expect.
    pub credentials: Option<Arc<auth::Credentials>>,
    /// Account shard quota (`--shard-limit`); AWS's regional default when `None`.
    pub shard_limit: Option<u32>,
    /// How long a SubscribeToShard stream lasts before the client must subscribe again
    /// (AWS: 5 minutes; `--subscription-lifetime-ms`).
    pub subscription_lifetime: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            iterator_ttl: Duration::from_secs(300),
            state_transition: Duration::ZERO,
            credentials: None,
            shard_limit: None,
            subscription_lifetime: Duration::from_secs(300),
        }
    }
}

/// Everything a request handler needs.
pub struct Api {
    pub engine: Arc<Engine>,
    pub iterators: IteratorCodec,
    pub config: ApiConfig,
    /// Served at `GET /metrics`.
    pub metrics: metrics::Metrics,
    /// `--emulate-limits`: per-shard quotas; `None` (the default) costs nothing per request.
    pub limits: Option<limits::Limits>,
    /// Live SubscribeToShard streams, one per (consumer, shard).
    pub subscriptions: subscribe::Subscriptions,
}

impl Api {
    /// The account id that fills ARNs and messages.
    pub fn account(&self) -> &str {
        &self.engine.config().account_id
    }

    /// Maps an engine error for this account.
    pub fn engine_error(&self, e: shardline_engine::Error) -> ApiError {
        ApiError::from_engine(e, self.account())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
