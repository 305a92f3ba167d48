use bytes::BytesMut;
use proptest::prelude::*;

use super::*;
use crate::batch::{ExplicitHashKey, PutBatchBuilder, PutBatchView};
use crate::error_frame::{ErrorCode, ErrorFrame};
use crate::frame::{RequestId, DEFAULT_MAX_FRAME_BYTES};
use crate::hello::{Hello, HelloAck};
use crate::result::{PutResultBuilder, PutResultView, RecordOutcome, SequenceParts};

fn sample_batch() -> Vec<u8> {
    let mut b = PutBatchBuilder::new();
    b.push("key-a", None, b"hello");
    b.push("ключ", Some(ExplicitHashKey::Decimal("12345")), b"");
    b.push(
        "k",
        Some(ExplicitHashKey::Binary(u128::MAX - 1)),
        &[0u8, 255, 7],
    );
    let frame = b.finish(RequestId(42), "orders");
    assert!(b.is_empty());
    frame
}

fn sample_result() -> Vec<u8> {
    let mut r = PutResultBuilder::with_capacity(4);
    let parts = |shard, counter| SequenceParts {
        shard,
        epoch_secs: 1_700_000_000,
        counter,
        arrival_secs: 1_700_000_005,
    };
    r.push_written(parts(0, 10));
    r.push_failed(ErrorCode::InvalidArgument, "partition key too long");
    r.push_written(parts(3, 0));
    r.push_written(parts(0, 11));
    r.finish(RequestId(42))
}

/// Every kind of frame, back to back, as one byte stream.
fn sample_stream() -> (Vec<u8>, Vec<(FrameType, Vec<u8>)>) {
    let frames = vec![
        (
            FrameType::Hello,
            Hello {
                protocol_version: 1,
                client: "t",
            }
            .encode(),
        ),
        (
            FrameType::HelloAck,
            HelloAck {
                protocol_version: 1,
                max_frame_bytes: 1 << 20,
                window_bytes: 4 << 20,
                max_batch_records: 10_000,
                server: "s",
            }
            .encode(),
        ),
        (FrameType::PutBatch, sample_batch()),
        (FrameType::PutResult, sample_result()),
        (
            FrameType::Error,
            ErrorFrame {
                request_id: RequestId(7),
                code: ErrorCode::ResourceNotFound,
                message: "no such stream",
            }
            .encode(),
        ),
    ];
    let stream = frames.iter().flat_map(|(_, f)| f.clone()).collect();
    (stream, frames)
}

fn drain(decoder: &FrameDecoder, buf: &mut BytesMut, out: &mut Vec<RawFrame>) {
    while let Some(f) = decoder.decode(buf).unwrap() {
        out.push(f);
    }
}

fn check_frames(got: &[RawFrame], want: &[(FrameType, Vec<u8>)]) {
    assert_eq!(got.len(), want.len());
    for (g, (t, bytes)) in got.iter().zip(want) {
        assert_eq!(g.frame_type, *t);
        assert_eq!(&g.payload[..], &bytes[HEADER_LEN..]);
        assert_eq!(g.frame_len(), bytes.len());
    }
}

#[test]
fn put_batch_round_trips_every_field() {
    let frame = sample_batch();
    let v = PutBatchView::parse(&frame[HEADER_LEN..]).unwrap();
    assert_eq!(v.request_id(), RequestId(42));
    assert_eq!(v.stream_name(), "orders");
    assert_eq!(v.len(), 3);
    let recs: Vec<_> = v.records().collect();
    assert_eq!(recs[0].partition_key(), "key-a");
    assert_eq!(recs[0].data(), b"hello");
    assert_eq!(recs[0].explicit_hash_key().unwrap(), None);
    assert_eq!(recs[1].partition_key(), "ключ");
    assert_eq!(recs[1].data(), b"");
    assert_eq!(
        recs[1].explicit_hash_key().unwrap(),
        Some(ExplicitHashKey::Decimal("12345"))
    );
    assert_eq!(recs[2].index(), 2);
    assert_eq!(recs[2].data(), &[0u8, 255, 7]);
    assert_eq!(
        recs[2].explicit_hash_key().unwrap(),
        Some(ExplicitHashKey::Binary(u128::MAX - 1))
    );
}

