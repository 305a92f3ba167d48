//! Kinesis-style sequence numbers: 56 decimal digits that name a shard and a log offset.
//!
//! The format, with its table of hex-digit fields, is in `docs/formats/sequence-numbers.md`.
//! The layout itself (decimal text, fields, order) lives in `shardline_protocol::seqno`,
//! shared with producers that render the parts of a native PutResult; this module adds the
//! shard-id newtype, the mapping to log offsets, the constructors and [`DecimalRun`].
//!
//! # Invariants
//!
//! - A sequence number is a 188-bit unsigned integer (47 hex digits) written in decimal. It
//!   follows the layout AWS uses (reverse-engineered by kinesalite as "version 2"), so clients
//!   that compare sequence numbers as big integers (the KCL does) order ours correctly.
//! - The per-shard counter is the record's log offset. A number maps back to its record by
//!   reading the counter, with no lookup table.
//! - Within a shard a higher counter always gives a larger number, whatever the arrival times:
//!   the counter sits above the arrival time in the layout.
//! - The engine gives every child shard a sequence epoch strictly greater than its parents'.
//!   The epoch is the most significant field after the constant leading digit, so every
//!   number of a child is greater than every number of its parents.
//! - Every [`SequenceNumber`] prints as a string that [`SequenceNumber::parse`] accepts. Fields
//!   too large for their slot are clamped when printed; the constructors clamp them up front,
//!   so what they build round-trips exactly.
//! - Parsing never panics, whatever the input.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::error::Error;
use crate::ids::{Offset, ShardId};

use shardline_protocol::seqno::SequenceParts;
pub use shardline_protocol::seqno::{
    DECIMAL_DIGITS, ENDING_COUNTER, MAX_DECIMAL_DIGITS, MAX_TIME_SECS, SEQUENCE_NUMBER_PATTERN,
};

/// Longest prefix of a rejected input echoed in an error, so garbage input cannot blow up
/// error messages.
const MAX_ECHOED_CHARS: usize = MAX_DECIMAL_DIGITS;

/// A decoded sequence number.
///
/// Build one with [`SequenceNumber::for_record`], [`SequenceNumber::shard_start`] or
/// [`SequenceNumber::shard_end`]; read one with [`SequenceNumber::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceNumber {
    /// The shard's sequence epoch in seconds: its creation time, raised if needed so that it
    /// is strictly greater than every parent's. It makes children sort after parents.
    /// At most [`MAX_TIME_SECS`].
    pub epoch_secs: u64,
    /// The shard the number belongs to; a number used on another shard is rejected by callers.
    pub shard: ShardId,
    /// Per-shard counter: the record's log offset, or [`ENDING_COUNTER`] for a closed shard's
    /// ending number. It outranks the arrival time, so it alone orders a shard's numbers.
    pub counter: u64,
    /// When the record arrived (or the shard was created or closed), in seconds. Carried for
    /// fidelity with AWS; it never decides order within a shard. At most [`MAX_TIME_SECS`].
    pub arrival_secs: u64,
}

impl SequenceNumber {
    /// The number of the record at `offset`, appended at `arrival_ms` (epoch milliseconds).
    ///
    /// Times above [`MAX_TIME_SECS`] are clamped to it, and offsets at or above
    /// [`ENDING_COUNTER`] to `ENDING_COUNTER - 1` (2^63 records: 292 years at a billion
    /// records a second), so that a record never takes the ending sentinel.
    ///
    /// The arrival field is at least the epoch: a child shard's epoch may run a second ahead
    /// of the clock (it must exceed its parents'), and its first record's number must not
    /// sort below the shard's `StartingSequenceNumber` (counter 0, arrival = epoch).
    pub fn for_record(epoch_secs: u64, shard: ShardId, offset: Offset, arrival_ms: u64) -> Self {
        let epoch_secs = epoch_secs.min(MAX_TIME_SECS);
        SequenceNumber {
            epoch_secs,
            shard,
            counter: offset.0.min(ENDING_COUNTER - 1),
            arrival_secs: (arrival_ms / 1000).clamp(epoch_secs, MAX_TIME_SECS),
        }
    }

