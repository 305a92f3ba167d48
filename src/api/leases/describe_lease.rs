//! DescribeLease: one lease.

use super::common::{one_lease, LeaseRef};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::Api;

pub fn handle(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let r = LeaseRef::parse(&m)?;
    let mut v = Validator::default();
    r.validate(&mut v);
    v.finish()?;
    let (application, shard) = r.resolve(api)?;
    let got = api
        .engine
        .leases()
        .lease(&application, shard)
        .map_err(|e| api.engine_error(e))?;
    Ok(one_lease(&got.stream, &got.lease))
}
