//! Enhanced fan-out with the SDK: RegisterStreamConsumer, then SubscribeToShard over the
//! SDK's event-stream receiver (HTTP/1.1 chunks here). Records written before and during
//! the subscription all arrive, byte-exact and in order, pushed as they are acknowledged.

use anyhow::{bail, ensure, Context as _};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    ConsumerStatus, PutRecordsRequestEntry, ShardIteratorType, StartingPosition,
    SubscribeToShardEventStream,
};
use aws_sdk_kinesis::Client;

use crate::scenario::{SdkResult as _, MAX_CALLS};

const STREAM: &str = "rust-sdk-fanout";
const SHARD: &str = "shardId-000000000000";

fn payload(tag: &str) -> Vec<u8> {
    let mut data: Vec<u8> = (0..=u8::MAX).collect();
    data.extend_from_slice(tag.as_bytes());
    data
}

async fn put(kinesis: &Client, data: &[Vec<u8>]) -> anyhow::Result<()> {
    let mut req = kinesis.put_records().stream_name(STREAM);
    for d in data {
        req = req.records(
            PutRecordsRequestEntry::builder()
                .partition_key("pk")
                .data(Blob::new(d.clone()))
                .build()?,
        );
    }
    let out = req.send().await.sdk("PutRecords")?;
    ensure!(out.failed_record_count() == Some(0) || out.failed_record_count().is_none());
    Ok(())
}

/// The whole check: a one-shard stream, a consumer, a subscription from TRIM_HORIZON.
pub async fn subscribe_to_shard(kinesis: &Client) -> anyhow::Result<()> {
    kinesis
        .create_stream()
        .stream_name(STREAM)
        .shard_count(1)
        .send()
        .await
        .sdk("CreateStream")?;
    let arn = kinesis
        .describe_stream_summary()
        .stream_name(STREAM)
        .send()
        .await
        .sdk("DescribeStreamSummary")?
        .stream_description_summary()
        .context("no summary")?
        .stream_arn()
        .to_string();
    let consumer = kinesis
        .register_stream_consumer()
        .stream_arn(&arn)
        .consumer_name("rust-sdk")
        .send()
        .await
        .sdk("RegisterStreamConsumer")?
        .consumer
        .context("no Consumer")?;
    ensure!(
        consumer.consumer_status() == &ConsumerStatus::Active,
        "{:?}",
        consumer.consumer_status()
    );
    let prefix = format!("{arn}/consumer/rust-sdk:");
    ensure!(
        consumer.consumer_arn().starts_with(&prefix),
        "{}",
        consumer.consumer_arn()
    );
    let before = vec![payload("before-1"), payload("before-2")];
    let during = vec![payload("during-1"), payload("during-2")];
    put(kinesis, &before).await?;
    let mut out = kinesis
        .subscribe_to_shard()
        .consumer_arn(consumer.consumer_arn())
        .shard_id(SHARD)
        .starting_position(
            StartingPosition::builder()
                .r#type(ShardIteratorType::TrimHorizon)
                .build()?,
        )
        .send()
        .await
        .sdk("SubscribeToShard")?;
    let mut received: Vec<Vec<u8>> = Vec::new();
    let mut wrote = false;
    for _ in 0..MAX_CALLS {
        let event = out
            .event_stream
            .recv()
            .await
            .sdk("SubscribeToShard event")?
            .context("the event stream ended early")?;
        let SubscribeToShardEventStream::SubscribeToShardEvent(e) = event else {
            bail!("unexpected event {event:?}");
        };
        received.extend(e.records().iter().map(|r| r.data().as_ref().to_vec()));
        let continuation = e.continuation_sequence_number();
        ensure!(
            continuation.len() == 56,
            "ContinuationSequenceNumber {continuation:?}"
        );
        if !wrote && received.len() >= before.len() {
            wrote = true;
            put(kinesis, &during).await?;
        }
        if received.len() >= before.len() + during.len() {
            break;
        }
    }
    let expected: Vec<Vec<u8>> = before.into_iter().chain(during).collect();
    ensure!(
        received == expected,
        "received {} records, not the {} written, in order",
        received.len(),
        expected.len()
    );
    drop(out);
    kinesis
        .delete_stream()
        .stream_name(STREAM)
        .enforce_consumer_deletion(true)
        .send()
        .await
        .sdk("DeleteStream")?;
    Ok(())
}
