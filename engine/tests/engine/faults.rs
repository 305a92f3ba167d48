//! I/O failures under the append path (STYLE.md §4): a failed write or fsync is never
//! acknowledged as success, poisons the shard until the engine is reopened, and loses
//! nothing that was acknowledged before it.
//!
//! The engine runs on `io::faulty::FaultyAppender` (plain `pwrite`/`fdatasync`) whose
//! `FaultPlan` the test arms mid-run; the reopened engine uses the `SHARDLINE_IO` backend.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use shardline_engine::io::faulty::{FaultPlan, FaultyAppender};
use shardline_engine::io::{Appender, IoMode};
use shardline_engine::{
    CreateStream, EngineConfig, Error, Offset, PendingBatch, PutRecord, RecordRef, ShardId,
};

use crate::harness::{self, close, config, contents, key_of, put_batch, read_all, reopen};

type Rec = (u64, Vec<u8>, Vec<u8>);

fn faulty_config(plan: &Arc<FaultPlan>) -> EngineConfig {
    let mut c = config();
    let plan = plan.clone();
    c.io = IoMode::Custom(Arc::new(move || -> Box<dyn Appender> {
        Box::new(FaultyAppender { plan: plan.clone() })
    }));
    c
}

fn assert_poisoned(e: &Error, shard: ShardId) {
    match e {
        Error::Poisoned { shard: s, cause } => {
            assert_eq!(*s, shard);
            assert!(
                cause.contains("os error 5"),
                "the cause names the I/O error: {cause}"
            );
        }
        other => panic!("expected Error::Poisoned, got {other}"),
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Write,
    Sync,
}

/// Arms `fault` after `n` more successful ops, appends until one fails, and checks the
/// append's fate, the shard's, and what survives a reopen.
fn fail_after(fault: Fault, n: i64) {
    let what = format!("{fault:?} fails after {n}");
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new(libc::EIO);
    let engine = harness::open(dir.path(), faulty_config(&plan)).unwrap();
    assert_eq!(engine.io_backend(), "faulty");
    let s = engine.create_stream(CreateStream::new("s", 2)).unwrap();
    let (a, b) = (ShardId(0), ShardId(1));
    let mut acked: Vec<Rec> = Vec::new();
    for i in 0..10 {
        let d = format!("before-{i}");
        let r = put_batch(&s, a, &[("k", d.as_bytes())]);
        acked.push((
            r[0].sequence_number.offset().0,
            b"k".to_vec(),
            d.into_bytes(),
        ));
    }
    put_batch(&s, b, &[("k", b"other shard")]);

    match fault {
        Fault::Write => plan.writes_before_failure.store(n, Ordering::SeqCst),
        Fault::Sync => plan.syncs_before_failure.store(n, Ordering::SeqCst),
    }
    let mut failed: Vec<Vec<u8>> = Vec::new();
    for i in 0..20 {
        let d = format!("after-{i}");
        let key = key_of(&s, a);
        let r = s.put_records(&[PutRecord {
            partition_key: "k",
            explicit_hash_key: Some(key),
            data: d.as_bytes(),
        }]);
        match r.into_iter().next().unwrap() {
            Ok(r) => {
                assert!(
                    failed.is_empty(),
                    "{what}: append {i} succeeded after a failure"
                );
                acked.push((r.sequence_number.offset().0, b"k".to_vec(), d.into_bytes()));
            }
            Err(e) => {
                assert_poisoned(&e, a);
                failed.push(d.into_bytes());
            }
        }
    }
    assert_eq!(
        acked.len(),
        10 + n as usize,
        "{what}: exactly n appends succeeded"
    );
    assert!(!failed.is_empty(), "{what}");

    // The disk is healthy again, but the shard stays poisoned until reopened; the raw
    // append path refuses too.
    plan.writes_before_failure.store(-1, Ordering::SeqCst);
    plan.syncs_before_failure.store(-1, Ordering::SeqCst);
    let shard = s.shard(a).unwrap();
    let batch = PendingBatch::encode(&[RecordRef {
        partition_key: b"k",
        data: b"raw",
    }])
    .unwrap();
    assert_poisoned(&shard.append(batch).unwrap_err(), a);
    // Other shards are not poisoned by this shard's failure.
    put_batch(&s, b, &[("k", b"still fine")]);

    // Readers see exactly the acknowledged records: the failed write's bytes, even where
    // they reached the file, are not visible.
    assert_eq!(
        contents(&read_all(&shard)),
        acked,
        "{what}: visible before reopen"
    );
    assert_eq!(shard.next_offset(), Offset(acked.len() as u64));
    drop((shard, s));

    let engine = reopen(engine, config());
    let s = engine.stream("s").unwrap();
    let shard = s.shard(a).unwrap();
    let got = contents(&read_all(&shard));
    assert_eq!(
        &got[..acked.len()],
        &acked[..],
        "{what}: every acknowledged record survives"
    );
    // What follows, if anything, is the failed append (its bytes may have reached the file
    // before the fsync failed), never a later one, which was refused before any write.
    let extra: Vec<&Vec<u8>> = got[acked.len()..].iter().map(|r| &r.2).collect();
    assert!(
        extra.is_empty() || extra == vec![&failed[0]],
        "{what}: unexpected records after the acknowledged ones: {extra:?}"
    );
    if let Fault::Write = fault {
        assert!(extra.is_empty(), "{what}: a failed write wrote nothing");
    }
    let r = put_batch(&s, a, &[("k", b"after reopen")]);
    assert_eq!(
        r[0].sequence_number.offset(),
        Offset(got.len() as u64),
        "{what}"
    );
    assert_eq!(read_all(&shard).len(), got.len() + 1);
    assert_eq!(read_all(&s.shard(b).unwrap()).len(), 2);
    drop((shard, s));
    close(engine);
}

#[test]
fn a_failed_fsync_is_never_acknowledged_and_poisons_the_shard_until_reopen() {
    for n in [0, 1, 3] {
        fail_after(Fault::Sync, n);
    }
}

#[test]
fn a_failed_write_is_never_acknowledged_and_poisons_the_shard_until_reopen() {
    for n in [0, 1, 3] {
        fail_after(Fault::Write, n);
    }
}

/// Several producers share group-commit writes when the fsync fails: every waiter of the
/// failed write gets `Error::Poisoned`, nothing acknowledged is lost, and no producer sees
/// success after its first failure.
#[test]
fn a_failed_group_commit_fails_every_append_it_carried() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new(libc::EIO);
    let engine = harness::open(dir.path(), faulty_config(&plan)).unwrap();
    let s = engine.create_stream(CreateStream::new("s", 1)).unwrap();
    let shard = s.shard(ShardId(0)).unwrap();
    // Each producer needs 60 fsyncs at least; the eighth fails.
    plan.syncs_before_failure.store(7, Ordering::SeqCst);
    let producers: Vec<_> = (0..4)
        .map(|t| {
            let shard = shard.clone();
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                for i in 0..60 {
                    let d = format!("{t}-{i}");
                    let batch = PendingBatch::encode(&[RecordRef {
                        partition_key: b"k",
                        data: d.as_bytes(),
                    }])
                    .unwrap();
                    outcomes.push((d, shard.append(batch)));
                }
                outcomes
            })
        })
        .collect();
    let mut acked: Vec<Rec> = Vec::new();
    let mut attempted = std::collections::BTreeSet::new();
    for p in producers {
        let mut failed = false;
        for (d, r) in p.join().unwrap() {
            attempted.insert(d.clone().into_bytes());
            match r {
                Ok(a) => {
                    assert!(!failed, "{d}: success after a failure");
                    acked.push((a.first_offset.0, b"k".to_vec(), d.into_bytes()));
                }
                Err(e) => {
                    assert_poisoned(&e, ShardId(0));
                    failed = true;
                }
            }
        }
        assert!(failed, "every producer ran into the failure");
    }
    acked.sort();
    let visible = contents(&read_all(&shard));
    assert_eq!(
        visible, acked,
        "readers see exactly the acknowledged records"
    );
    drop((shard, s));

    let engine = reopen(engine, config());
    let s = engine.stream("s").unwrap();
    let shard = s.shard(ShardId(0)).unwrap();
    let got = contents(&read_all(&shard));
    assert_eq!(
        &got[..acked.len()],
        &acked[..],
        "acknowledged records survive"
    );
    for r in &got[acked.len()..] {
        assert!(attempted.contains(&r.2), "only attempted records appear");
    }
    let r = put_batch(&s, ShardId(0), &[("k", b"after reopen")]);
    assert_eq!(r[0].sequence_number.offset(), Offset(got.len() as u64));
    drop((shard, s));
    close(engine);
}
