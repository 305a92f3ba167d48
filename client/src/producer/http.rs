//! The Kinesis HTTP API transport: PutRecords and ListShards through [`crate::Client`], so
//! the producer drives Shardline's HTTP port, AWS, or any Kinesis endpoint.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::config::{PUT_RECORDS_MAX_BYTES, PUT_RECORDS_MAX_RECORDS};
use super::transport::{BoxFuture, EntryOutcome, PutEntry, RecordFailure, ShardRange, Transport};
use crate::error::Error;
use crate::http::Client;
use crate::kinesis;

/// PutRecords' per-record error codes that a later attempt may not get (Kinesis API
/// reference, PutRecordsResultEntry.ErrorCode; KMS throttling among the KMS errors).
const RETRYABLE_CODES: [&str; 3] = [
    "ProvisionedThroughputExceededException",
    "InternalFailure",
    "KMSThrottlingException",
];

/// PutRecords over HTTP.
pub struct HttpTransport {
    client: Client,
}

impl HttpTransport {
    pub fn new(client: Client) -> HttpTransport {
        HttpTransport { client }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsOutput {
    records: Vec<ResultEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultEntry {
    sequence_number: Option<String>,
    shard_id: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
}

impl Transport for HttpTransport {
    fn put<'a>(
        &'a self,
        stream: &'a str,
        entries: &'a [PutEntry],
    ) -> BoxFuture<'a, Result<Vec<EntryOutcome>, RecordFailure>> {
        Box::pin(async move {
            let b64 = base64::engine::general_purpose::STANDARD;
            let records: Vec<_> = entries
                .iter()
                .map(|e| {
                    let mut r = json!({
                        "Data": b64.encode(&e.data),
                        "PartitionKey": e.partition_key,
                    });
                    if let Some(h) = &e.explicit_hash_key {
                        r["ExplicitHashKey"] = json!(h);
                    }
                    r
                })
                .collect();
            let out: PutRecordsOutput = self
                .client
                .call(
                    "PutRecords",
                    &json!({ "StreamName": stream, "Records": records }),
                )
                .await
                .map_err(|e| RecordFailure::from_error(&e))?;
            if out.records.len() != entries.len() {
                return Err(RecordFailure {
                    code: "BadResponse".into(),
                    message: format!(
                        "PutRecords answered {} entries for {} records",
                        out.records.len(),
                        entries.len()
                    ),
                    retryable: false,
                });
            }
            Ok(out.records.into_iter().map(outcome).collect())
        })
    }

    fn list_shards<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Vec<ShardRange>, Error>> {
        Box::pin(open_shard_ranges(&self.client, stream))
    }

    fn max_batch_records(&self) -> usize {
        PUT_RECORDS_MAX_RECORDS
    }

    fn max_batch_bytes(&self) -> usize {
        PUT_RECORDS_MAX_BYTES
    }
}

fn outcome(r: ResultEntry) -> EntryOutcome {
    match (r.sequence_number, r.shard_id, r.error_code) {
        (Some(sequence_number), Some(shard_id), None) => EntryOutcome::Written {
            shard_id,
            sequence_number,
        },
        (_, _, code) => {
            let code = code.unwrap_or_else(|| "BadResponse".into());
            EntryOutcome::Failed(RecordFailure {
                retryable: RETRYABLE_CODES.contains(&code.as_str()),
                message: r.error_message.unwrap_or_default(),
                code,
            })
        }
    }
}

/// The stream's open shards and their hash key ranges (ListShards).
///
/// # Errors
/// The server's error, or [`Error::BadResponse`] for a shard without a usable range.
pub async fn open_shard_ranges(client: &Client, stream: &str) -> Result<Vec<ShardRange>, Error> {
    let bad = |detail: String| Error::BadResponse {
        op: "ListShards".into(),
        status: hyper::StatusCode::OK,
        detail,
    };
    let mut ranges = Vec::new();
    for shard in kinesis::list_shards(client, stream).await? {
        let closed = shard
            .sequence_number_range
            .as_ref()
            .is_some_and(|r| r.ending_sequence_number.is_some());
        if closed {
            continue;
        }
        let range = shard
            .hash_key_range
            .ok_or_else(|| bad(format!("shard {} has no HashKeyRange", shard.shard_id)))?;
        let parse = |s: &str| {
            s.parse::<u128>()
                .map_err(|_| bad(format!("shard {} has hash key '{s}'", shard.shard_id)))
        };
        ranges.push(ShardRange {
            starting_hash_key: parse(&range.starting_hash_key)?,
            ending_hash_key: parse(&range.ending_hash_key)?,
            shard_id: shard.shard_id,
        });
    }
    ranges.sort_by_key(|r| r.starting_hash_key);
    Ok(ranges)
}
