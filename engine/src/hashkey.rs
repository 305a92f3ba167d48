//! The 128-bit hash key space that routes records to shards.
//!
//! The routing rules are written up in `docs/formats/sequence-numbers.md` ("Hash keys").
//!
//! # Invariants
//!
//! - A record's hash key is its `ExplicitHashKey` if given, else the MD5 digest of its
//!   partition key's UTF-8 bytes read as a big-endian unsigned integer.
//! - A [`HashKeyRange`] is inclusive at both ends (`start <= end`), as AWS's `HashKeyRange` is.
//! - The open shards of a stream tile `0..=2^128-1` with no gap and no overlap: creation uses
//!   [`uniform_ranges`], and splits and merges ([`HashKeyRange::split_at`],
//!   [`HashKeyRange::merge`]) replace ranges by ranges covering exactly the same keys.
//! - Parsing never panics, whatever the input.

use std::fmt;
use std::str::FromStr;

use md5::{Digest, Md5};

use crate::error::Error;

pub mod memo;

/// The API's pattern for hash keys (`ExplicitHashKey`, `NewStartingHashKey`; Kinesis API
/// reference), for validation messages.
pub const HASH_KEY_PATTERN: &str = r"0|([1-9]\d{0,38})";

/// Most digits [`HASH_KEY_PATTERN`] allows.
pub const MAX_HASH_KEY_DIGITS: usize = 39;

/// Longest prefix of a rejected input echoed in an error.
const MAX_ECHOED_CHARS: usize = 64;

/// A point in the hash key space `0..=2^128-1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HashKey(pub u128);

impl HashKey {
    /// Parses a decimal hash key such as an `ExplicitHashKey`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] if `s` does not match [`HASH_KEY_PATTERN`] (the API answers
    /// that with a ValidationException, so it should check the pattern first), or, with
    /// AWS's InvalidArgument text for `PutRecord`, if the value is 2^128 or larger.
    pub fn parse(s: &str) -> Result<HashKey, Error> {
        let bytes = s.as_bytes();
        let syntax_ok = match bytes {
            [] | [b'0', _, ..] => false,
            _ => bytes.len() <= MAX_HASH_KEY_DIGITS && bytes.iter().all(u8::is_ascii_digit),
        };
        if !syntax_ok {
            return Err(Error::InvalidInput(format!(
                "hash key '{}' does not match the pattern {HASH_KEY_PATTERN}",
                echo(s)
            )));
        }
        // The digits are valid, so the only failure left is overflow.
        s.parse::<u128>().map(HashKey).map_err(|_| {
            Error::InvalidInput(format!(
                "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {s}"
            ))
        })
    }

    /// The hash key that routes a record: its explicit hash key if it has one, else its
    /// partition key's MD5, which this thread remembers for recent keys ([`memo`]).
    pub fn of_record(partition_key: &str, explicit: Option<HashKey>) -> HashKey {
        explicit.unwrap_or_else(|| memo::hash_key(partition_key))
    }

    /// The hash key of a partition key: MD5 of its UTF-8 bytes as a big-endian integer.
    #[expect(
        clippy::big_endian_bytes,
        reason = "Kinesis reads the MD5 digest as a big-endian integer"
    )]
    pub fn of_partition_key(partition_key: &str) -> HashKey {
        let digest: [u8; 16] = Md5::digest(partition_key.as_bytes()).into();
        HashKey(u128::from_be_bytes(digest))
    }
}

impl fmt::Display for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for HashKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HashKey::parse(s)
    }
}

/// The keys a shard owns: `start..=end`, inclusive at both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HashKeyRange {
    /// AWS's `StartingHashKey`: the smallest key the shard owns.
    pub start: u128,
    /// AWS's `EndingHashKey`: the largest key the shard owns (inclusive).
    pub end: u128,
}

impl HashKeyRange {
    /// The whole key space, owned by a one-shard stream.
    pub const FULL: HashKeyRange = HashKeyRange {
        start: 0,
        end: u128::MAX,
    };

    /// Whether the shard owns `key`.
    pub fn contains(&self, key: HashKey) -> bool {
        self.start <= key.0 && key.0 <= self.end
    }

    /// The two children of `SplitShard` with `NewStartingHashKey` = `new_start`:
    /// `[start, new_start - 1]` and `[new_start, end]`.
    ///
    /// `None` unless `start + 1 < new_start < end`, AWS's rule (API reference, SplitShard:
    /// "not both greater than one plus the shard's StartingHashKey and less than the shard's
    /// EndingHashKey").
    pub fn split_at(&self, new_start: HashKey) -> Option<(HashKeyRange, HashKeyRange)> {
        let new_start = new_start.0;
        let lowest = self.start.checked_add(1)?;
        if !(lowest < new_start && new_start < self.end) {
            return None;
        }
        Some((
            HashKeyRange {
                start: self.start,
                end: new_start - 1,
            },
            HashKeyRange {
                start: new_start,
                end: self.end,
            },
        ))
    }

