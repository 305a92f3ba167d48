use proptest::prelude::*;

use super::*;

fn keys(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn repeated_keys_are_remembered_once() {
    let mut memo = KeyMemo::new();
    let keys = keys(1000, "device-");
    for _ in 0..3 {
        for k in &keys {
            assert_eq!(memo.hash_key(k), HashKey::of_partition_key(k));
        }
    }
    assert_eq!(memo.len(), 1000);
    assert_eq!(
        memo.resting, 0,
        "three passes over 1,000 keys hit two times in three"
    );
}

#[test]
fn keys_that_do_not_repeat_rest_the_memo_then_it_tries_again() {
    let mut memo = KeyMemo::new();
    let unique = keys((WINDOW * (REST_WINDOWS + 2)) as usize, "uuid-");
    let mut it = unique.iter();
    for k in it.by_ref().take(WINDOW as usize) {
        assert_eq!(memo.hash_key(k), HashKey::of_partition_key(k));
    }
    assert!(memo.is_empty(), "a window without hits empties the memo");
    assert_eq!(memo.resting, REST_WINDOWS * WINDOW);
    for k in it.by_ref().take((REST_WINDOWS * WINDOW) as usize) {
        assert_eq!(memo.hash_key(k), HashKey::of_partition_key(k));
        assert!(memo.is_empty(), "a resting memo stores nothing");
    }
    let k = it.next().expect("keys left");
    assert_eq!(memo.hash_key(k), HashKey::of_partition_key(k));
    assert_eq!(memo.len(), 1, "after its rest the memo stores again");
}

#[test]
fn the_memo_stays_within_its_key_count() {
    let mut memo = KeyMemo::new();
    // Every other lookup is a hot key, so the memo keeps working while new keys fill it.
    for (i, k) in keys(MAX_KEYS * 2 + 10, "k").iter().enumerate() {
        assert_eq!(memo.hash_key(k), HashKey::of_partition_key(k));
        assert_eq!(memo.hash_key("hot"), HashKey::of_partition_key("hot"));
        assert!(memo.len() <= MAX_KEYS, "after {i} new keys");
    }
    assert_eq!(memo.resting, 0);
    assert!(memo.len() > 1);
}

#[test]
fn the_memo_stays_within_its_key_bytes() {
    let mut memo = KeyMemo::new();
    let long = "x".repeat(250);
    for i in 0..(MAX_KEY_BYTES / 250 + 100) {
        let k = format!("{long}{i:06}");
        assert_eq!(memo.hash_key(&k), HashKey::of_partition_key(&k));
        assert_eq!(memo.hash_key("hot"), HashKey::of_partition_key("hot"));
        assert!(memo.arena.len() <= MAX_KEY_BYTES);
    }
    assert_eq!(memo.resting, 0);
}

#[test]
fn the_thread_memo_answers_as_md5_does() {
    for k in ["a", "partitionKey", "é", &"z".repeat(256)] {
        assert_eq!(hash_key(k), HashKey::of_partition_key(k));
    }
}

proptest! {
    /// Whatever the keys and however they repeat, the memo answers as MD5 does.
    #[test]
    fn answers_equal_md5(picks in proptest::collection::vec((0usize..64, ".{1,40}"), 1..2000)) {
        let mut memo = KeyMemo::new();
        let pool: Vec<String> = picks.iter().map(|(_, k)| k.clone()).collect();
        for (i, (pick, fresh)) in picks.iter().enumerate() {
            // Half repeats from what came before, half fresh keys.
            let k = if i % 2 == 0 { &pool[pick % (i + 1)] } else { fresh };
            prop_assert_eq!(memo.hash_key(k), HashKey::of_partition_key(k));
        }
    }
}
