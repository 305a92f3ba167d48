//! Conditional rules, sync with splits and merges, persistence and damaged files.

use std::path::Path;

use super::store::{self, HEADER_LEN};
use super::table::{AT_TIMESTAMP, LATEST, SHARD_END, TRIM_HORIZON};
use super::*;
use crate::meta::{ShardMeta, StreamMode, StreamStatus};

const MAX: u128 = u128::MAX;

fn shard(id: u32, start: u128, end: u128, parents: [Option<u32>; 2], created_ms: u64) -> ShardMeta {
    ShardMeta {
        id: ShardId(id),
        parent: parents[0].map(ShardId),
        adjacent_parent: parents[1].map(ShardId),
        hash_start: start,
        hash_end: end,
        seq_epoch_secs: 1,
        created_ms,
        closed_ms: None,
        end_offset: None,
    }
}

/// A stream of two shards created at t=1000 ms.
fn stream(name: &str) -> StreamMeta {
    let half = MAX / 2;
    StreamMeta {
        name: name.into(),
        arn: format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}"),
        dir_name: format!("1000-{name}"),
        status: StreamStatus::Active,
        status_until_ms: 0,
        created_ms: 1000,
        retention_hours: 24,
        mode: StreamMode::Provisioned,
        max_record_bytes: 1 << 20,
        shard_byte_cap: None,
        next_shard_index: 2,
        shards: vec![
            shard(0, 0, half, [None, None], 1000),
            shard(1, half + 1, MAX, [None, None], 1000),
        ],
        tags: Vec::new(),
        consumers: Vec::new(),
        encryption_type: None,
        key_id: None,
        enhanced_metrics: Vec::new(),
        warm_throughput_mibps: None,
        reshard_history_ms: Vec::new(),
        resource_policy: None,
    }
}

/// Splits shard `id` in the middle of its range at `now_ms`, as the stream layer does.
fn split(m: &mut StreamMeta, id: u32, now_ms: u64) -> (u32, u32) {
    let a = m.next_shard_index;
    let parent = m.shards.iter_mut().find(|s| s.id == ShardId(id)).unwrap();
    parent.closed_ms = Some(now_ms);
    let (start, end) = (parent.hash_start, parent.hash_end);
    let mid = start + (end - start) / 2;
    m.shards
        .push(shard(a, start, mid, [Some(id), None], now_ms));
    m.shards
        .push(shard(a + 1, mid + 1, end, [Some(id), None], now_ms));
    m.next_shard_index += 2;
    (a, a + 1)
}

fn merge(m: &mut StreamMeta, low: u32, high: u32, now_ms: u64) -> u32 {
    let c = m.next_shard_index;
    let mut start = 0;
    let mut end = 0;
    for s in m.shards.iter_mut() {
        if s.id == ShardId(low) {
            s.closed_ms = Some(now_ms);
            start = s.hash_start;
        }
        if s.id == ShardId(high) {
            s.closed_ms = Some(now_ms);
            end = s.hash_end;
        }
    }
    m.shards
        .push(shard(c, start, end, [Some(low), Some(high)], now_ms));
    m.next_shard_index += 1;
    c
}

fn ids(v: &[u32]) -> Vec<ShardId> {
    v.iter().copied().map(ShardId).collect()
}

fn keys(t: &LeaseTable) -> Vec<ShardId> {
    t.leases.keys().copied().collect()
}

fn open(dir: &Path) -> Leases {
    Leases::open(dir).unwrap()
}

fn expect(owner: &str, counter: u64) -> Expected<'_> {
    Expected { owner, counter }
}

#[test]
fn header_layout_matches_the_format_doc() {
    assert_eq!(store::MAGIC_OFFSET, 0);
    assert_eq!(store::VERSION_OFFSET, 8);
    assert_eq!(store::LEN_OFFSET, 12);
    assert_eq!(store::CRC_OFFSET, 16);
    assert_eq!(store::RESERVED_OFFSET, 20);
    assert_eq!(HEADER_LEN, 24);
}

