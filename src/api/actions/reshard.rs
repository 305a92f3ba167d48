//! SplitShard and MergeShards.

use shardline_engine::hashkey::HashKey;
use shardline_engine::meta::StreamMode;
use shardline_engine::{ShardId, Stream};

use super::common::{
    blocking, check_name, mark_updating, require_active, StreamRef, HASH_KEY_PATTERN, HASH_KEY_RE,
};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::Api;

/// Split, merge and UpdateShardCount need an ACTIVE, provisioned stream.
pub(super) fn check_reshardable(api: &Api, stream: &Stream) -> Result<(), ApiError> {
    let meta = stream.meta();
    let account = api.account();
    require_active(api, &meta)?;
    if meta.mode == StreamMode::OnDemand {
        return Err(ApiError::ValidationMessage(format!(
            "Request is invalid. Stream {} under account {account} is in On-Demand mode.",
            meta.name
        )));
    }
    Ok(())
}

fn find_shard(api: &Api, stream: &Stream, text: &str) -> Result<ShardId, ApiError> {
    let meta = stream.meta();
    ShardId::parse(text)
        .filter(|id| meta.shards.iter().any(|s| s.id == *id))
        .ok_or_else(|| {
            ApiError::ResourceNotFound(format!(
                "Could not find shard {text} in stream {} under account {}.",
                meta.name,
                api.account()
            ))
        })
}

pub async fn split(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let r = StreamRef::parse(&m)?;
    let shard = m.string("ShardToSplit")?;
    let key = m.string("NewStartingHashKey")?;
    let mut v = Validator::default();
    r.validate(&mut v);
    v.required("shardToSplit", shard.is_some());
    check_name(&mut v, "shardToSplit", shard, 128);
    v.required("newStartingHashKey", key.is_some());
    v.pattern("newStartingHashKey", key, &HASH_KEY_RE, HASH_KEY_PATTERN);
    v.finish()?;
    let stream = r.resolve(api)?;
    check_reshardable(api, &stream)?;
    super::limits::check_shard_quota(api, 1)?;
    let id = find_shard(api, &stream, shard.unwrap_or_default())?;
    let meta = stream.meta();
    let sm = meta.shards.iter().find(|s| s.id == id).cloned();
    let key_text = key.unwrap_or_default().to_string();
    let bad_key = || {
        let (s, e) = sm.as_ref().map_or((0, 0), |s| (s.hash_start, s.hash_end));
        ApiError::InvalidArgument(format!(
            "NewStartingHashKey {key_text} used in SplitShard() on shard {id} in stream {} under account {} is not both greater than one plus the shard's StartingHashKey {s} and less than the shard's EndingHashKey {e}.",
            meta.name,
            api.account()
        ))
    };
    let new_start = HashKey::parse(&key_text).map_err(|_| bad_key())?;
    let target = stream.clone();
    match blocking(move || target.split_shard(id, new_start)).await? {
        Ok(_) => mark_updating(api, &stream).await.map(|()| Value::Null),
        Err(shardline_engine::Error::InvalidReshard(_)) => Err(bad_key()),
        Err(e) => Err(api.engine_error(e)),
    }
}

pub async fn merge(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let r = StreamRef::parse(&m)?;
    let a = m.string("ShardToMerge")?;
    let b = m.string("AdjacentShardToMerge")?;
    let mut v = Validator::default();
    r.validate(&mut v);
    v.required("shardToMerge", a.is_some());
    check_name(&mut v, "shardToMerge", a, 128);
    v.required("adjacentShardToMerge", b.is_some());
    check_name(&mut v, "adjacentShardToMerge", b, 128);
    v.finish()?;
    let stream = r.resolve(api)?;
    check_reshardable(api, &stream)?;
    let ia = find_shard(api, &stream, a.unwrap_or_default())?;
    let ib = find_shard(api, &stream, b.unwrap_or_default())?;
    let name = stream.name();
    let target = stream.clone();
    match blocking(move || target.merge_shards(ia, ib)).await? {
        Ok(_) => mark_updating(api, &stream).await.map(|()| Value::Null),
        Err(shardline_engine::Error::InvalidReshard(_)) => Err(ApiError::InvalidArgument(format!(
            "Shards {ia} and {ib} in stream {name} under account {} are not an adjacent pair of shards eligible for merging",
            api.account()
        ))),
        Err(e) => Err(api.engine_error(e)),
    }
}