    /// The child of `MergeShards` with ShardToMerge's range `a` and AdjacentShardToMerge's
    /// range `b`: `[a.start, b.end]`.
    ///
    /// `None` unless `a.end + 1 == b.start` (contiguous, `a` below `b`).
    pub fn merge(a: HashKeyRange, b: HashKeyRange) -> Option<HashKeyRange> {
        (a.end.checked_add(1)? == b.start).then_some(HashKeyRange {
            start: a.start,
            end: b.end,
        })
    }
}

/// The ranges of a new stream with `n` shards, as CreateStream lays them out: step =
/// ⌊2^128 / n⌋, shard `i` gets `[i·step, (i+1)·step − 1]`, and the last shard also takes the
/// remainder, ending at 2^128 − 1. Empty for `n == 0`.
pub fn uniform_ranges(n: u32) -> Vec<HashKeyRange> {
    if n <= 1 {
        return if n == 1 {
            vec![HashKeyRange::FULL]
        } else {
            Vec::new()
        };
    }
    let n = u128::from(n);
    // 2^128 = u128::MAX + 1, so ⌊2^128 / n⌋ is ⌊MAX / n⌋ plus one when n divides MAX + 1.
    // For n >= 2 the step is at most 2^127 and every product below fits.
    let step = u128::MAX / n + u128::from(u128::MAX % n == n - 1);
    (0..n)
        .map(|i| HashKeyRange {
            start: i * step,
            end: if i + 1 == n {
                u128::MAX
            } else {
                (i + 1) * step - 1
            },
        })
        .collect()
}

