//! DescribeLimits.

use shardline_engine::meta::StreamMode;

use crate::api::error::ApiError;
use crate::api::input::Members;
use crate::api::value::Value;
use crate::api::Api;

/// Default shard quota per account and region (Kinesis developer guide, "Quotas and
/// limits"): 500 in US East (N. Virginia), US West (Oregon) and Europe (Ireland), 200
/// elsewhere. It applies to provisioned streams.
const LARGE_REGION_SHARD_LIMIT: i128 = 500;
const SHARD_LIMIT: i128 = 200;
const LARGE_REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "eu-west-1"];
/// Default on-demand streams per account (same guide).
const ON_DEMAND_STREAM_LIMIT: i128 = 50;

/// The account's shard quota: `--shard-limit`, else AWS's default for the region.
pub fn shard_limit(api: &Api) -> i128 {
    if let Some(l) = api.config.shard_limit {
        return i128::from(l);
    }
    let region = api.engine.config().region.as_str();
    if LARGE_REGIONS.contains(&region) {
        LARGE_REGION_SHARD_LIMIT
    } else {
        SHARD_LIMIT
    }
}

/// Open shards of provisioned streams, and the number of on-demand streams.
fn usage(api: &Api) -> (i128, i128) {
    let (mut open_shards, mut on_demand) = (0i128, 0i128);
    for s in api.engine.streams() {
        let m = s.meta();
        match m.mode {
            StreamMode::OnDemand => on_demand += 1,
            StreamMode::Provisioned => {
                open_shards += m.shards.iter().filter(|s| s.is_open()).count() as i128;
            }
        }
    }
    (open_shards, on_demand)
}

/// Refuses a request that would take the account's open provisioned shards past the quota.
pub fn check_shard_quota(api: &Api, additional: i128) -> Result<(), ApiError> {
    let (current, _) = usage(api);
    let limit = shard_limit(api);
    if additional > 0 && current + additional > limit {
        return Err(ApiError::LimitExceeded(format!(
            "This request would exceed the shard limit for the account {} in {}. Current shard count for the account: {current}. Limit: {limit}. Number of additional shards that would have resulted from this request: {additional}. Refer to the AWS Service Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits and how to request higher limits.",
            api.account(),
            api.engine.config().region
        )));
    }
    Ok(())
}

pub fn handle(api: &Api, _m: Members<'_>) -> Result<Value, ApiError> {
    let shard_limit = shard_limit(api);
    let (open_shards, on_demand) = usage(api);
    Ok(Value::map([
        ("ShardLimit", Value::Int(shard_limit)),
        ("OpenShardCount", Value::Int(open_shards)),
        ("OnDemandStreamCount", Value::Int(on_demand)),
        (
            "OnDemandStreamCountLimit",
            Value::Int(ON_DEMAND_STREAM_LIMIT),
        ),
    ]))
}
