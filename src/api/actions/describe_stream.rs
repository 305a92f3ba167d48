//! DescribeStream and DescribeStreamSummary.

use shardline_engine::meta::StreamStatus;
use shardline_engine::ShardId;

use super::common::{
    check_name, current_status, description_fields, shard_value, stream_id, StreamRef,
};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::{now_ms, Api};

/// DescribeStream `Limit`: 1 to 10000, default and cap 100.
const DEFAULT_LIMIT: i64 = 100;

pub fn describe(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let r = StreamRef::parse(&m)?;
    let limit = m.int("Limit")?;
    let start = m.string("ExclusiveStartShardId")?;
    let mut v = Validator::default();
    r.validate(&mut v);
    v.range("limit", limit, Some(1), Some(10000));
    check_name(&mut v, "exclusiveStartShardId", start, 128);
    v.finish()?;
    let meta = r.resolve(api)?.meta();
    let limit = limit.unwrap_or(DEFAULT_LIMIT).min(DEFAULT_LIMIT) as usize;
    let after = start.and_then(ShardId::parse);
    // A CREATING stream lists no shards yet (AWS, recorded by kinesalite).
    let creating = current_status(&meta, now_ms()) == StreamStatus::Creating;
    let mut shards: Vec<_> = meta
        .shards
        .iter()
        .filter(|s| !creating && after.is_none_or(|a| s.id > a))
        .collect();
    shards.sort_by_key(|s| s.id);
    let more = shards.len() > limit;
    shards.truncate(limit);
    let mut fields = description_fields(&meta);
    fields.push((
        "Shards",
        Value::List(shards.into_iter().map(shard_value).collect()),
    ));
    fields.push(("HasMoreShards", Value::Bool(more)));
    Ok(Value::map([("StreamDescription", Value::map(fields))]))
}

pub fn summary(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let r = StreamRef::parse(&m)?;
    let mut v = Validator::default();
    r.validate(&mut v);
    v.finish()?;
    let meta = r.resolve(api)?.meta();
    let mut fields = description_fields(&meta);
    fields.push((
        "OpenShardCount",
        Value::Int(meta.shards.iter().filter(|s| s.is_open()).count() as i128),
    ));
    fields.push(("StreamId", Value::String(stream_id(&meta))));
    fields.push((
        "ConsumerCount",
        Value::Int(super::consumers::live_consumers(&meta, now_ms()).count() as i128),
    ));
    if let Some(mibps) = meta.warm_throughput_mibps {
        fields.push((
            "WarmThroughput",
            Value::map([
                ("TargetMiBps", Value::Int(i128::from(mibps))),
                ("CurrentMiBps", Value::Int(i128::from(mibps))),
            ]),
        ));
    }
    fields.push((
        "MaxRecordSizeInKiB",
        Value::Int(i128::from(meta.max_record_bytes / 1024)),
    ));
    Ok(Value::map([(
        "StreamDescriptionSummary",
        Value::map(fields),
    )]))
}
