//! DeleteLeaseTable: drops an application's table and its file.

use super::common::check_application;
use crate::api::actions::common::blocking;
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::Api;

pub async fn handle(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let application = m.string("ApplicationName")?;
    let mut v = Validator::default();
    check_application(&mut v, application);
    v.finish()?;
    let application = application.unwrap_or_default().to_string();
    let engine = api.engine.clone();
    blocking(move || engine.leases().delete_table(&application))
        .await?
        .map_err(|e| api.engine_error(e))?;
    Ok(Value::map([]))
}
