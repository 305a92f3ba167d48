use std::path::Path;

use flatbuffers::{FlatBufferBuilder, WIPOffset};
use proptest::prelude::*;

use super::codec::{CRC_OFFSET, LEN_OFFSET, MAGIC_OFFSET, RESERVED_OFFSET, VERSION_OFFSET};
use super::meta_generated::shardline::meta as fb;
use super::*;
use crate::datadir::tmp_path;

/// Version-1 file written by the first release of this format. Never regenerate it: it
/// proves that later builds still read version-1 files exactly as `example()`.
const FIXTURE_V1: &[u8] = include_bytes!("testdata/stream-v1.meta");

fn example() -> StreamMeta {
    StreamMeta {
        name: "orders".to_owned(),
        arn: "arn:aws:kinesis:us-east-1:000000000000:stream/orders".to_owned(),
        dir_name: "orders-1700000000000".to_owned(),
        status: StreamStatus::Active,
        status_until_ms: 0,
        created_ms: 1_700_000_000_000,
        retention_hours: 24,
        mode: StreamMode::Provisioned,
        max_record_bytes: 1 << 20,
        shard_byte_cap: Some(1 << 30),
        next_shard_index: 3,
        shards: vec![
            ShardMeta {
                id: ShardId(0),
                parent: None,
                adjacent_parent: None,
                hash_start: 0,
                hash_end: u128::MAX,
                seq_epoch_secs: 1_700_000_000,
                created_ms: 1_700_000_000_000,
                closed_ms: Some(1_700_000_100_000),
                end_offset: Some(42),
            },
            ShardMeta {
                id: ShardId(1),
                parent: Some(ShardId(0)),
                adjacent_parent: None,
                hash_start: 0,
                hash_end: u128::MAX / 2,
                seq_epoch_secs: 1_700_000_100,
                created_ms: 1_700_000_100_000,
                closed_ms: None,
                end_offset: None,
            },
            ShardMeta {
                id: ShardId(2),
                parent: Some(ShardId(0)),
                adjacent_parent: None,
                hash_start: u128::MAX / 2 + 1,
                hash_end: u128::MAX,
                seq_epoch_secs: 1_700_000_100,
                created_ms: 1_700_000_100_000,
                closed_ms: None,
                end_offset: None,
            },
        ],
        tags: vec![Tag {
            key: "team".to_owned(),
            value: "payments".to_owned(),
        }],
        encryption_type: Some("KMS".to_owned()),
        key_id: Some("alias/aws/kinesis".to_owned()),
        enhanced_metrics: vec!["IncomingBytes".to_owned()],
        warm_throughput_mibps: None,
        reshard_history_ms: vec![1_700_000_100_000],
        resource_policy: None,
        consumers: Vec::new(),
    }
}

fn example_with_consumers() -> StreamMeta {
    let mut meta = example();
    meta.consumers = vec![
        ConsumerMeta {
            name: "dashboard".to_owned(),
            created_ms: 1_700_000_200_000,
            status: ConsumerStatus::Active,
            status_until_ms: 0,
            tags: vec![Tag {
                key: "owner".to_owned(),
                value: "ops".to_owned(),
            }],
        },
        ConsumerMeta {
            name: "archiver".to_owned(),
            created_ms: 1_700_000_300_000,
            status: ConsumerStatus::Creating,
            status_until_ms: 1_700_000_305_000,
            tags: Vec::new(),
        },
    ];
    meta
}

fn path() -> &'static Path {
    Path::new("/data/orders/stream.meta")
}

fn expect_bad_format(bytes: &[u8]) -> String {
    match decode_stream(bytes, path()) {
        Err(Error::BadFormat { path: p, reason }) => {
            assert_eq!(p, path());
            reason
        }
        other => panic!("expected BadFormat, got {other:?}"),
    }
}

/// Re-frames `body` with a valid header, so decoding gets past the CRC to the verifier.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// The sizes and offsets docs/formats/metadata.md states.
#[test]
fn header_layout_matches_the_format_doc() {
    assert_eq!(MAGIC, *b"SHLNMETA");
    assert_eq!(FORMAT_VERSION, 1);
    assert_eq!(MAGIC_OFFSET, 0);
    assert_eq!(VERSION_OFFSET, 8);
    assert_eq!(LEN_OFFSET, 12);
    assert_eq!(CRC_OFFSET, 16);
    assert_eq!(RESERVED_OFFSET, 20);
    assert_eq!(HEADER_LEN, 24);
}

