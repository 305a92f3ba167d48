//! PutRecord and PutRecords.

use bytes::Bytes;
use shardline_engine::hashkey::HashKey;
use shardline_engine::{PutRecord, PutResult, SequenceNumber};

use super::common::{
    require_readable, StreamRef, HASH_KEY_PATTERN, HASH_KEY_RE, SEQUENCE_PATTERN, SEQUENCE_RE,
};
use crate::api::actions::Operation;
use crate::api::error::ApiError;
use crate::api::input::{element, Members, Validator};
use crate::api::value::Value;
use crate::api::{limits, Api};

/// The `EncryptionType` a put reports: the stream's, as records written now are stored.
fn encryption_type(meta: &shardline_engine::meta::StreamMeta) -> Value {
    Value::str(meta.encryption_type.as_deref().unwrap_or("NONE"))
}

/// PutRecords takes 1 to 500 records (Kinesis API reference).
pub(super) const MAX_RECORDS: usize = 500;
/// PutRecords carries at most 10 MiB of partition keys and data.
pub(super) const MAX_REQUEST_BYTES: usize = 10 << 20;

/// A failed PutRecords entry's `ErrorCode` and `ErrorMessage`: internal failures are
/// reported as AWS does, without detail.
pub(super) fn entry_error(e: &ApiError) -> (String, String) {
    match e {
        ApiError::Internal(_) => (
            "InternalFailure".to_string(),
            "Internal Service Failure".to_string(),
        ),
        other => (
            other.type_name().to_string(),
            other.message().map(|(_, m)| m).unwrap_or_default(),
        ),
    }
}

struct Entry<'a> {
    data: Option<Bytes>,
    key: Option<&'a str>,
    explicit: Option<&'a str>,
}

fn parse_entry<'a>(m: &Members<'a>) -> Result<Entry<'a>, ApiError> {
    Ok(Entry {
        data: m.blob("Data")?,
        key: m.string("PartitionKey")?,
        explicit: m.string("ExplicitHashKey")?,
    })
}

fn validate_entry(v: &mut Validator, index: usize, e: &Entry<'_>) {
    let fine = e.data.is_some()
        && e.key
            .is_some_and(|k| !k.is_empty() && k.chars().count() <= 256)
        && e.explicit.is_none_or(|x| HASH_KEY_RE.is_match(x));
    if fine {
        return;
    }
    let prefix = if index == 0 {
        String::new()
    } else {
        format!("records.{index}.member.")
    };
    v.required(&format!("{prefix}data"), e.data.is_some());
    v.required(&format!("{prefix}partitionKey"), e.key.is_some());
    v.length(&format!("{prefix}partitionKey"), e.key, 1, 256);
    v.pattern(
        &format!("{prefix}explicitHashKey"),
        e.explicit,
        &HASH_KEY_RE,
        HASH_KEY_PATTERN,
    );
}

fn explicit_key(e: &Entry<'_>) -> Result<Option<HashKey>, ApiError> {
    e.explicit
        .map(|k| HashKey::parse(k).map_err(|err| ApiError::InvalidArgument(err.to_string())))
        .transpose()
}

fn record_too_big(v: &mut Validator, path: &str, e: &Entry<'_>, max: usize) {
    let len = e.data.as_ref().map_or(0, Bytes::len);
    if len + e.key.map_or(0, str::len) > max {
        v.blob_length(path, Some(len.max(max + 1)), max);
    }
}

fn result_value(r: &PutResult) -> Vec<(&'static str, Value)> {
    vec![
        ("ShardId", Value::String(r.shard.to_string())),
        (
            "SequenceNumber",
            Value::String(r.sequence_number.to_string()),
        ),
    ]
}

