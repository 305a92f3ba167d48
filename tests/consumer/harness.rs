//! The real `shardline` binary on a loopback port (as `tests/kinesis/conftest.py` starts it),
//! a recording record processor, and helpers to write records and reshard.

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shardline_client::consumer::{
    Checkpointer, InitializeInput, ProcessRecordsInput, RecordProcessor, Transport, WorkerConfig,
};
use shardline_client::{Client, Error};

/// A running `shardline serve` on a temporary data directory; killed on drop.
pub struct Server {
    child: Child,
    pub endpoint: String,
    _data_dir: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// A server started with extra `serve` arguments.
    pub fn start_with(args: &[&str]) -> Server {
        let data_dir = tempfile::tempdir().unwrap();
        let started = crate::serve::serve(data_dir.path(), false, args, Stdio::null());
        assert!(started.native.is_none(), "no native listener was asked for");
        Server {
            child: started.child,
            endpoint: format!("http://{}", started.http),
            _data_dir: data_dir,
        }
    }

    /// The value of a counter in `/metrics`, summed over its label sets.
    pub fn metric(&self, name: &str) -> f64 {
        use std::io::{Read, Write};
        let addr = self.endpoint.trim_start_matches("http://");
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        write!(conn, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn client(&self) -> Client {
        Client::new(Some(&self.endpoint)).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn create_stream(client: &Client, name: &str, shards: u32) {
    let _: Value = client
        .call(
            "CreateStream",
            &json!({ "StreamName": name, "ShardCount": shards }),
        )
        .await
        .unwrap();
}

/// One record written: its shard, sequence number and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub shard_id: String,
    pub sequence_number: String,
    pub data: String,
}

/// PutRecords of `(partition_key, data)` pairs, in one call per 100; every entry must succeed.
pub async fn put(client: &Client, stream: &str, records: &[(String, String)]) -> Vec<Written> {
    use base64::Engine as _;
    let mut written = Vec::new();
    for chunk in records.chunks(100) {
        let entries: Vec<Value> = chunk
            .iter()
            .map(|(pk, data)| {
                json!({
                    "PartitionKey": pk,
                    "Data": base64::engine::general_purpose::STANDARD.encode(data),
                })
            })
            .collect();
        let out: Value = client
            .call(
                "PutRecords",
                &json!({ "StreamName": stream, "Records": entries }),
            )
            .await
            .unwrap();
        assert_eq!(out["FailedRecordCount"], 0, "{out}");
        for (entry, (_, data)) in out["Records"].as_array().unwrap().iter().zip(chunk) {
            written.push(Written {
                shard_id: entry["ShardId"].as_str().unwrap().to_string(),
                sequence_number: entry["SequenceNumber"].as_str().unwrap().to_string(),
                data: data.clone(),
            });
        }
    }
    written
}

/// What a worker configured for tests uses: short intervals so tests finish in seconds.
pub fn config(app: &str, stream: &str, worker: &str, failover: Duration) -> WorkerConfig {
    let mut c = WorkerConfig::new(app, stream, worker);
    c.failover = failover;
    c.transport = Transport::Polling {
        idle: Duration::from_millis(100),
        max_records: 25,
    };
    c.shard_sync_interval = Duration::from_millis(500);
    c.parent_poll_interval = Duration::from_millis(100);
    c
}

/// One thing a processor saw or did, in global order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Initialized {
        checkpoint: String,
    },
    Record {
        sequence_number: String,
        data: String,
    },
    Checkpointed {
        at: String,
    },
    CheckpointRefused {
        error: String,
    },
    LeaseLost,
    ShardEnded,
    ShutdownRequested,
}

/// Every processor's events, in the order they happened: `(shard, event)`.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<(String, Event)>>>);

impl Log {
    pub fn push(&self, shard: &str, event: Event) {
        self.0.lock().unwrap().push((shard.to_string(), event));
    }

    pub fn events(&self) -> Vec<(String, Event)> {
        self.0.lock().unwrap().clone()
    }

    /// The data of every record delivered, per shard, in delivery order.
    pub fn records_by_shard(&self) -> HashMap<String, Vec<String>> {
        let mut by_shard: HashMap<String, Vec<String>> = HashMap::new();
        for (shard, e) in self.events() {
            if let Event::Record { data, .. } = e {
                by_shard.entry(shard).or_default().push(data);
            }
        }
        by_shard
    }

    pub fn record_count(&self) -> usize {
        self.events()
            .iter()
            .filter(|(_, e)| matches!(e, Event::Record { .. }))
            .count()
    }

