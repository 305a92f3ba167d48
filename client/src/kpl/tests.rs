use md5::{Digest, Md5};
use proptest::prelude::*;
use prost::Message;

use super::*;

fn wrap(proto: &[u8]) -> Vec<u8> {
    let mut data = MAGIC.to_vec();
    data.extend_from_slice(proto);
    data.extend_from_slice(&Md5::digest(proto));
    data
}

#[test]
fn round_trip_keeps_order_keys_and_data() {
    let mut agg = Aggregator::new(DEFAULT_AGGREGATION_MAX_BYTES);
    let inputs = [
        ("a", None, b"one".to_vec()),
        ("b", Some("42"), b"two".to_vec()),
        ("a", None, Vec::new()),
        ("c", Some("42"), vec![0xF3; 300]),
    ];
    for (i, (pk, ehk, data)) in inputs.iter().enumerate() {
        assert!(agg.fits(pk, *ehk, data.len()));
        assert_eq!(agg.push(pk, *ehk, data.clone()), i as u64);
    }
    let expected_size = agg.size_bytes();
    let record = agg.finish().unwrap();
    assert!(agg.is_empty() && agg.finish().is_none());
    assert_eq!(record.user_records, 4);
    assert_eq!(record.partition_key, "a");
    assert_eq!(
        record.explicit_hash_key,
        encode::partition_key_hash("a").to_string()
    );
    assert_eq!(
        expected_size,
        record.partition_key.len() + record.data.len()
    );
    let users = deaggregate(&record.data).unwrap();
    let got: Vec<_> = users
        .iter()
        .map(|u| {
            (
                u.partition_key.as_str(),
                u.explicit_hash_key.as_deref(),
                u.data.clone(),
            )
        })
        .collect();
    assert_eq!(got, inputs.to_vec());
    // Keys are stored once.
    let proto = proto::AggregatedRecord::decode(&record.data[4..record.data.len() - 16]).unwrap();
    assert_eq!(proto.partition_key_table, ["a", "b", "c"]);
    assert_eq!(proto.explicit_hash_key_table, ["42"]);
}

#[test]
fn outer_hash_key_is_the_first_records_explicit_key() {
    let mut agg = Aggregator::new(1000);
    agg.push("k", Some("12345"), b"x".to_vec());
    agg.push("other", None, b"y".to_vec());
    let record = agg.finish().unwrap();
    assert_eq!(record.explicit_hash_key, "12345");
    assert_eq!(record.partition_key, "k");
}

#[test]
fn md5_of_a_known_key_is_read_big_endian() {
    // MD5("") = d41d8cd98f00b204e9800998ecf8427e.
    assert_eq!(
        encode::partition_key_hash(""),
        0xd41d8cd98f00b204e9800998ecf8427e
    );
}

#[test]
fn size_limit_is_respected_and_clamped_to_one_mib() {
    let mut agg = Aggregator::new(200);
    let mut pushed = 0;
    while agg.fits("key", None, 30) {
        agg.push("key", None, vec![7; 30]);
        pushed += 1;
    }
    assert!(pushed > 1);
    let record = agg.finish().unwrap();
    assert!(record.partition_key.len() + record.data.len() <= 200);
    assert_eq!(deaggregate(&record.data).unwrap().len(), pushed);

    let big = Aggregator::new(usize::MAX);
    assert!(big.fits("k", None, MAX_RECORD_BYTES - 100));
    assert!(!big.fits("k", None, MAX_RECORD_BYTES));
    // A record too large for the limit alone does not fit an empty aggregator.
    assert!(!Aggregator::new(100).fits("k", None, 100));
}

#[test]
fn not_aggregated_data_passes_through() {
    assert_eq!(deaggregate(b"plain data"), None);
    assert_eq!(deaggregate(&[]), None);
    // Magic but too short for a digest.
    assert_eq!(deaggregate(&[0xF3, 0x89, 0x9A, 0xC2, 1, 2, 3]), None);
    // Magic and a digest of nothing: no records.
    assert_eq!(deaggregate(&wrap(&[])), None);
}