#[test]
fn encoded_header_fields_are_little_endian() {
    let bytes = encode_stream(&example());
    let body_len = u32::try_from(bytes.len() - HEADER_LEN).unwrap();
    assert_eq!(&bytes[..8], b"SHLNMETA");
    assert_eq!(bytes[8..12], 1u32.to_le_bytes());
    assert_eq!(bytes[12..16], body_len.to_le_bytes());
    assert_eq!(bytes[16..20], crc32fast::hash(&bytes[24..]).to_le_bytes());
    assert_eq!(bytes[20..24], [0; 4]);
}

#[test]
fn example_round_trips() {
    let meta = example();
    assert_eq!(decode_stream(&encode_stream(&meta), path()).unwrap(), meta);
}

#[test]
fn consumers_round_trip() {
    let meta = example_with_consumers();
    assert_eq!(decode_stream(&encode_stream(&meta), path()).unwrap(), meta);
}

/// The version-1 fixture predates consumers: it reads with none (no format bump needed,
/// the `consumers` vector is an optional field at the end of the table).
#[test]
fn version_1_fixture_has_no_consumers() {
    assert!(decode_stream(FIXTURE_V1, path())
        .unwrap()
        .consumers
        .is_empty());
}

/// A consumer status this build does not know is refused, like an unknown stream status.
#[test]
fn unknown_consumer_status_is_bad_format() {
    let mut fbb = FlatBufferBuilder::new();
    let cname = fbb.create_string("c");
    let consumer = fb::Consumer::create(
        &mut fbb,
        &fb::ConsumerArgs {
            name: Some(cname),
            status: fb::ConsumerStatus(5),
            ..Default::default()
        },
    );
    let consumers = fbb.create_vector(&[consumer]);
    let args = fb::StreamArgs {
        name: Some(fbb.create_string("s")),
        arn: Some(fbb.create_string("a")),
        dir_name: Some(fbb.create_string("d")),
        consumers: Some(consumers),
        ..Default::default()
    };
    let root = fb::Stream::create(&mut fbb, &args);
    fbb.finish(root, None);
    let reason = expect_bad_format(&frame(fbb.finished_data()));
    assert!(reason.contains("unknown consumer status 5"), "{reason}");
}

#[test]
fn reads_the_version_1_fixture() {
    assert_eq!(decode_stream(FIXTURE_V1, path()).unwrap(), example());
}

#[test]
fn truncation_at_every_byte_is_bad_format() {
    let bytes = encode_stream(&example());
    for len in 0..bytes.len() {
        let reason = expect_bad_format(&bytes[..len]);
        assert!(reason.contains("truncated"), "at {len}: {reason}");
    }
}

/// Every single-byte change is caught: header fields are checked exactly and CRC32
/// detects every error burst of up to 32 bits in the flatbuffer.
#[test]
fn every_single_byte_flip_is_bad_format() {
    let bytes = encode_stream(&example());
    for at in 0..bytes.len() {
        for mask in [0x01, 0x80, 0xff] {
            let mut flipped = bytes.clone();
            flipped[at] ^= mask;
            expect_bad_format(&flipped);
        }
    }
}

#[test]
fn trailing_garbage_is_bad_format() {
    let mut bytes = encode_stream(&example());
    bytes.extend_from_slice(b"junk");
    let reason = expect_bad_format(&bytes);
    assert!(reason.contains("4 trailing bytes"), "{reason}");
}

#[test]
fn header_problems_have_specific_reasons() {
    let good = encode_stream(&example());

    let reason = expect_bad_format(b"{\"json\": true}");
    assert!(reason.contains("not a Shardline metadata file"), "{reason}");

    let mut bytes = good.clone();
    bytes[VERSION_OFFSET..LEN_OFFSET].copy_from_slice(&2u32.to_le_bytes());
    let reason = expect_bad_format(&bytes);
    assert!(reason.contains("unsupported format version 2"), "{reason}");

    let mut bytes = good.clone();
    bytes[RESERVED_OFFSET] = 1;
    let reason = expect_bad_format(&bytes);
    assert!(reason.contains("reserved"), "{reason}");

    let mut bytes = good;
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let reason = expect_bad_format(&bytes);
    assert!(reason.contains("checksum mismatch"), "{reason}");
}

#[test]
fn unverifiable_flatbuffer_with_valid_header_is_bad_format() {
    let reason = expect_bad_format(&frame(&[0xff; 16]));
    assert!(reason.contains("fails verification"), "{reason}");
    let reason = expect_bad_format(&frame(&[]));
    assert!(reason.contains("fails verification"), "{reason}");
}

