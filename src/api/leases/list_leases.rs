//! ListLeases: every lease of an application, by lease key.

use super::common::{check_application, leases_value, position_fields};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::Api;

pub fn handle(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let application = m.string("ApplicationName")?;
    let mut v = Validator::default();
    check_application(&mut v, application);
    v.finish()?;
    let table = api
        .engine
        .leases()
        .table(application.unwrap_or_default())
        .map_err(|e| api.engine_error(e))?;
    let mut fields = vec![
        ("Leases", leases_value(&table)),
        ("StreamName", Value::str(&table.stream)),
    ];
    fields.extend(position_fields(table.initial_position));
    Ok(Value::map(fields))
}
