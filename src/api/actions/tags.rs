//! Stream tags: AddTagsToStream, RemoveTagsFromStream, ListTagsForStream, and the
//! ARN-addressed TagResource, UntagResource, ListTagsForResource.
//!
//! Tags live in the stream's metadata, sorted by key, so listing pages by key order.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use regex::Regex;
use shardline_engine::meta::{StreamMeta, Tag};
use shardline_engine::Stream;

use super::common::{
    resolve_resource, update_meta, StreamRef, RESOURCE_ARN_PATTERN, RESOURCE_ARN_RE,
};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::Api;

/// Tags per stream (Kinesis developer guide, "Tag your streams": 50 user tags).
const MAX_TAGS_PER_STREAM: usize = 50;
/// `TagMap`: 1 to 200 entries per request (Kinesis API reference).
const MAX_TAGS_PER_REQUEST: usize = 200;
/// `TagKeyList`: 1 to 50 keys.
const MAX_TAG_KEYS_PER_REQUEST: usize = 50;
/// `TagKey`: 1 to 128 characters; `TagValue`: 0 to 256.
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;
/// `ListTagsForStream` `Limit`: 1 to 50.
const MAX_LIST_LIMIT: i64 = 50;

/// Characters AWS accepts in tag keys and values (kinesalite, recorded against AWS).
static TAG_CHARS_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[\x{00C0}-\x{1FFF}\x{2C00}-\x{D7FF}A-Za-z0-9_./=+\- @%:]*$")
        .expect("invariant: static pattern compiles")
});

fn key_constraints() -> Vec<String> {
    vec![
        format!("Member must have length less than or equal to {MAX_KEY_CHARS}"),
        "Member must have length greater than or equal to 1".to_string(),
    ]
}

pub(super) fn validate_tag_map(v: &mut Validator, path: &str, tags: Option<&[(&str, &str)]>) {
    let Some(tags) = tags else { return };
    v.list_length(path, Some(tags.len()), 1, MAX_TAGS_PER_REQUEST);
    if tags
        .iter()
        .any(|(k, _)| k.is_empty() || k.chars().count() > MAX_KEY_CHARS)
    {
        v.elements(path, "Map keys", &key_constraints());
    }
    if tags
        .iter()
        .any(|(_, val)| val.chars().count() > MAX_VALUE_CHARS)
    {
        v.elements(
            path,
            "Map value",
            &[
                format!("Member must have length less than or equal to {MAX_VALUE_CHARS}"),
                "Member must have length greater than or equal to 0".to_string(),
            ],
        );
    }
}

fn validate_tag_keys(v: &mut Validator, path: &str, keys: Option<&[&str]>) {
    let Some(keys) = keys else { return };
    v.list_length(path, Some(keys.len()), 1, MAX_TAG_KEYS_PER_REQUEST);
    if keys
        .iter()
        .any(|k| k.is_empty() || k.chars().count() > MAX_KEY_CHARS)
    {
        v.elements(path, "Member", &key_constraints());
    }
}

/// AWS's character rules, checked once the stream is known; `action` is "add tags to" or
/// "remove tags from".
fn check_characters<'a>(
    api: &Api,
    stream: &str,
    action: &str,
    texts: impl Iterator<Item = &'a str>,
) -> Result<(), ApiError> {
    let all: Vec<&str> = texts.collect();
    if all.iter().any(|t| !TAG_CHARS_RE.is_match(t)) {
        return Err(ApiError::InvalidArgument(
            "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white space, _ . / = + - % @ :.".into(),
        ));
    }
    if all.iter().any(|t| t.contains('%')) {
        return Err(ApiError::InvalidArgument(format!(
            "Failed to {action} stream {stream} under account {} because some tags contained illegal characters. The allowed characters are Unicode letters, white-spaces, '_',',','/','=','+','-','@',':'.",
            api.account()
        )));
    }
    Ok(())
}

/// Refuses a resource (stream or consumer `name`) more than the per-resource tag cap.
pub(super) fn check_tag_count(api: &Api, name: &str, count: usize) -> Result<(), ApiError> {
    if count > MAX_TAGS_PER_STREAM {
        return Err(ApiError::LimitExceeded(format!(
            "Failed to add tags to stream {name} under account {} because a given stream cannot have more than {MAX_TAGS_PER_STREAM} tags associated with it.",
            api.account()
        )));
    }
    Ok(())
}

