//! SyncLeases: creates the application's lease table on first call, then keeps it in step
//! with the stream's shards (rules in `shardline_engine::leases::sync`).

use shardline_engine::leases::InitialPosition;
use shardline_engine::ShardId;

use super::common::{check_application, leases_value, position_fields};
use crate::api::actions::common::{blocking, StreamRef};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::Api;

const POSITIONS: [&str; 3] = ["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"];

pub async fn handle(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let application = m.string("ApplicationName")?;
    let r = StreamRef::parse(&m)?;
    let position = m.string("InitialPosition")?;
    let timestamp_ms = m.timestamp_ms("Timestamp")?;
    let mut v = Validator::default();
    check_application(&mut v, application);
    r.validate(&mut v);
    v.one_of("initialPosition", position, &POSITIONS);
    v.range("timestamp", timestamp_ms.map(|t| t / 1000), Some(0), None);
    v.finish()?;
    let initial = match (position.unwrap_or("TRIM_HORIZON"), timestamp_ms) {
        ("LATEST", _) => InitialPosition::Latest,
        ("AT_TIMESTAMP", Some(t)) => InitialPosition::AtTimestamp {
            timestamp_ms: u64::try_from(t).unwrap_or(0),
        },
        ("AT_TIMESTAMP", None) => {
            return Err(ApiError::InvalidArgument(
                "Timestamp must be provided for the AT_TIMESTAMP InitialPosition.".into(),
            ))
        }
        _ => InitialPosition::TrimHorizon,
    };
    let stream = r.resolve(api)?;
    let meta = stream.meta();
    let application = application.unwrap_or_default().to_string();
    let engine = api.engine.clone();
    let synced = blocking(move || engine.leases().sync(&application, &meta, initial))
        .await?
        .map_err(|e| api.engine_error(e))?;
    let created = synced
        .created
        .iter()
        .map(|id: &ShardId| Value::String(id.to_string()))
        .collect();
    let mut fields = vec![
        ("Leases", leases_value(&synced.table)),
        ("CreatedLeaseKeys", Value::List(created)),
    ];
    fields.extend(position_fields(synced.table.initial_position));
    Ok(Value::map(fields))
}
