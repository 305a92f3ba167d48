//! StartStreamEncryption and StopStreamEncryption.
//!
//! Shardline has no KMS: the key id is recorded and reported (DescribeStream, PutRecord's
//! `EncryptionType`), any key id is accepted, and records are stored as they are.

use super::common::{begin_update, ensure_active, update_meta, StreamRef};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::Api;

/// `EncryptionType` values.
const ENCRYPTION_TYPES: [&str; 2] = ["NONE", "KMS"];
/// `KeyId`: 1 to 2048 characters (Kinesis API reference).
const MAX_KEY_ID_CHARS: usize = 2048;

async fn change(api: &Api, m: Members<'_>, start: bool) -> Result<Value, ApiError> {
    let r = StreamRef::parse(&m)?;
    let kind = m.string("EncryptionType")?;
    let key = m.string("KeyId")?;
    let mut v = Validator::default();
    v.required("encryptionType", kind.is_some());
    v.one_of("encryptionType", kind, &ENCRYPTION_TYPES);
    v.required("keyId", key.is_some());
    v.length("keyId", key, 1, MAX_KEY_ID_CHARS);
    r.validate(&mut v);
    v.finish()?;
    let stream = r.resolve(api)?;
    if kind != Some("KMS") {
        return Err(ApiError::InvalidArgument(format!(
            "Encryption type {} is not supported; the only valid EncryptionType is KMS.",
            kind.unwrap_or_default()
        )));
    }
    let key = key.unwrap_or_default().to_string();
    let transition = api.config.state_transition;
    let account = api.account().to_string();
    update_meta(api, &stream, move |m| {
        ensure_active(&account, m)?;
        if start {
            m.encryption_type = Some("KMS".into());
            m.key_id = Some(key);
        } else {
            m.encryption_type = None;
            m.key_id = None;
        }
        begin_update(m, transition);
        Ok(())
    })
    .await?;
    Ok(Value::Null)
}

pub async fn start(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    change(api, m, true).await
}

pub async fn stop(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    change(api, m, false).await
}
