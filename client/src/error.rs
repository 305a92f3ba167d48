//! The crate's one error type: transport and service failures of a call, and the consumer's
//! lease and checkpoint rules.

use hyper::StatusCode;

/// How long one call may take before it counts as failed (and may be retried).
pub const CALL_TIMEOUT_SECS: u64 = 30;

/// Why a call, a checkpoint or a record processor failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error (`__type` and `message`).
    #[error("{kind}{}{message}", if message.is_empty() { "" } else { ": " })]
    Service {
        /// `__type`, e.g. `ResourceNotFoundException`.
        kind: String,
        message: String,
        status: StatusCode,
    },
    /// The endpoint URL is unusable.
    #[error("endpoint '{endpoint}': {detail}")]
    Endpoint { endpoint: String, detail: String },
    /// A header that cannot be sent, e.g. a session token with control characters.
    #[error("cannot build the {op} request: {detail}")]
    Request { op: String, detail: String },
    #[error("cannot reach {endpoint}")]
    Unreachable {
        endpoint: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("no answer from {endpoint} within {CALL_TIMEOUT_SECS} s")]
    Timeout { endpoint: String },
    #[error("reading the response from {endpoint}")]
    Body {
        endpoint: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A body that is not what the operation answers with.
    #[error("unexpected response to {op} (HTTP {status}): {detail}")]
    BadResponse {
        op: String,
        status: StatusCode,
        detail: String,
    },
    /// The worker no longer holds the lease: a renewal or checkpoint was refused, or the
    /// lease could not be renewed within the failover time.
    #[error("lease {lease_key} lost: {detail}")]
    LeaseLost { lease_key: String, detail: String },
    /// A checkpoint before the lease's current checkpoint.
    #[error("checkpoint {requested} of {lease_key} is before its checkpoint {current}")]
    CheckpointBackwards {
        lease_key: String,
        requested: String,
        current: String,
    },
    /// A checkpoint after the last record delivered to the processor.
    #[error("checkpoint {requested} of {lease_key} is beyond the last delivered record {last_delivered}")]
    CheckpointBeyondDelivered {
        lease_key: String,
        requested: String,
        last_delivered: String,
    },
    /// Not a decimal sequence number.
    #[error("'{value}' is not a sequence number")]
    InvalidSequenceNumber { value: String },
    /// Checkpointing where the processor may not: after the lease was lost, after shutdown,
    /// or before any checkpointer exists.
    #[error("cannot checkpoint {lease_key} now: {detail}")]
    CheckpointerClosed { lease_key: String, detail: String },
    /// The processor returned from `shard_ended` without checkpointing `SHARD_END`.
    #[error("the record processor of {lease_key} did not checkpoint at the end of the shard")]
    ShardEndNotCheckpointed { lease_key: String },
    /// A record processor failed.
    #[error("record processor of {shard_id}: {detail}")]
    Processor { shard_id: String, detail: String },
    /// A SubscribeToShard event stream that cannot be decoded or reported an error.
    #[error("event stream of {shard_id}: {detail}")]
    EventStream { shard_id: String, detail: String },
    /// The worker's configuration is unusable.
    #[error("invalid configuration: {detail}")]
    Config { detail: String },
    /// The producer gave up on a record: its last failure (a non-retryable error, or the
    /// attempts ran out).
    #[error("record not written after {attempts} attempt(s): {code}{}{message}", if message.is_empty() { "" } else { ": " })]
    RecordFailed {
        code: String,
        message: String,
        attempts: u32,
    },
    /// A record the service would refuse (key or size out of bounds), refused before sending.
    #[error("invalid record: {detail}")]
    InvalidRecord { detail: String },
    /// The producer was closed (or its task is gone) before the record was resolved.
    #[error("the producer is closed")]
    ProducerClosed,
}

impl Error {
    /// Whether the same call may succeed later: throttling, server faults and transport
    /// failures, not errors in the request itself.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Service { kind, status, .. } => {
                status.is_server_error()
                    || matches!(
                        kind.as_str(),
                        "ProvisionedThroughputExceededException"
                            | "ThrottlingException"
                            | "LimitExceededException"
                            | "InternalFailure"
                            | "ServiceUnavailable"
                    )
            }
            Error::Unreachable { .. } | Error::Timeout { .. } | Error::Body { .. } => true,
            Error::BadResponse { status, .. } => status.is_server_error(),
            Error::EventStream { .. } => true,
            Error::Endpoint { .. }
            | Error::Request { .. }
            | Error::LeaseLost { .. }
            | Error::CheckpointBackwards { .. }
            | Error::CheckpointBeyondDelivered { .. }
            | Error::InvalidSequenceNumber { .. }
            | Error::CheckpointerClosed { .. }
            | Error::ShardEndNotCheckpointed { .. }
            | Error::Processor { .. }
            | Error::Config { .. }
            | Error::RecordFailed { .. }
            | Error::InvalidRecord { .. }
            | Error::ProducerClosed => false,
        }
    }

    /// The service's error type, for an [`Error::Service`].
    pub fn kind(&self) -> Option<&str> {
        match self {
            Error::Service { kind, .. } => Some(kind),
            _ => None,
        }
    }

    /// Whether the server refused a conditional lease write (owner or counter changed).
    pub fn is_condition_failed(&self) -> bool {
        self.kind() == Some("ConditionalCheckFailedException")
    }
}