/// The verifier accepts any byte in an enum field; decoding must still refuse values this
/// build does not know (a newer writer, or corruption under a recomputed CRC).
#[test]
fn unknown_enum_values_are_bad_format() {
    for (status, mode, expected) in [
        (
            fb::StreamStatus(9),
            fb::StreamMode::OnDemand,
            "unknown stream status 9",
        ),
        (
            fb::StreamStatus::Active,
            fb::StreamMode(7),
            "unknown stream mode 7",
        ),
    ] {
        let mut fbb = FlatBufferBuilder::new();
        let args = fb::StreamArgs {
            name: Some(fbb.create_string("s")),
            arn: Some(fbb.create_string("a")),
            dir_name: Some(fbb.create_string("d")),
            status,
            mode,
            ..Default::default()
        };
        let root = fb::Stream::create(&mut fbb, &args);
        fbb.finish(root, None);
        let reason = expect_bad_format(&frame(fbb.finished_data()));
        assert!(reason.contains(expected), "{reason}");
    }
}

/// A file from a writer that left out every optional field and vector (as an older
/// writer would, under the schema's evolution rules) reads with empty defaults.
#[test]
fn absent_optional_fields_read_as_empty() {
    let mut fbb = FlatBufferBuilder::new();
    let args = fb::StreamArgs {
        name: Some(fbb.create_string("s")),
        arn: Some(fbb.create_string("a")),
        dir_name: Some(fbb.create_string("d")),
        ..Default::default()
    };
    let root = fb::Stream::create(&mut fbb, &args);
    fbb.finish(root, None);
    let meta = decode_stream(&frame(fbb.finished_data()), path()).unwrap();
    assert_eq!(meta.status, StreamStatus::Creating);
    assert_eq!(meta.mode, StreamMode::Provisioned);
    assert!(meta.shards.is_empty() && meta.tags.is_empty());
    assert!(meta.enhanced_metrics.is_empty() && meta.reshard_history_ms.is_empty());
    assert_eq!((meta.encryption_type, meta.key_id), (None, None));
    assert_eq!(meta.resource_policy, None);
    assert!(meta.consumers.is_empty());
}

/// The generated builder refuses to finish a table without its required fields, so this
/// one is assembled slot by slot, as a buggy or foreign writer could.
#[test]
fn missing_required_field_is_bad_format() {
    let mut fbb = FlatBufferBuilder::new();
    let name = fbb.create_string("s");
    let dir_name = fbb.create_string("d");
    let start = fbb.start_table();
    fbb.push_slot_always(fb::Stream::VT_NAME, name);
    fbb.push_slot_always(fb::Stream::VT_DIR_NAME, dir_name);
    let table = fbb.end_table(start);
    fbb.finish(WIPOffset::<fb::Stream>::new(table.value()), None);
    let reason = expect_bad_format(&frame(fbb.finished_data()));
    assert!(reason.contains("arn"), "{reason}");
}

#[test]
fn write_then_read_stream() {
    let dir = tempfile::tempdir().unwrap();
    let meta = example();
    write_stream(dir.path(), &meta).unwrap();
    assert_eq!(read_stream(dir.path()).unwrap(), meta);
    assert!(dir.path().join(STREAM_META_FILE).is_file());
}

/// A crash after writing `stream.meta.tmp` but before the rename leaves the temp file
/// behind: reads must see the last complete metadata, and the next write replaces both.
#[test]
fn leftover_tmp_file_does_not_affect_read_stream() {
    let dir = tempfile::tempdir().unwrap();
    let first = example();
    write_stream(dir.path(), &first).unwrap();
    let tmp = tmp_path(&stream_meta_path(dir.path()));

    let mut torn = encode_stream(&StreamMeta {
        retention_hours: 48,
        ..first.clone()
    });
    torn.truncate(torn.len() / 2);
    std::fs::write(&tmp, &torn).unwrap();
    assert_eq!(read_stream(dir.path()).unwrap(), first);

    let second = StreamMeta {
        status: StreamStatus::Updating,
        ..first
    };
    write_stream(dir.path(), &second).unwrap();
    assert_eq!(read_stream(dir.path()).unwrap(), second);
    assert!(!tmp.exists());
}

#[test]
fn read_stream_of_a_corrupt_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = stream_meta_path(dir.path());
    std::fs::write(&file, b"SHLNMETA").unwrap();
    let err = read_stream(dir.path()).unwrap_err();
    assert!(matches!(&err, Error::BadFormat { path, .. } if *path == file));
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
}

