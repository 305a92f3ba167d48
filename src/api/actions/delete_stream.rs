//! DeleteStream.

use super::common::{blocking, StreamRef};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::Api;

pub async fn handle(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let r = StreamRef::parse(&m)?;
    let _enforce = m.bool("EnforceConsumerDeletion")?;
    let mut v = Validator::default();
    r.validate(&mut v);
    v.finish()?;
    let stream = r.resolve(api)?;
    let name = stream.name();
    let engine = api.engine.clone();
    blocking(move || engine.delete_stream(&name))
        .await?
        .map_err(|e| api.engine_error(e))?;
    Ok(Value::Null)
}
