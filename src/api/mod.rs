//! The Kinesis Data Streams API layer.
//!
//! # Layout
//!
//! - [`server`]: HTTP/1.1 and h2c on one port, the request envelope, health.
//! - [`value`]: the protocol-neutral body tree; JSON (awsJson1.1) and CBOR codecs.
//! - [`input`]: typed member access with AWS's type and validation messages.
//! - [`error`]: Kinesis error types and statuses; the one engine-error mapping.
//! - [`iterator`]: sealed shard iterator tokens.
//! - [`actions`]: one module per operation: parse -> apply -> render.

pub mod actions;
pub mod error;
pub mod input;
pub mod iterator;
pub mod server;
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
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            iterator_ttl: Duration::from_secs(300),
        }
    }
}

/// Everything a request handler needs.
pub struct Api {
    pub engine: Arc<Engine>,
    pub iterators: IteratorCodec,
    pub config: ApiConfig,
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