#[test]
fn put_batch_estimate_is_not_below_the_frame() {
    let mut b = PutBatchBuilder::new();
    for data_len in [0, 1, 2, 3, 100, 1000] {
        for keys in 0..3 {
            for i in 0..1000usize {
                let key = "k".repeat(1 + i % 7);
                let hash = match keys {
                    0 => None,
                    1 => Some(ExplicitHashKey::Binary(i as u128)),
                    _ => Some(ExplicitHashKey::Decimal(&key)),
                };
                b.push(&key, hash, &vec![7u8; data_len + i % 5]);
            }
            let estimate = b.frame_len_estimate("stream");
            let frame = b.finish(RequestId(1), "stream");
            assert!(estimate >= frame.len(), "{estimate} < {}", frame.len());
            if data_len >= 100 && keys == 0 {
                assert!(
                    estimate < frame.len() * 11 / 10,
                    "{estimate} vs {}",
                    frame.len()
                );
            }
        }
    }
}

#[test]
fn put_result_round_trips_outcomes_in_order() {
    let frame = sample_result();
    let v = PutResultView::parse(&frame[HEADER_LEN..]).unwrap();
    assert_eq!(v.request_id(), RequestId(42));
    assert_eq!(v.len(), 4);
    assert_eq!(v.failed_count(), 1);
    let outcomes: Vec<_> = v.outcomes().collect();
    let written = |shard, counter| {
        RecordOutcome::Written(SequenceParts {
            shard,
            epoch_secs: 1_700_000_000,
            counter,
            arrival_secs: 1_700_000_005,
        })
    };
    assert_eq!(
        outcomes,
        vec![
            written(0, 10),
            RecordOutcome::Failed {
                code: ErrorCode::InvalidArgument,
                message: "partition key too long"
            },
            written(3, 0),
            written(0, 11),
        ]
    );
}

#[test]
fn put_result_view_rejects_dangling_references() {
    use crate::fb;
    // A record naming stamp 1 of 1, built by hand with the generated builders.
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let stamps = fbb.create_vector(&[fb::ShardStamp::new(1, 1, 0)]);
    let records = fbb.create_vector(&[fb::RecordSequence::new(0, 1)]);
    let root = fb::PutResult::create(
        &mut fbb,
        &fb::PutResultArgs {
            request_id: 1,
            stamps: Some(stamps),
            records: Some(records),
            errors: None,
        },
    );
    fbb.finish_minimal(root);
    assert!(matches!(
        PutResultView::parse(fbb.finished_data()),
        Err(Error::InvalidField { .. })
    ));
    // A failed record without an error entry.
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let stamps = fbb.create_vector::<fb::ShardStamp>(&[]);
    let records = fbb.create_vector(&[fb::RecordSequence::new(0, crate::result::FAILED_STAMP)]);
    let root = fb::PutResult::create(
        &mut fbb,
        &fb::PutResultArgs {
            request_id: 1,
            stamps: Some(stamps),
            records: Some(records),
            errors: None,
        },
    );
    fbb.finish_minimal(root);
    assert!(matches!(
        PutResultView::parse(fbb.finished_data()),
        Err(Error::InvalidField { .. })
    ));
}

#[test]
fn both_hash_key_forms_are_a_conflict() {
    use crate::fb;
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let data = fbb.create_vector(b"x");
    let key = fbb.create_string("k");
    let dec = fbb.create_string("1");
    let rec = fb::Record::create(
        &mut fbb,
        &fb::RecordArgs {
            partition_key: Some(key),
            explicit_hash_key: Some(&fb::U128::new(1, 0)),
            explicit_hash_key_decimal: Some(dec),
            data: Some(data),
        },
    );
    let records = fbb.create_vector(&[rec]);
    let name = fbb.create_string("s");
    let root = fb::PutBatch::create(
        &mut fbb,
        &fb::PutBatchArgs {
            request_id: 1,
            stream_name: Some(name),
            records: Some(records),
        },
    );
    fbb.finish_minimal(root);
    let v = PutBatchView::parse(fbb.finished_data()).unwrap();
    let r = v.records().next().unwrap();
    assert!(matches!(
        r.explicit_hash_key(),
        Err(Error::ConflictingHashKeys { index: 0 })
    ));
}

