//! The consumer library (`shardline-client`'s worker) against the real `shardline` binary:
//! delivery order, checkpoints and resumption, parent-before-child across resharding, and
//! lease loss.

#[expect(
    clippy::unwrap_used,
    reason = "test harness: a failed call is a failed test"
)]
mod harness;
#[path = "../support/serve.rs"]
mod serve;

// `cfg(test)` tells clippy that the module's helpers are test code (`allow-unwrap-in-tests`).
#[cfg(test)]
mod aggregated;

use std::collections::HashMap;
use std::time::Duration;

use shardline_client::consumer::Worker;
use shardline_client::leases::{LeaseTable, SHARD_END};
use tokio::sync::oneshot;

use harness::{
    call, config, create_stream, expected_by_shard, put, recorders, shards, Event, Log, Server,
};

const WAIT: Duration = Duration::from_secs(30);

fn records(prefix: &str, n: usize, keys: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("key-{}", i % keys), format!("{prefix}-{i:04}")))
        .collect()
}

/// Runs a worker until the returned sender fires (or is dropped); the handle gives its result.
pub(crate) fn spawn_worker<F: shardline_client::consumer::ProcessorFactory>(
    worker: Worker<F>,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), shardline_client::Error>>,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    (stop, handle)
}

/// Every record reaches a processor once, in sequence-number order per shard; a graceful
/// shutdown checkpoints and hands the leases back; a new worker resumes after the
/// checkpoints and sees only the records written since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_arrive_in_order_and_checkpoints_resume() {
    let server = Server::start();
    let client = server.client();
    create_stream(&client, "orders", 3).await;
    let first = put(&client, "orders", &records("a", 300, 17)).await;

    let log = Log::default();
    let cfg = config("app1", "orders", "w1", Duration::from_secs(3));
    let (stop, handle) = spawn_worker(Worker::new(cfg, client.clone(), recorders(&log, false)));
    log.wait_for("300 records", WAIT, |l| l.record_count() >= 300)
        .await;
    assert_eq!(log.records_by_shard(), expected_by_shard(&first));
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();

    // shutdown_requested checkpointed every shard at its last record; leases handed back.
    let table = LeaseTable::new(client.clone(), "app1");
    let leases = table.list().await.unwrap();
    assert_eq!(leases.len(), 3);
    for lease in &leases {
        assert_eq!(lease.lease_owner, None, "{lease:?}");
        let last = first
            .iter()
            .filter(|w| w.shard_id == lease.lease_key)
            .map(|w| &w.sequence_number)
            .max_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b)))
            .unwrap();
        assert_eq!(&lease.checkpoint, last);
    }
    let shutdowns = log
        .events()
        .iter()
        .filter(|(_, e)| *e == Event::ShutdownRequested)
        .count();
    assert_eq!(shutdowns, 3);

    let second = put(&client, "orders", &records("b", 90, 7)).await;
    let log2 = Log::default();
    let cfg = config("app1", "orders", "w2", Duration::from_secs(3));
    let (stop, handle) = spawn_worker(Worker::new(cfg, client.clone(), recorders(&log2, true)));
    log2.wait_for("90 new records", WAIT, |l| l.record_count() >= 90)
        .await;
    // A little longer: nothing from before the checkpoints may arrive late.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(log2.records_by_shard(), expected_by_shard(&second));
    for (shard, event) in log2.events() {
        if let Event::Initialized { checkpoint } = event {
            let lease = leases.iter().find(|l| l.lease_key == shard).unwrap();
            assert_eq!(checkpoint, lease.checkpoint);
        }
    }
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

