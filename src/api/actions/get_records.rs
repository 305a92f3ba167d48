//! GetRecords.

use shardline_engine::{Offset, ShardId};

use super::common::{blocking, STREAM_ARN_PATTERN, STREAM_ARN_RE};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::iterator::{IteratorPosition, MAX_ITERATOR_CHARS};
use crate::api::value::{RecordList, Value};
use crate::api::{limits, now_ms, Api};

/// `Limit`: 1 to 10000 records, default 10000; at most 10 MiB per call.
const MAX_LIMIT: i64 = 10_000;
const MAX_BYTES: usize = 10 << 20;

fn java_date(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|d| d.format("%a %b %d %H:%M:%S UTC %Y").to_string())
        .unwrap_or_default()
}

pub async fn handle(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let started = std::time::Instant::now();
    let token = m.string("ShardIterator")?;
    let limit = m.int("Limit")?;
    let arn = m.string("StreamARN")?;
    let mut v = Validator::default();
    v.required("shardIterator", token.is_some());
    v.length("shardIterator", token, 1, MAX_ITERATOR_CHARS);
    v.range("limit", limit, Some(1), Some(MAX_LIMIT));
    v.pattern("streamARN", arn, &STREAM_ARN_RE, STREAM_ARN_PATTERN);
    v.finish()?;
    let pos = api.iterators.open(token.unwrap_or_default())?;
    let now = now_ms();
    let ttl = api.config.iterator_ttl.as_millis() as u64;
    if now.saturating_sub(pos.issued_ms) > ttl {
        return Err(ApiError::ExpiredIterator(format!(
            "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {ttl} milliseconds.",
            java_date(pos.issued_ms),
            java_date(now)
        )));
    }
    let account = api.account();
    let stream = api
        .engine
        .stream(&pos.stream_name)
        .ok()
        .filter(|s| s.meta().created_ms == pos.stream_created_ms)
        .ok_or_else(|| {
            ApiError::ResourceNotFound(format!(
                "Shard {} in stream {} under account {account} does not exist",
                ShardId(pos.shard_index),
                pos.stream_name
            ))
        })?;
    let id = ShardId(pos.shard_index);
    let missing = || {
        ApiError::ResourceNotFound(format!(
            "Shard {id} in stream {} under account {account} does not exist",
            pos.stream_name
        ))
    };
    let shard = stream.shard(id).ok_or_else(missing)?;
    let sm = stream.shard_meta(id).ok_or_else(missing)?;
    let limit = limit.unwrap_or(MAX_LIMIT) as usize;
    let from = Offset(pos.offset);
    let reader = shard.clone();
    let limiter = limits::admit_read(api, &pos.stream_name, id)?;
    let out = blocking(move || reader.read_batches(from, limit, MAX_BYTES))
        .await?
        .map_err(|e| api.engine_error(e))?;
    if let Some(l) = limiter {
        l.charge_read(out.bytes, std::time::Instant::now());
    }
    let tip = shard.next_offset();
    let behind = match out.batches.last().and_then(|b| b.records().last()) {
        Some(r) if out.next < tip => now.saturating_sub(r.timestamp_ms),
        _ => 0,
    };
    api.metrics.record_get(
        &pos.stream_name,
        id,
        started,
        out.record_count,
        out.bytes,
        behind,
    );
    let next = out.next;
    let records = Value::Records(RecordList {
        epoch_secs: sm.seq_epoch_secs,
        shard: id,
        read: out,
    });
    let at_end = sm.end_offset.is_some_and(|end| next.0 >= end);
    let mut fields = vec![
        ("Records", records),
        ("MillisBehindLatest", Value::Int(i128::from(behind))),
    ];
    if at_end {
        let children = super::common::child_shards(&stream.meta(), id);
        fields.push(("ChildShards", children));
    } else {
        let next = api.iterators.seal(&IteratorPosition {
            offset: next.0,
            issued_ms: now,
            ..pos
        });
        fields.push(("NextShardIterator", Value::String(next)));
    }
    Ok(Value::map(fields))
}
