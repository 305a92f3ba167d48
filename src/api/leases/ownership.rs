//! TakeLease, RenewLease and EvictLease: the conditional ownership changes. All three take
//! `ApplicationName`, `LeaseKey`, `Owner` and `ExpectedCounter`; a take checks only the
//! counter, renew and evict the owner too.

use shardline_engine::leases::Expected;

use super::common::{check_counter, check_owner, one_lease, LeaseRef};
use crate::api::actions::common::blocking;
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::Api;

#[derive(Debug, Clone, Copy)]
enum Change {
    Take,
    Renew,
    Evict,
}

pub async fn take(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    change(api, m, Change::Take).await
}

pub async fn renew(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    change(api, m, Change::Renew).await
}

pub async fn evict(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    change(api, m, Change::Evict).await
}

async fn change(api: &Api, m: Members<'_>, change: Change) -> Result<Value, ApiError> {
    let r = LeaseRef::parse(&m)?;
    let owner = m.string("Owner")?;
    let counter = m.long("ExpectedCounter")?;
    let mut v = Validator::default();
    r.validate(&mut v);
    check_owner(&mut v, owner);
    check_counter(&mut v, counter);
    v.finish()?;
    let (application, shard) = r.resolve(api)?;
    let owner = owner.unwrap_or_default().to_string();
    let counter = u64::try_from(counter.unwrap_or_default()).unwrap_or_default();
    let engine = api.engine.clone();
    let done = blocking(move || {
        let leases = engine.leases();
        let expected = Expected {
            owner: &owner,
            counter,
        };
        match change {
            Change::Take => leases.take(&application, shard, &owner, counter),
            Change::Renew => leases.renew(&application, shard, expected),
            Change::Evict => leases.evict(&application, shard, expected),
        }
    })
    .await?
    .map_err(|e| api.engine_error(e))?;
    Ok(one_lease(&done.stream, &done.lease))
}
