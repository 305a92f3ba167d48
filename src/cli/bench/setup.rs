//! The streams a run writes to: created if missing (then waited for until ACTIVE), their
//! shards listed, and deleted afterwards with `--cleanup`.
//!
//! Only DescribeStream, CreateStream and DeleteStream are used, which every Kinesis
//! implementation (kinesalite, LocalStack, AWS) has.

use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::json;
use shardline_client::Client;

/// How long a new stream may take to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(100);

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Described {
    stream_description: Description,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Description {
    stream_status: String,
    #[serde(default)]
    shards: Vec<ShardId>,
    #[serde(default)]
    has_more_shards: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ShardId {
    shard_id: String,
}

/// DescribeStream from `start_after` on: `None` if the stream does not exist.
async fn describe(
    client: &Client,
    stream: &str,
    start_after: Option<&str>,
) -> anyhow::Result<Option<Description>> {
    let mut request = json!({ "StreamName": stream });
    if let Some(shard) = start_after {
        request["ExclusiveStartShardId"] = json!(shard);
    }
    match client
        .call::<_, Described>("DescribeStream", &request)
        .await
    {
        Ok(d) => Ok(Some(d.stream_description)),
        Err(e) if e.kind() == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => Err(e).with_context(|| format!("describing stream {stream}")),
    }
}

/// Makes sure every stream in `names` exists (creating it with `shards` shards) and is
/// ACTIVE, and returns every `(stream, shard id)`.
///
/// # Errors
/// A failed call, or a stream not ACTIVE within two minutes.
pub async fn ensure_streams(
    client: &Client,
    names: &[String],
    shards: u32,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut all = Vec::new();
    for name in names {
        if describe(client, name, None).await?.is_none() {
            let created = client
                .call::<_, serde_json::Value>(
                    "CreateStream",
                    &json!({ "StreamName": name, "ShardCount": shards }),
                )
                .await;
            match created {
                Ok(_) => {}
                Err(e) if e.kind() == Some("ResourceInUseException") => {}
                Err(e) => return Err(e).with_context(|| format!("creating stream {name}")),
            }
        }
        let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
        let mut description = loop {
            match describe(client, name, None).await? {
                Some(d) if d.stream_status == "ACTIVE" => break d,
                Some(_) | None if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(POLL).await;
                }
                other => bail!(
                    "stream {name} is {} after {} s",
                    other.map_or("missing".to_string(), |d| d.stream_status),
                    ACTIVE_TIMEOUT.as_secs()
                ),
            }
        };
        loop {
            let more = description.has_more_shards;
            let last = description.shards.last().map(|s| s.shard_id.clone());
            all.extend(
                description
                    .shards
                    .drain(..)
                    .map(|s| (name.clone(), s.shard_id)),
            );
            match (more, last) {
                (true, Some(last)) => {
                    description = describe(client, name, Some(&last))
                        .await?
                        .with_context(|| format!("stream {name} disappeared"))?;
                }
                _ => break,
            }
        }
    }
    Ok(all)
}

/// Deletes the streams (those already gone are fine).
///
/// # Errors
/// A failed DeleteStream.
pub async fn delete_streams(client: &Client, names: &[String]) -> anyhow::Result<()> {
    for name in names {
        match client
            .call::<_, serde_json::Value>("DeleteStream", &json!({ "StreamName": name }))
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == Some("ResourceNotFoundException") => {}
            Err(e) => return Err(e).with_context(|| format!("deleting stream {name}")),
        }
    }
    Ok(())
}
