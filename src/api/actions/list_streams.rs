//! ListStreams.

use shardline_engine::meta::StreamStatus;

use super::common::{check_name, current_status, mode_details, status_name};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::{now_ms, Api};

/// `Limit`: 1 to 10000, default and cap 100.
const DEFAULT_LIMIT: i64 = 100;

pub fn handle(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let limit = m.int("Limit")?;
    let start = m.string("ExclusiveStartStreamName")?;
    let token = m.string("NextToken")?;
    let mut v = Validator::default();
    v.range("limit", limit, Some(1), Some(10000));
    check_name(&mut v, "exclusiveStartStreamName", start, 128);
    v.length("nextToken", token, 1, 1_048_576);
    v.finish()?;
    let after = match (token, start) {
        (Some(t), _) => Some(t.to_string()),
        (None, s) => s.map(str::to_string),
    };
    let limit = limit.unwrap_or(DEFAULT_LIMIT).min(DEFAULT_LIMIT) as usize;
    let mut metas: Vec<_> = api
        .engine
        .streams()
        .into_iter()
        .map(|s| s.meta())
        .filter(|m| after.as_deref().is_none_or(|a| m.name.as_str() > a))
        // A DELETING stream whose time is up is gone (the next request on it removes it).
        .filter(|m| m.status != StreamStatus::Deleting || m.status_until_ms > now_ms())
        .collect();
    metas.sort_by(|a, b| a.name.cmp(&b.name));
    let more = metas.len() > limit;
    metas.truncate(limit);
    let names = metas.iter().map(|m| Value::str(&m.name)).collect();
    let summaries = metas
        .iter()
        .map(|m| {
            Value::map([
                ("StreamName", Value::str(&m.name)),
                ("StreamARN", Value::str(&m.arn)),
                (
                    "StreamStatus",
                    Value::str(status_name(current_status(m, now_ms()))),
                ),
                ("StreamModeDetails", mode_details(m.mode)),
                (
                    "StreamCreationTimestamp",
                    Value::Timestamp(m.created_ms as i64),
                ),
            ])
        })
        .collect();
    let next = if more {
        metas.last().map_or(Value::Null, |m| Value::str(&m.name))
    } else {
        Value::Null
    };
    Ok(Value::map([
        ("StreamNames", Value::List(names)),
        ("HasMoreStreams", Value::Bool(more)),
        ("NextToken", next),
        ("StreamSummaries", Value::List(summaries)),
    ]))
}
