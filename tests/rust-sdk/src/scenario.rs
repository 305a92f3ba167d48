//! The checks, in order. Each SDK call is bounded by the client's operation timeout
//! ([`CALL_TIMEOUT`]) and each check by [`crate::CHECK_TIMEOUT`]; retries are off so every
//! server answer is seen as it is.

use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context as _};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_kinesis::config::Credentials;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata as _};
use aws_sdk_kinesis::operation::describe_stream::DescribeStreamError;
use aws_sdk_kinesis::operation::describe_stream_summary::DescribeStreamSummaryError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{Shard, StreamStatus};
use aws_sdk_kinesis::Client;

use crate::records::{drain_parent, put_record, put_records, read_back_all};
use crate::server::Server;
use crate::wire_tap::{Opening, WireTap};
use crate::Report;

const ACCOUNT: &str = "000000000000";
const REGION: &str = "us-east-1";
pub(crate) const STREAM: &str = "rust-sdk-stream";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds every read loop (pages per shard, polls for a status).
pub(crate) const MAX_CALLS: usize = 100;
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Hash key ranges of a two-shard stream (wire reference §4): shard 0 ends at 2^127 - 1.
const SHARD0_END: u128 = u128::MAX >> 1;
/// SplitShard's NewStartingHashKey for shard 0: the middle of its range, 2^126.
const SPLIT_AT: u128 = 1 << 126;
pub(crate) const PARENT: &str = "shardId-000000000000";
pub(crate) const CHILDREN: [&str; 2] = ["shardId-000000000002", "shardId-000000000003"];

pub async fn run(report: &mut Report) {
    let Some(server) = report
        .check("server starts and prints its ready line", Server::start())
        .await
    else {
        return;
    };
    let tap = report
        .check("wire tap listens", WireTap::start(&server.addr))
        .await;
    if let Some(tap) = &tap {
        let kinesis = client(&tap.endpoint).await;
        records_and_resharding(report, &kinesis).await;
        report
            .check(
                "SubscribeToShard: records before and during pushed in order",
                crate::fanout::subscribe_to_shard(&kinesis),
            )
            .await;
        report
            .check("every connection spoke HTTP/1.1", http11_only(tap))
            .await;
    }
    let stderr = server.stderr_tail();
    let stopped = report
        .check_always("SIGTERM: server exits with status 0", server.stop())
        .await;
    if report.failed > 0 && stopped.is_some() {
        println!("server stderr (tail):\n{stderr}");
    }
}

async fn records_and_resharding(report: &mut Report, kinesis: &Client) {
    report
        .check("CreateStream with 2 shards", async {
            let out = kinesis
                .create_stream()
                .stream_name(STREAM)
                .shard_count(2)
                .send()
                .await;
            out.sdk("CreateStream").map(drop)
        })
        .await;
    report
        .check(
            "DescribeStreamSummary: ACTIVE with 2 open shards",
            describe_summary(kinesis),
        )
        .await;
    let shards = report
        .check("ListShards: 2 shards splitting the hash key space", async {
            let shards = list_shards(kinesis).await?;
            expect_shard(&shards, "shardId-000000000000", 0, SHARD0_END, None)?;
            expect_shard(
                &shards,
                "shardId-000000000001",
                SHARD0_END + 1,
                u128::MAX,
                None,
            )?;
            ensure!(shards.len() == 2, "{} shards", shards.len());
            Ok(shards)
        })
        .await;
    let mut sent = Vec::new();
    report
        .check(
            "PutRecord: all 256 byte values",
            put_record(kinesis, &mut sent),
        )
        .await;
    report
        .check(
            "PutRecords: 100 binary records with zero bytes",
            put_records(kinesis, &mut sent),
        )
        .await;
    report
        .check(
            "GetRecords from TRIM_HORIZON: all 101 records byte-exact",
            read_back_all(kinesis, shards.as_deref().unwrap_or_default(), &sent),
        )
        .await;
    report
        .check(
            "DescribeStream of a missing stream: ResourceNotFoundException",
            missing_stream(kinesis),
        )
        .await;
    report
        .check(
            "SplitShard: parent closes, two children open",
            split(kinesis),
        )
        .await;
    report
        .check(
            "parent read to its end: ChildShards, no NextShardIterator",
            drain_parent(kinesis, &sent),
        )
        .await;
    report
        .check("DeleteStream: then the stream is gone", delete(kinesis))
        .await;
}