    /// Waits until `done` holds for the log, or panics after `timeout`.
    pub async fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&Log) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; events: {:?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A processor that logs everything and checkpoints after every batch (if `checkpoint_each`)
/// and at shard end and shutdown.
pub struct Recorder {
    pub shard: String,
    pub log: Log,
    pub checkpoint_each: bool,
}

impl Recorder {
    async fn checkpoint(&self, checkpointer: &mut Checkpointer) -> Result<(), Error> {
        match checkpointer.checkpoint().await {
            Ok(()) => {
                let at = checkpointer.current().to_string();
                self.log.push(&self.shard, Event::Checkpointed { at });
                Ok(())
            }
            Err(e) => {
                let error = e.to_string();
                self.log
                    .push(&self.shard, Event::CheckpointRefused { error });
                Err(e)
            }
        }
    }
}

impl RecordProcessor for Recorder {
    async fn initialize(&mut self, input: InitializeInput) -> Result<(), Error> {
        let checkpoint = input.checkpoint.to_string();
        self.log
            .push(&self.shard, Event::Initialized { checkpoint });
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), Error> {
        for r in input.records {
            let event = Event::Record {
                sequence_number: r.sequence_number.clone(),
                data: String::from_utf8(r.data).unwrap(),
            };
            self.log.push(&self.shard, event);
        }
        if self.checkpoint_each {
            self.checkpoint(checkpointer).await?;
        }
        Ok(())
    }

    async fn lease_lost(&mut self) -> Result<(), Error> {
        self.log.push(&self.shard, Event::LeaseLost);
        Ok(())
    }

    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), Error> {
        self.log.push(&self.shard, Event::ShardEnded);
        self.checkpoint(checkpointer).await
    }

    async fn shutdown_requested(&mut self, checkpointer: &mut Checkpointer) -> Result<(), Error> {
        self.log.push(&self.shard, Event::ShutdownRequested);
        self.checkpoint(checkpointer).await
    }
}

/// A factory of [`Recorder`]s sharing `log`.
pub fn recorders(
    log: &Log,
    checkpoint_each: bool,
) -> impl Fn(&str) -> Result<Recorder, Error> + Send + Sync + 'static {
    let log = log.clone();
    move |shard: &str| {
        Ok(Recorder {
            shard: shard.to_string(),
            log: log.clone(),
            checkpoint_each,
        })
    }
}

/// The data written, per shard, in sequence-number order.
pub fn expected_by_shard(written: &[Written]) -> HashMap<String, Vec<String>> {
    let mut by_shard: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for w in written {
        by_shard
            .entry(w.shard_id.clone())
            .or_default()
            .push((w.sequence_number.clone(), w.data.clone()));
    }
    by_shard
        .into_iter()
        .map(|(shard, mut v)| {
            v.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then(a.0.cmp(&b.0)));
            (shard, v.into_iter().map(|(_, d)| d).collect())
        })
        .collect()
}

/// Shards of the stream with their hash key ranges: `(shard id, start, end)`.
pub async fn shards(client: &Client, stream: &str) -> Vec<(String, u128, u128)> {
    let out: Value = client
        .call("ListShards", &json!({ "StreamName": stream }))
        .await
        .unwrap();
    out["Shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let range = &s["HashKeyRange"];
            (
                s["ShardId"].as_str().unwrap().to_string(),
                range["StartingHashKey"].as_str().unwrap().parse().unwrap(),
                range["EndingHashKey"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

/// Calls a Kinesis operation that answers nothing of interest.
pub async fn call(client: &Client, op: &str, body: Value) {
    let _: Value = client.call(op, &body).await.unwrap();
}

/// DescribeStreamSummary's StreamARN.
pub async fn stream_arn(client: &Client, stream: &str) -> String {
    let out: Value = client
        .call("DescribeStreamSummary", &json!({ "StreamName": stream }))
        .await
        .unwrap();
    out["StreamDescriptionSummary"]["StreamARN"]
        .as_str()
        .unwrap()
        .to_string()
}

/// One of two processors, so that one factory can make both.
pub enum Either<L, R> {
    Left(L),
    Right(R),
}

impl<L: RecordProcessor, R: RecordProcessor> RecordProcessor for Either<L, R> {
    async fn initialize(&mut self, input: InitializeInput) -> Result<(), Error> {
        match self {
            Either::Left(p) => p.initialize(input).await,
            Either::Right(p) => p.initialize(input).await,
        }
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), Error> {
        match self {
            Either::Left(p) => p.process_records(input, checkpointer).await,
            Either::Right(p) => p.process_records(input, checkpointer).await,
        }
    }

    async fn lease_lost(&mut self) -> Result<(), Error> {
        match self {
            Either::Left(p) => p.lease_lost().await,
            Either::Right(p) => p.lease_lost().await,
        }
    }

    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), Error> {
        match self {
            Either::Left(p) => p.shard_ended(checkpointer).await,
            Either::Right(p) => p.shard_ended(checkpointer).await,
        }
    }

    async fn shutdown_requested(&mut self, checkpointer: &mut Checkpointer) -> Result<(), Error> {
        match self {
            Either::Left(p) => p.shutdown_requested(checkpointer).await,
            Either::Right(p) => p.shutdown_requested(checkpointer).await,
        }
    }
}
