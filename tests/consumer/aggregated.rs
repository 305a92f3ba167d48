//! KPL aggregates through the worker: user records arrive with sub-sequence numbers, and a
//! checkpoint inside an aggregate resumes after the checkpointed user record.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shardline_client::consumer::{
    Checkpointer, InitializeInput, ProcessRecordsInput, RecordProcessor, Worker,
};
use shardline_client::producer::{HttpTransport, Producer, ProducerConfig};
use shardline_client::Error;

use crate::harness::{config, create_stream, Server};
use crate::spawn_worker;

/// What processors saw: `("init", checkpoint)` or `(data, "seq.sub")`.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// Checkpoints at sub-record 4 of the first aggregate, then fails (once over all
/// instances), so the worker hands the lease back and a new instance resumes.
struct StopsInside {
    seen: Seen,
    failed: Arc<AtomicBool>,
}

impl RecordProcessor for StopsInside {
    async fn initialize(&mut self, input: InitializeInput) -> Result<(), Error> {
        let at = input.checkpoint.to_string();
        self.seen.lock().unwrap().push(("init".into(), at));
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), Error> {
        for r in &input.records {
            let data = String::from_utf8(r.data.clone()).unwrap();
            self.seen
                .lock()
                .unwrap()
                .push((data, r.position().to_string()));
            if r.sub_sequence_number == 4 && !self.failed.swap(true, Ordering::SeqCst) {
                checkpointer.checkpoint_at(&r.sequence_number, 4).await?;
                return Err(Error::Processor {
                    shard_id: "test".into(),
                    detail: "stopping inside the aggregate (expected by the test)".into(),
                });
            }
        }
        checkpointer.checkpoint().await
    }

    async fn lease_lost(&mut self) -> Result<(), Error> {
        Ok(())
    }

    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), Error> {
        checkpointer.checkpoint().await
    }

    async fn shutdown_requested(&mut self, checkpointer: &mut Checkpointer) -> Result<(), Error> {
        checkpointer.checkpoint().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_inside_an_aggregate_resumes_after_its_user_record() {
    let server = Server::start();
    let client = server.client();
    create_stream(&client, "agg", 1).await;
    let mut pc = ProducerConfig::new("agg");
    pc.aggregation = true;
    pc.linger = Duration::from_secs(3600);
    let producer = Producer::new(pc, Arc::new(HttpTransport::new(client.clone())))
        .await
        .unwrap();
    let mut futures = Vec::new();
    for i in 0..10 {
        futures.push(
            producer
                .put(&format!("k{i}"), None, format!("u-{i}").into_bytes())
                .await
                .unwrap(),
        );
    }
    producer.flush().await.unwrap();
    let mut receipts = Vec::new();
    for f in futures {
        receipts.push(f.await.unwrap());
    }
    let seq = receipts[0].sequence_number.clone();
    let subs: Vec<_> = receipts
        .iter()
        .map(|r| (r.sequence_number == seq, r.sub_sequence_number))
        .collect();
    assert_eq!(
        subs,
        (0..10).map(|i| (true, Some(i))).collect::<Vec<_>>(),
        "one aggregate"
    );
    producer.close().await.unwrap();
    // Then two plain records, from a producer that does not aggregate.
    let plain_producer = Producer::new(
        ProducerConfig::new("agg"),
        Arc::new(HttpTransport::new(client.clone())),
    )
    .await
    .unwrap();
    let plain = [
        plain_producer
            .put("p", None, b"p-0".to_vec())
            .await
            .unwrap(),
        plain_producer
            .put("p", None, b"p-1".to_vec())
            .await
            .unwrap(),
    ];
    for f in plain {
        assert_eq!(f.await.unwrap().sub_sequence_number, None);
    }
    plain_producer.close().await.unwrap();

    let seen: Seen = Arc::default();
    let failed = Arc::new(AtomicBool::new(false));
    let factory = {
        let (seen, failed) = (seen.clone(), failed.clone());
        move |_: &str| {
            Ok(StopsInside {
                seen: seen.clone(),
                failed: failed.clone(),
            })
        }
    };
    let cfg = config("appk", "agg", "w1", Duration::from_secs(1));
    let (stop, handle) = spawn_worker(Worker::new(cfg, client.clone(), factory));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !seen.lock().unwrap().iter().any(|(d, _)| d == "p-1") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();

    let seen = seen.lock().unwrap().clone();
    let second = seen.iter().rposition(|(d, _)| d == "init").unwrap();
    let (before, after) = seen.split_at(second);
    // The first instance saw user records 0..=4 with their sub-sequence numbers.
    let first: Vec<_> = before[1..]
        .iter()
        .map(|(d, p)| (d.as_str(), p.clone()))
        .collect();
    let want: Vec<_> = (0..5)
        .map(|i| {
            (
                format!("u-{i}"),
                if i == 0 {
                    seq.clone()
                } else {
                    format!("{seq}.{i}")
                },
            )
        })
        .collect();
    assert_eq!(
        first,
        want.iter()
            .map(|(d, p)| (d.as_str(), p.clone()))
            .collect::<Vec<_>>()
    );
    // The second started at the checkpoint (seq, 4) and saw 5..=9, then the plain records.
    assert_eq!(after[0], ("init".to_string(), format!("{seq}.4")));
    let rest: Vec<&str> = after[1..].iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(rest, ["u-5", "u-6", "u-7", "u-8", "u-9", "p-0", "p-1"]);
}