#[test]
fn bad_digest_passes_through() {
    let mut agg = Aggregator::new(1000);
    agg.push("k", None, b"x".to_vec());
    let mut data = agg.finish().unwrap().data;
    assert!(deaggregate(&data).is_some());
    let last = data.len() - 1;
    data[last] ^= 1;
    assert_eq!(deaggregate(&data), None);
}

#[test]
fn bad_protobuf_with_a_good_digest_passes_through() {
    assert_eq!(deaggregate(&wrap(&[0xFF, 0xFF, 0xFF])), None);
    // A record without its required data field.
    let missing = proto::AggregatedRecord {
        partition_key_table: vec!["k".into()],
        explicit_hash_key_table: vec![],
        records: vec![],
    };
    let mut bytes = missing.encode_to_vec();
    bytes.extend_from_slice(&[0x1A, 0x02, 0x08, 0x00]); // records { partition_key_index: 0 }
    assert_eq!(deaggregate(&wrap(&bytes)), None);
}

#[test]
fn key_index_out_of_its_table_passes_through() {
    let message = proto::AggregatedRecord {
        partition_key_table: vec!["k".into()],
        explicit_hash_key_table: vec![],
        records: vec![proto::Record {
            partition_key_index: Some(1),
            explicit_hash_key_index: None,
            data: Some(b"x".to_vec()),
            tags: vec![],
        }],
    };
    assert_eq!(deaggregate(&wrap(&message.encode_to_vec())), None);
    let message = proto::AggregatedRecord {
        records: vec![proto::Record {
            partition_key_index: Some(0),
            explicit_hash_key_index: Some(0),
            ..message.records[0].clone()
        }],
        ..message
    };
    assert_eq!(deaggregate(&wrap(&message.encode_to_vec())), None);
}

#[test]
fn tags_are_accepted() {
    let message = proto::AggregatedRecord {
        partition_key_table: vec!["k".into()],
        explicit_hash_key_table: vec![],
        records: vec![proto::Record {
            partition_key_index: Some(0),
            explicit_hash_key_index: None,
            data: Some(b"x".to_vec()),
            tags: vec![proto::Tag {
                key: Some("t".into()),
                value: None,
            }],
        }],
    };
    let users = deaggregate(&wrap(&message.encode_to_vec())).unwrap();
    assert_eq!(users[0].data, b"x");
}

proptest! {
    #[test]
    fn deaggregate_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = deaggregate(&data);
        let mut with_magic = MAGIC.to_vec();
        with_magic.extend_from_slice(&data);
        let _ = deaggregate(&with_magic);
        let _ = deaggregate(&wrap(&data));
    }

    #[test]
    fn any_records_round_trip(records in proptest::collection::vec(("[a-z]{1,8}", proptest::option::of(0u128..=u128::MAX), proptest::collection::vec(any::<u8>(), 0..64)), 1..40)) {
        let mut agg = Aggregator::new(MAX_RECORD_BYTES);
        let ehks: Vec<Option<String>> = records.iter().map(|r| r.1.map(|v| v.to_string())).collect();
        for ((pk, _, data), ehk) in records.iter().zip(&ehks) {
            prop_assert!(agg.fits(pk, ehk.as_deref(), data.len()));
            agg.push(pk, ehk.as_deref(), data.clone());
        }
        let size = agg.size_bytes();
        let record = agg.finish().unwrap();
        prop_assert_eq!(size, record.partition_key.len() + record.data.len());
        let users = deaggregate(&record.data).unwrap();
        prop_assert_eq!(users.len(), records.len());
        for ((user, (pk, _, data)), ehk) in users.iter().zip(&records).zip(&ehks) {
            prop_assert_eq!(&user.partition_key, pk);
            prop_assert_eq!(&user.data, data);
            prop_assert_eq!(&user.explicit_hash_key, ehk);
        }
    }
}