#[test]
fn first_sync_at_trim_horizon_leases_every_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let leases = open(tmp.path());
    let s = leases
        .sync("app", &stream("orders"), InitialPosition::TrimHorizon)
        .unwrap();
    assert_eq!(s.created, ids(&[0, 1]));
    assert_eq!(keys(&s.table), ids(&[0, 1]));
    let l = &s.table.leases[&ShardId(1)];
    assert_eq!(l.checkpoint, TRIM_HORIZON);
    assert_eq!(l.counter, 0);
    assert_eq!(l.owner, None);
    assert_eq!((l.hash_start, l.hash_end), (MAX / 2 + 1, MAX));
    assert!(l.parents.is_empty() && l.children.is_empty());
    // Idempotent: nothing new, nothing created.
    let again = leases
        .sync("app", &stream("orders"), InitialPosition::Latest)
        .unwrap();
    assert!(again.created.is_empty());
    assert_eq!(again.table, s.table);
    assert_eq!(leases.applications(), vec!["app".to_string()]);
}

#[test]
fn take_renew_evict_and_checkpoint_follow_the_conditional_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let leases = open(tmp.path());
    leases
        .sync("app", &stream("orders"), InitialPosition::TrimHorizon)
        .unwrap();
    let k = ShardId(0);
    let l = leases.take("app", k, "w1", 0).unwrap().lease;
    assert_eq!((l.owner.as_deref(), l.counter), (Some("w1"), 1));
    assert_eq!(l.owner_switches_since_checkpoint, 1);
    // A take with a stale counter fails and names both sides.
    let e = leases.take("app", k, "w2", 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Lease shardId-000000000000 of application app is held by w1 at counter 1, not at counter 0"
    );
    let l = leases.renew("app", k, expect("w1", 1)).unwrap().lease;
    assert_eq!(l.counter, 2);
    // w2 steals it at the current counter.
    let l = leases.take("app", k, "w2", 2).unwrap().lease;
    assert_eq!((l.owner.as_deref(), l.counter), (Some("w2"), 3));
    assert_eq!(l.owner_switches_since_checkpoint, 2);
    // The stale worker can neither renew nor checkpoint, even with the current counter.
    let e = leases.renew("app", k, expect("w1", 2)).unwrap_err();
    assert!(matches!(
        &e,
        Error::LeaseConditionFailed { held_by: Some(h), counter: 3, expected_owner: Some(o), expected_counter: 2, .. }
            if h == "w2" && o == "w1"
    ));
    assert_eq!(
        e.to_string(),
        "Lease shardId-000000000000 of application app is held by w2 at counter 3, not by w1 at counter 2"
    );
    assert!(matches!(
        leases.checkpoint("app", k, expect("w1", 3), "12345", 0),
        Err(Error::LeaseConditionFailed { .. })
    ));
    // Failed conditions changed nothing.
    assert_eq!(leases.lease("app", k).unwrap().lease, l);
    let l = leases
        .checkpoint(
            "app",
            k,
            expect("w2", 3),
            "49590338271490256608559692538361571095921575989136588898",
            4,
        )
        .unwrap()
        .lease;
    assert_eq!(l.counter, 4);
    assert_eq!(l.checkpoint_sub_sequence, 4);
    assert_eq!(l.owner_switches_since_checkpoint, 0);
    // Retaking one's own lease is not an owner switch.
    let l = leases.take("app", k, "w2", 4).unwrap().lease;
    assert_eq!((l.counter, l.owner_switches_since_checkpoint), (5, 0));
    // Evict hands it back; then anyone may take it at the new counter.
    assert!(leases.evict("app", k, expect("w1", 5)).is_err());
    let l = leases.evict("app", k, expect("w2", 5)).unwrap().lease;
    assert_eq!((l.owner, l.counter), (None, 6));
    assert!(leases.renew("app", k, expect("w2", 6)).is_err());
    let e = leases.take("app", k, "w3", 5).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Lease shardId-000000000000 of application app is unowned at counter 6, not at counter 5"
    );
    let l = leases.take("app", k, "w3", 6).unwrap().lease;
    assert_eq!(
        (
            l.owner.as_deref(),
            l.counter,
            l.owner_switches_since_checkpoint
        ),
        (Some("w3"), 7, 1)
    );
}

