//! `shardline tail STREAM`: print every shard's records as they arrive.
//!
//! # Order
//!
//! Records of one shard print in sequence-number order; shards interleave. A shard's
//! children (after a split or merge) are read only once every parent has been read to its
//! end, so the records of one partition key keep their order across a reshard, as the KCL
//! does it. `--from trim-horizon` starts at the root shards (those whose parents are gone or
//! never existed) and reaches the rest through `ChildShards`; `--from latest` starts at the
//! open shards and ignores the closed ones.
//!
//! # KPL aggregates
//!
//! A record in the KPL aggregated format prints as its user records, one line each, with
//! their own partition keys; `--json` lines then carry `sub_sequence_number`. A malformed
//! aggregate prints as stored.
//!
//! # Polling
//!
//! One GetRecords call per shard per round, one round after the other. A round in which no
//! shard had records is followed by [`IDLE_BACKOFF`]; throttling by [`THROTTLED_BACKOFF`].
//! An iterator that expired (the process was stopped longer than its lifetime) is replaced by
//! one after the last sequence number printed. With `--no-follow` the command ends after a
//! round in which every shard answered no records and `MillisBehindLatest` 0. Ctrl-C and a
//! closed stdout (`| head`) end it cleanly, with exit status 0.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::streams::{self, Shard};
use super::Position;
use shardline_client::{kpl, Client, Error as CallError};

/// The pause after a round without records.
const IDLE_BACKOFF: Duration = Duration::from_millis(200);
/// The pause after ProvisionedThroughputExceededException (AWS allows 5 GetRecords calls per
/// second per shard).
const THROTTLED_BACKOFF: Duration = Duration::from_secs(1);

