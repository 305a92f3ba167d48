//! DeleteLease: removes a finished shard's lease; later syncs do not create it again.

use super::common::LeaseRef;
use crate::api::actions::common::blocking;
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::Api;

pub async fn handle(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let r = LeaseRef::parse(&m)?;
    let mut v = Validator::default();
    r.validate(&mut v);
    v.finish()?;
    let (application, shard) = r.resolve(api)?;
    let engine = api.engine.clone();
    blocking(move || engine.leases().delete_lease(&application, shard))
        .await?
        .map_err(|e| api.engine_error(e))?;
    Ok(Value::map([]))
}