/// Workers racing to take the same lease at the same counter: exactly one wins, and the
/// counter went up exactly once.
#[test]
fn concurrent_takes_at_one_counter_have_one_winner() {
    let tmp = tempfile::tempdir().unwrap();
    let leases = open(tmp.path());
    leases
        .sync("app", &stream("orders"), InitialPosition::TrimHorizon)
        .unwrap();
    let won: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let leases = &leases;
                s.spawn(move || {
                    let owner = format!("w{i}");
                    leases
                        .take("app", ShardId(1), &owner, 0)
                        .ok()
                        .map(|_| owner)
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(won.len(), 1, "{won:?}");
    let l = leases.lease("app", ShardId(1)).unwrap().lease;
    assert_eq!((l.owner.as_ref(), l.counter), (Some(&won[0]), 1));
    drop(leases);
    assert_eq!(open(tmp.path()).lease("app", ShardId(1)).unwrap().lease, l);
}

#[test]
fn bad_checkpoints_unknown_leases_and_tables_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let leases = open(tmp.path());
    leases
        .sync("app", &stream("orders"), InitialPosition::TrimHorizon)
        .unwrap();
    leases.take("app", ShardId(0), "w", 0).unwrap();
    for bad in ["", "012", "12a", "LATEST_", &"9".repeat(130)] {
        assert!(
            matches!(
                leases.checkpoint("app", ShardId(0), expect("w", 1), bad, 0),
                Err(Error::InvalidInput(_))
            ),
            "{bad:?} accepted"
        );
    }
    for ok in [SHARD_END, LATEST, AT_TIMESTAMP, "0", &"9".repeat(129)] {
        let c = leases.lease("app", ShardId(0)).unwrap().lease.counter;
        leases
            .checkpoint("app", ShardId(0), expect("w", c), ok, 0)
            .unwrap();
    }
    assert!(matches!(
        leases.take("app", ShardId(9), "w", 0),
        Err(Error::LeaseNotFound { .. })
    ));
    assert!(matches!(
        leases.take("nope", ShardId(0), "w", 0),
        Err(Error::LeaseTableNotFound { .. })
    ));
    assert!(matches!(
        leases.table("nope"),
        Err(Error::LeaseTableNotFound { .. })
    ));
}

#[test]
fn sync_after_a_split_and_a_merge_creates_children_with_lineage() {
    let tmp = tempfile::tempdir().unwrap();
    let leases = open(tmp.path());
    let mut m = stream("orders");
    leases
        .sync("app", &m, InitialPosition::TrimHorizon)
        .unwrap();
    let (a, b) = split(&mut m, 0, 5000);
    let s = leases
        .sync("app", &m, InitialPosition::TrimHorizon)
        .unwrap();
    assert_eq!(s.created, ids(&[a, b]));
    assert_eq!(s.table.leases[&ShardId(0)].children, ids(&[a, b]));
    for c in [a, b] {
        let l = &s.table.leases[&ShardId(c)];
        assert_eq!(l.parents, ids(&[0]));
        assert_eq!(l.checkpoint, TRIM_HORIZON);
    }
    // Merge the upper child with shard 1.
    let c = merge(&mut m, b, 1, 6000);
    let s = leases
        .sync("app", &m, InitialPosition::TrimHorizon)
        .unwrap();
    assert_eq!(s.created, ids(&[c]));
    assert_eq!(s.table.leases[&ShardId(c)].parents, ids(&[b, 1]));
    assert_eq!(s.table.leases[&ShardId(b)].children, ids(&[c]));
    assert_eq!(s.table.leases[&ShardId(1)].children, ids(&[c]));
    assert!(s.table.leases[&ShardId(a)].children.is_empty());
    let merged = &s.table.leases[&ShardId(c)];
    assert_eq!(
        (merged.hash_start, merged.hash_end),
        (m.shards[3].hash_start, MAX)
    );
    // A deleted (finished) lease is not created again.
    leases.delete_lease("app", ShardId(0)).unwrap();
    let s = leases
        .sync("app", &m, InitialPosition::TrimHorizon)
        .unwrap();
    assert!(s.created.is_empty());
    assert!(!s.table.leases.contains_key(&ShardId(0)));
    assert!(matches!(
        leases.delete_lease("app", ShardId(0)),
        Err(Error::LeaseNotFound { .. })
    ));
}

#[test]
fn latest_skips_closed_shards_for_good_and_leases_their_later_children() {
    let tmp = tempfile::tempdir().unwrap();
    let leases = open(tmp.path());
    let mut m = stream("orders");
    let (a, b) = split(&mut m, 0, 5000);
    let s = leases.sync("app", &m, InitialPosition::Latest).unwrap();
    assert_eq!(s.created, ids(&[1, a, b]));
    assert!(s.table.leases.values().all(|l| l.checkpoint == LATEST));
    // The child of the skipped parent still names it.
    assert_eq!(s.table.leases[&ShardId(a)].parents, ids(&[0]));
    // The skipped shard is remembered: later syncs never lease it.
    let s = leases
        .sync("app", &m, InitialPosition::TrimHorizon)
        .unwrap();
    assert!(s.created.is_empty());
    assert!(!s.table.leases.contains_key(&ShardId(0)));
    // A later split of a LATEST lease's shard: children at TRIM_HORIZON.
    let (c, d) = split(&mut m, 1, 7000);
    let s = leases.sync("app", &m, InitialPosition::Latest).unwrap();
    assert_eq!(s.created, ids(&[c, d]));
    assert_eq!(s.table.leases[&ShardId(c)].checkpoint, TRIM_HORIZON);
    assert_eq!(s.table.leases[&ShardId(1)].children, ids(&[c, d]));
    assert_eq!(s.table.initial_position, InitialPosition::Latest);
}

#[test]
fn at_timestamp_leases_shards_open_at_or_after_the_time() {
    let tmp = tempfile::tempdir().unwrap();
    let leases = open(tmp.path());
    let mut m = stream("orders");
    let (a, b) = split(&mut m, 0, 5000);
    let (c, d) = split(&mut m, a, 9000);
    // At 6000: shard 0 had closed; 1, a, b were open; c and d came later.
    let initial = InitialPosition::AtTimestamp { timestamp_ms: 6000 };
    let s = leases.sync("app", &m, initial).unwrap();
    assert_eq!(s.created, ids(&[1, a, b, c, d]));
    assert!(s
        .table
        .leases
        .values()
        .all(|l| l.checkpoint == AT_TIMESTAMP));
    assert_eq!(s.table.leases[&ShardId(a)].children, ids(&[c, d]));
    // Before the first split every shard of the stream was open.
    let s = leases
        .sync(
            "early",
            &m,
            InitialPosition::AtTimestamp { timestamp_ms: 2000 },
        )
        .unwrap();
    assert_eq!(s.created, ids(&[0, 1, a, b, c, d]));
}

#[test]
fn sync_drops_leases_of_shards_retention_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let leases = open(tmp.path());
    let mut m = stream("orders");
    split(&mut m, 0, 5000);
    leases
        .sync("app", &m, InitialPosition::TrimHorizon)
        .unwrap();
    m.shards.retain(|s| s.id != ShardId(0));
    let s = leases
        .sync("app", &m, InitialPosition::TrimHorizon)
        .unwrap();
    assert_eq!(keys(&s.table), ids(&[1, 2, 3]));
}

