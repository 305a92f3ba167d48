//! Enhanced fan-out consumers: RegisterStreamConsumer, DescribeStreamConsumer,
//! ListStreamConsumers, DeregisterStreamConsumer, and the consumer lookups SubscribeToShard
//! and the ARN-addressed tag operations share.
//!
//! # Model
//!
//! Consumers live in their stream's metadata (`StreamMeta::consumers`), so they survive a
//! restart and go with the stream. A consumer's ARN is
//! `<stream ARN>/consumer/<name>:<registration epoch seconds>` (wire reference §4): a consumer
//! re-registered under the same name gets a new ARN, and the old one is not found.
//!
//! # Status transitions
//!
//! As for streams (see `common`), `--state-transition-ms N` keeps a new consumer CREATING
//! and a deregistered one DELETING for N ms; with the default 0 a consumer is ACTIVE at once
//! and deregistering removes it. The stored `status_until_ms` says when a transition ends;
//! [`live_status`] computes the status at read time (a DELETING consumer past its time is
//! gone), and every metadata write drops the gone ones, so no timer has to survive a restart.

use std::sync::Arc;

use base64::Engine as _;
use shardline_engine::meta::{ConsumerMeta, ConsumerStatus, StreamMeta, Tag};
use shardline_engine::Stream;

use super::common::{check_name, ensure_active, update_meta, StreamRef};
use super::common::{STREAM_ARN_PATTERN, STREAM_ARN_RE};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::{now_ms, Api};

/// Consumers per stream (Kinesis API reference, RegisterStreamConsumer: "You can register
/// up to 20 consumers per stream").
pub const MAX_CONSUMERS_PER_STREAM: usize = 20;
/// Consumers CREATING at once (same page: "only 5 consumers can be created simultaneously").
pub const MAX_CREATING_CONSUMERS: usize = 5;
/// ListStreamConsumers `MaxResults`: 1 to 10000, default and cap 100.
const DEFAULT_MAX_RESULTS: i64 = 100;
/// NextToken lifetime (AWS: 300 seconds, as for ListShards).
const TOKEN_TTL_MS: u64 = 300_000;

/// `ConsumerARN` (Kinesis API reference).
pub const CONSUMER_ARN_PATTERN: &str =
    r"^(arn):aws.*:kinesis:.*:\d{12}:.*stream\/[a-zA-Z0-9_.-]+\/consumer\/[a-zA-Z0-9_.-]+:[0-9]+";
static CONSUMER_ARN_RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(CONSUMER_ARN_PATTERN).expect("invariant: static pattern compiles")
});

/// A consumer's ARN.
pub fn consumer_arn(stream_arn: &str, c: &ConsumerMeta) -> String {
    format!("{stream_arn}/consumer/{}:{}", c.name, c.created_ms / 1000)
}

/// The parts of a consumer ARN: (stream ARN, consumer name, registration seconds).
pub fn parse_consumer_arn(arn: &str) -> Option<(&str, &str, u64)> {
    let (stream_arn, rest) = arn.split_once("/consumer/")?;
    let (name, secs) = rest.rsplit_once(':')?;
    Some((stream_arn, name, secs.parse().ok()?))
}

/// The status clients see at `now_ms`, or `None` once a DELETING consumer's time has passed.
pub fn live_status(c: &ConsumerMeta, now_ms: u64) -> Option<ConsumerStatus> {
    match c.status {
        ConsumerStatus::Creating if c.status_until_ms <= now_ms => Some(ConsumerStatus::Active),
        ConsumerStatus::Deleting if c.status_until_ms <= now_ms => None,
        s => Some(s),
    }
}

/// Consumers that still exist at `now_ms`.
pub fn live_consumers(m: &StreamMeta, now_ms: u64) -> impl Iterator<Item = &ConsumerMeta> {
    m.consumers
        .iter()
        .filter(move |c| live_status(c, now_ms).is_some())
}

/// Applies completed transitions and drops gone consumers (inside an [`update_meta`]).
fn settle(m: &mut StreamMeta, now_ms: u64) {
    m.consumers.retain_mut(|c| match live_status(c, now_ms) {
        None => false,
        Some(s) => {
            if s != c.status {
                c.status = s;
                c.status_until_ms = 0;
            }
            true
        }
    });
}

fn status_name(s: ConsumerStatus) -> &'static str {
    match s {
        ConsumerStatus::Creating => "CREATING",
        ConsumerStatus::Active => "ACTIVE",
        ConsumerStatus::Deleting => "DELETING",
    }
}