/// A client as an application would build one, pointed at `endpoint`.
async fn client(endpoint: &str) -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "shardline-rust-sdk-test",
        ))
        // Plain HTTP only: the test needs no TLS stack (see Cargo.toml).
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CALL_TIMEOUT)
                .operation_timeout(CALL_TIMEOUT)
                .build(),
        )
        .load()
        .await;
    Client::new(&config)
}

/// SDK errors as anyhow errors that keep the whole cause chain (code, message, status).
pub(crate) trait SdkResult<T> {
    fn sdk(self, operation: &str) -> anyhow::Result<T>;
}

impl<T, E: std::error::Error> SdkResult<T> for Result<T, E> {
    fn sdk(self, operation: &str) -> anyhow::Result<T> {
        self.map_err(|e| anyhow!("{operation}: {}", DisplayErrorContext(&e)))
    }
}

async fn describe_summary(kinesis: &Client) -> anyhow::Result<()> {
    // A real stream is CREATING for a while; poll like a client waiting for ACTIVE would.
    for _ in 0..MAX_CALLS {
        let out = kinesis
            .describe_stream_summary()
            .stream_name(STREAM)
            .send()
            .await
            .sdk("DescribeStreamSummary")?;
        let summary = out
            .stream_description_summary()
            .context("no StreamDescriptionSummary")?;
        match summary.stream_status() {
            StreamStatus::Creating => tokio::time::sleep(POLL_INTERVAL).await,
            StreamStatus::Active => {
                ensure!(summary.stream_name() == STREAM, "{}", summary.stream_name());
                let arn = format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{STREAM}");
                ensure!(summary.stream_arn() == arn, "{}", summary.stream_arn());
                ensure!(
                    summary.open_shard_count() == 2,
                    "OpenShardCount {}",
                    summary.open_shard_count()
                );
                return Ok(());
            }
            other => bail!("StreamStatus {other}"),
        }
    }
    bail!("still CREATING after {MAX_CALLS} polls")
}

async fn list_shards(kinesis: &Client) -> anyhow::Result<Vec<Shard>> {
    let out = kinesis
        .list_shards()
        .stream_name(STREAM)
        .send()
        .await
        .sdk("ListShards")?;
    ensure!(out.next_token().is_none(), "unexpected NextToken");
    Ok(out.shards().to_vec())
}

/// `id` is listed with the hash key range [`start`, `end`] and parent `parent`.
fn expect_shard(
    shards: &[Shard],
    id: &str,
    start: u128,
    end: u128,
    parent: Option<&str>,
) -> anyhow::Result<()> {
    let shard = shards
        .iter()
        .find(|s| s.shard_id() == id)
        .with_context(|| format!("{id} not listed"))?;
    let range = shard.hash_key_range().context("no HashKeyRange")?;
    ensure!(
        (range.starting_hash_key(), range.ending_hash_key())
            == (start.to_string().as_str(), end.to_string().as_str()),
        "{id}: hash keys [{}, {}], want [{start}, {end}]",
        range.starting_hash_key(),
        range.ending_hash_key()
    );
    ensure!(
        shard.parent_shard_id() == parent,
        "{id}: ParentShardId {:?}",
        shard.parent_shard_id()
    );
    Ok(())
}

