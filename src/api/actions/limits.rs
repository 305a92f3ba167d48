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

pub fn handle(api: &Api, _m: Members<'_>) -> Result<Value, ApiError> {
    let region = api.engine.config().region.as_str();
    let shard_limit = if LARGE_REGIONS.contains(&region) {
        LARGE_REGION_SHARD_LIMIT
    } else {
        SHARD_LIMIT
    };
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