pub struct Options {
    pub from: Position,
    pub follow: bool,
    pub json: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetShardIteratorResponse {
    shard_iterator: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetRecordsResponse {
    #[serde(default)]
    records: Vec<Record>,
    next_shard_iterator: Option<String>,
    millis_behind_latest: Option<u64>,
    #[serde(default)]
    child_shards: Vec<ChildShard>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Record {
    sequence_number: String,
    approximate_arrival_timestamp: Option<f64>,
    data: String,
    partition_key: String,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct ChildShard {
    shard_id: String,
    parent_shards: Vec<String>,
}

/// Where a shard is read from when it has no iterator.
#[derive(Clone, Copy)]
enum Start {
    TrimHorizon,
    Latest,
}

/// One shard being read.
struct Cursor {
    shard_id: String,
    start: Start,
    iterator: Option<String>,
    /// The last record printed: where a new iterator starts after an expired one.
    last_sequence: Option<String>,
    /// The last call returned no records and `MillisBehindLatest` 0.
    caught_up: bool,
}

impl Cursor {
    fn new(shard_id: String, start: Start) -> Cursor {
        Cursor {
            shard_id,
            start,
            iterator: None,
            last_sequence: None,
            caught_up: false,
        }
    }
}

/// What one GetRecords call on a shard came to.
enum Step {
    Records,
    Empty,
    Throttled,
    /// The shard is closed and read to its end.
    Finished(Vec<ChildShard>),
}

/// Which shards exist, which are read, and which children wait for their parents.
#[derive(Default)]
struct Lineage {
    /// Shards the server has listed (or named as children).
    known: HashSet<String>,
    /// Read to the end, or never to be read (closed before `--from latest`).
    done: HashSet<String>,
    started: HashSet<String>,
    waiting: Vec<ChildShard>,
}

impl Lineage {
    fn parent_satisfied(&self, parent: &str) -> bool {
        self.done.contains(parent) || !self.known.contains(parent)
    }
}

struct Tail<'a> {
    client: &'a Client,
    stream: &'a str,
    cursors: Vec<Cursor>,
    lineage: Lineage,
    out: Output,
}

/// Prints `stream`'s records (module docs).
///
/// # Errors
/// A server error other than throttling or an expired iterator, or stdout failing for a
/// reason other than a closed pipe.
pub async fn run(client: &Client, stream: &str, options: Options) -> anyhow::Result<()> {
    let shards = streams::list_shards(client, stream).await?;
    let mut tail = Tail {
        client,
        stream,
        cursors: Vec::new(),
        lineage: Lineage::default(),
        out: Output {
            stdout: std::io::BufWriter::new(std::io::stdout()),
            json: options.json,
        },
    };
    tail.begin(&shards, options.from);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let result = loop {
        let step = tokio::select! {
            _ = &mut ctrl_c => break Ok(()),
            step = tail.round() => step,
        };
        let pause = match step {
            Err(e) => break Err(e),
            Ok(_) if tail.cursors.is_empty() => break Ok(()),
            Ok(Round::Records) => None,
            Ok(Round::Idle) if !options.follow && tail.cursors.iter().all(|c| c.caught_up) => {
                break Ok(())
            }
            Ok(Round::Idle) => Some(IDLE_BACKOFF),
            Ok(Round::Throttled) => Some(THROTTLED_BACKOFF),
        };
        if let Some(pause) = pause {
            tokio::select! {
                _ = &mut ctrl_c => break Ok(()),
                () = tokio::time::sleep(pause) => {}
            }
        }
    };
    let result = result.and_then(|()| tail.out.stdout.flush().map_err(anyhow::Error::from));
    match result {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// What a round over every shard came to.
enum Round {
    Records,
    Idle,
    Throttled,
}

impl Tail<'_> {
    /// Picks the shards to start from (module docs, "Order").
    fn begin(&mut self, shards: &[Shard], from: Position) {
        let known: HashSet<String> = shards.iter().map(|s| s.shard_id.clone()).collect();
        for s in shards {
            let start = match from {
                Position::TrimHorizon if s.parents().all(|p| !known.contains(p)) => {
                    Some(Start::TrimHorizon)
                }
                Position::TrimHorizon => None,
                Position::Latest if s.is_open() => Some(Start::Latest),
                Position::Latest => {
                    self.lineage.done.insert(s.shard_id.clone());
                    None
                }
            };
            if let Some(start) = start {
                self.lineage.started.insert(s.shard_id.clone());
                self.cursors.push(Cursor::new(s.shard_id.clone(), start));
            }
        }
        self.lineage.known = known;
    }

    async fn round(&mut self) -> anyhow::Result<Round> {
        let mut any_records = false;
        let mut throttled = false;
        let mut i = 0;
        while i < self.cursors.len() {
            match self.poll(i).await? {
                Step::Records => any_records = true,
                Step::Empty => {}
                Step::Throttled => throttled = true,
                Step::Finished(children) => {
                    let done = self.cursors.remove(i);
                    self.on_finished(&done.shard_id, children).await?;
                    continue;
                }
            }
            i += 1;
        }
        Ok(match (any_records, throttled) {
            (true, _) => Round::Records,
            (false, true) => Round::Throttled,
            (false, false) => Round::Idle,
        })
    }

    async fn poll(&mut self, i: usize) -> anyhow::Result<Step> {
        let (client, stream) = (self.client, self.stream);
        let cursor = &mut self.cursors[i];
        let iterator = match cursor.iterator.take() {
            Some(it) => it,
            None => match shard_iterator(client, stream, cursor).await {
                Ok(Some(it)) => it,
                Ok(None) => return Ok(Step::Finished(Vec::new())),
                Err(e) if is_throttled(&e) => return Ok(Step::Throttled),
                Err(e) => return Err(e.into()),
            },
        };
        let resp: GetRecordsResponse = match client
            .call("GetRecords", &json!({ "ShardIterator": iterator }))
            .await
        {
            Ok(resp) => resp,
            Err(e) if e.kind() == Some("ExpiredIteratorException") => {
                cursor.caught_up = false;
                return Ok(Step::Empty);
            }
            Err(e) if is_throttled(&e) => {
                cursor.iterator = Some(iterator);
                return Ok(Step::Throttled);
            }
            Err(e) => return Err(e.into()),
        };
        for r in &resp.records {
            self.out.record(&cursor.shard_id, r)?;
        }
        if let Some(last) = resp.records.last() {
            cursor.last_sequence = Some(last.sequence_number.clone());
            self.out.stdout.flush()?;
        }
        cursor.caught_up = resp.records.is_empty() && resp.millis_behind_latest.unwrap_or(0) == 0;
        match resp.next_shard_iterator {
            Some(next) => {
                cursor.iterator = Some(next);
                Ok(if resp.records.is_empty() {
                    Step::Empty
                } else {
                    Step::Records
                })
            }
            None => Ok(Step::Finished(resp.child_shards)),
        }
    }

    /// Starts the children of `shard` whose parents are all read.
    async fn on_finished(&mut self, shard: &str, children: Vec<ChildShard>) -> anyhow::Result<()> {
        self.lineage.done.insert(shard.to_string());
        let children = if children.is_empty() {
            // A server that leaves out ChildShards: find them in the listing.
            let shards = streams::list_shards(self.client, self.stream).await?;
            self.learn(&shards);
            shards
                .iter()
                .filter(|s| s.parents().any(|p| p == shard))
                .map(|s| ChildShard {
                    shard_id: s.shard_id.clone(),
                    parent_shards: s.parents().map(str::to_string).collect(),
                })
                .collect()
        } else {
            children
        };
        for child in children {
            let id = &child.shard_id;
            if !self.lineage.started.contains(id)
                && !self.lineage.waiting.iter().any(|w| &w.shard_id == id)
            {
                self.lineage.known.insert(id.clone());
                self.lineage.waiting.push(child);
            }
        }
        let unknown_parent = self.lineage.waiting.iter().any(|c| {
            c.parent_shards
                .iter()
                .any(|p| !self.lineage.known.contains(p))
        });
        if unknown_parent {
            // A parent made after the listing (e.g. split, then merged): it will be read
            // once found, so ask which shards exist now.
            let shards = streams::list_shards(self.client, self.stream).await?;
            self.learn(&shards);
        }
        let (ready, waiting): (Vec<ChildShard>, Vec<ChildShard>) =
            std::mem::take(&mut self.lineage.waiting)
                .into_iter()
                .partition(|c| {
                    c.parent_shards
                        .iter()
                        .all(|p| self.lineage.parent_satisfied(p))
                });
        self.lineage.waiting = waiting;
        for child in ready {
            self.lineage.started.insert(child.shard_id.clone());
            self.cursors
                .push(Cursor::new(child.shard_id, Start::TrimHorizon));
        }
        Ok(())
    }

    fn learn(&mut self, shards: &[Shard]) {
        self.lineage
            .known
            .extend(shards.iter().map(|s| s.shard_id.clone()));
    }
}

async fn shard_iterator(
    client: &Client,
    stream: &str,
    cursor: &Cursor,
) -> Result<Option<String>, CallError> {
    let request = match (&cursor.last_sequence, cursor.start) {
        (Some(seq), _) => json!({
            "StreamName": stream,
            "ShardId": cursor.shard_id,
            "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
            "StartingSequenceNumber": seq,
        }),
        (None, start) => json!({
            "StreamName": stream,
            "ShardId": cursor.shard_id,
            "ShardIteratorType": match start {
                Start::TrimHorizon => "TRIM_HORIZON",
                Start::Latest => "LATEST",
            },
        }),
    };
    let resp: GetShardIteratorResponse = client.call("GetShardIterator", &request).await?;
    Ok(resp.shard_iterator)
}

fn is_throttled(e: &CallError) -> bool {
    matches!(
        e.kind(),
        Some("ProvisionedThroughputExceededException" | "ThrottlingException")
    )
}

/// A `--json` line, members in this order.
#[derive(Serialize)]
struct JsonRecord<'a> {
    shard: &'a str,
    sequence_number: &'a str,
    /// The user record's index inside a KPL aggregate; absent for plain records.
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_sequence_number: Option<u64>,
    partition_key: &'a str,
    /// ApproximateArrivalTimestamp as RFC 3339 (UTC, milliseconds).
    timestamp: Option<String>,
    data: &'a str,
    /// `utf-8`, or `base64` when the data is not valid UTF-8.
    encoding: &'static str,
}

/// Where records are printed.
struct Output {
    stdout: std::io::BufWriter<std::io::Stdout>,
    json: bool,
}

impl Output {
    /// Prints a stored record, or each user record of a KPL aggregate.
    fn record(&mut self, shard: &str, r: &Record) -> std::io::Result<()> {
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&r.data) else {
            return self.line(shard, r, None, &r.partition_key, (r.data.clone(), "base64"));
        };
        match kpl::deaggregate(&bytes) {
            Some(users) => {
                for (sub, user) in (0..).zip(users) {
                    let data = printable(user.data);
                    self.line(shard, r, Some(sub), &user.partition_key, data)?;
                }
                Ok(())
            }
            None => self.line(shard, r, None, &r.partition_key, printable(bytes)),
        }
    }

    fn line(
        &mut self,
        shard: &str,
        r: &Record,
        sub_sequence_number: Option<u64>,
        partition_key: &str,
        (data, encoding): (String, &'static str),
    ) -> std::io::Result<()> {
        if self.json {
            let line = JsonRecord {
                shard,
                sequence_number: &r.sequence_number,
                sub_sequence_number,
                partition_key,
                timestamp: r
                    .approximate_arrival_timestamp
                    .and_then(streams::format_timestamp),
                data: &data,
                encoding,
            };
            serde_json::to_writer(&mut self.stdout, &line)?;
            self.stdout.write_all(b"\n")
        } else {
            self.stdout.write_all(data.as_bytes())?;
            self.stdout.write_all(b"\n")
        }
    }
}

/// Data as text when it is UTF-8, else as base64.
fn printable(bytes: Vec<u8>) -> (String, &'static str) {
    match String::from_utf8(bytes) {
        Ok(text) => (text, "utf-8"),
        Err(e) => (
            base64::engine::general_purpose::STANDARD.encode(e.as_bytes()),
            "base64",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_prints_as_text_when_utf8_else_base64() {
        assert_eq!(printable("héllo".into()), ("héllo".to_string(), "utf-8"));
        assert_eq!(printable(vec![0xff, 0]), ("/wA=".to_string(), "base64"));
    }

    #[test]
    fn unknown_or_done_parents_let_children_start() {
        let mut l = Lineage::default();
        l.known.insert("a".into());
        l.known.insert("b".into());
        l.done.insert("a".into());
        assert!(l.parent_satisfied("a"));
        assert!(!l.parent_satisfied("b"));
        assert!(l.parent_satisfied("trimmed"));
    }
}
