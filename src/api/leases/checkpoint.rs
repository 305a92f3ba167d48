//! Checkpoint: records how far the lease's owner has processed its shard.

use std::sync::LazyLock;

use regex::Regex;
use shardline_engine::leases::Expected;

use super::common::{check_counter, check_owner, one_lease, LeaseRef};
use crate::api::actions::common::blocking;
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::Api;

/// A Kinesis sequence number (`0|([1-9]\d{0,128})`) or a checkpoint sentinel.
const CHECKPOINT_PATTERN: &str = r"0|([1-9]\d{0,128})|TRIM_HORIZON|LATEST|AT_TIMESTAMP|SHARD_END";
static CHECKPOINT_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(0|([1-9]\d{0,128})|TRIM_HORIZON|LATEST|AT_TIMESTAMP|SHARD_END)$")
        .expect("invariant: static pattern compiles")
});

pub async fn handle(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let r = LeaseRef::parse(&m)?;
    let owner = m.string("Owner")?;
    let counter = m.long("ExpectedCounter")?;
    let sequence = m.string("SequenceNumber")?;
    let sub = m.long("SubSequenceNumber")?;
    let mut v = Validator::default();
    r.validate(&mut v);
    check_owner(&mut v, owner);
    check_counter(&mut v, counter);
    v.required("sequenceNumber", sequence.is_some());
    v.pattern(
        "sequenceNumber",
        sequence,
        &CHECKPOINT_RE,
        CHECKPOINT_PATTERN,
    );
    v.range("subSequenceNumber", sub, Some(0), None);
    v.finish()?;
    let (application, shard) = r.resolve(api)?;
    let owner = owner.unwrap_or_default().to_string();
    let counter = u64::try_from(counter.unwrap_or_default()).unwrap_or_default();
    let sequence = sequence.unwrap_or_default().to_string();
    let sub = u64::try_from(sub.unwrap_or_default()).unwrap_or_default();
    let engine = api.engine.clone();
    let done = blocking(move || {
        let expected = Expected {
            owner: &owner,
            counter,
        };
        engine
            .leases()
            .checkpoint(&application, shard, expected, &sequence, sub)
    })
    .await?
    .map_err(|e| api.engine_error(e))?;
    Ok(one_lease(&done.stream, &done.lease))
}