/// A `Consumer` structure (plus `StreamARN` for a `ConsumerDescription`).
fn consumer_value(m: &StreamMeta, c: &ConsumerMeta, describe: bool) -> Value {
    let status = live_status(c, now_ms()).unwrap_or(ConsumerStatus::Deleting);
    let mut fields = vec![
        ("ConsumerName", Value::str(&c.name)),
        ("ConsumerARN", Value::String(consumer_arn(&m.arn, c))),
        ("ConsumerStatus", Value::str(status_name(status))),
        (
            "ConsumerCreationTimestamp",
            Value::Timestamp(c.created_ms as i64),
        ),
    ];
    if describe {
        fields.push(("StreamARN", Value::str(&m.arn)));
    }
    Value::map(fields)
}

/// ResourceNotFound for a consumer ARN (moto's wording; wire reference §3).
pub fn consumer_not_found(api: &Api, arn: &str) -> ApiError {
    ApiError::ResourceNotFound(format!(
        "Consumer {arn}, account {} not found.",
        api.account()
    ))
}

/// A live consumer found by ARN: its stream, the stream's metadata and the consumer.
pub struct FoundConsumer {
    pub stream: Arc<Stream>,
    pub meta: StreamMeta,
    pub consumer: ConsumerMeta,
}

/// Finds the live consumer an ARN names.
///
/// # Errors
/// ResourceNotFound if the ARN does not parse, or names a stream or consumer (incarnation)
/// that does not exist.
pub fn resolve_consumer_arn(api: &Api, arn: &str) -> Result<FoundConsumer, ApiError> {
    let (stream_arn, name, secs) =
        parse_consumer_arn(arn).ok_or_else(|| consumer_not_found(api, arn))?;
    let stream = StreamRef {
        name: None,
        arn: Some(stream_arn),
    }
    .resolve(api)
    .map_err(|_| consumer_not_found(api, arn))?;
    let meta = stream.meta();
    let now = now_ms();
    let consumer = live_consumers(&meta, now)
        .find(|c| c.name == name && c.created_ms / 1000 == secs)
        .cloned()
        .ok_or_else(|| consumer_not_found(api, arn))?;
    Ok(FoundConsumer {
        stream,
        meta,
        consumer,
    })
}

/// `ConsumerARN`, or `StreamARN` + `ConsumerName` (Describe/Deregister).
struct ConsumerRef<'a> {
    consumer_arn: Option<&'a str>,
    stream_arn: Option<&'a str>,
    name: Option<&'a str>,
}

impl<'a> ConsumerRef<'a> {
    fn parse(m: &Members<'a>) -> Result<ConsumerRef<'a>, ApiError> {
        let r = ConsumerRef {
            consumer_arn: m.string("ConsumerARN")?,
            stream_arn: m.string("StreamARN")?,
            name: m.string("ConsumerName")?,
        };
        let mut v = Validator::default();
        v.pattern(
            "consumerARN",
            r.consumer_arn,
            &CONSUMER_ARN_RE,
            CONSUMER_ARN_PATTERN,
        );
        v.length("consumerARN", r.consumer_arn, 1, 2048);
        v.pattern(
            "streamARN",
            r.stream_arn,
            &STREAM_ARN_RE,
            STREAM_ARN_PATTERN,
        );
        v.length("streamARN", r.stream_arn, 1, 2048);
        check_name(&mut v, "consumerName", r.name, 128);
        v.finish()?;
        Ok(r)
    }

    fn resolve(&self, api: &Api) -> Result<FoundConsumer, ApiError> {
        match (self.consumer_arn, self.stream_arn, self.name) {
            (Some(arn), _, _) => resolve_consumer_arn(api, arn),
            (None, Some(stream_arn), Some(name)) => {
                let stream = StreamRef {
                    name: None,
                    arn: Some(stream_arn),
                }
                .resolve(api)?;
                let meta = stream.meta();
                let consumer = live_consumers(&meta, now_ms())
                    .find(|c| c.name == name)
                    .cloned()
                    .ok_or_else(|| {
                        ApiError::ResourceNotFound(format!(
                            "Consumer {name} under stream {} under account {} not found.",
                            meta.name,
                            api.account()
                        ))
                    })?;
                Ok(FoundConsumer {
                    stream,
                    meta,
                    consumer,
                })
            }
            _ => Err(ApiError::InvalidArgument(
                "Either ConsumerARN or both ConsumerName and StreamARN should be provided.".into(),
            )),
        }
    }
}

pub async fn register(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let stream_arn = m.string("StreamARN")?;
    let name = m.string("ConsumerName")?;
    let tags = m.string_map("Tags")?;
    let mut v = Validator::default();
    v.required("streamARN", stream_arn.is_some());
    v.pattern("streamARN", stream_arn, &STREAM_ARN_RE, STREAM_ARN_PATTERN);
    v.length("streamARN", stream_arn, 1, 2048);
    v.required("consumerName", name.is_some());
    check_name(&mut v, "consumerName", name, 128);
    super::tags::validate_tag_map(&mut v, "tags", tags.as_deref());
    v.finish()?;
    let stream = StreamRef {
        name: None,
        arn: stream_arn,
    }
    .resolve(api)?;
    let name = name.unwrap_or_default().to_string();
    let tags: Vec<Tag> = tags
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| Tag {
            key: k.to_string(),
            value: v.to_string(),
        })
        .collect();
    super::tags::check_tag_count(api, &name, tags.len())?;
    let account = api.account().to_string();
    let transition = api.config.state_transition.as_millis() as u64;
    update_meta(api, &stream, move |m| {
        ensure_active(&account, m)?;
        let now = now_ms();
        settle(m, now);
        if m.consumers.iter().any(|c| c.name == name) {
            return Err(ApiError::ResourceInUse(format!(
                "Consumer {name} under stream {} under account {account} already exists.",
                m.name
            )));
        }
        if m.consumers.len() >= MAX_CONSUMERS_PER_STREAM {
            return Err(ApiError::LimitExceeded(format!(
                "Only {MAX_CONSUMERS_PER_STREAM} consumers can be registered to a stream at once"
            )));
        }
        let creating = m
            .consumers
            .iter()
            .filter(|c| c.status == ConsumerStatus::Creating)
            .count();
        if creating >= MAX_CREATING_CONSUMERS {
            return Err(ApiError::LimitExceeded(format!(
                "Only {MAX_CREATING_CONSUMERS} consumers can be created at the same time"
            )));
        }
        let c = ConsumerMeta {
            name,
            created_ms: now,
            status: if transition == 0 {
                ConsumerStatus::Active
            } else {
                ConsumerStatus::Creating
            },
            status_until_ms: if transition == 0 { 0 } else { now + transition },
            tags,
        };
        let out = consumer_value(m, &c, false);
        m.consumers.push(c);
        Ok(out)
    })
    .await
    .map(|c| Value::map([("Consumer", c)]))
}

