//! CreateStream.

use shardline_engine::meta::{StreamMode, StreamStatus};
use shardline_engine::CreateStream;

use super::common::{blocking, check_name, reap_if_deleted};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::{now_ms, Api};

/// `MaxRecordSizeInKiB`: 1024 to 10240 (Kinesis API reference).
const MIN_RECORD_KIB: i64 = 1024;
const MAX_RECORD_KIB: i64 = 10240;

pub async fn handle(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let name = m.string("StreamName")?;
    let shard_count = m.int("ShardCount")?;
    let mode = match m.structure("StreamModeDetails")? {
        Some(d) => d.string("StreamMode")?.map(str::to_string),
        None => None,
    };
    let warm = m.int("WarmThroughputMiBps")?;
    let max_kib = m.int("MaxRecordSizeInKiB")?;
    let tags = m.string_map("Tags")?;
    let mut v = Validator::default();
    v.required("streamName", name.is_some());
    check_name(&mut v, "streamName", name, 128);
    v.range("shardCount", shard_count, Some(1), None);
    v.one_of(
        "streamModeDetails.streamMode",
        mode.as_deref(),
        &["PROVISIONED", "ON_DEMAND"],
    );
    v.range("warmThroughputMiBps", warm, Some(0), None);
    v.range(
        "maxRecordSizeInKiB",
        max_kib,
        Some(MIN_RECORD_KIB),
        Some(MAX_RECORD_KIB),
    );
    v.finish()?;
    let name = name.unwrap_or_default().to_string();
    let mode = match mode.as_deref() {
        Some("ON_DEMAND") => StreamMode::OnDemand,
        _ => StreamMode::Provisioned,
    };
    let shards = match (mode, shard_count) {
        (_, Some(n)) => n as u32,
        (StreamMode::OnDemand, None) => 4,
        (StreamMode::Provisioned, None) => {
            return Err(ApiError::InvalidArgument(
                "ShardCount is required for a PROVISIONED stream.".into(),
            ))
        }
    };
    // A DELETING stream whose time is up no longer holds the name.
    if let Ok(old) = api.engine.stream(&name) {
        let _ = reap_if_deleted(api, &old);
    }
    if mode == StreamMode::Provisioned {
        super::limits::check_shard_quota(api, i128::from(shards))?;
    }
    let mut spec = CreateStream::new(name, shards);
    spec.mode = mode;
    spec.max_record_bytes = max_kib.map(|k| (k * 1024) as u32);
    let transition = api.config.state_transition;
    if !transition.is_zero() {
        spec.status = StreamStatus::Creating;
        spec.status_until_ms = now_ms() + transition.as_millis() as u64;
    }
    spec.tags = tags
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| shardline_engine::meta::Tag {
            key: k.to_string(),
            value: v.to_string(),
        })
        .collect();
    let engine = api.engine.clone();
    let warm = warm.map(|w| w as u32);
    blocking(move || {
        let stream = engine.create_stream(spec)?;
        if warm.is_some() {
            stream.update_meta(|m| {
                m.warm_throughput_mibps = warm;
                Ok(())
            })?;
        }
        Ok::<(), shardline_engine::Error>(())
    })
    .await?
    .map_err(|e| api.engine_error(e))?;
    Ok(Value::Null)
}
