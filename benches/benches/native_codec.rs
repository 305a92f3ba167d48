//! The native protocol's two batch layouts, side by side: what a producer spends building a
//! batch and what the server spends checking it and reading its records.
//!
//! - `putbatch`: the flatbuffers PutBatch (a table per record), built with
//!   `PutBatchBuilder`, checked with `PutBatchView::parse` (the flatbuffers verifier);
//! - `packed`: PackedBatch (protocol version 3), built with `PackedBatchBuilder`, checked
//!   with `PackedBatchView::parse`;
//! - `md5`: the partition keys' MD5 (`HashKey::of_partition_key`), which the server computes
//!   for every record that carries no hash key, for scale.
//!
//! A batch is 5,000 records of 100 B with keys `k0`..`k999`, the shape of
//! `shardline bench --batch-size 5000` (its default key count is 1,000). Reading touches
//! every record's key, hash key and data, as the server's put does.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shardline_benches::group;
use shardline_engine::hashkey::HashKey;
use shardline_protocol::frame::{RequestId, HEADER_LEN};
use shardline_protocol::{PackedBatchBuilder, PackedBatchView, PutBatchBuilder, PutBatchView};

const RECORDS: usize = 5_000;
const DATA_BYTES: usize = 100;
const KEYS: usize = 1_000;
const STREAM: &str = "bench";

fn keys() -> Vec<String> {
    (0..RECORDS).map(|i| format!("k{}", i % KEYS)).collect()
}

fn build_putbatch(keys: &[String], data: &[u8], b: &mut PutBatchBuilder) -> Vec<u8> {
    for k in keys {
        b.push(k, None, data);
    }
    b.finish(RequestId(1), STREAM)
}

fn build_packed(keys: &[String], data: &[u8], b: &mut PackedBatchBuilder) -> Vec<u8> {
    for k in keys {
        b.push(k, None, data);
    }
    b.finish(RequestId(1), STREAM)
}

fn read_putbatch(payload: &[u8]) -> usize {
    let v = PutBatchView::parse(payload).expect("a built batch parses");
    v.records()
        .map(|r| {
            let hashed = usize::from(matches!(r.explicit_hash_key(), Ok(Some(_))));
            r.partition_key().len() + r.data().len() + hashed
        })
        .sum()
}

fn read_packed(payload: &[u8]) -> usize {
    let v = PackedBatchView::parse(payload).expect("a built batch parses");
    v.records()
        .map(|r| r.partition_key.len() + r.data.len() + usize::from(r.hash_key.is_some()))
        .sum()
}

fn bench(c: &mut Criterion) {
    let keys = keys();
    let data = vec![0x5au8; DATA_BYTES];
    let mut fb = PutBatchBuilder::new();
    let mut packed = PackedBatchBuilder::new();
    let fb_frame = build_putbatch(&keys, &data, &mut fb);
    let packed_frame = build_packed(&keys, &data, &mut packed);
    println!(
        "a batch of {RECORDS} records of {DATA_BYTES} B: PutBatch {} bytes, PackedBatch {} bytes",
        fb_frame.len(),
        packed_frame.len()
    );
    assert_eq!(
        read_putbatch(&fb_frame[HEADER_LEN..]),
        read_packed(&packed_frame[HEADER_LEN..])
    );

    let mut g = group(c, "native_codec", Duration::from_secs(3));
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function("build/putbatch", |b| {
        b.iter(|| black_box(build_putbatch(&keys, &data, &mut fb)))
    });
    g.bench_function("build/packed", |b| {
        b.iter(|| black_box(build_packed(&keys, &data, &mut packed)))
    });
    g.bench_function("read/putbatch", |b| {
        b.iter(|| black_box(read_putbatch(black_box(&fb_frame[HEADER_LEN..]))))
    });
    g.bench_function("read/packed", |b| {
        b.iter(|| black_box(read_packed(black_box(&packed_frame[HEADER_LEN..]))))
    });
    g.bench_function("md5", |b| {
        b.iter(|| {
            keys.iter()
                .map(|k| HashKey::of_partition_key(black_box(k)).0)
                .fold(0u128, |a, h| a ^ h)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