pub fn describe(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let found = ConsumerRef::parse(&m)?.resolve(api)?;
    Ok(Value::map([(
        "ConsumerDescription",
        consumer_value(&found.meta, &found.consumer, true),
    )]))
}

pub async fn deregister(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let found = ConsumerRef::parse(&m)?.resolve(api)?;
    let transition = api.config.state_transition.as_millis() as u64;
    let (name, created) = (found.consumer.name.clone(), found.consumer.created_ms);
    update_meta(api, &found.stream, move |m| {
        let now = now_ms();
        settle(m, now);
        if transition == 0 {
            m.consumers
                .retain(|c| !(c.name == name && c.created_ms == created));
        } else if let Some(c) = m
            .consumers
            .iter_mut()
            .find(|c| c.name == name && c.created_ms == created)
        {
            if c.status != ConsumerStatus::Deleting {
                c.status = ConsumerStatus::Deleting;
                c.status_until_ms = now + transition;
            }
        }
        Ok(())
    })
    .await?;
    Ok(Value::Null)
}

/// ListStreamConsumers paging position: after the consumer registered at `after_ms` named
/// `after_name`, in registration order.
struct Token {
    stream: String,
    created_ms: u64,
    after_ms: u64,
    after_name: String,
    issued_ms: u64,
}

fn encode_token(t: &Token) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!(
        "c1|{}|{}|{}|{}|{}",
        t.issued_ms, t.created_ms, t.after_ms, t.stream, t.after_name
    ))
}

fn decode_token(s: &str) -> Option<Token> {
    let raw = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.splitn(6, '|');
    if parts.next()? != "c1" {
        return None;
    }
    Some(Token {
        issued_ms: parts.next()?.parse().ok()?,
        created_ms: parts.next()?.parse().ok()?,
        after_ms: parts.next()?.parse().ok()?,
        stream: parts.next()?.to_string(),
        after_name: parts.next()?.to_string(),
    })
}

