//! KPL aggregation: many user records in one Kinesis record, in the Kinesis Producer
//! Library's standard format, so any KCL consumer (and `aws-kinesis-agg`) reads them.
//!
//! # Format (reference section 8)
//!
//! A Kinesis record's data is an aggregate when it is the 4-byte magic `F3 89 9A C2`, then
//! the protobuf `AggregatedRecord` bytes, then the 16-byte MD5 of the protobuf bytes (not of
//! the magic). `AggregatedRecord` holds a table of partition keys, a table of explicit hash
//! keys (decimal strings) and the user records, each naming its keys by index.
//!
//! # Invariants
//!
//! - [`encode::Aggregator`] never produces a record over [`MAX_RECORD_BYTES`], partition key
//!   included, nor over its configured size.
//! - [`decode::deaggregate`] never fails: data without the magic, too short, with a wrong
//!   MD5, with bad protobuf or with a key index out of its table is an ordinary record
//!   (what the KCL does), so nothing stored is ever dropped by a reader.
//! - User records keep their order: sub-sequence number `i` is the `i`-th record.

pub mod decode;
pub mod encode;

pub use decode::{deaggregate, UserRecord};
pub use encode::{partition_key_hash, AggregatedRecord as Aggregate, Aggregator};

/// The first bytes of every aggregated record's data.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Bytes of the MD5 digest that ends an aggregated record.
pub const DIGEST_BYTES: usize = 16;

/// Largest Kinesis record, partition key plus data: 1 MiB (Kinesis API reference,
/// PutRecords: "The maximum size of a data blob ... is 1 MiB"; the key counts toward it).
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// The KPL's default `AggregationMaxSize`: 51,200 bytes (KPL `default_config.properties`).
pub const DEFAULT_AGGREGATION_MAX_BYTES: usize = 51_200;

/// The protobuf messages of the format (proto2), written by hand for prost.
pub mod proto {
    /// The protobuf payload of an aggregated record.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AggregatedRecord {
        #[prost(string, repeated, tag = "1")]
        pub partition_key_table: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub explicit_hash_key_table: Vec<String>,
        #[prost(message, repeated, tag = "3")]
        pub records: Vec<Record>,
    }

    /// One user record. The format's required fields are `Option`s here so that a record
    /// missing one is told apart (prost does not check `required`): such an aggregate is
    /// not well formed, and is delivered as an ordinary record, as the KCL does.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Record {
        #[prost(uint64, optional, tag = "1")]
        pub partition_key_index: Option<u64>,
        #[prost(uint64, optional, tag = "2")]
        pub explicit_hash_key_index: Option<u64>,
        #[prost(bytes = "vec", optional, tag = "3")]
        pub data: Option<Vec<u8>>,
        #[prost(message, repeated, tag = "4")]
        pub tags: Vec<Tag>,
    }

    /// A user record's tag (the KPL writes none; kept so that decoding accepts them).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Tag {
        #[prost(string, optional, tag = "1")]
        pub key: Option<String>,
        #[prost(string, optional, tag = "2")]
        pub value: Option<String>,
    }
}

#[cfg(test)]
mod tests;
