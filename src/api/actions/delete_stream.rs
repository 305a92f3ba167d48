//! DeleteStream.
//!
//! With a state transition time configured the stream is DELETING for that long (still
//! described and listed, refusing records) and then removed, by a timer or, after a
//! restart, by the next request that finds it (see `common`).

use std::sync::Arc;

use shardline_engine::meta::StreamStatus;

use super::common::{blocking, update_meta, StreamRef};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::{now_ms, Api};

pub async fn handle(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let r = StreamRef::parse(&m)?;
    let enforce = m.bool("EnforceConsumerDeletion")?;
    let mut v = Validator::default();
    r.validate(&mut v);
    v.finish()?;
    let stream = r.resolve(api)?;
    let name = stream.name();
    if enforce != Some(true)
        && super::consumers::live_consumers(&stream.meta(), now_ms())
            .next()
            .is_some()
    {
        return Err(ApiError::ResourceInUse(format!(
            "Consumers exist in stream {name} under account {} and EnforceConsumerDeletion is either not set or is false.",
            api.account()
        )));
    }
    let engine = api.engine.clone();
    let transition = api.config.state_transition;
    if transition.is_zero() {
        blocking(move || engine.delete_stream(&name))
            .await?
            .map_err(|e| api.engine_error(e))?;
        return Ok(Value::Null);
    }
    let until = now_ms() + transition.as_millis() as u64;
    let started = update_meta(api, &stream, move |m| {
        if m.status == StreamStatus::Deleting {
            return Ok(false);
        }
        m.status = StreamStatus::Deleting;
        m.status_until_ms = until;
        Ok(true)
    })
    .await?;
    if started {
        tokio::spawn(async move {
            tokio::time::sleep(transition).await;
            let _ = tokio::task::spawn_blocking(move || {
                // Only this incarnation: the name cannot be reused while it exists.
                if engine.stream(&name).is_ok_and(|s| {
                    Arc::ptr_eq(&s, &stream) && s.status().0 == StreamStatus::Deleting
                }) {
                    if let Err(e) = engine.delete_stream(&name) {
                        tracing::error!("deleting stream {name}: {e}");
                    }
                }
            })
            .await;
        });
    }
    Ok(Value::Null)
}
