//! UpdateStreamMode, UpdateMaxRecordSize and UpdateStreamWarmThroughput.

use shardline_engine::meta::StreamMode;

use super::common::{begin_update, ensure_active, update_meta, StreamRef};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::Api;

/// `MaxRecordSizeInKiB`: 1024 to 10240 (Kinesis API reference).
const MIN_RECORD_KIB: i64 = 1024;
const MAX_RECORD_KIB: i64 = 10240;
const MODES: [&str; 2] = ["PROVISIONED", "ON_DEMAND"];

/// Changes the capacity mode. The shards stay as they are; asking for the current mode
/// changes nothing (tools such as Terraform send it on every refresh).
pub async fn update_stream_mode(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let arn = m.string("StreamARN")?;
    let details = m.structure("StreamModeDetails")?;
    let mode = match details {
        Some(d) => d.string("StreamMode")?,
        None => None,
    };
    let warm = m.int("WarmThroughputMiBps")?;
    let r = StreamRef { name: None, arn };
    let mut v = Validator::default();
    v.required("streamARN", arn.is_some());
    r.validate(&mut v);
    v.required("streamModeDetails", details.is_some());
    if details.is_some() {
        v.required("streamModeDetails.streamMode", mode.is_some());
        v.one_of("streamModeDetails.streamMode", mode, &MODES);
    }
    v.range("warmThroughputMiBps", warm, Some(0), None);
    v.finish()?;
    let stream = r.resolve(api)?;
    let mode = match mode {
        Some("ON_DEMAND") => StreamMode::OnDemand,
        _ => StreamMode::Provisioned,
    };
    let account = api.account().to_string();
    let transition = api.config.state_transition;
    update_meta(api, &stream, move |m| {
        ensure_active(&account, m)?;
        if let Some(w) = warm {
            m.warm_throughput_mibps = Some(w as u32);
        }
        if m.mode != mode {
            m.mode = mode;
            begin_update(m, transition);
        }
        Ok(())
    })
    .await?;
    Ok(Value::Null)
}

pub async fn update_max_record_size(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let arn = m.string("StreamARN")?;
    let kib = m.int("MaxRecordSizeInKiB")?;
    let r = StreamRef { name: None, arn };
    let mut v = Validator::default();
    r.validate(&mut v);
    v.required("maxRecordSizeInKiB", kib.is_some());
    v.range(
        "maxRecordSizeInKiB",
        kib,
        Some(MIN_RECORD_KIB),
        Some(MAX_RECORD_KIB),
    );
    v.finish()?;
    let stream = r.resolve(api)?;
    let bytes = (kib.unwrap_or(MIN_RECORD_KIB) * 1024) as u32;
    let account = api.account().to_string();
    update_meta(api, &stream, move |m| {
        ensure_active(&account, m)?;
        m.max_record_bytes = bytes;
        Ok(())
    })
    .await?;
    Ok(Value::Null)
}

/// Warm throughput is an on-demand setting; Shardline applies it at once, so the current
/// value equals the target.
pub async fn update_stream_warm_throughput(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let r = StreamRef::parse(&m)?;
    let warm = m.int("WarmThroughputMiBps")?;
    let mut v = Validator::default();
    r.validate(&mut v);
    v.required("warmThroughputMiBps", warm.is_some());
    v.range("warmThroughputMiBps", warm, Some(0), None);
    v.finish()?;
    let stream = r.resolve(api)?;
    let mibps = warm.unwrap_or_default() as u32;
    let account = api.account().to_string();
    let (name, arn) = update_meta(api, &stream, move |m| {
        ensure_active(&account, m)?;
        if m.mode != StreamMode::OnDemand {
            return Err(ApiError::ValidationMessage(format!(
                "Request is invalid. Stream {} under account {account} is in Provisioned mode.",
                m.name
            )));
        }
        m.warm_throughput_mibps = Some(mibps);
        Ok((m.name.clone(), m.arn.clone()))
    })
    .await?;
    let mibps = Value::Int(i128::from(mibps));
    Ok(Value::map([
        ("StreamARN", Value::String(arn)),
        ("StreamName", Value::String(name)),
        (
            "WarmThroughput",
            Value::map([("TargetMiBps", mibps.clone()), ("CurrentMiBps", mibps)]),
        ),
    ]))
}
