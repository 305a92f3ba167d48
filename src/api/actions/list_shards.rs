//! ListShards: paging, ExclusiveStartShardId and every ShardFilter type.

use base64::Engine as _;
use shardline_engine::meta::ShardMeta;
use shardline_engine::ShardId;

use shardline_engine::meta::StreamStatus;

use super::common::{check_name, current_status, not_active, shard_value, StreamRef};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::{now_ms, Api};

/// `MaxResults`: 1 to 10000, default and cap 1000.
const DEFAULT_MAX_RESULTS: i64 = 1000;
/// NextToken lifetime (AWS: 300 seconds).
const TOKEN_TTL_MS: u64 = 300_000;
const FILTER_TYPES: [&str; 6] = [
    "AFTER_SHARD_ID",
    "AT_TRIM_HORIZON",
    "FROM_TRIM_HORIZON",
    "AT_LATEST",
    "AT_TIMESTAMP",
    "FROM_TIMESTAMP",
];

struct Token {
    stream: String,
    /// The stream incarnation's creation time: a token outlives no delete and re-create.
    created_ms: u64,
    after: u32,
    filter: String,
    issued_ms: u64,
}

fn encode_token(t: &Token) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!(
        "2|{}|{}|{}|{}|{}",
        t.after, t.issued_ms, t.created_ms, t.filter, t.stream
    ))
}

fn decode_token(s: &str) -> Option<Token> {
    let raw = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.splitn(6, '|');
    if parts.next()? != "2" {
        return None;
    }
    Some(Token {
        after: parts.next()?.parse().ok()?,
        issued_ms: parts.next()?.parse().ok()?,
        created_ms: parts.next()?.parse().ok()?,
        filter: parts.next()?.to_string(),
        stream: parts.next()?.to_string(),
    })
}

fn keep(s: &ShardMeta, filter: &str, ts: Option<u64>, trim_horizon_open: bool) -> bool {
    match filter {
        "AT_LATEST" => s.is_open(),
        "AT_TRIM_HORIZON" => trim_horizon_open,
        "AT_TIMESTAMP" => {
            ts.is_some_and(|t| s.created_ms <= t && s.closed_ms.is_none_or(|c| c >= t))
        }
        "FROM_TIMESTAMP" => ts.is_some_and(|t| s.closed_ms.is_none_or(|c| c >= t)),
        _ => true,
    }
}

pub fn handle(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let r = StreamRef::parse(&m)?;
    let token = m.string("NextToken")?;
    let start = m.string("ExclusiveStartShardId")?;
    let max = m.int("MaxResults")?;
    let created = m.timestamp_ms("StreamCreationTimestamp")?;
    let filter = m.structure("ShardFilter")?;
    let (ftype, fshard, fts) = match filter {
        Some(f) => (
            f.string("Type")?,
            f.string("ShardId")?,
            f.timestamp_ms("Timestamp")?,
        ),
        None => (None, None, None),
    };
    let mut v = Validator::default();
    r.validate(&mut v);
    v.length("nextToken", token, 1, 1_048_576);
    check_name(&mut v, "exclusiveStartShardId", start, 128);
    v.range("maxResults", max, Some(1), Some(10000));
    if filter.is_some() {
        v.required("shardFilter.type", ftype.is_some());
        v.one_of("shardFilter.type", ftype, &FILTER_TYPES);
        check_name(&mut v, "shardFilter.shardId", fshard, 128);
    }
    v.finish()?;
    let (stream, after, ftype) = match token {
        Some(t) => {
            if r.name.is_some() || r.arn.is_some() || start.is_some() || created.is_some() {
                return Err(ApiError::InvalidArgument(
                    "NextToken and StreamName cannot be provided together.".into(),
                ));
            }
            let tok = decode_token(t)
                .ok_or_else(|| ApiError::InvalidArgument("Invalid NextToken.".into()))?;
            if now_ms().saturating_sub(tok.issued_ms) > TOKEN_TTL_MS {
                return Err(ApiError::ExpiredNextToken(format!(
                    "The timestamp of the NextToken {t} has expired."
                )));
            }
            let stream = api
                .engine
                .stream(&tok.stream)
                .ok()
                .filter(|s| s.meta().created_ms == tok.created_ms)
                .ok_or_else(|| {
                    api.engine_error(shardline_engine::Error::StreamNotFound(tok.stream.clone()))
                })?;
            (stream, Some(ShardId(tok.after)), tok.filter)
        }
        None => {
            if r.name.is_none() && r.arn.is_none() {
                return Err(ApiError::InvalidArgument(
                    "Either NextToken or StreamName should be provided.".into(),
                ));
            }
            let stream = r.resolve(api)?;
            let ftype = ftype.unwrap_or("FROM_TRIM_HORIZON");
            let mut after = start.and_then(ShardId::parse);
            match ftype {
                "AFTER_SHARD_ID" => {
                    let id = fshard.ok_or_else(|| {
                        ApiError::InvalidArgument(
                            "ShardId must be provided for the AFTER_SHARD_ID ShardFilter type."
                                .into(),
                        )
                    })?;
                    after = ShardId::parse(id);
                }
                "AT_TIMESTAMP" | "FROM_TIMESTAMP" if fts.is_none() => {
                    return Err(ApiError::InvalidArgument(format!(
                        "Timestamp must be provided for the {ftype} ShardFilter type."
                    )))
                }
                _ => {}
            }
            let ftype = match (ftype, fts) {
                ("AT_TIMESTAMP" | "FROM_TIMESTAMP", Some(t)) => format!("{ftype}@{t}"),
                _ => ftype.to_string(),
            };
            (stream, after, ftype)
        }
    };
    let meta = stream.meta();
    let status = current_status(&meta, now_ms());
    if status == StreamStatus::Creating {
        return Err(not_active(api, &meta, status));
    }
    if let Some(c) = created {
        if c as u64 != meta.created_ms && c as u64 / 1000 != meta.created_ms / 1000 {
            return Err(ApiError::ResourceNotFound(format!(
                "Stream {} under account {} not found.",
                meta.name,
                api.account()
            )));
        }
    }
    let (kind, ts) = match ftype.split_once('@') {
        Some((k, t)) => (k.to_string(), t.parse::<u64>().ok()),
        None => (ftype.clone(), None),
    };
    // Shards open at the trim horizon: those with no retained predecessor data, i.e. every
    // shard whose parents are gone from the listing.
    let present: Vec<ShardId> = meta.shards.iter().map(|s| s.id).collect();
    let mut shards: Vec<&ShardMeta> = meta
        .shards
        .iter()
        .filter(|s| after.is_none_or(|a| s.id > a))
        .filter(|s| {
            let horizon_open = ![s.parent, s.adjacent_parent]
                .into_iter()
                .flatten()
                .any(|p| present.contains(&p));
            keep(s, &kind, ts, horizon_open)
        })
        .collect();
    shards.sort_by_key(|s| s.id);
    let max = max.unwrap_or(DEFAULT_MAX_RESULTS).min(DEFAULT_MAX_RESULTS) as usize;
    let more = shards.len() > max;
    shards.truncate(max);
    let next = match (more, shards.last()) {
        (true, Some(last)) => Value::String(encode_token(&Token {
            stream: meta.name.clone(),
            created_ms: meta.created_ms,
            after: last.id.0,
            filter: ftype,
            issued_ms: now_ms(),
        })),
        _ => Value::Null,
    };
    Ok(Value::map([
        (
            "Shards",
            Value::List(shards.into_iter().map(shard_value).collect()),
        ),
        ("NextToken", next),
    ]))
}
