use proptest::prelude::*;

use super::*;

/// docs/formats/native.md, "Records": fixed part offsets, 48 fixed bytes, 24-byte runs,
/// 10-byte record headers.
#[test]
fn layout_matches_the_doc() {
    assert_eq!(
        [
            REQUEST_ID_OFFSET,
            SHARD_OFFSET,
            FLAGS_OFFSET,
            CHILD_COUNT_OFFSET,
            EPOCH_OFFSET,
            NEXT_COUNTER_OFFSET,
            BEHIND_OFFSET,
            RUN_COUNT_OFFSET,
            RECORD_COUNT_OFFSET,
            FIXED_LEN
        ],
        [0, 8, 12, 14, 16, 24, 32, 40, 44, 48]
    );
    assert_eq!(
        [
            RUN_FIRST_COUNTER_OFFSET,
            RUN_BASE_TS_OFFSET,
            RUN_RECORD_COUNT_OFFSET,
            RUN_BYTE_LEN_OFFSET,
            RUN_LEN
        ],
        [0, 8, 16, 20, 24]
    );
    assert_eq!(RECORD_HEADER_LEN, 10);
}

fn head(children: Vec<u32>) -> RecordsHead {
    RecordsHead {
        request_id: RequestId(42),
        shard: 3,
        epoch_secs: 1_700_000_000,
        next_counter: 17,
        millis_behind_latest: 250,
        end_of_shard: !children.is_empty(),
        child_shards: children,
    }
}

/// A whole frame with two runs: counters 5..7 and 10..11.
fn sample() -> Vec<u8> {
    let mut run1 = Vec::new();
    encode_run(
        &[(b"k1", b"hello"), (b"", b""), (b"key-3", b"x")],
        &mut run1,
    );
    let mut run2 = Vec::new();
    encode_run(&[(b"z", &[7u8; 300])], &mut run2);
    // A nonzero delta, as a future writer may use.
    run2[0] = 9;
    let mut b = RecordsBuilder::new(head(vec![4, 5]));
    b.push_run(5, 1_700_000_000_123, 3, run1.len() as u32);
    b.push_run(10, 1_700_000_001_000, 1, run2.len() as u32);
    let mut frame = b.finish();
    frame.extend_from_slice(&run1);
    frame.extend_from_slice(&run2);
    frame
}

#[test]
fn records_round_trip() {
    let frame = sample();
    let h = FrameHeader::parse(&frame, MAX_RECORDS_FRAME_BYTES)
        .unwrap()
        .unwrap();
    assert_eq!(h.frame_type, FrameType::Records);
    assert_eq!(h.frame_len(), frame.len());
    let v = RecordsView::parse(&frame[HEADER_LEN..]).unwrap();
    assert_eq!(v.request_id(), RequestId(42));
    assert_eq!(v.shard(), 3);
    assert_eq!(v.epoch_secs(), 1_700_000_000);
    assert_eq!(v.next_counter(), 17);
    assert_eq!(v.millis_behind_latest(), 250);
    assert!(v.end_of_shard());
    assert_eq!(v.child_shards().collect::<Vec<_>>(), vec![4, 5]);
    assert_eq!(v.len(), 4);
    let recs: Vec<_> = v.records().collect();
    let want = [
        (5, 1_700_000_000_123, &b"k1"[..], &b"hello"[..]),
        (6, 1_700_000_000_123, b"", b""),
        (7, 1_700_000_000_123, b"key-3", b"x"),
        (10, 1_700_000_001_009, b"z", &[7u8; 300][..]),
    ];
    assert_eq!(recs.len(), want.len());
    for (r, (counter, ms, key, data)) in recs.iter().zip(want) {
        assert_eq!(
            (r.counter, r.arrival_ms, r.partition_key, r.data),
            (counter, ms, key, data)
        );
    }
    assert_eq!(recs[0].arrival_secs(1_700_000_000), 1_700_000_000);
    // The arrival field is never below the epoch (a child's epoch may run ahead).
    assert_eq!(recs[0].arrival_secs(1_800_000_000), 1_800_000_000);
}

