//! A memo of partition keys' hash keys, so that a key seen again skips its MD5.
//!
//! Partition keys repeat by design: they name the devices, users or tenants whose records
//! must stay in order. The MD5 of a short key costs about 100 ns, which was a quarter of
//! the server's CPU at 3 M records/s of 100 B (docs/performance.md, "Partition keys' MD5").
//!
//! # Invariants
//!
//! - [`KeyMemo::hash_key`] answers exactly what [`HashKey::of_partition_key`] answers, for
//!   every key: an entry holds the whole key next to its digest, and a lookup compares the
//!   whole key.
//! - Bounded memory: at most [`MAX_KEYS`] keys and [`MAX_KEY_BYTES`] bytes of keys. A full
//!   memo starts over empty.
//! - Keys that do not repeat cost little: after a window of [`WINDOW`] lookups of which
//!   fewer than a quarter hit, the memo empties itself and computes digests directly for
//!   the next [`REST_WINDOWS`] windows' worth of keys, then tries again.

use std::cell::RefCell;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::HashKey;

/// Most keys one memo holds (its table then takes about 0.5 MiB).
pub const MAX_KEYS: usize = 16_384;

/// Most bytes of keys one memo holds.
pub const MAX_KEY_BYTES: usize = 1 << 20;

/// Lookups per window over which the hit rate is judged.
pub const WINDOW: u32 = 4096;

/// Windows' worth of keys hashed directly after a window with too few hits.
pub const REST_WINDOWS: u32 = 16;

/// One remembered key: where its bytes are in the arena, and its hash key.
struct Entry {
    start: u32,
    len: u32,
    hash_key: u128,
}

/// Partition keys and their hash keys, in one table over one byte arena.
pub struct KeyMemo {
    table: HashTable<Entry>,
    /// Every remembered key's bytes, back to back.
    arena: Vec<u8>,
    hasher: DefaultHashBuilder,
    /// Lookups and hits in the current window.
    lookups: u32,
    hits: u32,
    /// Keys still to hash directly before the memo is used again.
    resting: u32,
}

impl Default for KeyMemo {
    fn default() -> Self {
        KeyMemo::new()
    }
}

impl KeyMemo {
    /// An empty memo.
    pub fn new() -> KeyMemo {
        KeyMemo {
            table: HashTable::new(),
            arena: Vec::new(),
            hasher: DefaultHashBuilder::default(),
            lookups: 0,
            hits: 0,
            resting: 0,
        }
    }

    /// The hash key of `partition_key`, as [`HashKey::of_partition_key`] computes it.
    pub fn hash_key(&mut self, partition_key: &str) -> HashKey {
        if self.resting > 0 {
            self.resting -= 1;
            return HashKey::of_partition_key(partition_key);
        }
        let key = partition_key.as_bytes();
        let hash = self.hasher.hash_one(key);
        let arena = &self.arena;
        let found = self
            .table
            .find(hash, |e| {
                arena.get(e.start as usize..(e.start + e.len) as usize) == Some(key)
            })
            .map(|e| e.hash_key);
        self.lookups += 1;
        let hash_key = match found {
            Some(k) => {
                self.hits += 1;
                HashKey(k)
            }
            None => {
                let computed = HashKey::of_partition_key(partition_key);
                self.remember(hash, key, computed);
                computed
            }
        };
        if self.lookups == WINDOW {
            if self.hits < WINDOW / 4 {
                self.forget();
                self.resting = REST_WINDOWS * WINDOW;
            }
            self.lookups = 0;
            self.hits = 0;
        }
        hash_key
    }

    /// Number of keys remembered.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn remember(&mut self, hash: u64, key: &[u8], hash_key: HashKey) {
        if self.table.len() == MAX_KEYS || self.arena.len() + key.len() > MAX_KEY_BYTES {
            self.forget();
        }
        // Both fit in u32: the arena never exceeds MAX_KEY_BYTES.
        let (start, len) = (self.arena.len() as u32, key.len() as u32);
        self.arena.extend_from_slice(key);
        let (arena, hasher) = (&self.arena, &self.hasher);
        self.table.insert_unique(
            hash,
            Entry {
                start,
                len,
                hash_key: hash_key.0,
            },
            |e| hasher.hash_one(&arena[e.start as usize..(e.start + e.len) as usize]),
        );
    }

    fn forget(&mut self) {
        self.table.clear();
        self.arena.clear();
    }
}

thread_local! {
    /// One memo per thread, so that no lock is taken.
    static THREAD_MEMO: RefCell<KeyMemo> = RefCell::new(KeyMemo::new());
}

/// The hash key of `partition_key`, from this thread's memo.
pub fn hash_key(partition_key: &str) -> HashKey {
    THREAD_MEMO.with(|m| m.borrow_mut().hash_key(partition_key))
}

#[cfg(test)]
mod tests;
