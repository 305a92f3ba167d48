//! Pieces several actions share: stream references, shard descriptions, name patterns,
//! stream status transitions.
//!
//! # Status transitions
//!
//! With `--state-transition-ms N` (N > 0) a stream is CREATING for N ms after CreateStream,
//! UPDATING for N ms after a reshard or an encryption change, and DELETING for N ms before
//! DeleteStream removes it. The stored `status_until_ms` says when the transition ends; the
//! move to ACTIVE is computed when the stream is read ([`current_status`]) and persisted by
//! the next metadata write ([`update_meta`]), so no timer has to survive a restart. A
//! DELETING stream whose time has passed is removed by the next request that finds it
//! ([`StreamRef::resolve`]), or by the timer DeleteStream starts.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use regex::Regex;
use shardline_engine::meta::{ShardMeta, StreamMeta, StreamMode, StreamStatus};
use shardline_engine::{SequenceNumber, ShardId, Stream};

use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::{now_ms, Api};

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

/// `ResourceARN` (TagResource, PutResourcePolicy, ...): 1 to 2048 characters, a stream or
/// consumer ARN.
pub const RESOURCE_ARN_PATTERN: &str = r"arn:aws.*:kinesis:.*:\d{12}:.*stream/\S+";
pub static RESOURCE_ARN_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws.*:kinesis:.*:\d{12}:.*stream/\S+$")
        .expect("invariant: static pattern compiles")
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
        reap_if_deleted(api, &stream)?;
        if let (Some(arn), None) = (self.arn, self.name) {
            // An ARN of another account or region names a stream this server does not have.
            if arn != stream.meta().arn {
                return Err(
                    api.engine_error(shardline_engine::Error::StreamNotFound(name.to_string()))
                );
            }
        }
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

/// Resolves a `ResourceARN` to its stream. Consumer ARNs (`.../consumer/...`) and ARNs of
/// other accounts or regions are not found.
pub fn resolve_resource(api: &Api, arn: &str) -> Result<Arc<Stream>, ApiError> {
    if arn.contains("/consumer/") {
        return Err(ApiError::ResourceNotFound(format!(
            "Consumer {arn}, account {} not found.",
            api.account()
        )));
    }
    let name = arn.rsplit_once(":stream/").map_or(arn, |(_, n)| n);
    let not_found = || {
        ApiError::ResourceNotFound(format!(
            "Stream {name} under account {} not found.",
            api.account()
        ))
    };
    let stream = api.engine.stream(name).map_err(|_| not_found())?;
    reap_if_deleted(api, &stream)?;
    if stream.meta().arn != arn {
        return Err(not_found());
    }
    Ok(stream)
}

/// Finishes the deletion of a DELETING stream whose transition has passed, answering
/// ResourceNotFound for it as AWS does once a stream is gone.
pub fn reap_if_deleted(api: &Api, stream: &Stream) -> Result<(), ApiError> {
    let (status, until) = stream.status();
    if status != StreamStatus::Deleting || until > now_ms() {
        return Ok(());
    }
    let name = stream.name();
    match api.engine.delete_stream(&name) {
        Ok(()) | Err(shardline_engine::Error::StreamNotFound(_)) => {}
        Err(e) => return Err(api.engine_error(e)),
    }
    Err(api.engine_error(shardline_engine::Error::StreamNotFound(name)))
}

/// The status clients see at `now_ms`: a CREATING or UPDATING transition whose time has
/// passed is ACTIVE, whether or not that has been written yet.
pub fn current_status(m: &StreamMeta, now_ms: u64) -> StreamStatus {
    match m.status {
        StreamStatus::Creating | StreamStatus::Updating if m.status_until_ms <= now_ms => {
            StreamStatus::Active
        }
        s => s,
    }
}

/// `ResourceInUseException` for a stream that is not ACTIVE.
pub fn not_active(api: &Api, m: &StreamMeta, status: StreamStatus) -> ApiError {
    not_active_in(api.account(), &m.name, status)
}

fn not_active_in(account: &str, name: &str, status: StreamStatus) -> ApiError {
    ApiError::ResourceInUse(format!(
        "Stream {name} under account {account} not ACTIVE, instead in state {}",
        status_name(status)
    ))
}

/// Fails with ResourceInUse unless the stream is ACTIVE now.
pub fn require_active(api: &Api, m: &StreamMeta) -> Result<(), ApiError> {
    match current_status(m, now_ms()) {
        StreamStatus::Active => Ok(()),
        s => Err(not_active(api, m, s)),
    }
}