    /// A shard's `StartingSequenceNumber`: counter 0, arrival time = the epoch.
    pub fn shard_start(epoch_secs: u64, shard: ShardId) -> Self {
        let epoch_secs = epoch_secs.min(MAX_TIME_SECS);
        SequenceNumber {
            epoch_secs,
            shard,
            counter: 0,
            arrival_secs: epoch_secs,
        }
    }

    /// A number just before the shard's first record: counter 0, arrival one second before
    /// the epoch. No record has it (record arrival fields are at least the epoch) and it
    /// sorts below the shard's `StartingSequenceNumber`. SubscribeToShard hands it out as
    /// `ContinuationSequenceNumber` before delivering any record from the shard's start, so
    /// that resuming `AFTER_SEQUENCE_NUMBER` it starts at offset 0 (the starting number,
    /// counter 0 too, would point at record 0 and resume after it).
    pub fn before_first(epoch_secs: u64, shard: ShardId) -> Self {
        let epoch_secs = epoch_secs.clamp(1, MAX_TIME_SECS);
        SequenceNumber {
            epoch_secs,
            shard,
            counter: 0,
            arrival_secs: epoch_secs - 1,
        }
    }

    /// Whether this is a [`SequenceNumber::before_first`] number.
    pub fn is_before_first(&self) -> bool {
        self.counter == 0 && self.arrival_secs < self.epoch_secs
    }

    /// A closed shard's `EndingSequenceNumber`: counter [`ENDING_COUNTER`], arrival time =
    /// when the shard closed. It is greater than every record number of the shard.
    pub fn shard_end(epoch_secs: u64, shard: ShardId, closed_secs: u64) -> Self {
        SequenceNumber {
            epoch_secs: epoch_secs.min(MAX_TIME_SECS),
            shard,
            counter: ENDING_COUNTER,
            arrival_secs: closed_secs.min(MAX_TIME_SECS),
        }
    }

    /// The log offset the number points at.
    ///
    /// For a shard's ending number this is [`ENDING_COUNTER`], past any real record.
    pub fn offset(&self) -> Offset {
        Offset(self.counter)
    }

    /// Whether this is a closed shard's `EndingSequenceNumber`.
    pub fn is_shard_end(&self) -> bool {
        self.counter >= ENDING_COUNTER
    }

    /// Decodes a decimal sequence number.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSequenceNumber`] if `s` does not match [`SEQUENCE_NUMBER_PATTERN`], or
    /// matches it but does not decode to this module's layout: 2^188 or larger, a leading or
    /// version hex digit other than 2, a nonzero reserved byte, a shard nibble that differs
    /// from the shard index's low nibble, or a counter above [`ENDING_COUNTER`].
    pub fn parse(s: &str) -> Result<SequenceNumber, Error> {
        match SequenceParts::parse(s) {
            Ok(parts) => Ok(SequenceNumber::from(parts)),
            Err(shardline_protocol::Error::InvalidSequenceNumber { reason }) => {
                Err(Error::InvalidSequenceNumber {
                    value: echo(s),
                    reason,
                })
            }
            Err(other) => Err(Error::InvalidSequenceNumber {
                value: echo(s),
                reason: other.to_string(),
            }),
        }
    }
}

impl From<SequenceParts> for SequenceNumber {
    fn from(p: SequenceParts) -> SequenceNumber {
        SequenceNumber {
            epoch_secs: p.epoch_secs,
            shard: ShardId(p.shard),
            counter: p.counter,
            arrival_secs: p.arrival_secs,
        }
    }
}

impl From<SequenceNumber> for SequenceParts {
    fn from(s: SequenceNumber) -> SequenceParts {
        SequenceParts {
            shard: s.shard.0,
            epoch_secs: s.epoch_secs,
            counter: s.counter,
            arrival_secs: s.arrival_secs,
        }
    }
}

/// Big-integer order of the decimal strings.
///
/// Values whose fields are in range (all that `parse` and the constructors produce) compare
/// exactly as their 188-bit values do. Out-of-range values that clamp to the same number are
/// then ordered by their raw fields, so that the order stays consistent with `Eq`.
impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        SequenceParts::from(*self).cmp(&SequenceParts::from(*other))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        SequenceParts::from(*self).fmt(f)
    }
}

