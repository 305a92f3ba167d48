//! ListLeaseTables: the applications that have a lease table, ascending.

use crate::api::error::ApiError;
use crate::api::input::Members;
use crate::api::value::Value;
use crate::api::Api;

pub fn handle(api: &Api, _m: Members<'_>) -> Result<Value, ApiError> {
    let names = api.engine.leases().applications();
    Ok(Value::map([(
        "ApplicationNames",
        Value::List(names.into_iter().map(Value::String).collect()),
    )]))
}
