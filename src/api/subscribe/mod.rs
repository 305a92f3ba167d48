//! SubscribeToShard: enhanced fan-out push over an event stream (wire reference §6).
//!
//! # Shape
//!
//! Everything that can fail before streaming (validation, unknown consumer or shard, a
//! consumer not ACTIVE, a bad starting position, a live subscription younger than 5 s) is an
//! ordinary error response. Otherwise the answer is HTTP 200 with
//! `Content-Type: application/vnd.amazon.eventstream` and a body of messages: first
//! `initial-response` (`{}`), then `SubscribeToShardEvent`s (see [`push`]).
//!
//! # Layout
//!
//! - [`registry`]: one live subscription per (consumer, shard), the 5-second takeover rule.
//! - [`push`]: the task that reads the shard and sends events, driven by the shard's
//!   append notifications.
//! - [`body`]: the bounded channel that carries events to the connection (backpressure).

pub mod body;
pub mod push;
pub mod registry;

use std::sync::Arc;
use std::time::Instant;

use shardline_engine::meta::ConsumerStatus;
use shardline_engine::ShardId;

use super::actions::common::{check_name, require_readable};
use super::actions::consumers::{self, CONSUMER_ARN_PATTERN};
use super::actions::get_shard_iterator::{start_offset, TYPES};
use super::error::ApiError;
use super::input::{Members, Validator};
use super::value::Protocol;
use super::{now_ms, Api};
pub use body::EventBody;
pub use registry::Subscriptions;

static CONSUMER_ARN_RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(CONSUMER_ARN_PATTERN).expect("invariant: static pattern compiles")
});

/// Checks the request, claims the (consumer, shard) slot and starts the push task; returns
/// the body the task feeds.
///
/// # Errors
/// Validation, ResourceNotFound (consumer, stream, shard), ResourceInUse (consumer not
/// ACTIVE, or a live subscription younger than 5 s), InvalidArgument (starting position).
pub async fn handle(
    api: &Arc<Api>,
    protocol: Protocol,
    m: Members<'_>,
) -> Result<EventBody, ApiError> {
    let arn = m.string("ConsumerARN")?;
    let shard_id = m.string("ShardId")?;
    let position = m.structure("StartingPosition")?;
    let (kind, seq, ts) = match position {
        Some(p) => (
            p.string("Type")?,
            p.string("SequenceNumber")?,
            p.timestamp_ms("Timestamp")?,
        ),
        None => (None, None, None),
    };
    let mut v = Validator::default();
    v.required("consumerARN", arn.is_some());
    v.pattern("consumerARN", arn, &CONSUMER_ARN_RE, CONSUMER_ARN_PATTERN);
    v.length("consumerARN", arn, 1, 2048);
    v.required("shardId", shard_id.is_some());
    check_name(&mut v, "shardId", shard_id, 128);
    v.required("startingPosition", position.is_some());
    if position.is_some() {
        v.required("startingPosition.type", kind.is_some());
        v.one_of("startingPosition.type", kind, &TYPES);
        v.pattern(
            "startingPosition.sequenceNumber",
            seq,
            &super::actions::common::SEQUENCE_RE,
            super::actions::common::SEQUENCE_PATTERN,
        );
    }
    v.finish()?;
    let arn = arn.unwrap_or_default();
    let found = consumers::resolve_consumer_arn(api, arn)?;
    let account = api.account();
    if consumers::live_status(&found.consumer, now_ms()) != Some(ConsumerStatus::Active) {
        // AWS's text, as SDK users report it (awslabs/kinesis-hot-shard-advisor#37).
        return Err(ApiError::ResourceInUse(format!(
            "Consumer {} with creation timestamp {} under stream: {} , account {account} is not in ACTIVE status.",
            found.consumer.name,
            found.consumer.created_ms / 1000,
            found.meta.name
        )));
    }
    let meta = found.meta;
    require_readable(api, &meta)?;
    let shard_id = shard_id.unwrap_or_default();
    let missing = |id: &str| {
        ApiError::ResourceNotFound(format!(
            "Shard {id} in stream {} under account {account} does not exist",
            meta.name
        ))
    };
    let id = ShardId::parse(shard_id).ok_or_else(|| missing(shard_id))?;
    let sm = meta
        .shards
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| missing(&id.to_string()))?
        .clone();
    let shard = found
        .stream
        .shard(id)
        .ok_or_else(|| missing(&id.to_string()))?;
    let offset = start_offset(
        api,
        &meta,
        &sm,
        &shard,
        kind.unwrap_or_default(),
        seq,
        ts,
        "SubscribeToShard",
    )
    .await?;
    let claim = api.subscriptions.claim(arn, id, Instant::now())?;
    let (tx, body) = body::channel();
    let task = push::Subscription {
        api: api.clone(),
        protocol,
        stream: found.stream,
        consumer_arn: arn.to_string(),
        shard,
        id,
        epoch_secs: sm.seq_epoch_secs,
        pos: offset,
        metrics: api.metrics.shard(&meta.name, id),
        claim,
        tx,
    };
    tokio::spawn(task.run());
    Ok(body)
}