#[test]
fn a_batch_without_records_is_an_invalid_payload() {
    // The generated builder refuses to omit a required field, so take a Hello payload: a
    // table whose second field is a string, like PutBatch's stream name, and no third.
    let hello = Hello {
        protocol_version: 1,
        client: "s",
    }
    .encode();
    assert!(matches!(
        PutBatchView::parse(&hello[HEADER_LEN..]),
        Err(Error::InvalidPayload { .. })
    ));
}

#[test]
fn decoding_split_at_every_byte_gives_the_same_frames() {
    let (stream, frames) = sample_stream();
    let decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES);
    for split in 0..=stream.len() {
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        buf.extend_from_slice(&stream[..split]);
        drain(&decoder, &mut buf, &mut got);
        buf.extend_from_slice(&stream[split..]);
        drain(&decoder, &mut buf, &mut got);
        check_frames(&got, &frames);
        assert!(buf.is_empty());
        decoder.finish(&buf).unwrap();
    }
}

#[test]
fn decoding_one_byte_at_a_time_gives_the_same_frames() {
    let (stream, frames) = sample_stream();
    let decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for b in &stream {
        buf.extend_from_slice(std::slice::from_ref(b));
        drain(&decoder, &mut buf, &mut got);
    }
    check_frames(&got, &frames);
}

#[test]
fn input_ending_inside_a_frame_is_truncated_at_every_byte() {
    let frame = sample_batch();
    let decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES);
    for cut in 1..frame.len() {
        let mut buf = BytesMut::from(&frame[..cut]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert_eq!(
            buf.len(),
            cut,
            "an incomplete frame leaves the buffer alone"
        );
        let need = if cut < HEADER_LEN {
            HEADER_LEN
        } else {
            frame.len()
        } as u64;
        match decoder.finish(&buf) {
            Err(Error::Truncated { have, need: n }) => assert_eq!((have, n), (cut, need)),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn an_oversized_header_is_refused_before_its_payload() {
    let frame = sample_batch();
    let decoder = FrameDecoder::new(frame.len() - 1);
    let mut buf = BytesMut::from(&frame[..HEADER_LEN]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(Error::FrameTooLarge { .. })
    ));
    assert_eq!(decoder.max_frame_bytes(), frame.len() - 1);
}

#[test]
fn every_error_maps_to_its_wire_code() {
    let cases = [
        (
            Error::FrameTooLarge {
                frame_bytes: 2,
                max_frame_bytes: 1,
            },
            ErrorCode::FrameTooLarge,
        ),
        (
            Error::UnsupportedFrameVersion { version: 9 },
            ErrorCode::UnsupportedVersion,
        ),
        (
            Error::UnknownFrameType { frame_type: 9 },
            ErrorCode::UnknownFrameType,
        ),
        (
            Error::ReservedNotZero { value: 1 },
            ErrorCode::MalformedFrame,
        ),
        (
            Error::Truncated { have: 1, need: 8 },
            ErrorCode::TruncatedFrame,
        ),
        (
            Error::ConflictingHashKeys { index: 0 },
            ErrorCode::InvalidArgument,
        ),
    ];
    for (e, code) in cases {
        assert_eq!(e.code(), code, "{e}");
    }
}

/// Decodes `bytes` as a stream of frames and reads every payload with its view, as a server
/// or client would. Must never panic.
fn decode_everything(bytes: &[u8]) {
    let decoder = FrameDecoder::new(1 << 16);
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some(f)) = decoder.decode(&mut buf) {
        let p = &f.payload[..];
        let _ = Hello::decode(p);
        let _ = HelloAck::decode(p);
        let _ = ErrorFrame::decode(p);
        if let Ok(v) = PutBatchView::parse(p) {
            let _ = (v.request_id(), v.stream_name());
            for r in v.records() {
                let _ = (r.partition_key(), r.data(), r.explicit_hash_key());
            }
        }
        if let Ok(v) = PutResultView::parse(p) {
            let _ = v.outcomes().count();
        }
    }
    let _ = decoder.finish(&buf);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    #[test]
    fn corrupted_frames_never_panic(
        which in 0usize..5,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let (_, frames) = sample_stream();
        let mut bytes = frames[which].1.clone();
        for (at, x) in flips {
            let i = HEADER_LEN + at % (bytes.len() - HEADER_LEN);
            bytes[i] ^= x;
        }
        decode_everything(&bytes);
    }
}
