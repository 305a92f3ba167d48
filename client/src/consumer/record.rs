//! What a record processor receives: records with an extended sequence number (sequence
//! number + sub-sequence number), and how extended sequence numbers compare.
//!
//! # KPL aggregates
//!
//! [`user_records`] de-aggregates: a stored record in the KPL aggregated format (reference
//! section 8, [`crate::kpl`]) becomes one [`Record`] per user record, sharing the stored
//! record's sequence number and arrival time, with sub-sequence numbers 0, 1, ... and their
//! own partition keys. Any other record (including a malformed aggregate) is one [`Record`]
//! with sub-sequence number 0. Checkpoints carry the sub-sequence number, so a consumer
//! restarted inside an aggregate skips the user records it had processed.

use std::cmp::Ordering;

use crate::error::Error;
use crate::kinesis::WireRecord;
use crate::kpl;
use crate::leases::{AT_TIMESTAMP, LATEST, SHARD_END, TRIM_HORIZON};

/// One record given to a record processor.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub data: Vec<u8>,
    pub partition_key: String,
    pub sequence_number: String,
    /// The index of a user record inside a KPL aggregate; 0 for plain records.
    pub sub_sequence_number: u64,
    /// Epoch milliseconds.
    pub approximate_arrival_timestamp_ms: Option<i64>,
}

/// The user records of a stored record: its KPL user records if it is an aggregate, else
/// the record itself.
///
/// # Errors
/// [`Error::BadResponse`] when its data is not base64.
pub fn user_records(wire: &WireRecord) -> Result<Vec<Record>, Error> {
    let data = wire.decode_data()?;
    let arrival_ms = wire
        .approximate_arrival_timestamp
        .map(|secs| (secs * 1000.0).round() as i64);
    let record = |data, partition_key, sub_sequence_number| Record {
        data,
        partition_key,
        sequence_number: wire.sequence_number.clone(),
        sub_sequence_number,
        approximate_arrival_timestamp_ms: arrival_ms,
    };
    Ok(match kpl::deaggregate(&data) {
        Some(users) => users
            .into_iter()
            .zip(0..)
            .map(|(u, sub)| record(u.data, u.partition_key, sub))
            .collect(),
        None => vec![record(data, wire.partition_key.clone(), 0)],
    })
}

/// The user records of a run of stored records, in order.
///
/// # Errors
/// As [`user_records`].
pub fn user_records_of(wires: &[WireRecord]) -> Result<Vec<Record>, Error> {
    let mut out = Vec::with_capacity(wires.len());
    for wire in wires {
        out.extend(user_records(wire)?);
    }
    Ok(out)
}

impl Record {
    /// Where this record is in its shard.
    pub fn position(&self) -> ExtendedSequenceNumber {
        ExtendedSequenceNumber::new(&self.sequence_number, self.sub_sequence_number)
    }
}

/// A checkpoint value: a sequence number and sub-sequence number, or a sentinel.
///
/// Order: the start sentinels (`TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP`) before every
/// sequence number, `SHARD_END` after; sequence numbers as unbounded decimal integers (they
/// have 56 digits, more than `u128` holds), then sub-sequence numbers.
#[derive(Debug, Clone)]
pub struct ExtendedSequenceNumber {
    pub sequence_number: String,
    pub sub_sequence_number: u64,
}

impl ExtendedSequenceNumber {
    pub fn new(sequence_number: &str, sub_sequence_number: u64) -> ExtendedSequenceNumber {
        ExtendedSequenceNumber {
            sequence_number: sequence_number.to_string(),
            sub_sequence_number,
        }
    }

    /// `SHARD_END`.
    pub fn shard_end() -> ExtendedSequenceNumber {
        ExtendedSequenceNumber::new(SHARD_END, 0)
    }

    /// Whether this is `SHARD_END`.
    pub fn is_shard_end(&self) -> bool {
        self.sequence_number == SHARD_END
    }

    /// Whether this is a sentinel rather than a sequence number.
    pub fn is_sentinel(&self) -> bool {
        is_sentinel(&self.sequence_number)
    }

    /// 0 for start sentinels, 1 for sequence numbers, 2 for `SHARD_END`.
    fn rank(&self) -> u8 {
        match self.sequence_number.as_str() {
            SHARD_END => 2,
            s if is_sentinel(s) => 0,
            _ => 1,
        }
    }
}

impl std::fmt::Display for ExtendedSequenceNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.sub_sequence_number == 0 {
            f.write_str(&self.sequence_number)
        } else {
            write!(f, "{}.{}", self.sequence_number, self.sub_sequence_number)
        }
    }
}

impl PartialEq for ExtendedSequenceNumber {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ExtendedSequenceNumber {}

impl PartialOrd for ExtendedSequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ExtendedSequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank()
            .cmp(&other.rank())
            .then_with(|| match self.rank() {
                1 => compare_decimal(&self.sequence_number, &other.sequence_number),
                _ => self.sequence_number.cmp(&other.sequence_number),
            })
            .then(self.sub_sequence_number.cmp(&other.sub_sequence_number))
    }
}

/// Whether `s` is one of the lease table's checkpoint sentinels.
pub fn is_sentinel(s: &str) -> bool {
    matches!(s, TRIM_HORIZON | LATEST | AT_TIMESTAMP | SHARD_END)
}

/// Checks that `s` is a decimal sequence number.
///
/// # Errors
/// [`Error::InvalidSequenceNumber`] otherwise.
pub fn validate_sequence_number(s: &str) -> Result<(), Error> {
    if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::InvalidSequenceNumber {
            value: s.to_string(),
        });
    }
    Ok(())
}

fn compare_decimal(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esn(s: &str, sub: u64) -> ExtendedSequenceNumber {
        ExtendedSequenceNumber::new(s, sub)
    }

    #[test]
    fn sequence_numbers_compare_as_big_integers() {
        let small = "49590338271490256608559692538361571095921575989136588898";
        let big = "49590338271490256608559692538361571095921575989136588899";
        assert!(esn(small, 0) < esn(big, 0));
        assert!(esn("9", 0) < esn("10", 0));
        assert_eq!(esn("010", 0), esn("10", 0));
        assert!(esn(small, 1) > esn(small, 0));
    }

    #[test]
    fn sentinels_bracket_sequence_numbers() {
        assert!(esn(TRIM_HORIZON, 0) < esn("1", 0));
        assert!(esn(LATEST, 0) < esn("1", 0));
        assert!(ExtendedSequenceNumber::shard_end() > esn("99999999999999999999999999999", 5));
    }

    #[test]
    fn sequence_number_validation() {
        assert!(validate_sequence_number("123").is_ok());
        assert!(validate_sequence_number("").is_err());
        assert!(validate_sequence_number("12a").is_err());
        assert!(validate_sequence_number("-1").is_err());
    }
}
