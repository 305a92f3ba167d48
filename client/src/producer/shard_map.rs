//! Which open shard a hash key belongs to, from ListShards' hash key ranges.
//!
//! The map only groups records; the server routes each record by its hash key. A stale map
//! (after a split or merge) still puts every record where the server's current map says, but
//! may group records of two shards together, and an aggregate's user records may then
//! belong to different shards; the producer refreshes the map when an answer names a shard
//! the map did not predict, or the stream's shards cannot be found.

use super::transport::ShardRange;

/// Open shards, ordered by starting hash key.
#[derive(Debug, Clone, Default)]
pub struct ShardMap {
    ranges: Vec<ShardRange>,
}

impl ShardMap {
    /// A map of `ranges` (any order).
    pub fn new(mut ranges: Vec<ShardRange>) -> ShardMap {
        ranges.sort_by_key(|r| r.starting_hash_key);
        ShardMap { ranges }
    }

    /// The shard whose range holds `hash`, or `None` if no open shard does (an empty map, or
    /// ranges with gaps while a reshard is under way).
    pub fn shard_of(&self, hash: u128) -> Option<&ShardRange> {
        let i = self.ranges.partition_point(|r| r.starting_hash_key <= hash);
        let r = self.ranges.get(i.checked_sub(1)?)?;
        (hash <= r.ending_hash_key).then_some(r)
    }

    /// Open shards known.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether no shard is known.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(id: &str, start: u128, end: u128) -> ShardRange {
        ShardRange {
            shard_id: id.into(),
            starting_hash_key: start,
            ending_hash_key: end,
        }
    }

    #[test]
    fn finds_the_shard_holding_a_hash_inclusive_at_both_ends() {
        let half = u128::MAX / 2;
        let map = ShardMap::new(vec![range("b", half + 1, u128::MAX), range("a", 0, half)]);
        assert_eq!(map.shard_of(0).unwrap().shard_id, "a");
        assert_eq!(map.shard_of(half).unwrap().shard_id, "a");
        assert_eq!(map.shard_of(half + 1).unwrap().shard_id, "b");
        assert_eq!(map.shard_of(u128::MAX).unwrap().shard_id, "b");
    }

    #[test]
    fn gaps_and_empty_maps_find_nothing() {
        let map = ShardMap::new(vec![range("a", 10, 20), range("b", 30, 40)]);
        assert!(map.shard_of(5).is_none());
        assert!(map.shard_of(25).is_none());
        assert!(map.shard_of(41).is_none());
        assert!(ShardMap::default().shard_of(1).is_none());
    }
}
