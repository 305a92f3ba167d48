//! `shardline streams create|list|describe|delete`, and the shard listing `tail` shares.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use shardline_client::{Client, Error as CallError};

/// How often `create` and `delete` look at the stream while waiting.
const WAIT_POLL: Duration = Duration::from_millis(200);
/// How long they wait before giving up (AWS CLI's `stream-exists` waiter: 18 x 10 s).
const WAIT_TIMEOUT: Duration = Duration::from_secs(180);

/// DescribeStreamSummary's `StreamDescriptionSummary`, the members shown.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSummary {
    pub stream_name: String,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    pub stream_status: String,
    pub stream_mode_details: Option<StreamModeDetails>,
    pub retention_period_hours: Option<u32>,
    pub stream_creation_timestamp: Option<f64>,
    pub encryption_type: Option<String>,
    #[serde(rename = "MaxRecordSizeInKiB")]
    pub max_record_size_in_kib: Option<u64>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct StreamModeDetails {
    pub stream_mode: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SummaryResponse {
    stream_description_summary: StreamSummary,
}

/// ListShards' `Shard`.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct Shard {
    pub shard_id: String,
    pub parent_shard_id: Option<String>,
    pub adjacent_parent_shard_id: Option<String>,
    pub hash_key_range: HashKeyRange,
    pub sequence_number_range: SequenceNumberRange,
}

impl Shard {
    /// Closed shards (after a split or merge) have an ending sequence number.
    pub fn is_open(&self) -> bool {
        self.sequence_number_range.ending_sequence_number.is_none()
    }