/// The start of a rejected input, for error messages.
fn echo(s: &str) -> String {
    let mut chars = s.chars();
    let mut out: String = chars.by_ref().take(MAX_ECHOED_CHARS).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const TWO_POW_127: u128 = 170_141_183_460_469_231_731_687_303_715_884_105_728;

    fn message(s: &str) -> String {
        match HashKey::parse(s) {
            Err(Error::InvalidInput(message)) => message,
            other => panic!("{s}: expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_whole_key_space() {
        assert_eq!(HashKey::parse("0").unwrap(), HashKey(0));
        let max = "340282366920938463463374607431768211455";
        assert_eq!(HashKey::parse(max).unwrap(), HashKey(u128::MAX));
        assert_eq!(HashKey(u128::MAX).to_string(), max);
        assert_eq!("42".parse::<HashKey>().unwrap(), HashKey(42));
    }

    #[test]
    fn out_of_range_key_gets_aws_invalid_argument_text() {
        for v in [
            "340282366920938463463374607431768211456",
            "999999999999999999999999999999999999999",
        ] {
            assert_eq!(
                message(v),
                format!("Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {v}")
            );
        }
    }

    #[test]
    fn rejects_strings_outside_the_api_pattern() {
        let forty_digits = "1".repeat(MAX_HASH_KEY_DIGITS + 1);
        for bad in [
            "",
            "00",
            "01",
            "-1",
            "+1",
            " 1",
            "1.0",
            "sth",
            "٣",
            &forty_digits,
        ] {
            assert!(message(bad).contains(HASH_KEY_PATTERN), "{bad:?}");
        }
        assert!(message(&"x".repeat(1000))
            .ends_with(&format!("…' does not match the pattern {HASH_KEY_PATTERN}")));
    }

    #[test]
    fn partition_key_hash_is_big_endian_md5() {
        // MD5("hello") = 5d41402abc4b2a76b9719d911017c592.
        assert_eq!(
            HashKey::of_partition_key("hello"),
            HashKey(0x5d41402abc4b2a76b9719d911017c592)
        );
        assert_eq!(
            HashKey::of_partition_key("hello").to_string(),
            "123957004363873451094272536567338222994"
        );
        // UTF-8 bytes, not UTF-16: MD5(c3 a9).
        assert_eq!(
            HashKey::of_partition_key("é").to_string(),
            "136732923097551493579404309126273812335"
        );
    }

    #[test]
    fn two_shards_split_the_space_in_half() {
        assert_eq!(
            uniform_ranges(2),
            vec![
                HashKeyRange {
                    start: 0,
                    end: 170_141_183_460_469_231_731_687_303_715_884_105_727
                },
                HashKeyRange {
                    start: TWO_POW_127,
                    end: 340_282_366_920_938_463_463_374_607_431_768_211_455
                },
            ]
        );
    }

    #[test]
    fn three_shards_use_the_floor_step_and_the_last_takes_the_rest() {
        let step = 113_427_455_640_312_821_154_458_202_477_256_070_485;
        let ranges = uniform_ranges(3);
        assert_eq!(ranges.len(), 3);
        assert_eq!(
            ranges[0],
            HashKeyRange {
                start: 0,
                end: step - 1
            }
        );
        assert_eq!(
            ranges[1],
            HashKeyRange {
                start: step,
                end: 2 * step - 1
            }
        );
        assert_eq!(
            ranges[2],
            HashKeyRange {
                start: 2 * step,
                end: u128::MAX
            }
        );
    }

    #[test]
    fn zero_and_one_shard() {
        assert!(uniform_ranges(0).is_empty());
        assert_eq!(uniform_ranges(1), vec![HashKeyRange::FULL]);
    }

    #[test]
    fn split_follows_the_aws_rule() {
        let r = HashKeyRange { start: 10, end: 20 };
        assert_eq!(r.split_at(HashKey(11)), None); // not > start + 1
        assert_eq!(r.split_at(HashKey(20)), None); // not < end
        assert_eq!(r.split_at(HashKey(9)), None);
        assert_eq!(
            r.split_at(HashKey(12)),
            Some((
                HashKeyRange { start: 10, end: 11 },
                HashKeyRange { start: 12, end: 20 }
            ))
        );
        assert_eq!(
            r.split_at(HashKey(19)),
            Some((
                HashKeyRange { start: 10, end: 18 },
                HashKeyRange { start: 19, end: 20 }
            ))
        );
        let top = HashKeyRange {
            start: u128::MAX,
            end: u128::MAX,
        };
        assert_eq!(top.split_at(HashKey(u128::MAX)), None);
        assert_eq!(
            HashKeyRange::FULL.split_at(HashKey(TWO_POW_127)),
            Some((uniform_ranges(2)[0], uniform_ranges(2)[1]))
        );
    }

    #[test]
    fn merge_needs_contiguous_ranges_in_order() {
        let a = HashKeyRange { start: 0, end: 9 };
        let b = HashKeyRange { start: 10, end: 20 };
        assert_eq!(
            HashKeyRange::merge(a, b),
            Some(HashKeyRange { start: 0, end: 20 })
        );
        assert_eq!(HashKeyRange::merge(b, a), None);
        assert_eq!(
            HashKeyRange::merge(a, HashKeyRange { start: 11, end: 20 }),
            None
        );
        assert_eq!(HashKeyRange::merge(HashKeyRange::FULL, a), None);
    }

    #[test]
    fn contains_is_inclusive() {
        let r = HashKeyRange { start: 10, end: 20 };
        assert!(!r.contains(HashKey(9)));
        assert!(r.contains(HashKey(10)));
        assert!(r.contains(HashKey(20)));
        assert!(!r.contains(HashKey(21)));
        assert!(HashKeyRange::FULL.contains(HashKey(u128::MAX)));
    }

    proptest! {
        #[test]
        fn uniform_ranges_tile_the_space(n in 1u32..=20_000) {
            let ranges = uniform_ranges(n);
            prop_assert_eq!(ranges.len(), n as usize);
            prop_assert_eq!(ranges[0].start, 0);
            prop_assert_eq!(ranges[ranges.len() - 1].end, u128::MAX);
            for pair in ranges.windows(2) {
                prop_assert!(pair[0].start <= pair[0].end);
                prop_assert_eq!(pair[0].end + 1, pair[1].start);
            }
            // Every shard but the last is one step wide; step = ⌊2^128 / n⌋, worked out from
            // 2^128 = 2 · 2^127 without the code's shortcut.
            if n >= 2 {
                let n = u128::from(n);
                let (q, r) = (TWO_POW_127 / n, TWO_POW_127 % n);
                let step = 2 * q + u128::from(2 * r >= n);
                for range in &ranges[..ranges.len() - 1] {
                    prop_assert_eq!(range.end - range.start + 1, step);
                }
                let last = ranges[ranges.len() - 1];
                prop_assert!(last.end - last.start >= step - 1);
            }
        }

        #[test]
        fn every_key_routes_to_exactly_one_shard(n in 1u32..=64, key: u128) {
            let owners = uniform_ranges(n).iter().filter(|r| r.contains(HashKey(key))).count();
            prop_assert_eq!(owners, 1);
        }

        #[test]
        fn split_then_merge_gives_back_the_range(start: u128, len in 3u128..=u128::MAX, at: u128) {
            let end = start.saturating_add(len);
            let r = HashKeyRange { start, end };
            if let Some((lo, hi)) = r.split_at(HashKey(at)) {
                prop_assert_eq!(HashKeyRange::merge(lo, hi), Some(r));
                prop_assert!(lo.start < lo.end && hi.start < hi.end);
            } else {
                prop_assert!(at <= start.saturating_add(1) || at >= end);
            }
        }

        #[test]
        fn parse_round_trips(key: u128) {
            prop_assert_eq!(HashKey::parse(&key.to_string()).unwrap(), HashKey(key));
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = HashKey::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_digit_strings(s in "[0-9]{0,45}") {
            if let Ok(key) = HashKey::parse(&s) {
                prop_assert_eq!(key.to_string(), s);
            }
        }
    }
}