/// Formats runs of sequence numbers quickly: a read returns consecutive records of one
/// shard, usually within one arrival second, and such a number differs from the previous one
/// by exactly `2^COUNTER_SHIFT`, which is added to the previous decimal digits instead of
/// converting all 188 bits again.
///
/// The step has 25 digits, so the low 30 digits are also kept in packed BCD (one digit per
/// nibble) in a `u128`: a step is one BCD addition (a handful of word operations), those
/// 30 digits are re-spread into ASCII, and a carry out of them ripples into the ASCII
/// digits above.
#[derive(Debug, Clone)]
pub struct DecimalRun {
    last: Option<SequenceNumber>,
    /// Right-aligned digits of `last`, `len` of them (zeros to the left).
    digits: [u8; 64],
    len: usize,
    /// `digits[64 - BCD_DIGITS..]` in packed BCD, the last digit in the lowest nibble.
    bcd: u128,
}

impl Default for DecimalRun {
    fn default() -> Self {
        DecimalRun {
            last: None,
            digits: [b'0'; 64],
            len: 0,
            bcd: 0,
        }
    }
}

/// Digits kept in BCD: 30 nibbles, the 31st takes the carry out of them.
const BCD_DIGITS: usize = 30;
/// `2^COUNTER_SHIFT` = 1208925819614629174706176, the step between consecutive records'
/// numbers, in packed BCD (its decimal digits read as hex).
const COUNTER_STEP_BCD: u128 = 0x1208925819614629174706176;
/// A 6 in each of the digit nibbles 0 to 29.
const BCD_SIXES: u128 = nibbles(6, 0, BCD_DIGITS);
/// A 1 at the bottom of nibbles 1 to 30 (where each digit's carry arrives).
const BCD_NIBBLE_ONES: u128 = nibbles(1, 1, BCD_DIGITS + 1);

/// `value` in every nibble from `from` up to (not including) `to`.
const fn nibbles(value: u128, from: usize, to: usize) -> u128 {
    let mut x = 0;
    let mut i = from;
    while i < to {
        x |= value << (4 * i);
        i += 1;
    }
    x
}

/// Packed-BCD addition (D. W. Jones, "BCD Arithmetic, a tutorial"): every digit of `a` is
/// biased by 6 so that a decimal carry becomes a binary one; digits that did not carry get
/// the 6 taken back. A carry out of digit 29 lands in nibble 30.
fn bcd_add(a: u128, b: u128) -> u128 {
    let t1 = a + BCD_SIXES;
    let t2 = t1 + b;
    let carries = t2 ^ t1 ^ b;
    let no_carry = !carries & BCD_NIBBLE_ONES;
    t2 - ((no_carry >> 2) | (no_carry >> 3))
}

