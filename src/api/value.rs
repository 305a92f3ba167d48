//! The protocol-neutral value tree that request and response bodies pass through.
//!
//! awsJson1.1 and CBOR 1.1 carry the same members; they differ in how blobs (base64 strings
//! vs byte strings) and timestamps (epoch seconds vs tag 1 over epoch milliseconds) look.
//! Decoding keeps what the wire said ([`Value::Blob`] only comes from CBOR), and the typed
//! accessors in `input.rs` apply each member's shape.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use shardline_engine::log::batch::RecordView;
use shardline_engine::log::BatchRead;
use shardline_engine::seqno::DecimalRun;
use shardline_engine::{SequenceNumber, ShardId};

/// Which body encoding a request used; the response uses the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Json,
    Cbor,
}

impl Protocol {
    /// The response `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Protocol::Json => "application/x-amz-json-1.1",
            Protocol::Cbor => "application/x-amz-cbor-1.1",
        }
    }
}

/// A decoded body value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    String(String),
    Blob(Bytes),
    /// Milliseconds since the epoch.
    Timestamp(i64),
    List(Vec<Value>),
    /// A decoded map or structure.
    Map(BTreeMap<String, Value>),
    /// A structure being rendered: fixed member names, no lookups, cheap to build.
    Struct(Vec<(&'static str, Value)>),
    /// A list of Kinesis `Record` structures rendered straight from the log's buffers: the
    /// read path's bulk, kept out of the general tree so it costs no per-record nodes.
    Records(RecordList),
}

/// Records of one shard as read from its log, with what their sequence numbers need.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordList {
    pub epoch_secs: u64,
    pub shard: ShardId,
    /// The records, as the log's batches hold them.
    pub read: BatchRead,
}

impl RecordList {
    fn sequence_number(&self, r: &RecordView<'_>) -> SequenceNumber {
        SequenceNumber::for_record(self.epoch_secs, self.shard, r.offset, r.timestamp_ms)
    }

    /// Bytes the JSON rendering takes, near enough to size the output once.
    fn json_size_hint(&self) -> usize {
        (self.read.bytes / 3 + 1) * 4 + self.read.record_count * 160
    }
}

impl Value {
    /// Builds a map value from pairs, dropping `Null` members (absent on the wire).
    pub fn map<I: IntoIterator<Item = (&'static str, Value)>>(pairs: I) -> Value {
        Value::Struct(
            pairs
                .into_iter()
                .filter(|(_, v)| !matches!(v, Value::Null))
                .collect(),
        )
    }

    /// A string value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }
}

/// Why a body did not decode.
#[derive(Debug)]
pub struct NotAnObject;

/// Decodes a JSON body; the top level must be an object.
pub fn decode_json(body: &[u8]) -> Result<BTreeMap<String, Value>, NotAnObject> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| NotAnObject)?;
    match from_json(v) {
        Value::Map(m) => Ok(m),
        _ => Err(NotAnObject),
    }
}

fn from_json(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                Value::Int(i128::from(u))
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(a) => Value::List(a.into_iter().map(from_json).collect()),
        serde_json::Value::Object(o) => {
            Value::Map(o.into_iter().map(|(k, v)| (k, from_json(v))).collect())
        }
    }
}

/// Decodes a CBOR body; the top level must be a map with text keys.
pub fn decode_cbor(body: &[u8]) -> Result<BTreeMap<String, Value>, NotAnObject> {
    let v: ciborium::Value = ciborium::from_reader(body).map_err(|_| NotAnObject)?;
    match from_cbor(v) {
        Some(Value::Map(m)) => Ok(m),
        _ => Err(NotAnObject),
    }
}

