//! Typed access to request members, with AWS's type-mismatch and validation messages.
//!
//! Checking happens in AWS's order: first every member's type (a mismatch is a
//! SerializationException with the Java-flavoured `Message` AWS sends), then constraints,
//! collected into one ValidationException (`N validation errors detected: ...`).

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;

use super::error::ApiError;
use super::value::Value;

const NUMBER: &str = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber";
const BOOLEAN: &str = "class java.lang.Boolean";
const STRING: &str = "class java.lang.String";

fn ser(msg: impl Into<String>) -> ApiError {
    ApiError::Serialization(Some(msg.into()))
}

/// A structure's members (the request body, or a nested structure).
#[derive(Debug, Clone, Copy)]
pub struct Members<'a> {
    map: &'a BTreeMap<String, Value>,
}

fn scalar_mismatch(v: &Value, target: &str) -> ApiError {
    match v {
        Value::List(_) => ser("Start of list found where not expected"),
        Value::Map(_) => ser("Start of structure or map found where not expected."),
        Value::Int(_) | Value::Float(_) => {
            ser(format!("{NUMBER} can not be converted to an {target}"))
        }
        Value::Bool(_) => ser(format!("{BOOLEAN} can not be converted to an {target}")),
        _ => ser(format!("{STRING} can not be converted to an {target}")),
    }
}

impl<'a> Members<'a> {
    pub fn new(map: &'a BTreeMap<String, Value>) -> Members<'a> {
        Members { map }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| **v != Value::Null)
    }

    /// A string member.
    pub fn string(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(scalar_mismatch(v, "String")),
        }
    }

    /// An Integer member: floored and clamped to the i32 range, as AWS does before validation.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.number(name, "Integer", i64::from(i32::MIN), i64::from(i32::MAX))
    }

    /// A Long member: floored and clamped to the i64 range.
    pub fn long(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.number(name, "Long", i64::MIN, i64::MAX)
    }

    fn number(
        &self,
        name: &str,
        target: &str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Int(i)) => Ok(Some((*i).clamp(i128::from(min), i128::from(max)) as i64)),
            Some(Value::Float(f)) => Ok(Some(f.floor().clamp(min as f64, max as f64) as i64)),
            Some(Value::String(_)) => {
                Err(ser(format!("{STRING} can not be converted to an {target}")))
            }
            Some(v) => Err(scalar_mismatch(v, target)),
        }
    }

    /// A Boolean member.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => Err(ser(format!(
                "'{}' can not be converted to an Boolean",
                s.to_uppercase()
            ))),
            Some(v) => Err(scalar_mismatch(v, "Boolean")),
        }
    }

    /// A Blob member: base64 text in JSON, a byte string in CBOR.
    pub fn blob(&self, name: &str) -> Result<Option<Bytes>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Blob(b)) => Ok(Some(b.clone())),
            Some(Value::String(s)) => decode_base64(s).map(Some),
            Some(v) => Err(scalar_mismatch(v, "Blob")),
        }
    }

    /// A Timestamp member, in milliseconds since the epoch (JSON sends seconds).
    pub fn timestamp_ms(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Timestamp(ms)) => Ok(Some(*ms)),
            Some(Value::Int(s)) => Ok(Some((*s as i64).saturating_mul(1000))),
            Some(Value::Float(s)) => Ok(Some((s * 1000.0).round() as i64)),
            Some(Value::String(_)) => Err(ser(format!(
                "{STRING} can not be converted to milliseconds since epoch"
            ))),
            Some(v) => Err(scalar_mismatch(v, "Date")),
        }
    }

    /// A list member.
    pub fn list(&self, name: &str) -> Result<Option<&'a [Value]>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::List(l)) => Ok(Some(l)),
            Some(_) => Err(ser("Expected list or null")),
        }
    }

    /// A list member of strings (`TagKeys`, `ShardLevelMetrics`).
    pub fn string_list(&self, name: &str) -> Result<Option<Vec<&'a str>>, ApiError> {
        self.list(name)?
            .map(|l| {
                l.iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.as_str()),
                        v => Err(scalar_mismatch(v, "String")),
                    })
                    .collect()
            })
            .transpose()
    }

    /// A structure member.
    pub fn structure(&self, name: &str) -> Result<Option<Members<'a>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Map(m)) => Ok(Some(Members::new(m))),
            Some(_) => Err(ser("Expected null")),
        }
    }

    /// A map member of string to string.
    pub fn string_map(&self, name: &str) -> Result<Option<Vec<(&'a str, &'a str)>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Map(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.as_str(), s.as_str())),
                    Value::Null => Ok((k.as_str(), "")),
                    v => Err(scalar_mismatch(v, "String")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(ser("Expected map or null")),
        }
    }
}

/// A list element that must be a structure.
pub fn element(v: &Value) -> Result<Members<'_>, ApiError> {
    match v {
        Value::Map(m) => Ok(Members::new(m)),
        _ => Err(ser("Expected null")),
    }
}