#[test]
fn read_stream_of_a_missing_file_is_io_not_found() {
    let dir = tempfile::tempdir().unwrap();
    match read_stream(dir.path()) {
        Err(Error::Io { source, path, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            assert_eq!(path, stream_meta_path(dir.path()));
        }
        other => panic!("expected Io NotFound, got {other:?}"),
    }
}

fn arb_shard() -> impl Strategy<Value = ShardMeta> {
    (
        any::<u32>(),
        any::<Option<u32>>(),
        any::<Option<u32>>(),
        any::<u128>(),
        any::<u128>(),
        any::<u64>(),
        any::<u64>(),
        any::<Option<u64>>(),
        any::<Option<u64>>(),
    )
        .prop_map(
            |(id, parent, adjacent, hash_start, hash_end, epoch, created, closed, end)| ShardMeta {
                id: ShardId(id),
                parent: parent.map(ShardId),
                adjacent_parent: adjacent.map(ShardId),
                hash_start,
                hash_end,
                seq_epoch_secs: epoch,
                created_ms: created,
                closed_ms: closed,
                end_offset: end,
            },
        )
}

fn arb_consumer() -> impl Strategy<Value = ConsumerMeta> {
    let status = prop_oneof![
        Just(ConsumerStatus::Creating),
        Just(ConsumerStatus::Active),
        Just(ConsumerStatus::Deleting),
    ];
    let tag = (any::<String>(), any::<String>()).prop_map(|(key, value)| Tag { key, value });
    (
        any::<String>(),
        any::<u64>(),
        status,
        any::<u64>(),
        prop::collection::vec(tag, 0..3),
    )
        .prop_map(
            |(name, created_ms, status, status_until_ms, tags)| ConsumerMeta {
                name,
                created_ms,
                status,
                status_until_ms,
                tags,
            },
        )
}

fn arb_stream() -> impl Strategy<Value = StreamMeta> {
    let status = prop_oneof![
        Just(StreamStatus::Creating),
        Just(StreamStatus::Active),
        Just(StreamStatus::Updating),
        Just(StreamStatus::Deleting),
    ];
    let mode = prop_oneof![Just(StreamMode::Provisioned), Just(StreamMode::OnDemand)];
    let tag = (any::<String>(), any::<String>()).prop_map(|(key, value)| Tag { key, value });
    (
        (
            any::<String>(),
            any::<String>(),
            any::<String>(),
            status,
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            mode,
            any::<u32>(),
            any::<Option<u64>>(),
        ),
        (
            any::<u32>(),
            prop::collection::vec(arb_shard(), 0..6),
            prop::collection::vec(tag, 0..4),
            any::<Option<String>>(),
            any::<Option<String>>(),
            prop::collection::vec(any::<String>(), 0..4),
            any::<Option<u32>>(),
            prop::collection::vec(any::<u64>(), 0..6),
            any::<Option<String>>(),
            prop::collection::vec(arb_consumer(), 0..3),
        ),
    )
        .prop_map(
            |(
                (name, arn, dir_name, status, until, created, retention, mode, max_record, cap),
                (next, shards, tags, encryption, key_id, metrics, warm, history, policy, consumers),
            )| StreamMeta {
                name,
                arn,
                dir_name,
                status,
                status_until_ms: until,
                created_ms: created,
                retention_hours: retention,
                mode,
                max_record_bytes: max_record,
                shard_byte_cap: cap,
                next_shard_index: next,
                shards,
                tags,
                encryption_type: encryption,
                key_id,
                enhanced_metrics: metrics,
                warm_throughput_mibps: warm,
                reshard_history_ms: history,
                resource_policy: policy,
                consumers,
            },
        )
}

/// Decoding `bytes` either succeeds or fails with BadFormat; anything else (a panic,
/// another error kind) fails the test.
fn decodes_or_bad_format(bytes: &[u8]) -> Result<(), TestCaseError> {
    match decode_stream(bytes, path()) {
        Ok(_) | Err(Error::BadFormat { .. }) => Ok(()),
        Err(other) => Err(TestCaseError::fail(format!("unexpected error {other}"))),
    }
}

proptest! {
    #[test]
    fn any_stream_round_trips(meta in arb_stream()) {
        prop_assert_eq!(decode_stream(&encode_stream(&meta), path())?, meta);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decodes_or_bad_format(&bytes)?;
    }

    /// With a valid header around arbitrary bytes, the flatbuffers verifier is what stands
    /// between the bytes and the generated `unsafe` accessors.
    #[test]
    fn arbitrary_framed_flatbuffers_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        decodes_or_bad_format(&frame(&body))?;
    }

    /// Mutations of a real flatbuffer, re-framed with a fresh CRC, reach deep into the
    /// verifier (offsets, vtables, vectors, strings) rather than failing at the root.
    #[test]
    fn mutated_flatbuffers_never_panic(
        meta in arb_stream(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let bytes = encode_stream(&meta);
        let mut body = bytes[HEADER_LEN..].to_vec();
        for (at, value) in edits {
            let i = at.index(body.len());
            body[i] = value;
        }
        decodes_or_bad_format(&frame(&body))?;
    }
}
