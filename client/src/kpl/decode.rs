//! De-aggregation: one stored record's data into its user records, or `None` for an
//! ordinary record (KCL `AggregatorUtil`, reference section 8).

use md5::{Digest, Md5};
use prost::Message;

use super::proto;
use super::{DIGEST_BYTES, MAGIC};

/// A user record out of an aggregate; its sub-sequence number is its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub partition_key: String,
    /// Decimal, when the producer gave one.
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
}

/// The user records of `data` if it is a well-formed aggregate, else `None`: no magic, too
/// short, MD5 mismatch, bad protobuf, a key index outside its table, or no records at all.
/// A `None` record is delivered as stored.
pub fn deaggregate(data: &[u8]) -> Option<Vec<UserRecord>> {
    let body = data.strip_prefix(&MAGIC)?;
    let split = body.len().checked_sub(DIGEST_BYTES)?;
    let (proto_bytes, digest) = body.split_at(split);
    if Md5::digest(proto_bytes).as_slice() != digest {
        return None;
    }
    let message = proto::AggregatedRecord::decode(proto_bytes).ok()?;
    if message.records.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(message.records.len());
    for record in message.records {
        let key =
            |table: &[String], i: u64| usize::try_from(i).ok().and_then(|i| table.get(i)).cloned();
        let partition_key = key(&message.partition_key_table, record.partition_key_index?)?;
        if record.tags.iter().any(|t| t.key.is_none()) {
            return None;
        }
        let explicit_hash_key = match record.explicit_hash_key_index {
            Some(i) => Some(key(&message.explicit_hash_key_table, i)?),
            None => None,
        };
        out.push(UserRecord {
            partition_key,
            explicit_hash_key,
            data: record.data?,
        });
    }
    Some(out)
}