/// Merges `tags` into `existing` (kept sorted by key); the merged count for the cap check.
fn merge_tags(existing: &mut Vec<Tag>, tags: Vec<(String, String)>) -> usize {
    let mut all: BTreeMap<String, String> = existing.drain(..).map(|t| (t.key, t.value)).collect();
    all.extend(tags);
    *existing = all
        .into_iter()
        .map(|(key, value)| Tag { key, value })
        .collect();
    existing.len()
}

/// Merges `tags` into the stream's tags, refusing to pass the per-stream cap.
async fn add(api: &Api, stream: &Arc<Stream>, tags: &[(&str, &str)]) -> Result<(), ApiError> {
    let name = stream.name();
    check_characters(
        api,
        &name,
        "add tags to",
        tags.iter().flat_map(|(k, v)| [*k, *v]),
    )?;
    let tags: Vec<(String, String)> = tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let account = api.account().to_string();
    update_meta(api, stream, move |m| {
        if merge_tags(&mut m.tags, tags) > MAX_TAGS_PER_STREAM {
            return Err(ApiError::LimitExceeded(format!(
                "Failed to add tags to stream {} under account {account} because a given stream cannot have more than {MAX_TAGS_PER_STREAM} tags associated with it.",
                m.name
            )));
        }
        Ok(())
    })
    .await
}

async fn remove(api: &Api, stream: &Arc<Stream>, keys: &[&str]) -> Result<(), ApiError> {
    check_characters(
        api,
        &stream.name(),
        "remove tags from",
        keys.iter().copied(),
    )?;
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    update_meta(api, stream, move |m| {
        m.tags.retain(|t| !keys.contains(&t.key));
        Ok(())
    })
    .await
}

/// Tags sorted by key (the stored order).
fn sorted_tags(m: &StreamMeta) -> Vec<&Tag> {
    let mut tags: Vec<&Tag> = m.tags.iter().collect();
    tags.sort_by(|a, b| a.key.cmp(&b.key));
    tags
}

fn tag_value(t: &Tag) -> Value {
    Value::map([("Key", Value::str(&t.key)), ("Value", Value::str(&t.value))])
}

pub async fn add_tags_to_stream(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let r = StreamRef::parse(&m)?;
    let tags = m.string_map("Tags")?;
    let mut v = Validator::default();
    v.required("tags", tags.is_some());
    validate_tag_map(&mut v, "tags", tags.as_deref());
    r.validate(&mut v);
    v.finish()?;
    let stream = r.resolve(api)?;
    add(api, &stream, &tags.unwrap_or_default()).await?;
    Ok(Value::Null)
}

pub async fn remove_tags_from_stream(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let r = StreamRef::parse(&m)?;
    let keys = m.string_list("TagKeys")?;
    let mut v = Validator::default();
    v.required("tagKeys", keys.is_some());
    validate_tag_keys(&mut v, "tagKeys", keys.as_deref());
    r.validate(&mut v);
    v.finish()?;
    let stream = r.resolve(api)?;
    remove(api, &stream, &keys.unwrap_or_default()).await?;
    Ok(Value::Null)
}

pub fn list_tags_for_stream(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let r = StreamRef::parse(&m)?;
    let start = m.string("ExclusiveStartTagKey")?;
    let limit = m.int("Limit")?;
    let mut v = Validator::default();
    v.range("limit", limit, Some(1), Some(MAX_LIST_LIMIT));
    v.length("exclusiveStartTagKey", start, 1, MAX_KEY_CHARS);
    r.validate(&mut v);
    v.finish()?;
    let meta = r.resolve(api)?.meta();
    let limit = limit.unwrap_or(MAX_LIST_LIMIT) as usize;
    let mut tags: Vec<&Tag> = sorted_tags(&meta)
        .into_iter()
        .filter(|t| start.is_none_or(|s| t.key.as_str() > s))
        .collect();
    let more = tags.len() > limit;
    tags.truncate(limit);
    Ok(Value::map([
        (
            "Tags",
            Value::List(tags.into_iter().map(tag_value).collect()),
        ),
        ("HasMoreTags", Value::Bool(more)),
    ]))
}

