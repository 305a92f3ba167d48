//! `shardline put --aggregate` / `--native ADDR`: stdin lines through the producer library
//! (`shardline_client::producer`): batched per shard, KPL-aggregated with `--aggregate`, sent
//! over the native protocol with `--native`, retried with backoff, per-key order kept.
//!
//! Lines and partition keys are as for plain `put`. Counts go to stderr at the end; the exit
//! status is non-zero if any record was not written.

use std::sync::Arc;

use tokio::sync::mpsc;

use shardline_client::producer::{
    HttpTransport, NativeTransport, Producer, ProducerConfig, RecordFuture, Transport,
};
use shardline_client::Client;

/// How `put` sends through the producer.
pub struct Options {
    pub partition_key: Option<String>,
    pub aggregate: bool,
    /// The native protocol's `host:port`; `None` for PutRecords over HTTP.
    pub native: Option<String>,
}

/// Writes stdin to `stream` through the producer.
///
/// # Errors
/// A missing stream, an unreachable native port, a read error on stdin, or records that
/// could not be written.
pub async fn run(client: &Client, stream: &str, options: Options) -> anyhow::Result<()> {
    let transport: Arc<dyn Transport> = match &options.native {
        Some(addr) => Arc::new(NativeTransport::connect(addr, client.clone()).await?),
        None => Arc::new(HttpTransport::new(client.clone())),
    };
    let mut config = ProducerConfig::new(stream);
    config.aggregation = options.aggregate;
    let producer = Producer::new(config, transport).await?;
    let (lines_tx, mut lines) = mpsc::channel(super::put::LINE_QUEUE);
    std::thread::spawn(move || super::put::read_lines(&lines_tx));
    let (futures_tx, mut futures) = mpsc::unbounded_channel::<RecordFuture>();
    let counter = tokio::spawn(async move {
        let (mut written, mut aggregated, mut failed, mut last_error) = (0u64, 0u64, 0u64, None);
        while let Some(f) = futures.recv().await {
            match f.await {
                Ok(receipt) => {
                    written += 1;
                    aggregated += u64::from(receipt.sub_sequence_number.is_some());
                }
                Err(e) => {
                    failed += 1;
                    last_error = Some(e.to_string());
                }
            }
        }
        (written, aggregated, failed, last_error)
    });
    let mut line_number = 0u64;
    while let Some(line) = lines.recv().await {
        let line = line?;
        line_number += 1;
        let key = match &options.partition_key {
            Some(k) => k.clone(),
            None => line_number.to_string(),
        };
        let future = producer.put(&key, None, line).await?;
        // The counter only ends after this loop drops the sender.
        let _ = futures_tx.send(future);
    }
    drop(futures_tx);
    producer.close().await?;
    let (written, aggregated, failed, last_error) = counter.await?;
    eprintln!(
        "{line_number} lines read, {written} records written ({aggregated} in KPL aggregates), {failed} failed"
    );
    if let Some(e) = last_error {
        anyhow::bail!("{failed} records were not written; last error: {e}");
    }
    Ok(())
}
