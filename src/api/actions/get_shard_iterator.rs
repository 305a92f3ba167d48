//! GetShardIterator.

use std::sync::Arc;

use shardline_engine::meta::{ShardMeta, StreamMeta};
use shardline_engine::{SequenceNumber, Shard, ShardId};

use super::common::{
    blocking, check_name, require_readable, StreamRef, SEQUENCE_PATTERN, SEQUENCE_RE,
};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::iterator::IteratorPosition;
use crate::api::value::Value;
use crate::api::{now_ms, Api};

/// `ShardIteratorType` values, in AWS's message order.
pub(crate) const TYPES: [&str; 5] = [
    "AFTER_SEQUENCE_NUMBER",
    "LATEST",
    "AT_TIMESTAMP",
    "AT_SEQUENCE_NUMBER",
    "TRIM_HORIZON",
];

pub async fn handle(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let r = StreamRef::parse(&m)?;
    let shard_id = m.string("ShardId")?;
    let kind = m.string("ShardIteratorType")?;
    let seq = m.string("StartingSequenceNumber")?;
    let ts = m.timestamp_ms("Timestamp")?;
    let mut v = Validator::default();
    r.validate(&mut v);
    v.required("shardId", shard_id.is_some());
    check_name(&mut v, "shardId", shard_id, 128);
    v.required("shardIteratorType", kind.is_some());
    v.one_of("shardIteratorType", kind, &TYPES);
    v.pattern(
        "startingSequenceNumber",
        seq,
        &SEQUENCE_RE,
        SEQUENCE_PATTERN,
    );
    v.finish()?;
    let account = api.account();
    let shard_id = shard_id.unwrap_or_default();
    let kind = kind.unwrap_or_default();
    let stream_name = r
        .name
        .or(r.arn.and_then(|a| a.rsplit_once("stream/").map(|(_, n)| n)));
    // AWS names the shard, not the stream, when either is missing; an id that does not
    // parse is "Could not find shard".
    let Some(id) = ShardId::parse(shard_id) else {
        return Err(ApiError::ResourceNotFound(format!(
            "Could not find shard {shard_id} in stream {} under account {account}.",
            stream_name.unwrap_or_default()
        )));
    };
    let stream = match r.resolve(api) {
        Err(ApiError::ResourceNotFound(_)) => {
            return Err(ApiError::ResourceNotFound(format!(
                "Shard {id} in stream {} under account {account} does not exist",
                stream_name.unwrap_or_default()
            )))
        }
        other => other?,
    };
    let meta = stream.meta();
    require_readable(api, &meta)?;
    let not_found = |id: &str| {
        ApiError::ResourceNotFound(format!(
            "Shard {id} in stream {} under account {account} does not exist",
            meta.name
        ))
    };
    let sm = meta
        .shards
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| not_found(&id.to_string()))?;
    let shard = stream.shard(id).ok_or_else(|| not_found(&id.to_string()))?;
    let offset = start_offset(api, &meta, sm, &shard, kind, seq, ts, "GetShardIterator").await?;
    let token = api.iterators.seal(&IteratorPosition {
        stream_name: meta.name.clone(),
        stream_created_ms: meta.created_ms,
        shard_index: id.0,
        offset,
        issued_ms: now_ms(),
    });
    Ok(Value::map([("ShardIterator", Value::String(token))]))
}

/// The log offset a starting position (`ShardIteratorType` and its sequence number or
/// timestamp) names on shard `sm`, with AWS's argument checks; `operation` names the call in
/// messages. Shared by GetShardIterator and SubscribeToShard.
#[expect(
    clippy::too_many_arguments,
    reason = "the starting position's parts, as both operations read them"
)]
pub(crate) async fn start_offset(
    api: &Api,
    meta: &StreamMeta,
    sm: &ShardMeta,
    shard: &Arc<Shard>,
    kind: &str,
    seq: Option<&str>,
    ts: Option<i64>,
    operation: &str,
) -> Result<u64, ApiError> {
    let account = api.account();
    let id = sm.id;
    let needs_seq = matches!(kind, "AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER");
    match (needs_seq, seq.is_some()) {
        (true, false) | (false, true) if kind != "AT_TIMESTAMP" => {
            return Err(ApiError::InvalidArgument(format!(
                "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {kind} and {}.",
                if seq.is_some() { "also a StartingSequenceNumber" } else { "no StartingSequenceNumber" }
            )))
        }
        _ => {}
    }
    let end = sm.end_offset;
    let offset = match kind {
        "TRIM_HORIZON" => shard.trim_offset().0,
        "LATEST" => end.unwrap_or_else(|| shard.next_offset().0),
        "AT_TIMESTAMP" => {
            let ts = ts.ok_or_else(|| {
                ApiError::InvalidArgument(
                    "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter.".into(),
                )
            })?;
            let now = now_ms() as i64;
            if ts > now {
                return Err(ApiError::InvalidArgument(format!(
                    "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. timestampInMillis: {ts}, currentTimestampInMillis: {now}"
                )));
            }
            let shard = shard.clone();
            blocking(move || shard.offset_at_time(ts.max(0) as u64))
                .await?
                .map_err(|e| api.engine_error(e))?
                .0
        }
        _ => {
            let text = seq.unwrap_or_default();
            let invalid = |suffix: &str| {
                ApiError::InvalidArgument(format!(
                    "StartingSequenceNumber {text} used in {operation} on shard {id} in stream {} under account {account} is invalid{suffix}.",
                    meta.name
                ))
            };
            let parsed = SequenceNumber::parse(text).map_err(|_| invalid(""))?;
            if parsed.shard != id {
                return Err(ApiError::InvalidArgument(format!(
                    "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {id}",
                    parsed.shard
                )));
            }
            if parsed.epoch_secs != sm.seq_epoch_secs {
                return Err(invalid(" because it did not come from this stream"));
            }
            // A number the shard never handed out (beyond its last record) would make the
            // iterator skip whatever is written up to it: refuse it.
            let counter = parsed.offset().0;
            if !parsed.is_shard_end() && counter > 0 && counter >= shard.next_offset().0 {
                return Err(invalid(""));
            }
            let at = if parsed.is_shard_end() {
                end.unwrap_or_else(|| shard.next_offset().0)
            } else {
                parsed.offset().0
            };
            // `before_first` (a SubscribeToShard continuation before any record) names no
            // record: the position after it is the shard's first record.
            if kind == "AFTER_SEQUENCE_NUMBER"
                && !parsed.is_shard_end()
                && !parsed.is_before_first()
            {
                at + 1
            } else {
                at
            }
        }
    };
    Ok(offset)
}
