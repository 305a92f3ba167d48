//! Newtypes for identifiers used in public signatures.

use std::fmt;

/// A shard's index within its stream: `shardId-000000000007` has index 7.
///
/// Indexes are assigned in creation order and never reused within a stream, so
/// children of a split or merge always have larger indexes than their parents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u32);

impl ShardId {
    /// Parses `shardId-000000000007`, `shardId-7` or `7` (the forms Kinesis accepts).
    pub fn parse(s: &str) -> Option<ShardId> {
        let digits = s.strip_prefix("shardId-").unwrap_or(s);
        if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // AWS treats indexes beyond the i32 range as unparsable.
        digits
            .parse::<u64>()
            .ok()
            .filter(|v| *v <= i32::MAX as u64)
            .map(|v| ShardId(v as u32))
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hand-rolled zero padding: this runs for every record put.
        let mut buf = *b"shardId-000000000000";
        let mut v = self.0;
        for d in buf[8..].iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

/// A segment is named by the log offset of its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(pub u64);

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:020}", self.0)
    }
}

/// A record's position in its shard's log: 0 for the first record ever appended.
///
/// Offsets are dense in a healthy log. Sequence numbers encode them (see `seqno`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub u64);

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_id_forms_kinesis_accepts() {
        assert_eq!(ShardId::parse("shardId-000000000005"), Some(ShardId(5)));
        assert_eq!(ShardId::parse("shardId-5"), Some(ShardId(5)));
        assert_eq!(ShardId::parse("5"), Some(ShardId(5)));
        assert_eq!(ShardId::parse("shardId-"), None);
        assert_eq!(ShardId::parse("shard-5"), None);
        assert_eq!(ShardId::parse("9999999999999"), None);
        assert_eq!(ShardId::parse("2147483647"), Some(ShardId(2_147_483_647)));
        assert_eq!(ShardId::parse("shardId-002147483648"), None);
        assert_eq!(ShardId(5).to_string(), "shardId-000000000005");
    }
}