/// A split and then a merge while a worker consumes: every child starts only after each
/// parent has checkpointed SHARD_END, so every partition key's records are processed in
/// the order they were written, across all shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_wait_for_parents_across_split_and_merge() {
    let server = Server::start();
    let client = server.client();
    create_stream(&client, "reshard", 2).await;
    let log = Log::default();
    let cfg = config("app2", "reshard", "w1", Duration::from_secs(3));
    let (stop, handle) = spawn_worker(Worker::new(cfg, client.clone(), recorders(&log, true)));

    let mut written = put(&client, "reshard", &records("a", 200, 23)).await;
    let before = shards(&client, "reshard").await;
    let (s0, start0, end0) = before[0].clone();
    let (s1, _, _) = before[1].clone();
    let middle = start0 + (end0 - start0) / 2;
    call(
        &client,
        "SplitShard",
        serde_json::json!({
            "StreamName": "reshard",
            "ShardToSplit": s0,
            "NewStartingHashKey": middle.to_string(),
        }),
    )
    .await;
    written.extend(put(&client, "reshard", &records("b", 200, 23)).await);
    // The split's upper child is adjacent to the second original shard: merge them.
    let after_split = shards(&client, "reshard").await;
    let upper = after_split
        .iter()
        .find(|(_, start, _)| *start == middle)
        .unwrap()
        .0
        .clone();
    call(
        &client,
        "MergeShards",
        serde_json::json!({
            "StreamName": "reshard",
            "ShardToMerge": upper,
            "AdjacentShardToMerge": s1,
        }),
    )
    .await;
    written.extend(put(&client, "reshard", &records("c", 200, 23)).await);

    log.wait_for("600 records", Duration::from_secs(60), |l| {
        l.record_count() >= 600
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(log.records_by_shard(), expected_by_shard(&written));

    // Parent before child: each child initialised after every parent's SHARD_END checkpoint.
    let table = LeaseTable::new(client.clone(), "app2");
    let leases = table.list().await.unwrap();
    assert_eq!(leases.len(), 5, "{leases:?}");
    let events = log.events();
    let position = |shard: &str, want: &dyn Fn(&Event) -> bool| {
        events
            .iter()
            .position(|(s, e)| s == shard && want(e))
            .unwrap_or_else(|| panic!("no such event for {shard}: {events:?}"))
    };
    let mut children = 0;
    for lease in &leases {
        let init = position(&lease.lease_key, &|e| {
            matches!(e, Event::Initialized { .. })
        });
        for parent in &lease.parent_shard_ids {
            children += 1;
            let ended = position(
                parent,
                &|e| matches!(e, Event::Checkpointed { at } if at == SHARD_END),
            );
            assert!(
                ended < init,
                "{} started before {parent} ended",
                lease.lease_key
            );
        }
    }
    assert_eq!(
        children, 4,
        "two split children with one parent, one merge child with two"
    );
    for lease in leases
        .iter()
        .filter(|l| l.lease_key == s0 || l.lease_key == s1 || l.lease_key == upper)
    {
        assert_eq!(lease.checkpoint, SHARD_END, "{lease:?}");
    }

    // Every key's records in the order written, across the shards (one worker, no
    // redelivery, so the log holds each record once).
    let mut last_seen: HashMap<String, String> = HashMap::new();
    let key_of: HashMap<&str, usize> = written
        .iter()
        .map(|w| {
            let i: usize = w.data[2..].parse().unwrap();
            (w.data.as_str(), i % 23)
        })
        .collect();
    for (_, e) in &events {
        if let Event::Record { data, .. } = e {
            let key = key_of[data.as_str()].to_string();
            if let Some(prev) = last_seen.get(&key) {
                assert!(prev < data, "key {key}: {data} after {prev}");
            }
            last_seen.insert(key, data.clone());
        }
    }
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

/// A worker whose lease was taken by another owner (here an operator's TakeLease, as a
/// faster worker would after a pause) has its next checkpoint refused by the conditional
/// Checkpoint, and its processor is told `lease_lost`; the table keeps the new owner and
/// the last accepted checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_workers_checkpoint_is_refused_and_lease_lost_delivered() {
    let server = Server::start();
    let client = server.client();
    create_stream(&client, "stale", 1).await;
    let log = Log::default();
    // A long failover: the renewer (every 20 s) stays out of the way of this test, so the
    // refusal comes from the checkpoint itself.
    let cfg = config("app3", "stale", "w1", Duration::from_secs(60));
    let (stop, handle) = spawn_worker(Worker::new(cfg, client.clone(), recorders(&log, true)));
    let first = put(&client, "stale", &records("a", 5, 5)).await;
    log.wait_for("the first checkpoint", WAIT, |l| {
        l.events()
            .iter()
            .any(|(_, e)| matches!(e, Event::Checkpointed { .. }))
    })
    .await;
    log.wait_for("5 records", WAIT, |l| l.record_count() >= 5)
        .await;
    let table = LeaseTable::new(client.clone(), "app3");
    let shard = first[0].shard_id.clone();
    let taken = loop {
        let lease = table.describe(&shard).await.unwrap();
        match table.take(&shard, "intruder", lease.lease_counter).await {
            Ok(taken) => break taken,
            Err(e) if e.is_condition_failed() => continue,
            Err(e) => panic!("{e}"),
        }
    };
    let checkpoint_before = taken.checkpoint.clone();
    assert_eq!(checkpoint_before, first.last().unwrap().sequence_number);

    put(&client, "stale", &records("b", 3, 3)).await;
    log.wait_for("lease_lost", WAIT, |l| {
        l.events().iter().any(|(_, e)| *e == Event::LeaseLost)
    })
    .await;
    let events: Vec<Event> = log.events().into_iter().map(|(_, e)| e).collect();
    let refused = events
        .iter()
        .position(|e| matches!(e, Event::CheckpointRefused { error } if error.contains("lost")))
        .unwrap_or_else(|| panic!("no refused checkpoint: {events:?}"));
    let lost = events.iter().position(|e| *e == Event::LeaseLost).unwrap();
    assert!(refused < lost);
    assert_eq!(events.iter().filter(|e| **e == Event::LeaseLost).count(), 1);

    let lease = table.describe(&shard).await.unwrap();
    assert_eq!(lease.lease_owner.as_deref(), Some("intruder"));
    assert_eq!(lease.checkpoint, checkpoint_before);
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

/// With AWS's read quota on (5 GetRecords calls per second per shard) a worker polling
/// without pause is throttled; it backs off and still delivers every record, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_get_records_back_off_and_deliver_everything() {
    let server = Server::start_with(&["--emulate-limits"]);
    let client = server.client();
    create_stream(&client, "limited", 1).await;
    let written = put(&client, "limited", &records("a", 100, 3)).await;
    let log = Log::default();
    let mut cfg = config("app5", "limited", "w1", Duration::from_secs(3));
    cfg.transport = shardline_client::consumer::Transport::Polling {
        idle: Duration::ZERO,
        max_records: 10,
    };
    let (stop, handle) = spawn_worker(Worker::new(cfg, client.clone(), recorders(&log, true)));
    log.wait_for("100 records", WAIT, |l| l.record_count() >= 100)
        .await;
    assert_eq!(log.records_by_shard(), expected_by_shard(&written));
    let throttled = server.metric("shardline_read_provisioned_throughput_exceeded_total");
    assert!(throttled >= 1.0, "no GetRecords call was throttled");
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

/// The same worker over enhanced fan-out: it registers the consumer, subscribes to every
/// shard, resubscribes from each event's continuation, and follows a split through the
/// final event's ChildShards, children only after their parent's SHARD_END.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_worker_reads_every_record_and_follows_a_split() {
    let server = Server::start();
    let client = server.client();
    create_stream(&client, "efo", 2).await;
    let mut written = put(&client, "efo", &records("a", 150, 11)).await;
    let log = Log::default();
    let mut cfg = config("app4", "efo", "w1", Duration::from_secs(3));
    cfg.transport = shardline_client::consumer::Transport::FanOut {
        consumer_name: "kcl-efo".into(),
    };
    let (stop, handle) = spawn_worker(Worker::new(cfg, client.clone(), recorders(&log, true)));
    log.wait_for("150 records", WAIT, |l| l.record_count() >= 150)
        .await;

    let (s0, start0, end0) = shards(&client, "efo").await[0].clone();
    call(
        &client,
        "SplitShard",
        serde_json::json!({
            "StreamName": "efo",
            "ShardToSplit": s0,
            "NewStartingHashKey": (start0 + (end0 - start0) / 2).to_string(),
        }),
    )
    .await;
    written.extend(put(&client, "efo", &records("b", 150, 11)).await);
    log.wait_for("300 records", WAIT, |l| l.record_count() >= 300)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(log.records_by_shard(), expected_by_shard(&written));

    let events = log.events();
    let ended = events
        .iter()
        .position(|(s, e)| *s == s0 && matches!(e, Event::Checkpointed { at } if at == SHARD_END))
        .unwrap_or_else(|| panic!("{s0} never checkpointed SHARD_END: {events:?}"));
    let table = LeaseTable::new(client.clone(), "app4");
    let children: Vec<String> = table
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.parent_shard_ids.contains(&s0))
        .map(|l| l.lease_key)
        .collect();
    assert_eq!(children.len(), 2);
    for child in &children {
        let init = events
            .iter()
            .position(|(s, e)| s == child && matches!(e, Event::Initialized { .. }))
            .unwrap();
        assert!(ended < init);
    }
    // The consumer exists on the server, registered by the worker.
    let consumers: serde_json::Value = client
        .call(
            "ListStreamConsumers",
            &serde_json::json!({ "StreamARN": harness::stream_arn(&client, "efo").await }),
        )
        .await
        .unwrap();
    assert_eq!(consumers["Consumers"][0]["ConsumerName"], "kcl-efo");
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}