/// [`require_active`] inside an [`update_meta`] closure, where `m.status` is current and
/// the check is atomic with the change.
pub fn ensure_active(account: &str, m: &StreamMeta) -> Result<(), ApiError> {
    match m.status {
        StreamStatus::Active => Ok(()),
        s => Err(not_active_in(account, &m.name, s)),
    }
}

/// Records and reads need a stream that exists for clients: CREATING streams have no shards
/// yet and DELETING ones are going, so both are not found (as kinesalite records of AWS).
pub fn require_readable(api: &Api, m: &StreamMeta) -> Result<(), ApiError> {
    match current_status(m, now_ms()) {
        StreamStatus::Creating | StreamStatus::Deleting => {
            Err(api.engine_error(shardline_engine::Error::StreamNotFound(m.name.clone())))
        }
        StreamStatus::Active | StreamStatus::Updating => Ok(()),
    }
}

/// Puts the stream into UPDATING for `transition` (no-op when it is zero).
pub fn begin_update(m: &mut StreamMeta, transition: Duration) {
    if !transition.is_zero() {
        m.status = StreamStatus::Updating;
        m.status_until_ms = now_ms() + transition.as_millis() as u64;
    }
}

/// After a change made outside [`update_meta`] (split, merge): UPDATING for the configured
/// transition time.
pub async fn mark_updating(api: &Api, stream: &Arc<Stream>) -> Result<(), ApiError> {
    let transition = api.config.state_transition;
    if transition.is_zero() {
        return Ok(());
    }
    update_meta(api, stream, move |m| {
        begin_update(m, transition);
        Ok(())
    })
    .await
}

/// Changes a stream's metadata with `f` and persists it (off the async threads). `f` sees
/// the status transitions that have completed already applied; if it fails, nothing is
/// written.
pub async fn update_meta<T: Send + 'static>(
    api: &Api,
    stream: &Arc<Stream>,
    f: impl FnOnce(&mut StreamMeta) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let stream = stream.clone();
    let (out, rejected) = blocking(move || {
        let mut rejected = None;
        let out = stream.update_meta(|m| {
            let status = current_status(m, now_ms());
            if status != m.status {
                m.status = status;
                m.status_until_ms = 0;
            }
            f(m).map_err(|e| {
                rejected = Some(e);
                // Aborts the write; the caller gets the API error kept in `rejected`.
                shardline_engine::Error::InvalidInput("rejected by the API layer".into())
            })
        });
        (out, rejected)
    })
    .await?;
    match (out, rejected) {
        (_, Some(e)) => Err(e),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(api.engine_error(e)),
    }
}

/// A stable `StreamId` (`[a-z0-9]{20}-[a-z0-9]{3}`) for one incarnation of a stream.
pub fn stream_id(m: &StreamMeta) -> String {
    use sha2::Digest as _;
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let digest = sha2::Sha256::digest(m.dir_name.as_bytes());
    let mut id: String = digest
        .iter()
        .take(23)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    id.insert(20, '-');
    id
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

/// The `ChildShards` of shard `id` (GetRecords and SubscribeToShard at a closed shard's end).
pub fn child_shards(meta: &StreamMeta, id: ShardId) -> Value {
    let children = meta
        .shards
        .iter()
        .filter(|c| c.parent == Some(id) || c.adjacent_parent == Some(id))
        .map(|c| {
            let parents = [c.parent, c.adjacent_parent]
                .into_iter()
                .flatten()
                .map(|p| Value::String(p.to_string()))
                .collect();
            Value::map([
                ("ShardId", Value::String(c.id.to_string())),
                ("ParentShards", Value::List(parents)),
                (
                    "HashKeyRange",
                    Value::map([
                        ("StartingHashKey", Value::String(c.hash_start.to_string())),
                        ("EndingHashKey", Value::String(c.hash_end.to_string())),
                    ]),
                ),
            ])
        })
        .collect();
    Value::List(children)
}

/// Fields shared by `StreamDescription` and `StreamDescriptionSummary`.
pub fn description_fields(m: &StreamMeta) -> Vec<(&'static str, Value)> {
    vec![
        ("StreamName", Value::str(&m.name)),
        ("StreamARN", Value::str(&m.arn)),
        (
            "StreamStatus",
            Value::str(status_name(current_status(m, now_ms()))),
        ),
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