#[test]
fn an_empty_answer_parses() {
    let frame = RecordsBuilder::new(head(vec![])).finish();
    let v = RecordsView::parse(&frame[HEADER_LEN..]).unwrap();
    assert!(v.is_empty() && !v.end_of_shard());
    assert_eq!(v.records().count(), 0);
    assert_eq!(v.child_shards().count(), 0);
}

/// Cutting the payload anywhere, or adding a byte, never parses: every length is checked.
#[test]
fn every_truncation_and_extension_is_refused() {
    let frame = sample();
    let payload = &frame[HEADER_LEN..];
    for cut in 0..payload.len() {
        assert!(RecordsView::parse(&payload[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = payload.to_vec();
    longer.push(0);
    assert!(RecordsView::parse(&longer).is_err());
}

#[test]
fn lies_in_the_tables_are_refused() {
    let frame = sample();
    let payload = &frame[HEADER_LEN..];
    let runs_at = FIXED_LEN + 2 * CHILD_LEN;
    let cases: Vec<(&str, usize, Vec<u8>)> = vec![
        (
            "record count",
            RECORD_COUNT_OFFSET,
            5u32.to_le_bytes().to_vec(),
        ),
        ("run count", RUN_COUNT_OFFSET, 3u32.to_le_bytes().to_vec()),
        (
            "child count",
            CHILD_COUNT_OFFSET,
            3u16.to_le_bytes().to_vec(),
        ),
        ("unknown flag", FLAGS_OFFSET, 2u16.to_le_bytes().to_vec()),
        (
            "run records",
            runs_at + RUN_RECORD_COUNT_OFFSET,
            2u32.to_le_bytes().to_vec(),
        ),
        (
            "empty run",
            runs_at + RUN_RECORD_COUNT_OFFSET,
            0u32.to_le_bytes().to_vec(),
        ),
        (
            "run length",
            runs_at + RUN_BYTE_LEN_OFFSET,
            1000u32.to_le_bytes().to_vec(),
        ),
        (
            "counter overflow",
            runs_at + RUN_FIRST_COUNTER_OFFSET,
            u64::MAX.to_le_bytes().to_vec(),
        ),
        (
            "time overflow",
            runs_at + RUN_LEN + RUN_BASE_TS_OFFSET,
            u64::MAX.to_le_bytes().to_vec(),
        ),
    ];
    for (name, at, bytes) in cases {
        let mut p = payload.to_vec();
        p[at..at + bytes.len()].copy_from_slice(&bytes);
        assert!(RecordsView::parse(&p).is_err(), "{name}");
    }
    // A record's data length that runs past its run.
    let block = runs_at + 2 * RUN_LEN;
    let mut p = payload.to_vec();
    p[block + REC_DATA_LEN_OFFSET] = 200;
    assert!(RecordsView::parse(&p).is_err());
}

#[test]
fn the_answer_bound_covers_a_full_answer() {
    // 10,000 records, 16 MiB of data, one run per record (the worst case), 2 children.
    let bound = answer_bound(MAX_READ_RECORDS, MAX_READ_BYTES);
    let worst = HEADER_LEN
        + FIXED_LEN
        + 2 * CHILD_LEN
        + MAX_READ_RECORDS as usize * (RUN_LEN + RECORD_HEADER_LEN)
        + MAX_READ_BYTES as usize;
    assert_eq!(bound, worst);
    assert!(bound < MAX_RECORDS_FRAME_BYTES);
    // The one-record exception: a 10 MiB record with a 256-byte key (1 KiB of UTF-8).
    const {
        assert!(
            HEADER_LEN + FIXED_LEN + 8 + RUN_LEN + RECORD_HEADER_LEN + (10 << 20) + 1024
                < MAX_RECORDS_FRAME_BYTES
        )
    };
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(v) = RecordsView::parse(&bytes) {
            let n = v.records().count();
            prop_assert_eq!(n, v.len());
        }
    }

    #[test]
    fn flipped_bytes_never_panic(at in 0usize..400, value in any::<u8>()) {
        let frame = sample();
        let mut p = frame[HEADER_LEN..].to_vec();
        let at = at % p.len();
        p[at] = value;
        if let Ok(v) = RecordsView::parse(&p) {
            let n = v.records().count();
            prop_assert_eq!(n, v.len());
        }
    }
}
