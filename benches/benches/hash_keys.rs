//! Partition keys to hash keys, with and without the memo (`shardline_engine::hashkey::memo`)
//! that the server routes with.
//!
//! Each iteration maps 5,000 keys, a `shardline bench --batch-size 5000` batch:
//!
//! - `md5/*`: `HashKey::of_partition_key` for every key;
//! - `memo/*`: one `KeyMemo`, kept across iterations as a server thread keeps its memo.
//!
//! Two key sets: `repeating` cycles through `k0`..`k999` (the bench's default of 1,000
//! keys); `unique` never repeats a key (36-character UUID-like keys, counting up), so the
//! memo rests after its first window and the figure shows what resting costs.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shardline_benches::group;
use shardline_engine::hashkey::memo::KeyMemo;
use shardline_engine::hashkey::HashKey;

const KEYS_PER_ITER: usize = 5_000;
const REPEATING_KEYS: usize = 1_000;

fn bench(c: &mut Criterion) {
    let repeating: Vec<String> = (0..KEYS_PER_ITER)
        .map(|i| format!("k{}", i % REPEATING_KEYS))
        .collect();
    let mut g = group(c, "hash_keys", Duration::from_secs(3));
    g.throughput(Throughput::Elements(KEYS_PER_ITER as u64));
    g.bench_function("md5/repeating", |b| {
        b.iter(|| {
            repeating
                .iter()
                .fold(0u128, |a, k| a ^ HashKey::of_partition_key(black_box(k)).0)
        })
    });
    let mut memo = KeyMemo::new();
    g.bench_function("memo/repeating", |b| {
        b.iter(|| {
            repeating
                .iter()
                .fold(0u128, |a, k| a ^ memo.hash_key(black_box(k)).0)
        })
    });
    // Fresh keys for every iteration: a counter formatted as a UUID.
    let mut next = 0u64;
    let mut unique = move || -> Vec<String> {
        (0..KEYS_PER_ITER)
            .map(|_| {
                next += 1;
                format!("00000000-0000-4000-8000-{next:012x}")
            })
            .collect()
    };
    g.bench_function("md5/unique", |b| {
        b.iter_batched_ref(
            &mut unique,
            |keys| {
                keys.iter()
                    .fold(0u128, |a, k| a ^ HashKey::of_partition_key(k).0)
            },
            criterion::BatchSize::SmallInput,
        )
    });
    let mut memo = KeyMemo::new();
    g.bench_function("memo/unique", |b| {
        b.iter_batched_ref(
            &mut unique,
            |keys| keys.iter().fold(0u128, |a, k| a ^ memo.hash_key(k).0),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