fn validate_resource_arn(v: &mut Validator, arn: Option<&str>) {
    v.required("resourceARN", arn.is_some());
    v.pattern("resourceARN", arn, &RESOURCE_ARN_RE, RESOURCE_ARN_PATTERN);
    v.length("resourceARN", arn, 1, 2048);
}

pub async fn tag_resource(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let arn = m.string("ResourceARN")?;
    let tags = m.string_map("Tags")?;
    let mut v = Validator::default();
    v.required("tags", tags.is_some());
    validate_tag_map(&mut v, "tags", tags.as_deref());
    validate_resource_arn(&mut v, arn);
    v.finish()?;
    if let Some(arn) = arn.filter(|a| a.contains("/consumer/")) {
        let tags = tags.unwrap_or_default();
        let stream_name = arn
            .split_once(":stream/")
            .and_then(|(_, r)| r.split_once('/'))
            .map_or("", |(n, _)| n)
            .to_string();
        check_characters(
            api,
            &stream_name,
            "add tags to",
            tags.iter().flat_map(|(k, v)| [*k, *v]),
        )?;
        let tags: Vec<(String, String)> = tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let account = api.account().to_string();
        super::consumers::update_consumer_tags(api, arn, move |name, existing| {
            if merge_tags(existing, tags) > MAX_TAGS_PER_STREAM {
                return Err(ApiError::LimitExceeded(format!(
                    "Failed to add tags to consumer {name} under account {account} because a given resource cannot have more than {MAX_TAGS_PER_STREAM} tags associated with it."
                )));
            }
            Ok(())
        })
        .await?;
        return Ok(Value::Null);
    }
    let stream = resolve_resource(api, arn.unwrap_or_default())?;
    add(api, &stream, &tags.unwrap_or_default()).await?;
    Ok(Value::Null)
}

pub async fn untag_resource(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let arn = m.string("ResourceARN")?;
    let keys = m.string_list("TagKeys")?;
    let mut v = Validator::default();
    v.required("tagKeys", keys.is_some());
    validate_tag_keys(&mut v, "tagKeys", keys.as_deref());
    validate_resource_arn(&mut v, arn);
    v.finish()?;
    if let Some(arn) = arn.filter(|a| a.contains("/consumer/")) {
        let keys: Vec<String> = keys
            .unwrap_or_default()
            .iter()
            .map(|k| k.to_string())
            .collect();
        super::consumers::update_consumer_tags(api, arn, move |_, existing| {
            existing.retain(|t| !keys.contains(&t.key));
            Ok(())
        })
        .await?;
        return Ok(Value::Null);
    }
    let stream = resolve_resource(api, arn.unwrap_or_default())?;
    remove(api, &stream, &keys.unwrap_or_default()).await?;
    Ok(Value::Null)
}

pub fn list_tags_for_resource(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let arn = m.string("ResourceARN")?;
    let mut v = Validator::default();
    validate_resource_arn(&mut v, arn);
    v.finish()?;
    if let Some(arn) = arn.filter(|a| a.contains("/consumer/")) {
        let mut found = super::consumers::resolve_consumer_arn(api, arn)?;
        found.consumer.tags.sort_by(|a, b| a.key.cmp(&b.key));
        let tags = found.consumer.tags.iter().map(tag_value).collect();
        return Ok(Value::map([("Tags", Value::List(tags))]));
    }
    let meta = resolve_resource(api, arn.unwrap_or_default())?.meta();
    let tags = sorted_tags(&meta).into_iter().map(tag_value).collect();
    Ok(Value::map([("Tags", Value::List(tags))]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_characters_follow_aws() {
        for ok in ["team", "a b", "x/y=z+1-2_3.4@5:6", "Größe", "", "%"] {
            assert!(TAG_CHARS_RE.is_match(ok), "{ok}");
        }
        for bad in ["a,b", "a*b", "emoji\u{1F600}", "tab\t"] {
            assert!(!TAG_CHARS_RE.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn oversized_tag_map_is_one_item_per_rule() {
        let long = "k".repeat(129);
        let mut v = Validator::default();
        validate_tag_map(&mut v, "tags", Some(&[(long.as_str(), "v"), ("", "w")]));
        let e = v.finish().unwrap_err();
        assert_eq!(
            e.message().unwrap().1,
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: Map keys must satisfy constraint: [Member must have length less than or equal to 128, Member must have length greater than or equal to 1]"
        );
    }
}