/// A processor that never returns from `shutdown_requested`.
struct Stuck {
    initialized: tokio::sync::mpsc::UnboundedSender<String>,
}

impl shardline_client::consumer::RecordProcessor for Stuck {
    async fn initialize(
        &mut self,
        input: shardline_client::consumer::InitializeInput,
    ) -> Result<(), shardline_client::Error> {
        let _ = self.initialized.send(input.shard_id);
        Ok(())
    }

    async fn process_records(
        &mut self,
        _: shardline_client::consumer::ProcessRecordsInput,
        _: &mut shardline_client::consumer::Checkpointer,
    ) -> Result<(), shardline_client::Error> {
        Ok(())
    }

    async fn lease_lost(&mut self) -> Result<(), shardline_client::Error> {
        Ok(())
    }

    async fn shard_ended(
        &mut self,
        checkpointer: &mut shardline_client::consumer::Checkpointer,
    ) -> Result<(), shardline_client::Error> {
        checkpointer.checkpoint().await
    }

    async fn shutdown_requested(
        &mut self,
        _: &mut shardline_client::consumer::Checkpointer,
    ) -> Result<(), shardline_client::Error> {
        std::future::pending().await
    }
}

/// Shutdown waits for `shutdown_requested` only up to the shutdown timeout: a processor
/// stuck there is dropped and its lease is not handed back (it expires instead), while a
/// lease whose processor returned is evicted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_up_on_a_stuck_processor_after_the_timeout() {
    let server = Server::start();
    let client = server.client();
    create_stream(&client, "stuck", 2).await;
    let mut cfg = config("app6", "stuck", "w1", Duration::from_secs(3));
    cfg.shutdown_timeout = Duration::from_millis(500);
    let (initialized, mut started) = tokio::sync::mpsc::unbounded_channel();
    let stuck_shard = "shardId-000000000000";
    let factory = move |shard: &str| {
        if shard == stuck_shard {
            Ok(harness::Either::Left(Stuck {
                initialized: initialized.clone(),
            }))
        } else {
            Ok(harness::Either::Right(harness::Recorder {
                shard: shard.to_string(),
                log: Log::default(),
                checkpoint_each: true,
            }))
        }
    };
    let (stop, handle) = spawn_worker(Worker::new(cfg, client.clone(), factory));
    assert_eq!(started.recv().await.unwrap(), stuck_shard);
    stop.send(()).unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(10), handle).await;
    stopped.expect("the worker did not stop").unwrap().unwrap();
    let table = LeaseTable::new(client.clone(), "app6");
    let owners: HashMap<String, Option<String>> = table
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.lease_key, l.lease_owner))
        .collect();
    assert_eq!(owners[stuck_shard].as_deref(), Some("w1"));
    assert_eq!(owners["shardId-000000000001"], None);
}