    pub fn parents(&self) -> impl Iterator<Item = &str> {
        [&self.parent_shard_id, &self.adjacent_parent_shard_id]
            .into_iter()
            .flatten()
            .map(String::as_str)
    }
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct HashKeyRange {
    pub starting_hash_key: String,
    pub ending_hash_key: String,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct SequenceNumberRange {
    pub starting_sequence_number: String,
    pub ending_sequence_number: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListShardsResponse {
    #[serde(default)]
    shards: Vec<Shard>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListStreamsResponse {
    #[serde(default)]
    stream_names: Vec<String>,
    #[serde(default)]
    has_more_streams: bool,
    next_token: Option<String>,
}

/// An operation without output members.
#[derive(Deserialize)]
struct Empty {}

/// DescribeStreamSummary.
///
/// # Errors
/// The server's error, e.g. ResourceNotFoundException.
pub async fn summary(client: &Client, name: &str) -> Result<StreamSummary, CallError> {
    let resp: SummaryResponse = client
        .call("DescribeStreamSummary", &json!({ "StreamName": name }))
        .await?;
    Ok(resp.stream_description_summary)
}

/// Every shard of the stream, open and closed, following `NextToken`.
///
/// # Errors
/// The server's error.
pub async fn list_shards(client: &Client, name: &str) -> Result<Vec<Shard>, CallError> {
    let mut shards = Vec::new();
    let mut request = json!({ "StreamName": name });
    loop {
        let resp: ListShardsResponse = client.call("ListShards", &request).await?;
        shards.extend(resp.shards);
        match resp.next_token {
            Some(token) => request = json!({ "NextToken": token }),
            None => return Ok(shards),
        }
    }
}

/// CreateStream, then (with `wait`) DescribeStreamSummary until the stream is ACTIVE.
///
/// # Errors
/// The server's error, or a wait that timed out.
pub async fn create(client: &Client, name: &str, shards: u32, wait: bool) -> anyhow::Result<()> {
    let _: Empty = client
        .call(
            "CreateStream",
            &json!({ "StreamName": name, "ShardCount": shards }),
        )
        .await?;
    if wait {
        wait_until(name, "ACTIVE", || async {
            Ok(Some(summary(client, name).await?.stream_status))
        })
        .await?;
        println!("created stream {name} with {shards} shard(s)");
    } else {
        println!("creating stream {name} with {shards} shard(s)");
    }
    Ok(())
}

/// ListStreams, every page, one name per line.
///
/// # Errors
/// The server's error.
pub async fn list(client: &Client) -> anyhow::Result<()> {
    let mut request = json!({});
    loop {
        let resp: ListStreamsResponse = client.call("ListStreams", &request).await?;
        for name in &resp.stream_names {
            println!("{name}");
        }
        request = match (
            resp.has_more_streams,
            resp.next_token,
            resp.stream_names.last(),
        ) {
            (true, Some(token), _) => json!({ "NextToken": token }),
            (true, None, Some(last)) => json!({ "ExclusiveStartStreamName": last }),
            _ => return Ok(()),
        };
    }
}

/// DescribeStreamSummary and ListShards, printed for people.
///
/// # Errors
/// The server's error.
pub async fn describe(client: &Client, name: &str) -> anyhow::Result<()> {
    let summary = summary(client, name).await?;
    let shards = list_shards(client, name).await?;
    print!("{}", render_description(&summary, &shards));
    Ok(())
}

/// DeleteStream, then (with `wait`) DescribeStreamSummary until the stream is gone.
///
/// # Errors
/// The server's error, or a wait that timed out.
pub async fn delete(client: &Client, name: &str, wait: bool) -> anyhow::Result<()> {
    let _: Empty = client
        .call("DeleteStream", &json!({ "StreamName": name }))
        .await?;
    if wait {
        wait_until(name, "deleted", || async {
            match summary(client, name).await {
                Ok(s) => Ok(Some(s.stream_status)),
                Err(e) if e.kind() == Some("ResourceNotFoundException") => {
                    Ok(Some("deleted".to_string()))
                }
                Err(e) => Err(e),
            }
        })
        .await?;
        println!("deleted stream {name}");
    } else {
        println!("deleting stream {name}");
    }
    Ok(())
}

/// Polls `status` until it returns `want`.
async fn wait_until<F, Fut>(name: &str, want: &str, mut status: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, CallError>>,
{
    let started = Instant::now();
    loop {
        let now = status().await?;
        if now.as_deref() == Some(want) {
            return Ok(());
        }
        if started.elapsed() > WAIT_TIMEOUT {
            anyhow::bail!(
                "stream {name} is still {} after {} s (wanted {want})",
                now.unwrap_or_default(),
                WAIT_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// The text `describe` prints.
fn render_description(s: &StreamSummary, shards: &[Shard]) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: &str| {
        let _ = writeln!(out, "{label:<12} {value}");
    };
    line("Stream", &s.stream_name);
    if let Some(arn) = &s.stream_arn {
        line("ARN", arn);
    }
    line("Status", &s.stream_status);
    if let Some(mode) = &s.stream_mode_details {
        line("Mode", &mode.stream_mode);
    }
    if let Some(hours) = s.retention_period_hours {
        line("Retention", &format!("{hours} hours"));
    }
    if let Some(created) = s.stream_creation_timestamp.and_then(format_timestamp) {
        line("Created", &created);
    }
    if let Some(encryption) = &s.encryption_type {
        line("Encryption", encryption);
    }
    let open = shards.iter().filter(|sh| sh.is_open()).count();
    line("Shards", &format!("{open} open, {} in all", shards.len()));
    for sh in shards {
        let state = if sh.is_open() { "open" } else { "closed" };
        let parents: Vec<&str> = sh.parents().collect();
        let _ = write!(out, "\n{}  {state}", sh.shard_id);
        if !parents.is_empty() {
            let _ = write!(out, "  (from {})", parents.join(" + "));
        }
        let range = &sh.sequence_number_range;
        let _ = write!(
            out,
            "\n  hash keys  {} - {}\n  sequence   {} - {}\n",
            sh.hash_key_range.starting_hash_key,
            sh.hash_key_range.ending_hash_key,
            range.starting_sequence_number,
            range.ending_sequence_number.as_deref().unwrap_or("(open)")
        );
    }
    out
}

/// Kinesis timestamps (epoch seconds with a millisecond fraction) as RFC 3339 in UTC.
pub fn format_timestamp(epoch_secs: f64) -> Option<String> {
    let ms = (epoch_secs * 1000.0).round();
    if !ms.is_finite() {
        return None;
    }
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parent: Option<&str>, end: Option<&str>) -> Shard {
        Shard {
            shard_id: id.into(),
            parent_shard_id: parent.map(str::to_string),
            adjacent_parent_shard_id: None,
            hash_key_range: HashKeyRange {
                starting_hash_key: "0".into(),
                ending_hash_key: "340282366920938463463374607431768211455".into(),
            },
            sequence_number_range: SequenceNumberRange {
                starting_sequence_number: "100".into(),
                ending_sequence_number: end.map(str::to_string),
            },
        }
    }

    #[test]
    fn description_lists_status_retention_and_shard_ranges() {
        let summary = StreamSummary {
            stream_name: "orders".into(),
            stream_arn: None,
            stream_status: "ACTIVE".into(),
            stream_mode_details: Some(StreamModeDetails {
                stream_mode: "PROVISIONED".into(),
            }),
            retention_period_hours: Some(24),
            stream_creation_timestamp: Some(1_700_000_000.5),
            encryption_type: Some("NONE".into()),
            max_record_size_in_kib: None,
        };
        let text = render_description(
            &summary,
            &[
                shard("shardId-000000000000", None, Some("200")),
                shard("shardId-000000000001", Some("shardId-000000000000"), None),
            ],
        );
        assert!(text.contains("Status       ACTIVE\n"), "{text}");
        assert!(text.contains("Retention    24 hours\n"), "{text}");
        assert!(
            text.contains("Created      2023-11-14T22:13:20.500Z\n"),
            "{text}"
        );
        assert!(text.contains("Shards       1 open, 2 in all\n"), "{text}");
        assert!(text.contains("shardId-000000000000  closed\n"), "{text}");
        assert!(
            text.contains("shardId-000000000001  open  (from shardId-000000000000)\n"),
            "{text}"
        );
        assert!(
            text.contains("  hash keys  0 - 340282366920938463463374607431768211455\n"),
            "{text}"
        );
        assert!(text.contains("  sequence   100 - 200\n"), "{text}");
        assert!(text.contains("  sequence   100 - (open)\n"), "{text}");
    }
}