fn from_cbor(v: ciborium::Value) -> Option<Value> {
    Some(match v {
        ciborium::Value::Null => Value::Null,
        ciborium::Value::Bool(b) => Value::Bool(b),
        ciborium::Value::Integer(i) => Value::Int(i128::from(i)),
        ciborium::Value::Float(f) => Value::Float(f),
        ciborium::Value::Text(s) => Value::String(s),
        ciborium::Value::Bytes(b) => Value::Blob(Bytes::from(b)),
        ciborium::Value::Tag(1, inner) => match *inner {
            ciborium::Value::Integer(i) => Value::Timestamp(i64::try_from(i128::from(i)).ok()?),
            ciborium::Value::Float(f) => Value::Timestamp(f as i64),
            _ => return None,
        },
        ciborium::Value::Tag(_, inner) => from_cbor(*inner)?,
        ciborium::Value::Array(a) => {
            Value::List(a.into_iter().map(from_cbor).collect::<Option<_>>()?)
        }
        ciborium::Value::Map(m) => Value::Map(
            m.into_iter()
                .map(|(k, v)| match k {
                    ciborium::Value::Text(k) => Some((k, from_cbor(v)?)),
                    _ => None,
                })
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}

/// Encodes a response body.
pub fn encode(protocol: Protocol, v: &Value) -> Vec<u8> {
    match protocol {
        Protocol::Json => {
            let mut out = super::buffers::take(256 + json_size_hint(v));
            write_json(&mut out, v);
            out
        }
        Protocol::Cbor => {
            let mut out = Vec::with_capacity(256);
            // Writing into a Vec cannot fail.
            let _ = ciborium::into_writer(&to_cbor(v), &mut out);
            out
        }
    }
}

fn to_cbor(v: &Value) -> ciborium::Value {
    match v {
        Value::Null => ciborium::Value::Null,
        Value::Bool(b) => ciborium::Value::Bool(*b),
        Value::Int(i) => i64::try_from(*i)
            .map(|i| ciborium::Value::Integer(i.into()))
            .unwrap_or(ciborium::Value::Float(*i as f64)),
        Value::Float(f) => ciborium::Value::Float(*f),
        Value::String(s) => ciborium::Value::Text(s.clone()),
        Value::Blob(b) => ciborium::Value::Bytes(b.to_vec()),
        Value::Timestamp(ms) => {
            ciborium::Value::Tag(1, Box::new(ciborium::Value::Integer((*ms).into())))
        }
        Value::List(l) => ciborium::Value::Array(l.iter().map(to_cbor).collect()),
        Value::Map(m) => ciborium::Value::Map(
            m.iter()
                .map(|(k, v)| (ciborium::Value::Text(k.clone()), to_cbor(v)))
                .collect(),
        ),
        Value::Struct(m) => ciborium::Value::Map(
            m.iter()
                .map(|(k, v)| (ciborium::Value::Text((*k).to_string()), to_cbor(v)))
                .collect(),
        ),
        Value::Records(list) => ciborium::Value::Array(
            list.read
                .records()
                .map(|r| {
                    let text = |s: &str| ciborium::Value::Text(s.to_string());
                    ciborium::Value::Map(vec![
                        (
                            text("SequenceNumber"),
                            text(&list.sequence_number(&r).to_string()),
                        ),
                        (
                            text("ApproximateArrivalTimestamp"),
                            ciborium::Value::Tag(
                                1,
                                Box::new(ciborium::Value::Integer(r.timestamp_ms.into())),
                            ),
                        ),
                        (text("Data"), ciborium::Value::Bytes(r.data.to_vec())),
                        (
                            text("PartitionKey"),
                            text(&String::from_utf8_lossy(r.partition_key)),
                        ),
                    ])
                })
                .collect(),
        ),
    }
}

/// JSON writer: blobs as base64, timestamps as epoch seconds with a millisecond fraction,
/// never in exponent form (Java SDK v2 rejects `1.7e9`).
fn write_json(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Float(f) => {
            if f.is_finite() {
                out.extend_from_slice(format!("{f}").as_bytes())
            } else {
                out.extend_from_slice(b"null")
            }
        }
        Value::String(s) => write_json_string(out, s),
        Value::Blob(b) => {
            out.push(b'"');
            let start = out.len();
            let n = base64::encoded_len(b.len(), true).unwrap_or(0);
            out.resize(start + n, 0);
            let written = base64::engine::general_purpose::STANDARD
                .encode_slice(b, &mut out[start..])
                .unwrap_or(0);
            out.truncate(start + written);
            out.push(b'"');
        }
        Value::Timestamp(ms) => {
            let secs = ms.div_euclid(1000);
            let frac = ms.rem_euclid(1000);
            out.extend_from_slice(format!("{secs}.{frac:03}").as_bytes());
        }
        Value::List(l) => {
            out.push(b'[');
            for (i, v) in l.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(out, v);
            }
            out.push(b']');
        }
        Value::Map(m) => write_json_object(out, m.iter().map(|(k, v)| (k.as_str(), v))),
        Value::Struct(m) => write_json_object(out, m.iter().map(|(k, v)| (*k, v))),
        Value::Records(list) => write_json_records(out, list),
    }
}

/// Output size worth reserving up front: only bulk record lists matter.
fn json_size_hint(v: &Value) -> usize {
    match v {
        Value::Records(list) => list.json_size_hint(),
        Value::Struct(m) => m.iter().map(|(_, v)| json_size_hint(v)).sum(),
        _ => 0,
    }
}

fn write_json_records(out: &mut Vec<u8>, list: &RecordList) {
    let mut run = DecimalRun::default();
    // A batch's records share one arrival time: render it once per distinct value.
    let mut ts: Option<(u64, Vec<u8>)> = None;
    out.push(b'[');
    for (i, r) in list.read.records().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"SequenceNumber\":\"");
        out.extend_from_slice(run.format_ascii(&list.sequence_number(&r)));
        out.extend_from_slice(b"\",\"ApproximateArrivalTimestamp\":");
        match &ts {
            Some((ms, text)) if *ms == r.timestamp_ms => out.extend_from_slice(text),
            _ => {
                let mut text = Vec::with_capacity(16);
                write_json(&mut text, &Value::Timestamp(r.timestamp_ms as i64));
                out.extend_from_slice(&text);
                ts = Some((r.timestamp_ms, text));
            }
        }
        out.extend_from_slice(b",\"Data\":\"");
        base64_simd::STANDARD.encode_append(r.data, out);
        out.extend_from_slice(b"\",\"PartitionKey\":");
        write_json_key(out, r.partition_key);
        out.push(b'}');
    }
    out.push(b']');
}

