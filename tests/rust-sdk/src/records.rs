//! Writing the records and reading them back: what goes in must come out byte-exact, once,
//! in sequence-number order per shard, with the sequence numbers the put calls returned.

use std::cmp::Ordering;
use std::collections::HashMap;

use anyhow::{bail, ensure, Context as _};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, Record, Shard, ShardIteratorType};
use aws_sdk_kinesis::Client;

use crate::scenario::{SdkResult as _, CHILDREN, MAX_CALLS, PARENT, STREAM};

/// Records written by PutRecords, after the one PutRecord.
const BATCH_RECORDS: usize = 100;
/// Small, so reading back takes several GetRecords pages.
const GET_RECORDS_LIMIT: i32 = 25;

/// One record as written, with what the put call answered.
pub(crate) struct Sent {
    partition_key: String,
    data: Vec<u8>,
    shard_id: String,
    sequence_number: String,
}

/// Record `i`'s payload: record 0 holds every byte value; the others start and end with a
/// zero byte and are 1..=300 bytes long, so base64 padding takes all of its forms.
fn payload(i: usize) -> Vec<u8> {
    if i == 0 {
        return (0..=u8::MAX).collect();
    }
    let len = 1 + (i * 37) % 300;
    let mut data: Vec<u8> = (0..len).map(|j| (i * 31 + j * 7) as u8).collect();
    data[0] = 0;
    data[len - 1] = 0;
    data
}

/// Record `i`'s partition key; some are non-ASCII (hashed as UTF-8, wire reference §4).
fn partition_key(i: usize) -> String {
    if i % 10 == 3 {
        format!("ключ-{i}")
    } else {
        format!("pk-{i}")
    }
}

fn check_sequence_number(seq: &str) -> anyhow::Result<()> {
    ensure!(
        seq.len() == 56 && seq.bytes().all(|b| b.is_ascii_digit()),
        "sequence number {seq:?} is not 56 decimal digits"
    );
    Ok(())
}

pub(crate) async fn put_record(kinesis: &Client, sent: &mut Vec<Sent>) -> anyhow::Result<()> {
    let (partition_key, data) = (partition_key(0), payload(0));
    let out = kinesis
        .put_record()
        .stream_name(STREAM)
        .partition_key(&partition_key)
        .data(Blob::new(data.clone()))
        .send()
        .await
        .sdk("PutRecord")?;
    check_sequence_number(out.sequence_number())?;
    sent.push(Sent {
        partition_key,
        data,
        shard_id: out.shard_id().to_owned(),
        sequence_number: out.sequence_number().to_owned(),
    });
    Ok(())
}

