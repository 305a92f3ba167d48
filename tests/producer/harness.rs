//! The real `shardline` binary with its HTTP and native listeners on loopback ports, a
//! transport wrapper that records what the producer sent, and a reader of every stored
//! record (GetRecords, de-aggregated by the client crate).

use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use shardline_client::consumer::record::{user_records_of, Record};
use shardline_client::error::Error;
use shardline_client::kinesis::{self, IteratorStart};
use shardline_client::producer::transport::BoxFuture;
use shardline_client::producer::{
    EntryOutcome, HttpTransport, NativeTransport, PutEntry, RecordFailure, ShardRange, Transport,
};
use shardline_client::Client;

/// A running `shardline serve`; killed on drop.
pub struct Server {
    child: Child,
    pub endpoint: String,
    pub native: String,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server with `--create-stream` for each `NAME:SHARDS` and `extra` flags.
    pub fn start(streams: &[&str], extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<&str> = streams
            .iter()
            .flat_map(|s| ["--create-stream", s])
            .collect();
        args.extend_from_slice(extra);
        let started = crate::serve::serve(dir.path(), true, &args, Stdio::null());
        Server {
            child: started.child,
            endpoint: format!("http://{}", started.http),
            native: started
                .native
                .expect("asked for the native listener")
                .to_string(),
            _dir: dir,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(Some(&self.endpoint)).unwrap()
    }

    /// The transport of `kind`, wrapped to record batches.
    pub async fn transport(&self, kind: Kind) -> Arc<Recording> {
        let inner: Box<dyn Transport> = match kind {
            Kind::Http => Box::new(HttpTransport::new(self.client())),
            Kind::Native => Box::new(
                NativeTransport::connect(&self.native, self.client())
                    .await
                    .unwrap(),
            ),
        };
        Arc::new(Recording {
            inner,
            log: Mutex::new(Vec::new()),
            list_calls: AtomicUsize::new(0),
        })
    }

    /// Every user record of every shard of `stream`, shard by shard, in shard order.
    pub async fn read_all(&self, stream: &str) -> Vec<(String, Record)> {
        let client = self.client();
        let mut out = Vec::new();
        for shard in kinesis::list_shards(&client, stream).await.unwrap() {
            let mut iterator = kinesis::get_shard_iterator(
                &client,
                stream,
                &shard.shard_id,
                &IteratorStart::TrimHorizon,
            )
            .await
            .unwrap();
            loop {
                // Under --emulate-limits reads are throttled too (2 MiB/s per shard).
                let page = match kinesis::get_records(&client, &iterator, 10_000).await {
                    Ok(page) => page,
                    Err(e) if e.kind() == Some("ProvisionedThroughputExceededException") => {
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        continue;
                    }
                    Err(e) => panic!("GetRecords: {e}"),
                };
                if page.records.is_empty() {
                    break;
                }
                for r in user_records_of(&page.records).unwrap() {
                    out.push((shard.shard_id.clone(), r));
                }
                match page.next_shard_iterator {
                    Some(next) => iterator = next,
                    None => break,
                }
            }
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Http,
    Native,
}

/// What one put call carried and how it ended.
#[derive(Debug, Clone)]
pub struct Call {
    pub entries: Vec<PutEntry>,
    /// Failed entries (or every entry, when the call failed).
    pub failed: usize,
}

/// A real transport that also logs every call.
pub struct Recording {
    inner: Box<dyn Transport>,
    pub log: Mutex<Vec<Call>>,
    /// ListShards calls (the shard map's refreshes, and the first listing).
    pub list_calls: AtomicUsize,
}

impl Recording {
    pub fn calls(&self) -> Vec<Call> {
        self.log.lock().unwrap().clone()
    }

    pub fn failed_entries(&self) -> usize {
        self.calls().iter().map(|c| c.failed).sum()
    }
}

impl Transport for Recording {
    fn put<'a>(
        &'a self,
        stream: &'a str,
        entries: &'a [PutEntry],
    ) -> BoxFuture<'a, Result<Vec<EntryOutcome>, RecordFailure>> {
        Box::pin(async move {
            let result = self.inner.put(stream, entries).await;
            let failed = match &result {
                Ok(outcomes) => outcomes
                    .iter()
                    .filter(|o| matches!(o, EntryOutcome::Failed(_)))
                    .count(),
                Err(_) => entries.len(),
            };
            self.log.lock().unwrap().push(Call {
                entries: entries.to_vec(),
                failed,
            });
            result
        })
    }

    fn list_shards<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Vec<ShardRange>, Error>> {
        self.list_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.list_shards(stream)
    }

    fn max_batch_records(&self) -> usize {
        self.inner.max_batch_records()
    }

    fn max_batch_bytes(&self) -> usize {
        self.inner.max_batch_bytes()
    }
}
