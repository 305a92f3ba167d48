use proptest::prelude::*;

use super::*;

/// docs/formats/native.md, "PackedBatch": offsets 0, 8, 12, 14; name at 16; 7-byte record
/// headers (data length at 0, key length at 4, flags at 6).
#[test]
fn layout_matches_the_doc() {
    assert_eq!(
        [
            REQUEST_ID_OFFSET,
            RECORD_COUNT_OFFSET,
            NAME_LEN_OFFSET,
            RESERVED_OFFSET,
            FIXED_LEN
        ],
        [0, 8, 12, 14, 16]
    );
    assert_eq!(
        [
            REC_DATA_LEN_OFFSET,
            REC_KEY_LEN_OFFSET,
            REC_FLAGS_OFFSET,
            RECORD_HEADER_LEN
        ],
        [0, 4, 6, 7]
    );
    assert_eq!(HASH_KEY_LEN, 16);
}

fn sample() -> Vec<u8> {
    let mut b = PackedBatchBuilder::new();
    b.push("k1", None, b"hello");
    b.push("ключ", Some(u128::MAX - 5), b"");
    b.push("k3", Some(0), &[7u8; 300]);
    b.finish(RequestId(42), "ström")
}

fn payload(frame: &[u8]) -> &[u8] {
    &frame[HEADER_LEN..]
}

#[test]
fn a_built_batch_reads_back() {
    let frame = sample();
    let header = FrameHeader::parse(&frame, usize::MAX).unwrap().unwrap();
    assert_eq!(header.frame_type, FrameType::PackedBatch);
    assert_eq!(header.frame_len(), frame.len());
    let v = PackedBatchView::parse(payload(&frame)).unwrap();
    assert_eq!(v.request_id(), RequestId(42));
    assert_eq!(v.stream_name(), "ström");
    assert_eq!(v.len(), 3);
    let got: Vec<_> = v.records().collect();
    assert_eq!(
        got,
        [
            PackedRecord {
                index: 0,
                partition_key: "k1",
                hash_key: None,
                data: b"hello"
            },
            PackedRecord {
                index: 1,
                partition_key: "ключ",
                hash_key: Some(u128::MAX - 5),
                data: b""
            },
            PackedRecord {
                index: 2,
                partition_key: "k3",
                hash_key: Some(0),
                data: &[7u8; 300]
            },
        ]
    );
}

#[test]
fn the_builder_is_exact_and_reusable() {
    let mut b = PackedBatchBuilder::new();
    b.push("a", None, b"xyz");
    b.push("b", Some(9), b"");
    assert_eq!(b.len(), 2);
    let expected = b.frame_len("s");
    let first = b.finish(RequestId(1), "s");
    assert_eq!(first.len(), expected);
    assert!(b.is_empty());
    b.push("c", None, b"1");
    let second = b.finish(RequestId(2), "s");
    let v = PackedBatchView::parse(payload(&second)).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v.records().next().unwrap().partition_key, "c");
}

#[test]
fn an_empty_batch_is_well_formed() {
    let frame = PackedBatchBuilder::new().finish(RequestId(3), "s");
    let v = PackedBatchView::parse(payload(&frame)).unwrap();
    assert!(v.is_empty());
    assert_eq!(v.records().count(), 0);
}

/// The byte offset of record `i`'s header in `sample()`'s payload.
fn record_at(i: usize) -> usize {
    let name = FIXED_LEN + "ström".len();
    let lens = [
        RECORD_HEADER_LEN + 2 + 5,
        RECORD_HEADER_LEN + HASH_KEY_LEN + "ключ".len(),
    ];
    name + lens[..i].iter().sum::<usize>()
}