/// The 8 digits in the nibbles of `x` as ASCII, the top nibble first.
#[expect(
    clippy::big_endian_bytes,
    reason = "text puts the most significant digit (top byte) first"
)]
fn bcd8_ascii(x: u32) -> [u8; 8] {
    let mut v = u64::from(x);
    v = (v | (v << 16)) & 0x0000_ffff_0000_ffff;
    v = (v | (v << 8)) & 0x00ff_00ff_00ff_00ff;
    v = (v | (v << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    (v | 0x3030_3030_3030_3030).to_be_bytes()
}

/// The packed BCD of ASCII digits.
fn ascii_bcd(digits: &[u8]) -> u128 {
    digits
        .iter()
        .fold(0, |v, d| (v << 4) | u128::from(d.wrapping_sub(b'0') & 0xf))
}

impl DecimalRun {
    /// The decimal text of `seq`.
    pub fn format(&mut self, seq: &SequenceNumber) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(self.format_ascii(seq)).unwrap_or("0")
    }

    /// The decimal text of `seq` as ASCII bytes (what response writers append), without
    /// the UTF-8 check `format` pays.
    pub fn format_ascii(&mut self, seq: &SequenceNumber) -> &[u8] {
        let consecutive = self.last.is_some_and(|l| {
            l.epoch_secs == seq.epoch_secs
                && l.shard == seq.shard
                && l.arrival_secs == seq.arrival_secs
                && l.counter.checked_add(1) == Some(seq.counter)
                && seq.counter < ENDING_COUNTER
        });
        let n = self.digits.len();
        if consecutive {
            let sum = bcd_add(self.bcd, COUNTER_STEP_BCD);
            let carry = (sum >> (4 * BCD_DIGITS)) != 0;
            self.bcd = sum & ((1u128 << (4 * BCD_DIGITS)) - 1);
            let mut text = [0u8; 32];
            for (i, chunk) in text.chunks_exact_mut(8).enumerate() {
                // Nibbles 24-31 first; the shift keeps the 8 nibbles of chunk `i`.
                chunk.copy_from_slice(&bcd8_ascii((self.bcd >> (96 - 32 * i)) as u32));
            }
            let (high, low) = self.digits.split_at_mut(n - BCD_DIGITS);
            low.copy_from_slice(&text[32 - BCD_DIGITS..]);
            let mut used = BCD_DIGITS;
            if carry {
                for d in high.iter_mut().rev() {
                    used += 1;
                    if *d == b'9' {
                        *d = b'0';
                    } else {
                        *d += 1;
                        break;
                    }
                }
            } else {
                // Significant digits among the 30 (only small numbers get here short).
                used -= low.iter().take_while(|d| **d == b'0').count();
            }
            self.len = self.len.max(used);
        } else {
            let text = seq.to_string();
            self.digits.fill(b'0');
            self.digits[n - text.len()..].copy_from_slice(text.as_bytes());
            self.len = text.len();
            self.bcd = ascii_bcd(&self.digits[n - BCD_DIGITS..]);
        }
        self.last = Some(*seq);
        &self.digits[n - self.len..]
    }
}

impl FromStr for SequenceNumber {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SequenceNumber::parse(s)
    }
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
    use shardline_protocol::seqno::COUNTER_SHIFT;

    use super::*;

    /// AWS's documented example (PutRecord docs); decodes to shard 6, created 2018-11-21,
    /// record written 2018-12-17 (kinesis-wire reference, section 4).
    const AWS_EXAMPLE: &str = "49590338271490256608559692538361571095921575989136588898";

    /// The value as hex digits, converted from the printed decimal text (independently of
    /// the layout code).
    fn hex(seq: &SequenceNumber) -> String {
        let mut digits: Vec<u32> = seq
            .to_string()
            .bytes()
            .map(|b| u32::from(b - b'0'))
            .collect();
        let mut out = Vec::new();
        while !digits.is_empty() {
            let mut rem = 0;
            let mut next = Vec::new();
            for d in digits {
                let cur = rem * 10 + d;
                if !(next.is_empty() && cur / 16 == 0) {
                    next.push(cur / 16);
                }
                rem = cur % 16;
            }
            out.push(char::from_digit(rem, 16).unwrap());
            digits = next;
        }
        out.iter().rev().collect()
    }

    fn reason(s: &str) -> String {
        match SequenceNumber::parse(s) {
            Err(Error::InvalidSequenceNumber { reason, .. }) => reason,
            other => panic!("{s}: expected InvalidSequenceNumber, got {other:?}"),
        }
    }

    fn in_range() -> impl Strategy<Value = SequenceNumber> {
        (
            0..=MAX_TIME_SECS,
            any::<u32>(),
            0..=ENDING_COUNTER,
            0..=MAX_TIME_SECS,
        )
            .prop_map(
                |(epoch_secs, shard, counter, arrival_secs)| SequenceNumber {
                    epoch_secs,
                    shard: ShardId(shard),
                    counter,
                    arrival_secs,
                },
            )
    }

    #[test]
    fn decodes_aws_documented_example() {
        let seq = SequenceNumber::parse(AWS_EXAMPLE).unwrap();
        assert_eq!(seq.shard, ShardId(6));
        assert_eq!(seq.epoch_secs, 1_542_776_258); // 2018-11-21T04:57:38Z
        assert_eq!(seq.counter, 0x6764_8a17);
        assert_eq!(seq.offset(), Offset(1_734_642_199));
        assert_eq!(seq.arrival_secs, 1_545_084_650); // 2018-12-17T22:10:50Z
        assert_eq!(seq.to_string(), AWS_EXAMPLE);
        assert_eq!(hex(&seq), "205bf4e5c260000000067648a170005c181eea000000062");
    }

    #[test]
    fn constructors_encode_the_documented_digits() {
        let start = SequenceNumber::shard_start(1_542_776_258, ShardId(6));
        assert_eq!(
            hex(&start),
            "205bf4e5c2600000000000000000005bf4e5c2000000062"
        );
        assert_eq!(
            start.to_string(),
            "49590338271490256608557595484619406898078762622479499362"
        );

        let end = SequenceNumber::shard_end(1000, ShardId(0x123_4567), 2000);
        assert_eq!(hex(&end), "20000003e877fffffffffffffff000000007d0012345672");
        assert_eq!(
            end.to_string(),
            "49039857664687622232946054806941695199398821526940964466"
        );
        assert!(end.is_shard_end());
        assert_eq!(end.offset(), Offset(ENDING_COUNTER));

        let rec = SequenceNumber::for_record(1000, ShardId(3), Offset(42), 2_000_999);
        assert_eq!(rec.counter, 42);
        assert_eq!(rec.arrival_secs, 2000);
        assert!(!rec.is_shard_end());
    }

    #[test]
    fn constructors_clamp_out_of_range_inputs() {
        let rec = SequenceNumber::for_record(u64::MAX, ShardId(1), Offset(u64::MAX), u64::MAX);
        assert_eq!(rec.epoch_secs, MAX_TIME_SECS);
        assert_eq!(rec.counter, ENDING_COUNTER - 1);
        assert_eq!(rec.arrival_secs, MAX_TIME_SECS);
        assert_eq!(SequenceNumber::parse(&rec.to_string()).unwrap(), rec);
    }

    #[test]
    fn out_of_range_fields_still_print_a_valid_number() {
        let odd = SequenceNumber {
            epoch_secs: u64::MAX,
            shard: ShardId(u32::MAX),
            counter: u64::MAX,
            arrival_secs: u64::MAX,
        };
        let back = SequenceNumber::parse(&odd.to_string()).unwrap();
        assert_eq!(back.epoch_secs, MAX_TIME_SECS);
        assert_eq!(back.counter, ENDING_COUNTER);
        assert_eq!(odd.to_string().len(), DECIMAL_DIGITS);
        // Same printed number, different fields: Ord still agrees with Eq.
        assert_ne!(odd, back);
        assert_ne!(odd.cmp(&back), Ordering::Equal);
    }

    #[test]
    fn rejects_strings_outside_the_api_pattern() {
        for bad in [
            "", "+1", "-1", " 1", "1 ", "0x20", "1e5", "01", "00", "４２",
        ] {
            assert!(reason(bad).contains(SEQUENCE_NUMBER_PATTERN), "{bad:?}");
        }
        let long = "1".repeat(MAX_DECIMAL_DIGITS + 1);
        assert!(reason(&long).contains("longer than 129"));
    }

    #[test]
    fn rejects_numbers_not_in_our_layout() {
        assert!(reason("0").contains("leading hex digit is 0"));
        assert!(reason("1").contains("leading hex digit is 0"));
        // 2^188 - 1 and 2^188, 2^192 - 1, 2^192, and 129 nines.
        assert!(
            reason("392318858461667547739736838950479151006397215279002157055")
                .contains("leading hex digit is f")
        );
        for too_big in [
            "392318858461667547739736838950479151006397215279002157056",
            "6277101735386680763835789423207666416102355444464034512895",
            "6277101735386680763835789423207666416102355444464034512896",
            &"9".repeat(MAX_DECIMAL_DIGITS),
        ] {
            assert!(reason(too_big).contains("2^188 or larger"), "{too_big}");
        }
    }

    #[test]
    fn error_echoes_a_bounded_prefix_of_the_input() {
        let long = "x".repeat(10_000);
        match SequenceNumber::parse(&long) {
            Err(Error::InvalidSequenceNumber { value, .. }) => {
                assert_eq!(value.chars().count(), MAX_ECHOED_CHARS + 1);
                assert!(value.ends_with('…'));
            }
            other => panic!("{other:?}"),
        }
    }

    /// A child shard resharded within a second of its parent gets an epoch ahead of the
    /// clock; its first record (counter 0) must still not sort below the shard's
    /// StartingSequenceNumber. Found by the boto3 suite (issue 3).
    #[test]
    fn first_record_of_a_shard_sorts_at_or_after_its_starting_number() {
        let epoch = 1_700_000_001;
        let start = SequenceNumber::shard_start(epoch, ShardId(1));
        let first = SequenceNumber::for_record(epoch, ShardId(1), Offset(0), (epoch - 1) * 1000);
        assert!(first >= start);
    }

    #[test]
    fn counter_step_constant_is_two_to_the_counter_shift() {
        let one = SequenceNumber::for_record(5, ShardId(3), Offset(1), 7000);
        let zero = SequenceNumber::for_record(5, ShardId(3), Offset(0), 7000);
        let mut run = DecimalRun::default();
        assert_eq!(run.format(&zero), zero.to_string());
        assert_eq!(run.format(&one), one.to_string());
        assert_eq!(COUNTER_SHIFT, 80);
        assert_eq!(
            (1u128 << COUNTER_SHIFT).to_string(),
            format!("{COUNTER_STEP_BCD:x}")
        );
    }

    /// Schoolbook decimal addition, the reference for the run's limb arithmetic.
    fn add_decimal(a: &str, b: &str) -> String {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        let mut out = Vec::new();
        let mut carry = 0;
        for i in 0..a.len().max(b.len()) {
            let digit = |s: &[u8]| s.len().checked_sub(i + 1).map_or(0, |j| s[j] - b'0');
            let v = digit(a) + digit(b) + carry;
            out.push(b'0' + v % 10);
            carry = v / 10;
        }
        if carry > 0 {
            out.push(b'0' + carry);
        }
        out.iter().rev().map(|&d| char::from(d)).collect()
    }

    /// Carries out of the low limb, out of both limbs into the ASCII digits (rare with real
    /// numbers, so set up by hand), and through a run of nines above them.
    #[test]
    fn decimal_run_carries_across_limbs_and_digits() {
        let step = "1208925819614629174706176";
        let starts = [
            "12345678901234567899999999999999999999999999999999999999",
            "12345678901234567890999999999999999999999999999999999999",
            "10000000000000000000999999999999999999998791074180385370",
            "99999999999999999999999999999999999999999999999999999999",
            "49999999999999999999999999999999999999999999999999999999",
            "5",
            "999999999999999999",
            "999999999999999999999999999999999999",
            "999999999999999999999999999999",
            "8791074180385823",
            "1234999999999999999999999999999999",
        ];
        for start in starts {
            let seq = SequenceNumber::for_record(5, ShardId(3), Offset(10), 7000);
            let next = SequenceNumber::for_record(5, ShardId(3), Offset(11), 7000);
            let mut run = DecimalRun::default();
            run.format_ascii(&seq);
            // Pretend the previous number was `start`.
            let n = run.digits.len();
            run.digits.fill(b'0');
            run.digits[n - start.len()..].copy_from_slice(start.as_bytes());
            run.len = start.len();
            run.bcd = ascii_bcd(&run.digits[n - BCD_DIGITS..]);
            let want = add_decimal(start, step);
            assert_eq!(run.format_ascii(&next), want.as_bytes(), "from {start}");
        }
    }

    proptest! {
        #[test]
        fn decimal_runs_match_plain_formatting(epoch in 0u64..MAX_TIME_SECS, shard in 0u32..u32::MAX, start in 0u64..u64::MAX / 2, n in 1usize..50, arrivals in proptest::collection::vec(0u64..3, 50)) {
            let mut run = DecimalRun::default();
            let mut ascii = DecimalRun::default();
            let mut ms = 1_700_000_000_000u64;
            for (i, step) in arrivals.iter().take(n).enumerate() {
                ms += step * 700;
                let seq = SequenceNumber::for_record(epoch, ShardId(shard), Offset(start + i as u64), ms);
                prop_assert_eq!(run.format(&seq), seq.to_string());
                let text = seq.to_string();
                prop_assert_eq!(ascii.format_ascii(&seq), text.as_bytes());
            }
        }

        #[test]
        fn round_trips(seq in in_range()) {
            let text = seq.to_string();
            prop_assert_eq!(text.len(), DECIMAL_DIGITS);
            prop_assert_eq!(SequenceNumber::parse(&text).unwrap(), seq);
            prop_assert_eq!(text.parse::<SequenceNumber>().unwrap(), seq);
        }

        #[test]
        fn any_fields_print_a_parsable_number(
            epoch_secs: u64, shard: u32, counter: u64, arrival_secs: u64,
        ) {
            let seq = SequenceNumber { epoch_secs, shard: ShardId(shard), counter, arrival_secs };
            prop_assert!(SequenceNumber::parse(&seq.to_string()).is_ok());
        }

        #[test]
        fn order_is_the_order_of_the_decimal_strings(a in in_range(), b in in_range()) {
            // Equal-length decimal strings compare as big integers.
            prop_assert_eq!(a.cmp(&b), a.to_string().cmp(&b.to_string()));
            prop_assert_eq!(a.cmp(&b), hex(&a).cmp(&hex(&b)));
            prop_assert_eq!(a.cmp(&b) == Ordering::Equal, a == b);
        }

        #[test]
        fn higher_counter_is_larger_whatever_the_arrival_time(
            seq in in_range(), other_counter in 0..=ENDING_COUNTER, other_arrival in 0..=MAX_TIME_SECS,
        ) {
            let other = SequenceNumber { counter: other_counter, arrival_secs: other_arrival, ..seq };
            if other_counter > seq.counter {
                prop_assert!(other > seq);
            } else if other_counter < seq.counter {
                prop_assert!(other < seq);
            }
        }

        #[test]
        fn every_child_number_is_above_every_parent_number(
            parent in in_range(), child in in_range(),
        ) {
            prop_assume!(child.epoch_secs != parent.epoch_secs);
            let (parent, child) = if child.epoch_secs > parent.epoch_secs {
                (parent, child)
            } else {
                (child, parent)
            };
            prop_assert!(child > parent);
            prop_assert!(child.to_string() > parent.to_string());
        }

        #[test]
        fn shard_start_and_end_bracket_every_record(
            epoch_secs in 0..=MAX_TIME_SECS, shard: u32, offset in 0..ENDING_COUNTER,
            arrival_ms in (0..=MAX_TIME_SECS).prop_map(|s| s * 1000), closed_secs in 0..=MAX_TIME_SECS,
        ) {
            let shard = ShardId(shard);
            let rec = SequenceNumber::for_record(epoch_secs, shard, Offset(offset), arrival_ms);
            let end = SequenceNumber::shard_end(epoch_secs, shard, closed_secs);
            prop_assert!(end > rec);
            prop_assert_eq!(rec.offset(), Offset(offset));
            let start = SequenceNumber::shard_start(epoch_secs, shard);
            prop_assert_eq!(start.offset(), Offset(0));
            if offset > 0 {
                prop_assert!(start < rec);
            }
        }

        #[test]
        fn parse_never_panics_on_any_string(s in any::<String>()) {
            let _ = SequenceNumber::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_digit_strings(s in "[0-9]{0,140}") {
            if let Ok(seq) = SequenceNumber::parse(&s) {
                prop_assert_eq!(seq.to_string(), s);
            }
        }

        #[test]
        fn parse_never_panics_on_mutated_numbers(
            seq in in_range(), at in 0..DECIMAL_DIGITS, digit in b'0'..=b'9',
        ) {
            let mut bytes = seq.to_string().into_bytes();
            bytes[at] = digit;
            let text = String::from_utf8(bytes).unwrap();
            if let Ok(back) = SequenceNumber::parse(&text) {
                prop_assert_eq!(back.to_string(), text);
            }
        }
    }

    #[test]
    fn before_first_round_trips_and_sorts_below_the_shard_start() {
        let b = SequenceNumber::before_first(1_700_000_000, ShardId(3));
        let parsed = SequenceNumber::parse(&b.to_string()).unwrap();
        assert_eq!(parsed, b);
        assert!(parsed.is_before_first() && parsed.offset() == Offset(0));
        let start = SequenceNumber::shard_start(1_700_000_000, ShardId(3));
        assert!(!start.is_before_first());
        assert!(b.to_string() < start.to_string());
        let first = SequenceNumber::for_record(1_700_000_000, ShardId(3), Offset(0), 0);
        assert!(!first.is_before_first());
    }
}