/// A processor that panics in its first `process_records` call (of all its instances).
struct PanicsOnce {
    inner: harness::Recorder,
    panicked: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl shardline_client::consumer::RecordProcessor for PanicsOnce {
    async fn initialize(
        &mut self,
        input: shardline_client::consumer::InitializeInput,
    ) -> Result<(), shardline_client::Error> {
        self.inner.initialize(input).await
    }

    async fn process_records(
        &mut self,
        input: shardline_client::consumer::ProcessRecordsInput,
        checkpointer: &mut shardline_client::consumer::Checkpointer,
    ) -> Result<(), shardline_client::Error> {
        if !self
            .panicked
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("record processor bug (expected by the test)");
        }
        self.inner.process_records(input, checkpointer).await
    }

    async fn lease_lost(&mut self) -> Result<(), shardline_client::Error> {
        self.inner.lease_lost().await
    }

    async fn shard_ended(
        &mut self,
        checkpointer: &mut shardline_client::consumer::Checkpointer,
    ) -> Result<(), shardline_client::Error> {
        self.inner.shard_ended(checkpointer).await
    }

    async fn shutdown_requested(
        &mut self,
        checkpointer: &mut shardline_client::consumer::Checkpointer,
    ) -> Result<(), shardline_client::Error> {
        self.inner.shutdown_requested(checkpointer).await
    }
}

/// A processor that panics does not leave its lease renewed but unprocessed: the lease is
/// handed back, taken again, and processing resumes from the checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_processor_hands_its_lease_back_and_the_shard_is_retried() {
    let server = Server::start();
    let client = server.client();
    create_stream(&client, "panics", 1).await;
    let written = put(&client, "panics", &records("a", 20, 3)).await;
    let log = Log::default();
    let cfg = config("app7", "panics", "w1", Duration::from_secs(1));
    let panicked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let factory = {
        let (log, panicked) = (log.clone(), panicked.clone());
        move |shard: &str| {
            Ok(PanicsOnce {
                inner: harness::Recorder {
                    shard: shard.to_string(),
                    log: log.clone(),
                    checkpoint_each: true,
                },
                panicked: panicked.clone(),
            })
        }
    };
    let (stop, handle) = spawn_worker(Worker::new(cfg, client.clone(), factory));
    log.wait_for("20 records", WAIT, |l| l.record_count() >= 20)
        .await;
    assert!(panicked.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(log.records_by_shard(), expected_by_shard(&written));
    let inits = log
        .events()
        .iter()
        .filter(|(_, e)| matches!(e, Event::Initialized { .. }))
        .count();
    assert_eq!(
        inits, 2,
        "initialized once before the panic and once after the retake"
    );
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
}
