//! PutResourcePolicy, GetResourcePolicy and DeleteResourcePolicy.
//!
//! The policy document is kept verbatim in the stream's metadata; Shardline does not
//! evaluate it (there is no IAM), but it must be a JSON object, as an IAM policy is.

use super::common::{resolve_resource, update_meta, RESOURCE_ARN_PATTERN, RESOURCE_ARN_RE};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::Api;

/// What GetResourcePolicy answers for a resource without a policy.
const NO_POLICY: &str = "{}";

fn parse_arn<'a>(m: &Members<'a>, v: &mut Validator) -> Result<Option<&'a str>, ApiError> {
    let arn = m.string("ResourceARN")?;
    v.required("resourceARN", arn.is_some());
    v.pattern("resourceARN", arn, &RESOURCE_ARN_RE, RESOURCE_ARN_PATTERN);
    v.length("resourceARN", arn, 1, 2048);
    Ok(arn)
}

pub async fn put(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let mut v = Validator::default();
    let arn = parse_arn(&m, &mut v)?;
    let policy = m.string("Policy")?;
    v.required("policy", policy.is_some());
    v.finish()?;
    let stream = resolve_resource(api, arn.unwrap_or_default())?;
    let policy = policy.unwrap_or_default().to_string();
    if !matches!(
        serde_json::from_str::<serde_json::Value>(&policy),
        Ok(serde_json::Value::Object(_))
    ) {
        return Err(ApiError::InvalidArgument(
            "Policy is not a valid JSON policy document.".into(),
        ));
    }
    update_meta(api, &stream, move |m| {
        m.resource_policy = Some(policy);
        Ok(())
    })
    .await?;
    Ok(Value::Null)
}

pub fn get(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let mut v = Validator::default();
    let arn = parse_arn(&m, &mut v)?;
    v.finish()?;
    let meta = resolve_resource(api, arn.unwrap_or_default())?.meta();
    Ok(Value::map([(
        "Policy",
        Value::str(meta.resource_policy.as_deref().unwrap_or(NO_POLICY)),
    )]))
}

pub async fn delete(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let mut v = Validator::default();
    let arn = parse_arn(&m, &mut v)?;
    v.finish()?;
    let arn = arn.unwrap_or_default().to_string();
    let stream = resolve_resource(api, &arn)?;
    update_meta(api, &stream, move |m| match m.resource_policy.take() {
        Some(_) => Ok(()),
        None => Err(ApiError::ResourceNotFound(format!(
            "No resource policy found for resource ARN {arn}."
        ))),
    })
    .await?;
    Ok(Value::Null)
}
