//! IncreaseStreamRetentionPeriod and DecreaseStreamRetentionPeriod.

use shardline_engine::config::{MAX_RETENTION_HOURS, MIN_RETENTION_HOURS};

use super::common::{blocking, require_active, StreamRef};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::Api;

async fn change(api: &Api, m: Members<'_>, increase: bool) -> Result<Value, ApiError> {
    let r = StreamRef::parse(&m)?;
    let hours = m.int("RetentionPeriodHours")?;
    let mut v = Validator::default();
    r.validate(&mut v);
    v.required("retentionPeriodHours", hours.is_some());
    v.finish()?;
    let hours = hours.unwrap_or_default();
    if hours < i64::from(MIN_RETENTION_HOURS) {
        return Err(ApiError::InvalidArgument(format!(
            "Minimum allowed retention period is {MIN_RETENTION_HOURS} hours. Requested retention period ({hours} hours) is too short."
        )));
    }
    if hours > i64::from(MAX_RETENTION_HOURS) {
        return Err(ApiError::InvalidArgument(format!(
            "Maximum allowed retention period is {MAX_RETENTION_HOURS} hours. Requested retention period ({hours} hours) is too long."
        )));
    }
    let stream = r.resolve(api)?;
    let meta = stream.meta();
    require_active(api, &meta)?;
    let current = i64::from(meta.retention_hours);
    if increase && hours < current {
        return Err(ApiError::InvalidArgument(format!(
            "Requested retention period ({hours} hours) for stream {} can not be shorter than existing retention period ({current} hours). Use DecreaseRetentionPeriod API.",
            meta.name
        )));
    }
    if !increase && hours > current {
        return Err(ApiError::InvalidArgument(format!(
            "Requested retention period ({hours} hours) for stream {} can not be longer than existing retention period ({current} hours). Use IncreaseRetentionPeriod API.",
            meta.name
        )));
    }
    blocking(move || stream.set_retention_hours(hours as u32))
        .await?
        .map_err(|e| api.engine_error(e))?;
    Ok(Value::Null)
}

pub async fn increase(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    change(api, m, true).await
}

pub async fn decrease(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    change(api, m, false).await
}
