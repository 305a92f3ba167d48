//! Lease tables through the engine: synced with a real stream's splits and merges, loaded
//! again when the engine reopens, and a damaged table file refusing the open by name.

use shardline_engine::hashkey::HashKey;
use shardline_engine::leases::{Expected, InitialPosition};
use shardline_engine::{CreateStream, Error, ShardId};

use crate::harness::{self, close, config, reopen};

#[test]
fn leases_follow_real_reshards_and_survive_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = harness::open(tmp.path(), config()).unwrap();
    let stream = engine
        .create_stream(CreateStream::new("orders", 2))
        .unwrap();
    let synced = engine
        .leases()
        .sync("app", &stream.meta(), InitialPosition::TrimHorizon)
        .unwrap();
    assert_eq!(synced.created, vec![ShardId(0), ShardId(1)]);
    let mid = stream.shard_meta(ShardId(0)).unwrap().hash_end / 2;
    let (a, b) = stream.split_shard(ShardId(0), HashKey(mid)).unwrap();
    let merged = stream.merge_shards(b, ShardId(1)).unwrap();
    let synced = engine
        .leases()
        .sync("app", &stream.meta(), InitialPosition::TrimHorizon)
        .unwrap();
    assert_eq!(synced.created, vec![a, b, merged]);
    let t = &synced.table;
    assert_eq!(t.leases[&ShardId(0)].children, vec![a, b]);
    assert_eq!(t.leases[&merged].parents, vec![b, ShardId(1)]);
    assert_eq!(t.leases[&ShardId(1)].children, vec![merged]);
    let leases = engine.leases();
    leases.take("app", merged, "w1", 0).unwrap();
    let expected = Expected {
        owner: "w1",
        counter: 1,
    };
    leases
        .checkpoint("app", merged, expected, "12345678901234567890", 0)
        .unwrap();
    let before = leases.table("app").unwrap();
    drop(stream);

    let engine = reopen(engine, config());
    assert_eq!(engine.leases().table("app").unwrap(), before);
    let l = engine.leases().lease("app", merged).unwrap();
    assert_eq!(l.stream, "orders");
    assert_eq!(
        (l.lease.counter, l.lease.checkpoint.as_str()),
        (2, "12345678901234567890")
    );

    // Deleting the stream leaves the table, bound to a stream that is gone.
    engine.delete_stream("orders").unwrap();
    let again = engine
        .create_stream(CreateStream::new("orders", 1))
        .unwrap();
    assert!(matches!(
        engine
            .leases()
            .sync("app", &again.meta(), InitialPosition::TrimHorizon),
        Err(Error::LeaseStreamGone { .. })
    ));
    close(engine);
}

#[test]
fn a_damaged_lease_table_refuses_the_open_and_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = harness::open(tmp.path(), config()).unwrap();
    let stream = engine
        .create_stream(CreateStream::new("orders", 1))
        .unwrap();
    engine
        .leases()
        .sync("app", &stream.meta(), InitialPosition::Latest)
        .unwrap();
    drop(stream);
    close(engine);
    let path = tmp.path().join("leases").join("app.leases");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    match harness::open(tmp.path(), config()) {
        Err(e @ Error::BadFormat { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains("truncated"), "{text}");
        }
        other => panic!("expected BadFormat, got {other:?}"),
    }
    // Restoring the file makes the directory open again.
    std::fs::write(&path, &bytes).unwrap();
    let engine = harness::open(tmp.path(), config()).unwrap();
    assert_eq!(engine.leases().applications(), vec!["app".to_string()]);
    close(engine);
}
