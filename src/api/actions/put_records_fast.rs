//! The JSON fast path of PutRecords, the hottest call of a producer.
//!
//! The body is deserialized straight into borrowed typed structs (no value tree), record data
//! is base64-decoded (SIMD) into one buffer, and the response is written as JSON bytes
//! directly. `Data` is taken as raw string bytes: base64 accepts only ASCII, so the UTF-8
//! check serde_json would make on a `str` is redundant there.
//! Anything unusual (a type mismatch, a missing member, a constraint violation, a stream that
//! is not found or not readable) returns `None`, and the request takes the general path,
//! which produces AWS's exact error: this path only changes how fast a valid request is
//! served, never what it answers. Limits and metrics apply as on the general path.

use std::borrow::Cow;
use std::time::Instant;

use serde::Deserialize;
use shardline_engine::hashkey::HashKey;
use shardline_engine::PutRecord;

use super::common::{require_readable, NAME_RE, STREAM_ARN_RE};
use super::put_records::{entry_error, MAX_RECORDS, MAX_REQUEST_BYTES};
use super::Operation;
use crate::api::{limits, Api};

/// A PutRecords body that parsed as the common, well-formed case.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request<'a> {
    #[serde(borrow, default)]
    stream_name: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "StreamARN")]
    stream_arn: Option<Cow<'a, str>>,
    #[serde(borrow)]
    records: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry<'a> {
    #[serde(borrow)]
    data: Cow<'a, [u8]>,
    #[serde(borrow)]
    partition_key: Cow<'a, str>,
    #[serde(borrow, default)]
    explicit_hash_key: Option<Cow<'a, str>>,
}

impl<'a> Request<'a> {
    /// Parses a body of the common shape; `None` sends it down the general path.
    pub fn parse(body: &'a [u8]) -> Option<Request<'a>> {
        serde_json::from_slice(body).ok()
    }
}

/// Serves a parsed request, or returns `None` to send it down the general path.
pub async fn put_records(api: &Api, req: Request<'_>) -> Option<Vec<u8>> {
    let started = Instant::now();
    let name: &str = match (&req.stream_name, &req.stream_arn) {
        (Some(n), None) if n.len() <= 128 && NAME_RE.is_match(n) => n,
        (None, Some(arn)) if arn.len() <= 2048 && STREAM_ARN_RE.is_match(arn) => {
            arn.rsplit_once("stream/").map(|(_, n)| n)?
        }
        _ => return None,
    };
    if req.records.is_empty() || req.records.len() > MAX_RECORDS {
        return None;
    }
    let stream = api.engine.stream(name).ok()?;
    let meta = stream.meta();
    if req.stream_arn.as_deref().is_some_and(|arn| arn != meta.arn)
        || require_readable(api, &meta).is_err()
    {
        return None;
    }
    let max_record = meta.max_record_bytes as usize;
    let mut data = Vec::with_capacity(req.records.iter().map(|e| e.data.len() / 4 * 3).sum());
    let mut spans = Vec::with_capacity(req.records.len());
    let mut total = 0usize;
    for e in &req.records {
        let chars = e.partition_key.chars().count();
        if chars == 0 || chars > 256 {
            return None;
        }
        let start = data.len();
        decode_base64(&e.data, &mut data)?;
        let len = data.len() - start;
        if len + e.partition_key.len() > max_record {
            return None;
        }
        total += len + e.partition_key.len();
        spans.push((start, data.len()));
    }
    if total > MAX_REQUEST_BYTES {
        return None;
    }
    let mut records = Vec::with_capacity(req.records.len());
    for (e, &(start, end)) in req.records.iter().zip(&spans) {
        let explicit_hash_key = match &e.explicit_hash_key {
            None => None,
            Some(k) => Some(HashKey::parse(k).ok()?),
        };
        records.push(PutRecord {
            partition_key: &e.partition_key,
            explicit_hash_key,
            data: &data[start..end],
        });
    }
    let results = limits::put_records(api, &stream, &meta, &records).await;
    api.metrics.record_puts(
        Operation::PutRecords,
        &meta.name,
        started,
        &records,
        &results,
    );
    let mut out = Vec::with_capacity(96 + results.len() * 110);
    let failed = results.iter().filter(|r| r.is_err()).count();
    out.extend_from_slice(b"{\"EncryptionType\":");
    let _ = serde_json::to_writer(&mut out, meta.encryption_type.as_deref().unwrap_or("NONE"));
    out.extend_from_slice(b",\"FailedRecordCount\":");
    out.extend_from_slice(failed.to_string().as_bytes());
    out.extend_from_slice(b",\"Records\":[");
    // One run per shard: results are in request order, but within a shard their numbers are
    // consecutive, which is what makes incremental formatting pay.
    let mut runs: Vec<(
        shardline_engine::ShardId,
        shardline_engine::seqno::DecimalRun,
        String,
    )> = Vec::new();
    for (i, r) in results.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match r {
            Ok(r) => {
                out.extend_from_slice(b"{\"SequenceNumber\":\"");
                let i = match runs.iter().position(|(s, ..)| *s == r.shard) {
                    Some(i) => i,
                    None => {
                        runs.push((r.shard, Default::default(), r.shard.to_string()));
                        runs.len() - 1
                    }
                };
                let (_, run, shard) = &mut runs[i];
                out.extend_from_slice(run.format_ascii(&r.sequence_number));
                out.extend_from_slice(b"\",\"ShardId\":\"");
                out.extend_from_slice(shard.as_bytes());
                out.extend_from_slice(b"\"}");
            }
            Err(e) => {
                let (code, msg) = entry_error(e);
                out.extend_from_slice(b"{\"ErrorCode\":");
                let _ = serde_json::to_writer(&mut out, &code);
                out.extend_from_slice(b",\"ErrorMessage\":");
                let _ = serde_json::to_writer(&mut out, &msg);
                out.push(b'}');
            }
        }
    }
    out.extend_from_slice(b"]}");
    Some(out)
}

/// Appends the decoded bytes of standard padded base64 `text` to `out`; `None` if it is not
/// exactly what the general path's decoder (`input::decode_base64`) accepts, so that the
/// general path answers with AWS's error. Both reject bad characters, missing padding and
/// non-zero trailing bits; the test below holds them to the same verdicts.
fn decode_base64(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if !text.len().is_multiple_of(4) {
        return None;
    }
    base64_simd::STANDARD.decode_append(text, out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_verdicts_match_the_general_path() {
        let long = "QUJD".repeat(40);
        let cases = [
            "",
            "AA==",
            "AQ==",
            "AB==",
            "AAA=",
            "AAE=",
            "AAB=",
            "aGk=",
            "aGk",
            "aGk==",
            "aG k=",
            "aGk=\n",
            "a===",
            "====",
            "QUJD",
            "QU=D",
            "QUJ*",
            "QUJD\u{e9}",
            "-_-_",
            long.as_str(),
        ];
        for text in cases {
            let general = crate::api::input::decode_base64(text).ok();
            let mut out = vec![7u8];
            let fast = decode_base64(text.as_bytes(), &mut out).map(|()| out[1..].to_vec());
            assert_eq!(fast, general.map(|b| b.to_vec()), "input {text:?}");
        }
    }
}
