//! EnableEnhancedMonitoring and DisableEnhancedMonitoring.
//!
//! Shardline publishes no CloudWatch metrics; the shard-level metric set is recorded and
//! reported (DescribeStream's `EnhancedMonitoring`) so tools that manage it converge.

use super::common::{ensure_active, update_meta, StreamRef};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::Api;

/// `MetricsName` values but `ALL`, in AWS's order.
const METRICS: [&str; 7] = [
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];
/// `MetricsName` as the model lists it: the metrics and `ALL`.
const METRICS_NAMES: [&str; 8] = [
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
    "ALL",
];
/// `MetricsNameList`: 1 to 7 names.
const MAX_METRICS: usize = 7;

fn names(list: &[String]) -> Value {
    Value::List(list.iter().map(Value::str).collect())
}

async fn change(api: &Api, m: Members<'_>, enable: bool) -> Result<Value, ApiError> {
    let r = StreamRef::parse(&m)?;
    let metrics = m.string_list("ShardLevelMetrics")?;
    let mut v = Validator::default();
    v.required("shardLevelMetrics", metrics.is_some());
    if let Some(list) = metrics.as_deref() {
        v.list_length("shardLevelMetrics", Some(list.len()), 1, MAX_METRICS);
        if list.iter().any(|n| !METRICS_NAMES.contains(n)) {
            v.elements(
                "shardLevelMetrics",
                "Member",
                &[format!(
                    "Member must satisfy enum value set: [{}]",
                    METRICS_NAMES.join(", ")
                )],
            );
        }
    }
    r.validate(&mut v);
    v.finish()?;
    let stream = r.resolve(api)?;
    let requested = metrics.unwrap_or_default();
    let all = requested.contains(&"ALL");
    let picked: Vec<&'static str> = METRICS
        .into_iter()
        .filter(|n| all || requested.contains(n))
        .collect();
    let account = api.account().to_string();
    let (name, arn, current, desired) = update_meta(api, &stream, move |m| {
        ensure_active(&account, m)?;
        let current = m.enhanced_metrics.clone();
        let desired: Vec<String> = METRICS
            .into_iter()
            .filter(|n| {
                let had = current.iter().any(|c| c == n);
                if enable {
                    had || picked.contains(n)
                } else {
                    had && !picked.contains(n)
                }
            })
            .map(str::to_string)
            .collect();
        m.enhanced_metrics = desired.clone();
        Ok((m.name.clone(), m.arn.clone(), current, desired))
    })
    .await?;
    Ok(Value::map([
        ("StreamName", Value::String(name)),
        ("CurrentShardLevelMetrics", names(&current)),
        ("DesiredShardLevelMetrics", names(&desired)),
        ("StreamARN", Value::String(arn)),
    ]))
}

pub async fn enable(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    change(api, m, true).await
}

pub async fn disable(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    change(api, m, false).await
}