async fn missing_stream(kinesis: &Client) -> anyhow::Result<()> {
    let ghost = format!("{STREAM}-ghost");
    let Err(err) = kinesis.describe_stream().stream_name(&ghost).send().await else {
        bail!("DescribeStream of {ghost} succeeded");
    };
    let status = err.raw_response().map(|r| r.status().as_u16());
    ensure!(status == Some(400), "HTTP status {status:?}");
    match err.into_service_error() {
        DescribeStreamError::ResourceNotFoundException(e) => {
            let want = format!("Stream {ghost} under account {ACCOUNT} not found.");
            ensure!(
                e.message() == Some(want.as_str()),
                "message {:?}",
                e.message()
            );
            ensure!(
                e.code() == Some("ResourceNotFoundException"),
                "code {:?}",
                e.code()
            );
            Ok(())
        }
        other => bail!(
            "want ResourceNotFoundException, got {}",
            DisplayErrorContext(&other)
        ),
    }
}

async fn wait_active(kinesis: &Client) -> anyhow::Result<()> {
    for _ in 0..MAX_CALLS {
        let out = kinesis
            .describe_stream_summary()
            .stream_name(STREAM)
            .send()
            .await
            .sdk("DescribeStreamSummary")?;
        let summary = out
            .stream_description_summary()
            .context("no StreamDescriptionSummary")?;
        match summary.stream_status() {
            StreamStatus::Active => return Ok(()),
            StreamStatus::Updating => tokio::time::sleep(POLL_INTERVAL).await,
            other => bail!("StreamStatus {other}"),
        }
    }
    bail!("still UPDATING after {MAX_CALLS} polls")
}

async fn split(kinesis: &Client) -> anyhow::Result<()> {
    kinesis
        .split_shard()
        .stream_name(STREAM)
        .shard_to_split(PARENT)
        .new_starting_hash_key(SPLIT_AT.to_string())
        .send()
        .await
        .sdk("SplitShard")?;
    wait_active(kinesis).await?;
    let shards = list_shards(kinesis).await?;
    ensure!(shards.len() == 4, "{} shards after the split", shards.len());
    expect_shard(&shards, PARENT, 0, SHARD0_END, None)?;
    expect_shard(&shards, CHILDREN[0], 0, SPLIT_AT - 1, Some(PARENT))?;
    expect_shard(&shards, CHILDREN[1], SPLIT_AT, SHARD0_END, Some(PARENT))?;
    let ended = shards
        .iter()
        .find(|s| s.shard_id() == PARENT)
        .and_then(|s| s.sequence_number_range())
        .and_then(|r| r.ending_sequence_number());
    ensure!(ended.is_some(), "parent has no EndingSequenceNumber");
    // Hash key 0 now belongs to the first child, not the closed parent.
    let out = kinesis
        .put_record()
        .stream_name(STREAM)
        .partition_key("after-split")
        .explicit_hash_key("0")
        .data(Blob::new(vec![0u8, 1, 0]))
        .send()
        .await
        .sdk("PutRecord")?;
    ensure!(out.shard_id() == CHILDREN[0], "went to {}", out.shard_id());
    Ok(())
}

async fn delete(kinesis: &Client) -> anyhow::Result<()> {
    kinesis
        .delete_stream()
        .stream_name(STREAM)
        .send()
        .await
        .sdk("DeleteStream")?;
    for _ in 0..MAX_CALLS {
        let result = kinesis
            .describe_stream_summary()
            .stream_name(STREAM)
            .send()
            .await;
        match result.map_err(|e| e.into_service_error()) {
            Err(DescribeStreamSummaryError::ResourceNotFoundException(_)) => return Ok(()),
            Err(other) => bail!("DescribeStreamSummary: {}", DisplayErrorContext(&other)),
            Ok(out) => {
                let status = out
                    .stream_description_summary()
                    .map(|s| s.stream_status().clone());
                ensure!(
                    status == Some(StreamStatus::Deleting),
                    "StreamStatus {status:?} after DeleteStream"
                );
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    }
    bail!("still DELETING after {MAX_CALLS} polls")
}

async fn http11_only(tap: &WireTap) -> anyhow::Result<()> {
    let openings = tap.openings();
    ensure!(!openings.is_empty(), "the tap saw no connection");
    ensure!(
        openings.iter().all(|o| *o == Opening::Http11),
        "connections opened with {openings:?}"
    );
    println!(
        "     {} connection(s), each opened with an HTTP/1.1 request line",
        openings.len()
    );
    Ok(())
}
