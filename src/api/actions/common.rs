//! Pieces several actions share: stream references, shard descriptions, name patterns.

use std::sync::{Arc, LazyLock};

use regex::Regex;
use shardline_engine::meta::{ShardMeta, StreamMeta, StreamMode, StreamStatus};
use shardline_engine::{SequenceNumber, Stream};

use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::Api;

/// `StreamName`: 1 to 128 of `[a-zA-Z0-9_.-]+` (Kinesis API reference).
pub const NAME_PATTERN: &str = "[a-zA-Z0-9_.-]+";
pub static NAME_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("^[a-zA-Z0-9_.-]+$").expect("invariant: static pattern compiles"));
/// `StreamARN`: 1 to 2048 characters.
pub const STREAM_ARN_PATTERN: &str = r"arn:aws.*:kinesis:.*:\d{12}:stream/\S+";
pub static STREAM_ARN_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws.*:kinesis:.*:\d{12}:stream/\S+$")
        .expect("invariant: static pattern compiles")
});
/// `HashKey` and `SequenceNumber` patterns.
pub const HASH_KEY_PATTERN: &str = r"0|([1-9]\d{0,38})";
pub static HASH_KEY_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(0|([1-9]\d{0,38}))$").expect("invariant: static pattern compiles")
});
pub const SEQUENCE_PATTERN: &str = r"0|([1-9]\d{0,128})";
pub static SEQUENCE_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(0|([1-9]\d{0,128}))$").expect("invariant: static pattern compiles")
});

/// Validates a name-like member (`StreamName`, `ShardId`, `ConsumerName`).
pub fn check_name(v: &mut Validator, path: &str, value: Option<&str>, max: usize) {
    v.pattern(path, value, &NAME_RE, NAME_PATTERN);
    v.length(path, value, 1, max);
}

/// The `StreamName` / `StreamARN` pair most operations take.
#[derive(Debug, Clone, Copy)]
pub struct StreamRef<'a> {
    pub name: Option<&'a str>,
    pub arn: Option<&'a str>,
}

impl<'a> StreamRef<'a> {
    /// Reads the members (types only).
    pub fn parse(m: &Members<'a>) -> Result<StreamRef<'a>, ApiError> {
        Ok(StreamRef {
            name: m.string("StreamName")?,
            arn: m.string("StreamARN")?,
        })
    }

    /// Constraint checks: "either ... or both", at least one required.
    pub fn validate(&self, v: &mut Validator) {
        check_name(v, "streamName", self.name, 128);
        v.pattern("streamARN", self.arn, &STREAM_ARN_RE, STREAM_ARN_PATTERN);
        v.length("streamARN", self.arn, 1, 2048);
    }

    /// Resolves to a stream.
    pub fn resolve(&self, api: &Api) -> Result<Arc<Stream>, ApiError> {
        let name = match (self.name, self.arn) {
            (Some(n), _) => n,
            (None, Some(arn)) => arn.rsplit_once("stream/").map_or(arn, |(_, n)| n),
            (None, None) => {
                return Err(ApiError::InvalidArgument(
                    "Either StreamName or StreamARN should be provided.".into(),
                ))
            }
        };
        let stream = api.engine.stream(name).map_err(|e| api.engine_error(e))?;
        if let (Some(arn), Some(_)) = (self.arn, self.name) {
            if arn != stream.meta().arn {
                return Err(ApiError::InvalidArgument(format!(
                    "StreamARN {arn} does not match StreamName {name}."
                )));
            }
        }
        Ok(stream)
    }
}

/// `StreamStatus` on the wire.
pub fn status_name(s: StreamStatus) -> &'static str {
    match s {
        StreamStatus::Creating => "CREATING",
        StreamStatus::Active => "ACTIVE",
        StreamStatus::Updating => "UPDATING",
        StreamStatus::Deleting => "DELETING",
    }
}

/// `StreamModeDetails` on the wire.
pub fn mode_details(m: StreamMode) -> Value {
    Value::map([(
        "StreamMode",
        Value::str(match m {
            StreamMode::Provisioned => "PROVISIONED",
            StreamMode::OnDemand => "ON_DEMAND",
        }),
    )])
}

/// A `Shard` structure.
pub fn shard_value(s: &ShardMeta) -> Value {
    let start = SequenceNumber::shard_start(s.seq_epoch_secs, s.id).to_string();
    let end = s.closed_ms.map(|c| {
        Value::String(SequenceNumber::shard_end(s.seq_epoch_secs, s.id, c / 1000).to_string())
    });
    Value::map([
        ("ShardId", Value::String(s.id.to_string())),
        (
            "ParentShardId",
            s.parent
                .map_or(Value::Null, |p| Value::String(p.to_string())),
        ),
        (
            "AdjacentParentShardId",
            s.adjacent_parent
                .map_or(Value::Null, |p| Value::String(p.to_string())),
        ),
        (
            "HashKeyRange",
            Value::map([
                ("StartingHashKey", Value::String(s.hash_start.to_string())),
                ("EndingHashKey", Value::String(s.hash_end.to_string())),
            ]),
        ),
        (
            "SequenceNumberRange",
            Value::map([
                ("StartingSequenceNumber", Value::String(start)),
                ("EndingSequenceNumber", end.unwrap_or(Value::Null)),
            ]),
        ),
    ])
}

/// Fields shared by `StreamDescription` and `StreamDescriptionSummary`.
pub fn description_fields(m: &StreamMeta) -> Vec<(&'static str, Value)> {
    vec![
        ("StreamName", Value::str(&m.name)),
        ("StreamARN", Value::str(&m.arn)),
        ("StreamStatus", Value::str(status_name(m.status))),
        ("StreamModeDetails", mode_details(m.mode)),
        (
            "RetentionPeriodHours",
            Value::Int(i128::from(m.retention_hours)),
        ),
        (
            "StreamCreationTimestamp",
            Value::Timestamp(m.created_ms as i64),
        ),
        (
            "EnhancedMonitoring",
            Value::List(vec![Value::map([(
                "ShardLevelMetrics",
                Value::List(m.enhanced_metrics.iter().map(Value::str).collect()),
            )])]),
        ),
        (
            "EncryptionType",
            Value::str(m.encryption_type.as_deref().unwrap_or("NONE")),
        ),
        ("KeyId", m.key_id.as_ref().map_or(Value::Null, Value::str)),
    ]
}

/// Runs blocking engine work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("blocking task failed: {e}")))
}