pub fn list(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let stream_arn = m.string("StreamARN")?;
    let token = m.string("NextToken")?;
    let max = m.int("MaxResults")?;
    let created = m.timestamp_ms("StreamCreationTimestamp")?;
    let mut v = Validator::default();
    v.required("streamARN", stream_arn.is_some());
    v.pattern("streamARN", stream_arn, &STREAM_ARN_RE, STREAM_ARN_PATTERN);
    v.length("streamARN", stream_arn, 1, 2048);
    v.length("nextToken", token, 1, 1_048_576);
    v.range("maxResults", max, Some(1), Some(10000));
    v.finish()?;
    let stream = StreamRef {
        name: None,
        arn: stream_arn,
    }
    .resolve(api)?;
    let meta = stream.meta();
    if let Some(c) = created {
        if c as u64 != meta.created_ms && c as u64 / 1000 != meta.created_ms / 1000 {
            return Err(
                api.engine_error(shardline_engine::Error::StreamNotFound(meta.name.clone()))
            );
        }
    }
    let after = match token {
        None => None,
        Some(t) => {
            let tok = decode_token(t)
                .ok_or_else(|| ApiError::InvalidArgument("Invalid NextToken.".into()))?;
            if now_ms().saturating_sub(tok.issued_ms) > TOKEN_TTL_MS {
                return Err(ApiError::ExpiredNextToken(format!(
                    "The timestamp of the NextToken {t} has expired."
                )));
            }
            if tok.stream != meta.name || tok.created_ms != meta.created_ms {
                return Err(ApiError::InvalidArgument(
                    "The NextToken was issued for another stream.".into(),
                ));
            }
            Some((tok.after_ms, tok.after_name))
        }
    };
    let mut consumers: Vec<&ConsumerMeta> = live_consumers(&meta, now_ms())
        .filter(|c| {
            after
                .as_ref()
                .is_none_or(|(ms, name)| (c.created_ms, &c.name) > (*ms, name))
        })
        .collect();
    consumers.sort_by(|a, b| (a.created_ms, &a.name).cmp(&(b.created_ms, &b.name)));
    let max = max.unwrap_or(DEFAULT_MAX_RESULTS).min(DEFAULT_MAX_RESULTS) as usize;
    let more = consumers.len() > max;
    consumers.truncate(max);
    let next = match (more, consumers.last()) {
        (true, Some(last)) => Value::String(encode_token(&Token {
            stream: meta.name.clone(),
            created_ms: meta.created_ms,
            after_ms: last.created_ms,
            after_name: last.name.clone(),
            issued_ms: now_ms(),
        })),
        _ => Value::Null,
    };
    Ok(Value::map([
        (
            "Consumers",
            Value::List(
                consumers
                    .into_iter()
                    .map(|c| consumer_value(&meta, c, false))
                    .collect(),
            ),
        ),
        ("NextToken", next),
    ]))
}

/// Changes the tags of the consumer an ARN names (TagResource/UntagResource).
pub async fn update_consumer_tags(
    api: &Api,
    arn: &str,
    f: impl FnOnce(&str, &mut Vec<Tag>) -> Result<(), ApiError> + Send + 'static,
) -> Result<(), ApiError> {
    let found = resolve_consumer_arn(api, arn)?;
    let (name, created) = (found.consumer.name.clone(), found.consumer.created_ms);
    let not_found = consumer_not_found(api, arn);
    update_meta(api, &found.stream, move |m| {
        settle(m, now_ms());
        let c = m
            .consumers
            .iter_mut()
            .find(|c| c.name == name && c.created_ms == created)
            .ok_or(not_found)?;
        f(&c.name, &mut c.tags)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumer(status: ConsumerStatus, until: u64) -> ConsumerMeta {
        ConsumerMeta {
            name: "c".into(),
            created_ms: 1_700_000_000_123,
            status,
            status_until_ms: until,
            tags: Vec::new(),
        }
    }

    #[test]
    fn consumer_arn_round_trips_and_matches_the_model_pattern() {
        let c = consumer(ConsumerStatus::Active, 0);
        let arn = consumer_arn("arn:aws:kinesis:us-east-1:000000000000:stream/s.1", &c);
        assert_eq!(
            arn,
            "arn:aws:kinesis:us-east-1:000000000000:stream/s.1/consumer/c:1700000000"
        );
        assert!(CONSUMER_ARN_RE.is_match(&arn));
        assert_eq!(
            parse_consumer_arn(&arn),
            Some((
                "arn:aws:kinesis:us-east-1:000000000000:stream/s.1",
                "c",
                1_700_000_000
            ))
        );
        assert_eq!(parse_consumer_arn("arn:aws:kinesis:x:1:stream/s"), None);
    }

    #[test]
    fn transitions_complete_at_their_time() {
        assert_eq!(
            live_status(&consumer(ConsumerStatus::Creating, 10), 9),
            Some(ConsumerStatus::Creating)
        );
        assert_eq!(
            live_status(&consumer(ConsumerStatus::Creating, 10), 10),
            Some(ConsumerStatus::Active)
        );
        assert_eq!(
            live_status(&consumer(ConsumerStatus::Deleting, 10), 9),
            Some(ConsumerStatus::Deleting)
        );
        assert_eq!(
            live_status(&consumer(ConsumerStatus::Deleting, 10), 10),
            None
        );
    }

    #[test]
    fn list_tokens_round_trip() {
        let t = Token {
            stream: "s.1".into(),
            created_ms: 5,
            after_ms: 7,
            after_name: "n".into(),
            issued_ms: 9,
        };
        let back = decode_token(&encode_token(&t)).unwrap();
        assert_eq!(
            (
                back.stream,
                back.created_ms,
                back.after_ms,
                back.after_name,
                back.issued_ms
            ),
            ("s.1".to_string(), 5, 7, "n".to_string(), 9)
        );
    }
}