pub async fn put_record(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let started = std::time::Instant::now();
    let r = StreamRef::parse(&m)?;
    let e = parse_entry(&m)?;
    let ordering = m.string("SequenceNumberForOrdering")?;
    let mut v = Validator::default();
    r.validate(&mut v);
    validate_entry(&mut v, 0, &e);
    v.pattern(
        "sequenceNumberForOrdering",
        ordering,
        &SEQUENCE_RE,
        SEQUENCE_PATTERN,
    );
    v.finish()?;
    let stream = r.resolve(api)?;
    let meta = stream.meta();
    require_readable(api, &meta)?;
    let mut v = Validator::default();
    record_too_big(&mut v, "data", &e, meta.max_record_bytes as usize);
    v.finish()?;
    let explicit = explicit_key(&e)?;
    if let Some(o) = ordering {
        if SequenceNumber::parse(o).is_err() {
            return Err(ApiError::InvalidArgument(format!(
                "ExclusiveMinimumSequenceNumber {o} used in PutRecord on stream {} under account {} is invalid.",
                meta.name,
                api.account()
            )));
        }
    }
    let data = e.data.unwrap_or_default();
    let rec = PutRecord {
        partition_key: e.key.unwrap_or_default(),
        explicit_hash_key: explicit,
        data: &data,
    };
    let recs = std::slice::from_ref(&rec);
    let results = limits::put_records(api, &stream, &meta, recs).await;
    api.metrics
        .record_puts(Operation::PutRecord, &meta.name, started, recs, &results);
    let result = results
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(api.engine_error(shardline_engine::Error::ShuttingDown)))?;
    let mut fields = result_value(&result);
    fields.push(("EncryptionType", encryption_type(&meta)));
    Ok(Value::map(fields))
}

pub async fn put_records(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let started = std::time::Instant::now();
    let r = StreamRef::parse(&m)?;
    let list = m.list("Records")?;
    let entries = list
        .unwrap_or_default()
        .iter()
        .map(|item| element(item).and_then(|m| parse_entry(&m)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut v = Validator::default();
    r.validate(&mut v);
    v.required("records", list.is_some());
    v.list_length("records", list.map(<[Value]>::len), 1, MAX_RECORDS);
    for (i, e) in entries.iter().enumerate() {
        validate_entry(&mut v, i + 1, e);
    }
    v.finish()?;
    let stream = r.resolve(api)?;
    let meta = stream.meta();
    require_readable(api, &meta)?;
    let mut v = Validator::default();
    for (i, e) in entries.iter().enumerate() {
        record_too_big(
            &mut v,
            &format!("records.{}.member.data", i + 1),
            e,
            meta.max_record_bytes as usize,
        );
    }
    v.finish()?;
    let total: usize = entries
        .iter()
        .map(|e| e.data.as_ref().map_or(0, Bytes::len) + e.key.map_or(0, str::len))
        .sum();
    if total > MAX_REQUEST_BYTES {
        return Err(ApiError::InvalidArgument(format!(
            "Records size exceeds {} MB limit",
            MAX_REQUEST_BYTES >> 20
        )));
    }
    let mut recs = Vec::with_capacity(entries.len());
    for e in &entries {
        recs.push(PutRecord {
            partition_key: e.key.unwrap_or_default(),
            explicit_hash_key: explicit_key(e)?,
            data: e.data.as_deref().unwrap_or_default(),
        });
    }
    let results = limits::put_records(api, &stream, &meta, &recs).await;
    api.metrics
        .record_puts(Operation::PutRecords, &meta.name, started, &recs, &results);
    let mut failed = 0i128;
    let out = results
        .into_iter()
        .map(|r| match r {
            Ok(r) => Value::map(result_value(&r)),
            Err(api_err) => {
                failed += 1;
                let (code, msg) = entry_error(&api_err);
                Value::map([
                    ("ErrorCode", Value::String(code)),
                    ("ErrorMessage", Value::String(msg)),
                ])
            }
        })
        .collect();
    Ok(Value::map([
        ("FailedRecordCount", Value::Int(failed)),
        ("Records", Value::List(out)),
        ("EncryptionType", encryption_type(&meta)),
    ]))
}