fn reason_of(p: &[u8]) -> String {
    match PackedBatchView::parse(p) {
        Err(Error::InvalidField { frame_type, reason }) => {
            assert_eq!(frame_type, FrameType::PackedBatch);
            reason
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("accepted a malformed payload"),
    }
}

#[test]
fn every_structural_fault_is_bad_bytes() {
    let frame = sample();
    let p = payload(&frame).to_vec();
    let with = |at: usize, bytes: &[u8]| {
        let mut q = p.clone();
        q[at..at + bytes.len()].copy_from_slice(bytes);
        q
    };

    assert!(reason_of(&p[..FIXED_LEN - 1]).contains("shorter than the 16 fixed bytes"));
    assert!(reason_of(&with(RESERVED_OFFSET, &[0, 1])).contains("reserved bytes are 0x0100"));
    assert!(reason_of(&with(NAME_LEN_OFFSET, &[0xff, 0xff])).contains("overruns"));
    assert!(reason_of(&with(FIXED_LEN, &[0xff])).contains("stream name is not UTF-8"));
    // One record more than the payload holds; one fewer leaves bytes over.
    assert!(reason_of(&with(RECORD_COUNT_OFFSET, &[4, 0, 0, 0])).contains("ends after 3 records"));
    assert!(
        reason_of(&with(RECORD_COUNT_OFFSET, &[2, 0, 0, 0])).contains("bytes follow the 2 records")
    );
    // Cut inside a header, a hash key, a key and the data.
    let r1 = record_at(1);
    assert!(
        reason_of(&p[..r1 + 3]).contains("record 1: 3 bytes left, short of a 7-byte record header")
    );
    assert!(reason_of(&p[..r1 + RECORD_HEADER_LEN + 4])
        .contains("record 1: 4 bytes left, short of its hash key"));
    assert!(reason_of(&p[..r1 - 1])
        .contains("record 0: a 2-byte key and 5 bytes of data, but 6 bytes left"));
    assert!(reason_of(&p[..p.len() - 1]).contains("record 2:"));
    // Lengths past the end, unknown flags, a key that is not UTF-8.
    assert!(
        reason_of(&with(r1 + REC_DATA_LEN_OFFSET, &[0xff, 0xff, 0xff, 0xff]))
            .contains("record 1: a 8-byte key and 4294967295 bytes")
    );
    assert!(reason_of(&with(r1 + REC_KEY_LEN_OFFSET, &[0xff, 0xff]))
        .contains("record 1: a 65535-byte key"));
    assert!(reason_of(&with(r1 + REC_FLAGS_OFFSET, &[3]))
        .contains("record 1: unknown record flags 0x03"));
    assert!(
        reason_of(&with(r1 + RECORD_HEADER_LEN + HASH_KEY_LEN, &[0xff]))
            .contains("record 1: partition key is not UTF-8")
    );
    // Dropping a record's hash-key flag shifts everything after it.
    assert!(PackedBatchView::parse(&with(r1 + REC_FLAGS_OFFSET, &[0])).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(v) = PackedBatchView::parse(&bytes) {
            prop_assert_eq!(v.records().count(), v.len());
        }
    }

    #[test]
    fn flipped_bytes_of_a_good_batch_never_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let frame = sample();
        let mut p = payload(&frame).to_vec();
        for (at, b) in flips {
            let at = at % p.len();
            p[at] = b;
        }
        if let Ok(v) = PackedBatchView::parse(&p) {
            prop_assert_eq!(v.records().count(), v.len());
        }
    }

    #[test]
    fn any_records_round_trip(
        records in proptest::collection::vec(
            ("\\PC{0,8}", proptest::option::of(any::<u128>()), proptest::collection::vec(any::<u8>(), 0..64)),
            0..20,
        ),
    ) {
        let mut b = PackedBatchBuilder::new();
        for (k, h, d) in &records {
            b.push(k, *h, d);
        }
        let frame = b.finish(RequestId(7), "s");
        let v = PackedBatchView::parse(payload(&frame)).unwrap();
        let got: Vec<_> = v.records().map(|r| (r.partition_key.to_owned(), r.hash_key, r.data.to_vec())).collect();
        prop_assert_eq!(got, records);
    }
}

proptest! {
    /// A builder reused across batches for streams whose names differ in length writes each
    /// frame in place or moves it, and either way the frame is byte for byte what a fresh
    /// builder makes of the same batch.
    #[test]
    fn a_reused_builder_makes_the_frames_a_fresh_one_does(
        batches in proptest::collection::vec(
            (
                prop_oneof![Just(""), Just("s"), Just("stream"), Just("a-much-longer-stream-name")],
                proptest::collection::vec(
                    ("\\PC{0,8}", proptest::option::of(any::<u128>()), proptest::collection::vec(any::<u8>(), 0..64)),
                    0..8,
                ),
            ),
            1..12,
        ),
    ) {
        let mut reused = PackedBatchBuilder::new();
        for (i, (name, records)) in batches.iter().enumerate() {
            let mut fresh = PackedBatchBuilder::new();
            for (k, h, d) in records {
                reused.push(k, *h, d);
                fresh.push(k, *h, d);
            }
            let expected_len = reused.frame_len(name);
            let frame = reused.finish(RequestId(i as u64), name);
            prop_assert_eq!(frame.len(), expected_len);
            prop_assert_eq!(&frame, &fresh.finish(RequestId(i as u64), name));
            let v = PackedBatchView::parse(payload(&frame)).unwrap();
            prop_assert_eq!(v.stream_name(), *name);
            prop_assert_eq!(v.request_id(), RequestId(i as u64));
            let got: Vec<_> = v.records().map(|r| (r.partition_key.to_owned(), r.hash_key, r.data.to_vec())).collect();
            prop_assert_eq!(&got, records);
        }
    }
}
