//! API errors: Kinesis error types, their HTTP statuses and messages.
//!
//! One exhaustive `match` maps engine errors to these ([`ApiError::from_engine`]); wire names
//! are append-only. Client errors are 400, internal failures 500, never the other way round.

use shardline_engine::Error as EngineError;

/// Everything an API call can fail with, as the client sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// Constraint violations, each an AWS-worded item.
    Validation(Vec<String>),
    /// A ValidationException whose message is one plain sentence (not a constraint list).
    ValidationMessage(String),
    /// Body is not an object of the expected types; `Some` carries the `Message` text.
    Serialization(Option<String>),
    UnknownOperation,
    ResourceNotFound(String),
    ResourceInUse(String),
    InvalidArgument(String),
    LimitExceeded(String),
    ExpiredIterator(String),
    ExpiredNextToken(String),
    ProvisionedThroughputExceeded(String),
    #[expect(
        dead_code,
        reason = "AWS answers it for IAM denials; nothing here denies access yet"
    )]
    AccessDenied(String),
    MissingAuthenticationToken,
    UnrecognizedClient(String),
    InvalidSignature(String),
    IncompleteSignature(String),
    /// Lease API: a conditional lease update found another owner or counter.
    ConditionalCheckFailed(String),
    /// Kinesis's InternalFailure (HTTP 500); the text goes to the log, not the client.
    Internal(String),
}

/// Most validation items AWS lists in one message.
const MAX_VALIDATION_ITEMS: usize = 10;

impl ApiError {
    /// The `__type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            ApiError::Validation(_) | ApiError::ValidationMessage(_) => "ValidationException",
            ApiError::Serialization(_) => "SerializationException",
            ApiError::UnknownOperation => "UnknownOperationException",
            ApiError::ResourceNotFound(_) => "ResourceNotFoundException",
            ApiError::ResourceInUse(_) => "ResourceInUseException",
            ApiError::InvalidArgument(_) => "InvalidArgumentException",
            ApiError::LimitExceeded(_) => "LimitExceededException",
            ApiError::ExpiredIterator(_) => "ExpiredIteratorException",
            ApiError::ExpiredNextToken(_) => "ExpiredNextTokenException",
            ApiError::ProvisionedThroughputExceeded(_) => "ProvisionedThroughputExceededException",
            ApiError::AccessDenied(_) => "AccessDeniedException",
            ApiError::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            ApiError::UnrecognizedClient(_) => "UnrecognizedClientException",
            ApiError::InvalidSignature(_) => "InvalidSignatureException",
            ApiError::IncompleteSignature(_) => "IncompleteSignatureException",
            ApiError::ConditionalCheckFailed(_) => "ConditionalCheckFailedException",
            ApiError::Internal(_) => "InternalFailure",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Internal(_) => 500,
            ApiError::Validation(_)
            | ApiError::ValidationMessage(_)
            | ApiError::Serialization(_)
            | ApiError::UnknownOperation
            | ApiError::ResourceNotFound(_)
            | ApiError::ResourceInUse(_)
            | ApiError::InvalidArgument(_)
            | ApiError::LimitExceeded(_)
            | ApiError::ExpiredIterator(_)
            | ApiError::ExpiredNextToken(_)
            | ApiError::ProvisionedThroughputExceeded(_)
            | ApiError::AccessDenied(_)
            | ApiError::MissingAuthenticationToken
            | ApiError::UnrecognizedClient(_)
            | ApiError::InvalidSignature(_)
            | ApiError::IncompleteSignature(_)
            | ApiError::ConditionalCheckFailed(_) => 400,
        }
    }

    /// The message field: (key, text). SerializationException's type errors use `Message`.
    pub fn message(&self) -> Option<(&'static str, String)> {
        match self {
            ApiError::Validation(items) => {
                let n = items.len();
                let shown: Vec<&str> = items
                    .iter()
                    .take(MAX_VALIDATION_ITEMS)
                    .map(String::as_str)
                    .collect();
                let head = if n == 1 {
                    "1 validation error detected: ".to_string()
                } else {
                    format!("{n} validation errors detected: ")
                };
                Some(("message", head + &shown.join("; ")))
            }
            ApiError::Serialization(m) => m.clone().map(|m| ("Message", m)),
            ApiError::UnknownOperation | ApiError::Internal(_) => None,
            ApiError::MissingAuthenticationToken => {
                Some(("message", "Missing Authentication Token".into()))
            }
            ApiError::ValidationMessage(m)
            | ApiError::ResourceNotFound(m)
            | ApiError::ResourceInUse(m)
            | ApiError::InvalidArgument(m)
            | ApiError::LimitExceeded(m)
            | ApiError::ExpiredIterator(m)
            | ApiError::ExpiredNextToken(m)
            | ApiError::ProvisionedThroughputExceeded(m)
            | ApiError::AccessDenied(m)
            | ApiError::UnrecognizedClient(m)
            | ApiError::InvalidSignature(m)
            | ApiError::IncompleteSignature(m)
            | ApiError::ConditionalCheckFailed(m) => Some(("message", m.clone())),
        }
    }

    /// Maps an engine error. `account` fills AWS's message templates.
    pub fn from_engine(e: EngineError, account: &str) -> ApiError {
        match e {
            EngineError::StreamNotFound(name) => {
                ApiError::ResourceNotFound(format!("Stream {name} under account {account} not found."))
            }
            EngineError::StreamExists(name) => {
                ApiError::ResourceInUse(format!("Stream {name} under account {account} already exists."))
            }
            EngineError::ShardNotFound { stream, shard } => ApiError::ResourceNotFound(format!(
                "Could not find shard {shard} in stream {stream} under account {account}."
            )),
            EngineError::ShardClosed { stream, shard } => ApiError::InvalidArgument(format!(
                "Shard {shard} in stream {stream} under account {account} has already been merged or split, and thus is not eligible for merging or splitting."
            )),
            EngineError::InvalidReshard(m) | EngineError::InvalidInput(m) => ApiError::InvalidArgument(m),
            EngineError::InvalidSequenceNumber { value, reason } => {
                ApiError::InvalidArgument(format!("Invalid sequence number {value}: {reason}"))
            }
            EngineError::LeaseTableNotFound { application } => ApiError::ResourceNotFound(format!(
                "Application {application} has no lease table."
            )),
            EngineError::LeaseNotFound { application, lease } => ApiError::ResourceNotFound(format!(
                "Lease {lease} of application {application} not found."
            )),
            e @ EngineError::LeaseConditionFailed { .. } => ApiError::ConditionalCheckFailed(e.to_string()),
            EngineError::LeaseStreamMismatch { application, bound, given } => ApiError::InvalidArgument(format!(
                "The lease table of application {application} belongs to stream {bound}, not {given}."
            )),
            EngineError::LeaseStreamGone { application, stream } => ApiError::ResourceNotFound(format!(
                "Stream {stream} that the lease table of application {application} was created for no longer exists under account {account}; delete the lease table to start over."
            )),
            e @ (EngineError::Io { .. }
            | EngineError::Locked { .. }
            | EngineError::Corrupt { .. }
            | EngineError::BadFormat { .. }
            | EngineError::Poisoned { .. }
            | EngineError::ShuttingDown) => ApiError::Internal(e.to_string()),
            // The engine's enum is non_exhaustive; anything new is an internal failure until
            // mapped here.
            e => ApiError::Internal(e.to_string()),
        }
    }
}