pub(crate) async fn put_records(kinesis: &Client, sent: &mut Vec<Sent>) -> anyhow::Result<()> {
    let batch: Vec<(String, Vec<u8>)> = (1..=BATCH_RECORDS)
        .map(|i| (partition_key(i), payload(i)))
        .collect();
    let entries = batch
        .iter()
        .map(|(pk, data)| {
            PutRecordsRequestEntry::builder()
                .partition_key(pk)
                .data(Blob::new(data.clone()))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let out = kinesis
        .put_records()
        .stream_name(STREAM)
        .set_records(Some(entries))
        .send()
        .await
        .sdk("PutRecords")?;
    ensure!(
        out.failed_record_count().unwrap_or(0) == 0,
        "FailedRecordCount {:?}",
        out.failed_record_count()
    );
    ensure!(
        out.records().len() == BATCH_RECORDS,
        "{} results",
        out.records().len()
    );
    for ((partition_key, data), result) in batch.into_iter().zip(out.records()) {
        ensure!(
            result.error_code().is_none(),
            "{partition_key}: {:?} {:?}",
            result.error_code(),
            result.error_message()
        );
        let seq = result.sequence_number().context("no SequenceNumber")?;
        check_sequence_number(seq)?;
        sent.push(Sent {
            partition_key,
            data,
            shard_id: result.shard_id().context("no ShardId")?.to_owned(),
            sequence_number: seq.to_owned(),
        });
    }
    Ok(())
}

/// Sequence numbers are decimal strings too long for `u128`: compare as big integers.
fn cmp_sequence_numbers(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The records read from one shard are exactly the ones put there, in sequence order.
fn check_shard_records(shard_id: &str, got: &[Record], sent: &[Sent]) -> anyhow::Result<()> {
    let want: HashMap<&str, &Sent> = sent
        .iter()
        .filter(|s| s.shard_id == shard_id)
        .map(|s| (s.sequence_number.as_str(), s))
        .collect();
    ensure!(
        got.len() == want.len(),
        "{shard_id}: read {} records, put {}",
        got.len(),
        want.len()
    );
    for (i, record) in got.iter().enumerate() {
        let seq = record.sequence_number();
        let put = want
            .get(seq)
            .with_context(|| format!("{shard_id}: record {i} has unknown sequence number {seq}"))?;
        if i > 0 {
            let previous = got[i - 1].sequence_number();
            ensure!(
                cmp_sequence_numbers(previous, seq) == Ordering::Less,
                "{shard_id}: {previous} then {seq}"
            );
        }
        ensure!(
            record.partition_key() == Some(put.partition_key.as_str()),
            "{seq}: PartitionKey {:?}, put {:?}",
            record.partition_key(),
            put.partition_key
        );
        ensure!(
            record.data().as_ref() == put.data.as_slice(),
            "{seq}: Data differs ({} bytes read, {} put)",
            record.data().as_ref().len(),
            put.data.len()
        );
        ensure!(
            record.approximate_arrival_timestamp().is_some(),
            "{seq}: no ApproximateArrivalTimestamp"
        );
    }
    Ok(())
}

async fn trim_horizon(kinesis: &Client, shard_id: &str) -> anyhow::Result<String> {
    let out = kinesis
        .get_shard_iterator()
        .stream_name(STREAM)
        .shard_id(shard_id)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .sdk("GetShardIterator")?;
    Ok(out.shard_iterator().context("no ShardIterator")?.to_owned())
}

/// Reads an open shard from TRIM_HORIZON until a page is empty and at least `want` were read.
async fn read_open_shard(
    kinesis: &Client,
    shard_id: &str,
    want: usize,
) -> anyhow::Result<Vec<Record>> {
    let mut iterator = trim_horizon(kinesis, shard_id).await?;
    let mut got = Vec::new();
    for _ in 0..MAX_CALLS {
        let out = kinesis
            .get_records()
            .shard_iterator(&iterator)
            .limit(GET_RECORDS_LIMIT)
            .send()
            .await
            .sdk("GetRecords")?;
        let behind = out
            .millis_behind_latest()
            .context("no MillisBehindLatest")?;
        ensure!(
            out.records().len() <= GET_RECORDS_LIMIT as usize,
            "{} records for Limit {GET_RECORDS_LIMIT}",
            out.records().len()
        );
        ensure!(
            out.child_shards().is_empty(),
            "open shard returned ChildShards"
        );
        got.extend_from_slice(out.records());
        if out.records().is_empty() && got.len() >= want {
            return Ok(got);
        }
        if out.records().is_empty() && behind == 0 {
            bail!("{shard_id}: read {} records, put {want}", got.len());
        }
        iterator = out
            .next_shard_iterator()
            .context("open shard returned no NextShardIterator")?
            .to_owned();
    }
    bail!("{shard_id}: no end after {MAX_CALLS} GetRecords calls")
}

pub(crate) async fn read_back_all(
    kinesis: &Client,
    shards: &[Shard],
    sent: &[Sent],
) -> anyhow::Result<()> {
    ensure!(
        sent.len() == 1 + BATCH_RECORDS,
        "{} records were put",
        sent.len()
    );
    let mut read = 0;
    for shard in shards {
        let id = shard.shard_id();
        let want = sent.iter().filter(|s| s.shard_id == id).count();
        // 101 keys over two halves of the hash space: both get records.
        ensure!(want > 0, "no record was put to {id}");
        let got = read_open_shard(kinesis, id, want).await?;
        check_shard_records(id, &got, sent)?;
        read += got.len();
    }
    ensure!(
        read == sent.len(),
        "read {read} records, put {}",
        sent.len()
    );
    Ok(())
}

/// Reads the closed parent from TRIM_HORIZON until GetRecords returns no next iterator.
pub(crate) async fn drain_parent(kinesis: &Client, sent: &[Sent]) -> anyhow::Result<()> {
    let mut iterator = trim_horizon(kinesis, PARENT).await?;
    let mut got = Vec::new();
    for _ in 0..MAX_CALLS {
        let out = kinesis
            .get_records()
            .shard_iterator(&iterator)
            .limit(GET_RECORDS_LIMIT)
            .send()
            .await
            .sdk("GetRecords")?;
        got.extend_from_slice(out.records());
        let children = out.child_shards();
        // KCL's rule (wire reference §5): an iterator and no children, or children and no iterator.
        match out.next_shard_iterator() {
            Some(next) => {
                ensure!(
                    children.is_empty(),
                    "ChildShards next to a NextShardIterator"
                );
                iterator = next.to_owned();
            }
            None => {
                let mut ids: Vec<&str> = children.iter().map(|c| c.shard_id()).collect();
                ids.sort_unstable();
                ensure!(ids == CHILDREN, "ChildShards {ids:?}");
                for child in children {
                    ensure!(
                        child.parent_shards() == [PARENT],
                        "{}: ParentShards {:?}",
                        child.shard_id(),
                        child.parent_shards()
                    );
                    ensure!(child.hash_key_range().is_some(), "no HashKeyRange");
                }
                return check_shard_records(PARENT, &got, sent);
            }
        }
    }
    bail!("no end of the closed parent after {MAX_CALLS} GetRecords calls")
}
