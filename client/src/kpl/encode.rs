//! Building aggregated records, one user record at a time, within a size limit.
//!
//! The size of the protobuf is tracked as records are added (prost's length helpers), so
//! [`Aggregator::fits`] answers without encoding. The outer record takes the first user
//! record's partition key and, as explicit hash key, the first user record's hash key, so
//! that it lands on the shard of its first user record; the producer aggregates per shard,
//! so every user record belongs there.

use std::collections::HashMap;

use md5::{Digest, Md5};
use prost::encoding::encoded_len_varint;
use prost::Message;

use super::proto;
use super::{DIGEST_BYTES, MAGIC, MAX_RECORD_BYTES};

/// One Kinesis record ready to put: an aggregate of user records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregatedRecord {
    /// The first user record's partition key.
    pub partition_key: String,
    /// The first user record's hash key, decimal.
    pub explicit_hash_key: String,
    /// Magic, protobuf, MD5.
    pub data: Vec<u8>,
    /// How many user records it holds (their sub-sequence numbers are `0..user_records`).
    pub user_records: usize,
}

/// Collects user records into one aggregated record.
#[derive(Debug, Default)]
pub struct Aggregator {
    /// The largest outer record built, partition key plus data; at most
    /// [`MAX_RECORD_BYTES`].
    max_bytes: usize,
    message: proto::AggregatedRecord,
    partition_keys: HashMap<String, u64>,
    explicit_hash_keys: HashMap<String, u64>,
    /// `message.encoded_len()`, kept up to date.
    proto_bytes: usize,
    /// The first record's partition key and hash key.
    first: Option<(String, u128)>,
}

/// Bytes a length-delimited field of `len` bytes takes (one-byte tag: field numbers < 16).
fn delimited(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// A partition key's hash key: MD5 of its UTF-8 bytes as a big-endian 128-bit integer
/// (reference section 4).
#[expect(
    clippy::big_endian_bytes,
    reason = "Kinesis reads the MD5 digest as a big-endian integer"
)]
pub fn partition_key_hash(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

impl Aggregator {
    /// An empty aggregator building records of at most `max_bytes` (clamped to
    /// [`MAX_RECORD_BYTES`]).
    pub fn new(max_bytes: usize) -> Aggregator {
        Aggregator {
            max_bytes: max_bytes.min(MAX_RECORD_BYTES),
            ..Aggregator::default()
        }
    }

    /// User records held.
    pub fn len(&self) -> usize {
        self.message.records.len()
    }

    /// Whether no user record is held.
    pub fn is_empty(&self) -> bool {
        self.message.records.is_empty()
    }

    /// The outer record's size (partition key plus data) if it held one more user record.
    pub fn size_with(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data_len: usize,
    ) -> usize {
        let mut proto = self.proto_bytes;
        let pk_index = match self.partition_keys.get(partition_key) {
            Some(i) => *i,
            None => {
                proto += delimited(partition_key.len());
                self.partition_keys.len() as u64
            }
        };
        let mut record = 1 + encoded_len_varint(pk_index) + delimited(data_len);
        if let Some(ehk) = explicit_hash_key {
            let ehk_index = match self.explicit_hash_keys.get(ehk) {
                Some(i) => *i,
                None => {
                    proto += delimited(ehk.len());
                    self.explicit_hash_keys.len() as u64
                }
            };
            record += 1 + encoded_len_varint(ehk_index);
        }
        proto += delimited(record);
        let outer_key = self
            .first
            .as_ref()
            .map_or(partition_key.len(), |(k, _)| k.len());
        outer_key + MAGIC.len() + proto + DIGEST_BYTES
    }

    /// Whether a user record fits (an empty aggregator takes any record that fits the limit
    /// alone; a record that does not should be put on its own).
    pub fn fits(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data_len: usize,
    ) -> bool {
        self.size_with(partition_key, explicit_hash_key, data_len) <= self.max_bytes
    }

    /// The outer record's size now, partition key plus data.
    pub fn size_bytes(&self) -> usize {
        let key = self.first.as_ref().map_or(0, |(k, _)| k.len());
        key + MAGIC.len() + self.proto_bytes + DIGEST_BYTES
    }

    /// Adds a user record whether or not it [`fits`](Aggregator::fits); callers check first.
    /// `explicit_hash_key` is a decimal string below 2^128, or `None` to route by the
    /// partition key. Returns the record's sub-sequence number.
    pub fn push(
        &mut self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: Vec<u8>,
    ) -> u64 {
        self.proto_bytes = self.size_with(partition_key, explicit_hash_key, data.len())
            - MAGIC.len()
            - DIGEST_BYTES
            - self
                .first
                .as_ref()
                .map_or(partition_key.len(), |(k, _)| k.len());
        let next = self.partition_keys.len() as u64;
        let partition_key_index = *self
            .partition_keys
            .entry(partition_key.to_owned())
            .or_insert_with(|| {
                self.message
                    .partition_key_table
                    .push(partition_key.to_owned());
                next
            });
        let explicit_hash_key_index = explicit_hash_key.map(|ehk| {
            let next = self.explicit_hash_keys.len() as u64;
            *self
                .explicit_hash_keys
                .entry(ehk.to_owned())
                .or_insert_with(|| {
                    self.message.explicit_hash_key_table.push(ehk.to_owned());
                    next
                })
        });
        if self.first.is_none() {
            let hash = explicit_hash_key
                .and_then(|e| e.parse::<u128>().ok())
                .unwrap_or_else(|| partition_key_hash(partition_key));
            self.first = Some((partition_key.to_owned(), hash));
        }
        self.message.records.push(proto::Record {
            partition_key_index: Some(partition_key_index),
            explicit_hash_key_index,
            data: Some(data),
            tags: Vec::new(),
        });
        (self.message.records.len() - 1) as u64
    }

    /// The aggregated record of everything pushed, leaving the aggregator empty; `None` when
    /// it is empty.
    pub fn finish(&mut self) -> Option<AggregatedRecord> {
        let (partition_key, hash) = self.first.take()?;
        let message = std::mem::take(&mut self.message);
        self.partition_keys.clear();
        self.explicit_hash_keys.clear();
        self.proto_bytes = 0;
        let proto = message.encode_to_vec();
        let mut data = Vec::with_capacity(MAGIC.len() + proto.len() + DIGEST_BYTES);
        data.extend_from_slice(&MAGIC);
        data.extend_from_slice(&proto);
        data.extend_from_slice(&Md5::digest(&proto));
        Some(AggregatedRecord {
            partition_key,
            explicit_hash_key: hash.to_string(),
            data,
            user_records: message.records.len(),
        })
    }
}
