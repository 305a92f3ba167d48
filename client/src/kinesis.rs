//! The Kinesis operations the consumer reads with, typed: ListShards, GetShardIterator,
//! GetRecords (and the shapes they share with SubscribeToShard events).

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::Error;
use crate::http::Client;

/// A Kinesis record as GetRecords and SubscribeToShard return it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WireRecord {
    pub sequence_number: String,
    /// Epoch seconds (fractional), as awsJson1.1 encodes timestamps.
    #[serde(default)]
    pub approximate_arrival_timestamp: Option<f64>,
    /// Base64 of the record's bytes.
    pub data: String,
    pub partition_key: String,
    #[serde(default)]
    pub encryption_type: Option<String>,
}

/// A child of a shard that has ended, from GetRecords or a SubscribeToShard event.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChildShard {
    pub shard_id: String,
    #[serde(default)]
    pub parent_shards: Vec<String>,
}

/// A shard as ListShards describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Shard {
    pub shard_id: String,
    #[serde(default)]
    pub parent_shard_id: Option<String>,
    #[serde(default)]
    pub adjacent_parent_shard_id: Option<String>,
    /// Absent only from servers that leave it out; the producer's shard map needs it.
    #[serde(default)]
    pub hash_key_range: Option<HashKeyRange>,
    #[serde(default)]
    pub sequence_number_range: Option<SequenceNumberRange>,
}

/// A shard's hash keys, decimal, inclusive at both ends.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HashKeyRange {
    pub starting_hash_key: String,
    pub ending_hash_key: String,
}

/// A shard's sequence numbers; `ending_sequence_number` is set once the shard is closed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SequenceNumberRange {
    pub starting_sequence_number: String,
    #[serde(default)]
    pub ending_sequence_number: Option<String>,
}

/// One GetRecords answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRecordsOutput {
    #[serde(default)]
    pub records: Vec<WireRecord>,
    /// Absent or null once a closed shard has been read to its end.
    #[serde(default)]
    pub next_shard_iterator: Option<String>,
    #[serde(default)]
    pub millis_behind_latest: Option<u64>,
    #[serde(default)]
    pub child_shards: Vec<ChildShard>,
}

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IteratorStart {
    TrimHorizon,
    Latest,
    /// Epoch milliseconds.
    AtTimestamp(i64),
    AtSequenceNumber(String),
    AfterSequenceNumber(String),
}

impl WireRecord {
    /// The record's bytes.
    ///
    /// # Errors
    /// [`Error::BadResponse`] when `Data` is not base64.
    pub fn decode_data(&self) -> Result<Vec<u8>, Error> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.data)
            .map_err(|e| Error::BadResponse {
                op: "GetRecords".into(),
                status: hyper::StatusCode::OK,
                detail: format!(
                    "record {} has invalid base64 Data: {e}",
                    self.sequence_number
                ),
            })
    }
}

/// Every shard of the stream, open and closed, following `NextToken`.
///
/// # Errors
/// The server's error, e.g. ResourceNotFoundException.
pub async fn list_shards(client: &Client, stream: &str) -> Result<Vec<Shard>, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output {
        #[serde(default)]
        shards: Vec<Shard>,
        next_token: Option<String>,
    }
    let mut shards = Vec::new();
    let mut request = json!({ "StreamName": stream });
    loop {
        let out: Output = client.call("ListShards", &request).await?;
        shards.extend(out.shards);
        match out.next_token {
            Some(token) => request = json!({ "NextToken": token }),
            None => return Ok(shards),
        }
    }
}

/// GetShardIterator.
///
/// # Errors
/// The server's error.
pub async fn get_shard_iterator(
    client: &Client,
    stream: &str,
    shard_id: &str,
    start: &IteratorStart,
) -> Result<String, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output {
        shard_iterator: Option<String>,
    }
    let mut request = json!({ "StreamName": stream, "ShardId": shard_id });
    let (kind, extra) = match start {
        IteratorStart::TrimHorizon => ("TRIM_HORIZON", None),
        IteratorStart::Latest => ("LATEST", None),
        IteratorStart::AtTimestamp(ms) => (
            "AT_TIMESTAMP",
            Some(("Timestamp", json!(*ms as f64 / 1000.0))),
        ),
        IteratorStart::AtSequenceNumber(s) => (
            "AT_SEQUENCE_NUMBER",
            Some(("StartingSequenceNumber", json!(s))),
        ),
        IteratorStart::AfterSequenceNumber(s) => (
            "AFTER_SEQUENCE_NUMBER",
            Some(("StartingSequenceNumber", json!(s))),
        ),
    };
    request["ShardIteratorType"] = json!(kind);
    if let Some((name, value)) = extra {
        request[name] = value;
    }
    let out: Output = client.call("GetShardIterator", &request).await?;
    out.shard_iterator.ok_or_else(|| Error::BadResponse {
        op: "GetShardIterator".into(),
        status: hyper::StatusCode::OK,
        detail: "no ShardIterator".into(),
    })
}

/// GetRecords with at most `limit` records.
///
/// # Errors
/// The server's error, e.g. ProvisionedThroughputExceededException or
/// ExpiredIteratorException.
pub async fn get_records(
    client: &Client,
    iterator: &str,
    limit: u32,
) -> Result<GetRecordsOutput, Error> {
    client
        .call(
            "GetRecords",
            &json!({ "ShardIterator": iterator, "Limit": limit }),
        )
        .await
}