/// Two syncs race: the one holding the older snapshot of the stream runs second. It must
/// not drop the children the newer one leased, nor their parents' children lists.
#[test]
fn a_sync_with_an_older_snapshot_undoes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let leases = open(tmp.path());
    let old = stream("orders");
    leases
        .sync("app", &old, InitialPosition::TrimHorizon)
        .unwrap();
    let mut new = old.clone();
    split(&mut new, 0, 5000);
    let newer = leases
        .sync("app", &new, InitialPosition::TrimHorizon)
        .unwrap();
    let after = leases
        .sync("app", &old, InitialPosition::TrimHorizon)
        .unwrap();
    assert!(after.created.is_empty());
    assert_eq!(after.table, newer.table);
    assert_eq!(keys(&after.table), ids(&[0, 1, 2, 3]));
}

#[test]
fn a_table_stays_bound_to_its_stream_incarnation() {
    let tmp = tempfile::tempdir().unwrap();
    let leases = open(tmp.path());
    leases
        .sync("app", &stream("orders"), InitialPosition::TrimHorizon)
        .unwrap();
    let e = leases
        .sync("app", &stream("other"), InitialPosition::TrimHorizon)
        .unwrap_err();
    assert!(matches!(e, Error::LeaseStreamMismatch { .. }), "{e}");
    let mut recreated = stream("orders");
    recreated.dir_name = "2000-orders".into();
    let e = leases
        .sync("app", &recreated, InitialPosition::TrimHorizon)
        .unwrap_err();
    assert!(matches!(e, Error::LeaseStreamGone { .. }), "{e}");
}