/// Decodes standard padded base64 with AWS's error texts.
pub fn decode_base64(s: &str) -> Result<Bytes, ApiError> {
    let fail = |why: String| ser(format!("'{s}' can not be converted to a Blob: {why}"));
    if !s.len().is_multiple_of(4) {
        return Err(fail(format!(
            "Base64 encoded length is expected a multiple of 4 bytes but found: {}",
            s.len()
        )));
    }
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(Bytes::from)
        .map_err(|e| match e {
            base64::DecodeError::InvalidByte(_, b) => {
                fail(format!("Invalid Base64 character: '{}'", b as char))
            }
            base64::DecodeError::InvalidLastSymbol(_, _) => {
                fail("Invalid last non-pad Base64 character dectected".into())
            }
            other => fail(other.to_string()),
        })
}

/// Collects constraint violations in AWS's wording.
#[derive(Debug, Default)]
pub struct Validator {
    items: Vec<String>,
}

fn item(value: Option<&str>, path: &str, constraint: &str) -> String {
    match value {
        Some(v) => format!("Value '{v}' at '{path}' failed to satisfy constraint: {constraint}"),
        None => format!("Value null at '{path}' failed to satisfy constraint: {constraint}"),
    }
}

impl Validator {
    /// Fails if `present` is false.
    pub fn required(&mut self, path: &str, present: bool) {
        if !present {
            self.items.push(item(None, path, "Member must not be null"));
        }
    }

    /// Length in characters within `min..=max`.
    pub fn length(&mut self, path: &str, value: Option<&str>, min: usize, max: usize) {
        if let Some(v) = value {
            let n = v.chars().count();
            if n < min {
                self.items.push(item(
                    Some(v),
                    path,
                    &format!("Member must have length greater than or equal to {min}"),
                ));
            } else if n > max {
                self.items.push(item(
                    Some(v),
                    path,
                    &format!("Member must have length less than or equal to {max}"),
                ));
            }
        }
    }

    /// Matches `re` (anchored), reported with `pattern` as AWS writes it.
    pub fn pattern(&mut self, path: &str, value: Option<&str>, re: &regex::Regex, pattern: &str) {
        if let Some(v) = value {
            if !re.is_match(v) {
                self.items.push(item(
                    Some(v),
                    path,
                    &format!("Member must satisfy regular expression pattern: {pattern}"),
                ));
            }
        }
    }

    /// Number within `min..=max`.
    pub fn range(&mut self, path: &str, value: Option<i64>, min: Option<i64>, max: Option<i64>) {
        if let Some(v) = value {
            let s = v.to_string();
            if min.is_some_and(|m| v < m) {
                self.items.push(item(
                    Some(&s),
                    path,
                    &format!(
                        "Member must have value greater than or equal to {}",
                        min.unwrap_or_default()
                    ),
                ));
            } else if max.is_some_and(|m| v > m) {
                self.items.push(item(
                    Some(&s),
                    path,
                    &format!(
                        "Member must have value less than or equal to {}",
                        max.unwrap_or_default()
                    ),
                ));
            }
        }
    }

    /// One of `allowed`.
    pub fn one_of(&mut self, path: &str, value: Option<&str>, allowed: &[&str]) {
        if let Some(v) = value {
            if !allowed.contains(&v) {
                self.items.push(item(
                    Some(v),
                    path,
                    &format!(
                        "Member must satisfy enum value set: [{}]",
                        allowed.join(", ")
                    ),
                ));
            }
        }
    }

    /// A list's length within `min..=max` (AWS omits list values from the message).
    pub fn list_length(&mut self, path: &str, len: Option<usize>, min: usize, max: usize) {
        if let Some(n) = len {
            if n < min {
                self.items.push(format!("Value at '{path}' failed to satisfy constraint: Member must have length greater than or equal to {min}"));
            } else if n > max {
                self.items.push(format!("Value at '{path}' failed to satisfy constraint: Member must have length less than or equal to {max}"));
            }
        }
    }

    /// A blob's length at most `max` bytes (AWS omits blob values from the message).
    pub fn blob_length(&mut self, path: &str, len: Option<usize>, max: usize) {
        if let Some(n) = len {
            if n > max {
                self.items.push(format!("Value at '{path}' failed to satisfy constraint: Member must have length less than or equal to {max}"));
            }
        }
    }

    /// Some element of a list (`whose` = `Member`) or map (`Map keys`, `Map value`) broke
    /// its shape's rules: reported once for the collection, listing all of the element
    /// shape's `constraints`, as AWS does (`Value at 'tags' failed to satisfy constraint: Map
    /// keys must satisfy constraint: [...]`; the collection's value is omitted).
    pub fn elements(&mut self, path: &str, whose: &str, constraints: &[String]) {
        self.items.push(format!(
            "Value at '{path}' failed to satisfy constraint: {whose} must satisfy constraint: [{}]",
            constraints.join(", ")
        ));
    }

    /// The ValidationException, if anything failed.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.items.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.items))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_errors_use_aws_wording() {
        let e = decode_base64("23456").unwrap_err();
        assert_eq!(
            e.message().unwrap().1,
            "'23456' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 5"
        );
        assert!(decode_base64("aGk=").is_ok());
    }

    #[test]
    fn validation_message_shape() {
        let mut v = Validator::default();
        v.range("shardCount", Some(0), Some(1), None);
        v.required("streamName", false);
        let e = v.finish().unwrap_err();
        assert_eq!(
            e.message().unwrap().1,
            "2 validation errors detected: Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1; Value null at 'streamName' failed to satisfy constraint: Member must not be null"
        );
    }
}
