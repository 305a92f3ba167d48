//! The Kinesis HTTP API: PutRecords producers, GetRecords and SubscribeToShard consumers,
//! and the trim-horizon replay.
//!
//! Producers keep up to `in_flight` PutRecords calls outstanding each, on the client's
//! keep-alive connection pool (one connection per call in flight). A PutRecords body is
//! written directly: each record's base64 is the batch's stamp followed by a slice of the
//! producer's filler, encoded once. Consumers decode
//! GetRecords answers borrowing from the response bytes and base64-decode only the 12-byte
//! stamp at the start of each record, so reading costs the client little beyond JSON
//! scanning.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use shardline_client::consumer::fetch::fanout::FanOutFetcher;
use shardline_client::consumer::fetch::Batch;
use shardline_client::kinesis::{self, IteratorStart};
use shardline_client::{Client, Error};
use tokio::sync::{watch, Semaphore};

use super::super::stats::Stats;
use super::super::workload::{stamp_base64, stamp_of, wall_ns, STAMP_BASE64_CHARS, STAMP_BYTES};
use super::ProducerPlan;
use shardline_client::http::KINESIS_TARGET;

/// GetRecords' largest `Limit` (Kinesis API reference).
const MAX_GET_RECORDS_LIMIT: u32 = 10_000;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsOutput {
    #[serde(default)]
    records: Vec<PutResultEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutResultEntry {
    #[serde(default)]
    error_code: Option<String>,
}

/// A short name for a failed call: the service's error type, or the transport failure.
pub fn error_kind(e: &Error) -> String {
    if let Some(kind) = e.kind() {
        return kind.to_string();
    }
    match e {
        Error::Timeout { .. } => "Timeout".into(),
        Error::Unreachable { .. } => "ConnectionFailed".into(),
        Error::Body { .. } => "ResponseBodyFailed".into(),
        Error::BadResponse { .. } => "BadResponse".into(),
        other => other.to_string(),
    }
}

/// Runs one PutRecords producer until its schedule ends and its calls are answered.
pub async fn produce(client: Client, plan: ProducerPlan, stats: Arc<Stats>) {
    let in_flight = Arc::new(Semaphore::new(plan.in_flight));
    let mut maker = plan.record_maker();
    let mut schedule = plan.schedule();
    let mut body_capacity = 0;
    let mut next_stream = plan.index;
    while let Some((due, due_wall_ns)) = schedule.next().await {
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("invariant: the semaphore is never closed");
        let stream = &plan.streams[next_stream % plan.streams.len()];
        next_stream += 1;
        // The body is written here rather than serialized: base64 needs no escaping, and
        // each record's is the stamp's followed by a slice of the filler's.
        let stamp = stamp_base64(due_wall_ns);
        let mut body = Vec::with_capacity(body_capacity);
        body.extend_from_slice(br#"{"StreamName":"#);
        serde_json::to_writer(&mut body, &**stream)
            .expect("invariant: a string serializes to JSON");
        body.extend_from_slice(br#","Records":["#);
        let mut sizes = Vec::with_capacity(plan.batch_records);
        for i in 0..plan.batch_records {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(br#"{"Data":""#);
            sizes.push(maker.data_base64(&stamp, &mut body) as u64);
            body.extend_from_slice(br#"","PartitionKey":"#);
            body.extend_from_slice(maker.key_json());
            body.push(b'}');
        }
        body.extend_from_slice(b"]}");
        body_capacity = body_capacity.max(body.len());
        let (client, stats) = (client.clone(), stats.clone());
        tokio::spawn(async move {
            let answer = client
                .call_encoded(KINESIS_TARGET, "PutRecords", body)
                .await
                .and_then(|bytes| {
                    serde_json::from_slice::<PutRecordsOutput>(&bytes).map_err(|e| {
                        Error::BadResponse {
                            op: "PutRecords".into(),
                            status: hyper::StatusCode::OK,
                            detail: e.to_string(),
                        }
                    })
                });
            let latency = due.elapsed().as_nanos() as u64;
            match answer {
                Ok(out) => {
                    let (mut ok, mut ok_bytes) = (0, 0);
                    for (i, entry) in out.records.iter().enumerate() {
                        match &entry.error_code {
                            None => {
                                ok += 1;
                                ok_bytes += sizes.get(i).copied().unwrap_or(0);
                            }
                            Some(code) => stats.error(code, 1),
                        }
                    }
                    stats.produced(ok, ok_bytes, latency);
                }
                Err(e) => stats.error(&error_kind(&e), sizes.len() as u64),
            }
            drop(permit);
        });
    }
    let _all_answered = in_flight
        .acquire_many(plan.in_flight as u32)
        .await
        .expect("invariant: the semaphore is never closed");
}

/// GetRecords' answer, borrowing the records' base64 data.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetRecordsOutput<'a> {
    #[serde(default, borrow)]
    records: Vec<WireData<'a>>,
    #[serde(default)]
    next_shard_iterator: Option<String>,
    #[serde(default)]
    millis_behind_latest: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireData<'a> {
    /// Borrowed as bytes: serde_json then skips the UTF-8 check (base64 is ASCII, and
    /// the base64 decoder rejects anything else).
    #[serde(borrow)]
    data: &'a [u8],
}

/// Bytes that base64 text decodes to.
fn decoded_len(b64: &[u8]) -> u64 {
    let pad = b64.iter().rev().take_while(|b| **b == b'=').count();
    (b64.len() / 4 * 3).saturating_sub(pad) as u64
}

/// Send-to-receipt latency of a record from its base64 data, if bench stamped it.
fn latency_of_base64(b64: &[u8], now_ns: u64) -> Option<u64> {
    let head = b64.get(..STAMP_BASE64_CHARS)?;
    let mut stamp = [0u8; STAMP_BYTES];
    BASE64.decode_slice(head, &mut stamp).ok()?;
    stamp_of(&stamp).map(|sent| now_ns.saturating_sub(sent))
}

/// One shard being read: its next iterator (`None` once it ended or failed for good).
pub struct ShardCursor {
    iterator: Option<String>,
}

/// Gets an iterator for each `(stream, shard)` at `start`.
///
/// # Errors
/// The server's error.
pub async fn cursors(
    client: &Client,
    shards: &[(String, String)],
    start: &IteratorStart,
) -> Result<Vec<ShardCursor>, Error> {
    let mut out = Vec::with_capacity(shards.len());
    for (stream, shard_id) in shards {
        let iterator = kinesis::get_shard_iterator(client, stream, shard_id, start).await?;
        out.push(ShardCursor {
            iterator: Some(iterator),
        });
    }
    Ok(out)
}

/// One GetRecords call on `cursor`: records and bytes counted into `stats`, and with
/// `end_to_end` each record's send-to-receipt latency (a replay reads old records, whose
/// age is no latency). Returns the number of records and whether the shard is caught up
/// (nothing behind, or ended).
async fn get_records(
    client: &Client,
    cursor: &mut ShardCursor,
    stats: &Stats,
    end_to_end: bool,
) -> (usize, bool) {
    let Some(iterator) = cursor.iterator.as_deref() else {
        return (0, true);
    };
    let started = Instant::now();
    let request = json!({ "ShardIterator": iterator, "Limit": MAX_GET_RECORDS_LIMIT });
    let body = match client
        .call_raw(KINESIS_TARGET, "GetRecords", &request)
        .await
    {
        Ok(body) => body,
        Err(e) => {
            stats.error(&error_kind(&e), 1);
            if !e.is_retryable() {
                cursor.iterator = None;
            }
            return (0, false);
        }
    };
    let call_ns = started.elapsed().as_nanos() as u64;
    let out: GetRecordsOutput<'_> = match serde_json::from_slice(&body) {
        Ok(out) => out,
        Err(_) => {
            stats.error("BadResponse", 1);
            return (0, false);
        }
    };
    let now = wall_ns();
    let mut bytes = 0;
    let mut latencies = Vec::with_capacity(if end_to_end { out.records.len() } else { 0 });
    for r in &out.records {
        bytes += decoded_len(r.data);
        if end_to_end {
            latencies.extend(latency_of_base64(r.data, now));
        }
    }
    let n = out.records.len();
    stats.consumed(n as u64, bytes, Some(call_ns));
    stats.end_to_end(&latencies);
    let caught_up = n == 0 && out.millis_behind_latest.unwrap_or(0) == 0;
    cursor.iterator = out.next_shard_iterator;
    (n, caught_up || cursor.iterator.is_none())
}

/// Polls `cursors` in turn with GetRecords until `stop` is set; pauses `poll_interval`
/// after a round that found nothing.
pub async fn consume_polling(
    client: Client,
    mut cursors: Vec<ShardCursor>,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
    poll_interval: Duration,
) {
    while !*stop.borrow() {
        let mut found = 0;
        for cursor in &mut cursors {
            found += get_records(&client, cursor, &stats, true).await.0;
        }
        if found == 0 {
            tokio::time::sleep(poll_interval).await;
        }
    }
}

/// Reads `cursors` in turn, as fast as the server answers, until each is caught up (or
/// `deadline` passes).
pub async fn replay(
    client: Client,
    mut cursors: Vec<ShardCursor>,
    stats: Arc<Stats>,
    deadline: Instant,
) {
    let mut done = vec![false; cursors.len()];
    while done.iter().any(|d| !d) && Instant::now() < deadline {
        for (cursor, done) in cursors.iter_mut().zip(done.iter_mut()) {
            if !*done {
                *done = get_records(&client, cursor, &stats, false).await.1;
            }
        }
    }
}

/// Reads one shard through SubscribeToShard until `stop` is set or the shard ends.
pub async fn consume_fanout(
    client: Client,
    consumer_arn: String,
    shard_id: String,
    start: IteratorStart,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut fetcher = FanOutFetcher::new(client, &consumer_arn, &shard_id, start);
    loop {
        let batch = tokio::select! {
            _ = stop.changed() => return,
            b = fetcher.next() => b,
        };
        match batch {
            Ok(Batch::Records { records, .. }) => {
                let now = wall_ns();
                let bytes = records.iter().map(|r| r.data.len() as u64).sum();
                let latencies: Vec<u64> = records
                    .iter()
                    .filter_map(|r| stamp_of(&r.data).map(|sent| now.saturating_sub(sent)))
                    .collect();
                stats.consumed(records.len() as u64, bytes, None);
                stats.end_to_end(&latencies);
            }
            Ok(Batch::ShardEnd { .. }) => return,
            Err(e) => {
                stats.error(&error_kind(&e), 1);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_lengths_and_stamps() {
        assert_eq!(decoded_len(b""), 0);
        assert_eq!(decoded_len(b"YQ=="), 1);
        assert_eq!(decoded_len(b"YWI="), 2);
        assert_eq!(decoded_len(b"YWJj"), 3);
        let mut data = Vec::new();
        let mut maker = super::super::super::workload::RecordMaker::new(
            0,
            super::super::super::workload::RecordSize::Fixed(100),
            1,
        );
        maker.data(1_000, &mut data);
        let b64 = BASE64.encode(&data);
        assert_eq!(decoded_len(b64.as_bytes()), 100);
        assert_eq!(latency_of_base64(b64.as_bytes(), 5_000), Some(4_000));
        assert_eq!(latency_of_base64(b"YWJj", 5_000), None);
    }
}