#[test]
fn tables_survive_reopen_and_deletion_is_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let mut m = stream("orders");
    split(&mut m, 1, 3000);
    let before = {
        let leases = open(tmp.path());
        leases.sync("app", &m, InitialPosition::Latest).unwrap();
        leases
            .sync("gone", &m, InitialPosition::TrimHorizon)
            .unwrap();
        leases.take("app", ShardId(2), "worker ü 1", 0).unwrap();
        leases
            .checkpoint("app", ShardId(2), expect("worker ü 1", 1), "987654321", 3)
            .unwrap();
        leases.take("app", ShardId(3), "w2", 0).unwrap();
        leases.evict("app", ShardId(3), expect("w2", 1)).unwrap();
        leases.delete_table("gone").unwrap();
        assert!(matches!(
            leases.delete_table("gone"),
            Err(Error::LeaseTableNotFound { .. })
        ));
        leases.table("app").unwrap()
    };
    // A crash can leave a temp file behind: it is ignored.
    std::fs::write(tmp.path().join("app.leases.tmp"), b"torn").unwrap();
    let leases = open(tmp.path());
    assert_eq!(leases.applications(), vec!["app".to_string()]);
    assert_eq!(leases.table("app").unwrap(), before);
    let l = leases.lease("app", ShardId(2)).unwrap().lease;
    assert_eq!(l.owner.as_deref(), Some("worker ü 1"));
    assert_eq!(
        (l.counter, l.checkpoint.as_str(), l.checkpoint_sub_sequence),
        (2, "987654321", 3)
    );
}

#[test]
fn long_application_names_get_a_short_unique_file_name() {
    let tmp = tempfile::tempdir().unwrap();
    let a = "a".repeat(256);
    let b = format!("{}b", "a".repeat(255));
    {
        let leases = open(tmp.path());
        leases
            .sync(&a, &stream("orders"), InitialPosition::TrimHorizon)
            .unwrap();
        leases
            .sync(&b, &stream("orders"), InitialPosition::Latest)
            .unwrap();
    }
    let leases = open(tmp.path());
    assert_eq!(leases.applications(), vec![a.clone(), b.clone()]);
    assert_ne!(
        store::table_path(tmp.path(), &a),
        store::table_path(tmp.path(), &b)
    );
}

#[test]
fn a_damaged_table_file_is_refused_with_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let leases = open(tmp.path());
        leases
            .sync("app", &stream("orders"), InitialPosition::TrimHorizon)
            .unwrap();
    }
    let path = store::table_path(tmp.path(), "app");
    let good = std::fs::read(&path).unwrap();
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (flipped, "CRC mismatch"),
        (good[..good.len() - 3].to_vec(), "truncated"),
        (good[..10].to_vec(), "truncated"),
        ([good.as_slice(), b"xx"].concat(), "trailing bytes"),
        (
            [b"NOTLEASE".as_slice(), &good[8..]].concat(),
            "not a lease table",
        ),
    ];
    for (bytes, why) in cases {
        std::fs::write(&path, &bytes).unwrap();
        match Leases::open(tmp.path()) {
            Err(Error::BadFormat { path: p, reason }) => {
                assert_eq!(p, path);
                assert!(reason.contains(why), "{reason}");
            }
            other => panic!("expected BadFormat ({why}), got {other:?}"),
        }
    }
}