/// A stored partition key as a JSON string. Keys are nearly always printable ASCII, which
/// JSON takes verbatim; anything else (controls, quotes, non-ASCII, or bytes that are not
/// UTF-8, shown lossily) goes through serde_json's escaping.
fn write_json_key(out: &mut Vec<u8>, key: &[u8]) {
    if key
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(key);
        out.push(b'"');
    } else {
        write_json_string(out, &String::from_utf8_lossy(key));
    }
}

fn write_json_object<'a>(out: &mut Vec<u8>, members: impl Iterator<Item = (&'a str, &'a Value)>) {
    out.push(b'{');
    for (i, (k, v)) in members.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_string(out, k);
        out.push(b':');
        write_json(out, v);
    }
    out.push(b'}');
}

fn write_json_string(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes correctly; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_timestamps_are_plain_decimals() {
        let v = Value::map([
            ("T", Value::Timestamp(1_787_036_486_712)),
            ("B", Value::Blob(Bytes::from_static(b"hi"))),
        ]);
        assert_eq!(
            String::from_utf8(encode(Protocol::Json, &v)).unwrap(),
            r#"{"T":1787036486.712,"B":"aGk="}"#
        );
    }

    #[test]
    fn cbor_round_trip_keeps_blobs_and_timestamps() {
        let v = Value::map([
            ("T", Value::Timestamp(1_787_036_486_712)),
            ("B", Value::Blob(Bytes::from_static(&[0, 255]))),
        ]);
        let enc = encode(Protocol::Cbor, &v);
        let back = decode_cbor(&enc).unwrap();
        assert_eq!(back.get("T"), Some(&Value::Timestamp(1_787_036_486_712)));
        assert_eq!(
            back.get("B"),
            Some(&Value::Blob(Bytes::from_static(&[0, 255])))
        );
    }

    #[test]
    fn partition_keys_render_as_serde_json_escapes_them() {
        let keys: [&[u8]; 7] = [
            b"pk17",
            b"",
            b"with \"quote\" and \\",
            b"tab\there\x7f",
            "caf\u{e9}".as_bytes(),
            b"\xff\xfe not utf-8",
            b"~ !#$%&'()*+,-./:;<=>?@[]^_`{|}",
        ];
        for key in keys {
            let mut fast = Vec::new();
            write_json_key(&mut fast, key);
            let plain = serde_json::to_vec(&String::from_utf8_lossy(key)).unwrap();
            assert_eq!(fast, plain, "key {key:?}");
        }
    }

    #[test]
    fn non_objects_are_rejected() {
        assert!(decode_json(b"[1]").is_err());
        assert!(decode_json(b"{").is_err());
        assert!(decode_cbor(&[0x01]).is_err());
    }
}