/// Arbitrary bytes, and every truncation and single-byte flip of a real table, never panic
/// the decoder.
#[test]
fn decoding_damaged_bytes_never_panics() {
    let mut m = stream("orders");
    split(&mut m, 0, 5000);
    let tmp = tempfile::tempdir().unwrap();
    let leases = open(tmp.path());
    leases
        .sync("app", &m, InitialPosition::TrimHorizon)
        .unwrap();
    leases.take("app", ShardId(2), "w", 0).unwrap();
    let good = store::encode(&leases.table("app").unwrap());
    let path = Path::new("x.leases");
    assert_eq!(
        store::decode(&good, path).unwrap(),
        leases.table("app").unwrap()
    );
    for n in 0..good.len() {
        assert!(store::decode(&good[..n], path).is_err());
    }
    for i in 0..good.len() {
        let mut b = good.clone();
        b[i] ^= 0xff;
        let _ = store::decode(&b, path);
        // With the CRC fixed up, the body parser itself sees the damage.
        if i >= HEADER_LEN {
            let crc = crc32fast::hash(&b[HEADER_LEN..]).to_le_bytes();
            b[store::CRC_OFFSET..store::CRC_OFFSET + 4].copy_from_slice(&crc);
            let _ = store::decode(&b, path);
        }
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let _ = store::decode(&bytes, Path::new("x.leases"));
    }
}

/// The table stored in `testdata/app-v1.leases`: an owned, checkpointed lease with a
/// parent, an unowned one, and a closed parent with two children, AT_TIMESTAMP.
fn fixture_table() -> LeaseTable {
    let lease = |id: u32| Lease {
        shard: ShardId(id),
        owner: None,
        counter: 0,
        checkpoint: AT_TIMESTAMP.into(),
        checkpoint_sub_sequence: 0,
        owner_switches_since_checkpoint: 0,
        parents: Vec::new(),
        children: Vec::new(),
        hash_start: 0,
        hash_end: MAX,
    };
    let mut parent = lease(0);
    parent.children = ids(&[1, 2]);
    parent.checkpoint = SHARD_END.into();
    let mut owned = lease(1);
    owned.owner = Some("worker-1".into());
    owned.counter = 42;
    owned.checkpoint = SEQ_FIXTURE.into();
    owned.checkpoint_sub_sequence = 3;
    owned.owner_switches_since_checkpoint = 2;
    owned.parents = ids(&[0]);
    owned.hash_end = MAX / 2;
    let mut free = lease(2);
    free.parents = ids(&[0]);
    free.hash_start = MAX / 2 + 1;
    LeaseTable {
        application: "app".into(),
        stream: "orders".into(),
        stream_incarnation: "1795691901716-orders".into(),
        initial_position: InitialPosition::AtTimestamp {
            timestamp_ms: 1_795_691_000_000,
        },
        next_shard_index: 3,
        leases: [parent, owned, free]
            .into_iter()
            .map(|l| (l.shard, l))
            .collect(),
    }
}

const SEQ_FIXTURE: &str = "49590338271490256608559692538361571095921575989136588898";
const FIXTURE_V1: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/src/leases/testdata/app-v1.leases"
);

/// Version 1 files written by earlier builds must keep reading the same, and this build
/// must keep writing version 1 byte for byte (the fixture was written by the first build).
#[test]
fn version_1_fixture_reads_and_writes_the_same() {
    let bytes = std::fs::read(FIXTURE_V1).unwrap();
    assert_eq!(
        store::decode(&bytes, Path::new(FIXTURE_V1)).unwrap(),
        fixture_table()
    );
    assert_eq!(store::encode(&fixture_table()), bytes);
}
