//! The 56-digit decimal layout of sequence numbers, shared by the engine (which builds them)
//! and producers (which render the parts a native PutResult carries).
//!
//! The format, with its table of hex-digit fields, is in `docs/formats/sequence-numbers.md`.
//! This module is the only code that encodes or decodes it; the engine's `SequenceNumber`
//! (`engine/src/seqno.rs`) adds the shard-id newtype, the mapping to log offsets and its
//! constructors on top of [`SequenceParts`].
//!
//! # Invariants
//!
//! - A sequence number is a 188-bit unsigned integer (47 hex digits) written in decimal. It
//!   follows the layout AWS uses (reverse-engineered by kinesalite as "version 2"), so clients
//!   that compare sequence numbers as big integers (the KCL does) order ours correctly.
//! - Within a shard a higher counter always gives a larger number, whatever the arrival times:
//!   the counter sits above the arrival time in the layout.
//! - Every [`SequenceParts`] prints as a string that [`SequenceParts::parse`] accepts. Fields
//!   too large for their slot are clamped when printed.
//! - Parsing never panics, whatever the input.

use std::cmp::Ordering;
use std::fmt;

use crate::error::Error;

/// Counter of a closed shard's `EndingSequenceNumber`. AWS uses `7fffffffffffffff` in the
/// counter digits (kinesalite's AWS-recorded examples; API reference `SequenceNumberRange`).
pub const ENDING_COUNTER: u64 = 0x7fff_ffff_ffff_ffff;

/// Largest epoch or arrival time, in seconds, that the 36-bit time fields hold (year 4147).
pub const MAX_TIME_SECS: u64 = (1 << TIME_BITS) - 1;

/// Decimal digits of every sequence number this module prints.
pub const DECIMAL_DIGITS: usize = 56;

/// Longest string the API accepts as a sequence number: the `SequenceNumber` pattern is
/// `0|([1-9]\d{0,128})` (Kinesis API reference, e.g. `GetShardIterator.StartingSequenceNumber`).
pub const MAX_DECIMAL_DIGITS: usize = 129;

/// The API's pattern for sequence numbers, for validation messages.
pub const SEQUENCE_NUMBER_PATTERN: &str = r"0|([1-9]\d{0,128})";

// Field widths in bits, least significant first. Shifts derive from widths; the doc's table
// gives the same fields as hex-digit positions and a test checks that the two agree.
pub(crate) const NIBBLE_BITS: u32 = 4;
pub(crate) const SHARD_BITS: u32 = 32;
pub(crate) const TIME_BITS: u32 = 36;
pub(crate) const RESERVED_BITS: u32 = 8;
pub(crate) const COUNTER_BITS: u32 = 64;

pub(crate) const VERSION_SHIFT: u32 = 0;
pub(crate) const SHARD_SHIFT: u32 = VERSION_SHIFT + NIBBLE_BITS;
pub(crate) const ARRIVAL_SHIFT: u32 = SHARD_SHIFT + SHARD_BITS;
pub(crate) const RESERVED_SHIFT: u32 = ARRIVAL_SHIFT + TIME_BITS;
/// Bit position of the counter: consecutive records of a shard (same arrival second) differ
/// by `2^COUNTER_SHIFT`.
pub const COUNTER_SHIFT: u32 = RESERVED_SHIFT + RESERVED_BITS;
pub(crate) const SHARD_NIBBLE_SHIFT: u32 = COUNTER_SHIFT + COUNTER_BITS;
pub(crate) const EPOCH_SHIFT: u32 = SHARD_NIBBLE_SHIFT + NIBBLE_BITS;
pub(crate) const LEAD_SHIFT: u32 = EPOCH_SHIFT + TIME_BITS;
/// 188: 47 hex digits.
pub(crate) const TOTAL_BITS: u32 = LEAD_SHIFT + NIBBLE_BITS;

/// Hex digit 0. Makes every number 56 decimal digits long.
pub(crate) const LEAD_DIGIT: u64 = 2;
/// Hex digit 46, the layout version.
pub(crate) const VERSION_DIGIT: u64 = 2;

/// The four fields of a sequence number, as the engine builds them and a native PutResult
/// carries them ([`crate::result`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceParts {
    /// The shard index: `shardId-000000000007` is 7.
    pub shard: u32,
    /// The shard's sequence epoch in seconds. At most [`MAX_TIME_SECS`].
    pub epoch_secs: u64,
    /// Per-shard counter (the record's log offset), or [`ENDING_COUNTER`].
    pub counter: u64,
    /// Arrival time in seconds. At most [`MAX_TIME_SECS`].
    pub arrival_secs: u64,
}

impl SequenceParts {
    /// Decodes a decimal sequence number.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSequenceNumber`] (with the reason) if `s` does not match
    /// [`SEQUENCE_NUMBER_PATTERN`], or matches it but does not decode to this layout: 2^188
    /// or larger, a leading or version hex digit other than 2, a nonzero reserved byte, a
    /// shard nibble that differs from the shard index's low nibble, or a counter above
    /// [`ENDING_COUNTER`].
    pub fn parse(s: &str) -> Result<SequenceParts, Error> {
        let reject = |reason: String| Error::InvalidSequenceNumber { reason };
        check_pattern(s).map_err(|why| {
            reject(format!(
                "{why}; expected the pattern {SEQUENCE_NUMBER_PATTERN}"
            ))
        })?;
        let wide = Wide188::from_decimal(s.as_bytes()).ok_or_else(|| {
            reject("it is 2^188 or larger, too large for 47 hex digits".to_owned())
        })?;

        let lead = wide.field(LEAD_SHIFT, NIBBLE_BITS);
        if lead != LEAD_DIGIT {
            return Err(reject(format!(
                "its leading hex digit is {lead:x}, not {LEAD_DIGIT} (sequence numbers have {DECIMAL_DIGITS} decimal digits and start with hex 2)"
            )));
        }
        let version = wide.field(VERSION_SHIFT, NIBBLE_BITS);
        if version != VERSION_DIGIT {
            return Err(reject(format!(
                "its last hex digit (layout version) is {version:x}, not {VERSION_DIGIT}"
            )));
        }
        let reserved = wide.field(RESERVED_SHIFT, RESERVED_BITS);
        if reserved != 0 {
            return Err(reject(format!(
                "its reserved byte (hex digits 27-28) is {reserved:02x}, not 00"
            )));
        }
        let shard_field = wide.field(SHARD_SHIFT, SHARD_BITS);
        let shard = u32::try_from(shard_field).map_err(|_| {
            reject(format!(
                "its shard index {shard_field} does not fit 32 bits"
            ))
        })?;
        let nibble = wide.field(SHARD_NIBBLE_SHIFT, NIBBLE_BITS);
        if nibble != u64::from(shard & 0xf) {
            return Err(reject(format!(
                "its shard nibble (hex digit 10) is {nibble:x} but its shard index is {shard} (low nibble {:x})",
                shard & 0xf
            )));
        }
        let counter = wide.field(COUNTER_SHIFT, COUNTER_BITS);
        if counter > ENDING_COUNTER {
            return Err(reject(format!(
                "its counter {counter:#x} is above the ending sentinel {ENDING_COUNTER:#x}"
            )));
        }
        Ok(SequenceParts {
            epoch_secs: wide.field(EPOCH_SHIFT, TIME_BITS),
            shard,
            counter,
            arrival_secs: wide.field(ARRIVAL_SHIFT, TIME_BITS),
        })
    }

    /// The 188-bit value, with out-of-range fields clamped so that it always decodes.
    pub(crate) fn encode(&self) -> Wide188 {
        Wide188::default()
            .with_field(LEAD_SHIFT, NIBBLE_BITS, LEAD_DIGIT)
            .with_field(EPOCH_SHIFT, TIME_BITS, self.epoch_secs.min(MAX_TIME_SECS))
            .with_field(SHARD_NIBBLE_SHIFT, NIBBLE_BITS, u64::from(self.shard & 0xf))
            .with_field(
                COUNTER_SHIFT,
                COUNTER_BITS,
                self.counter.min(ENDING_COUNTER),
            )
            .with_field(
                ARRIVAL_SHIFT,
                TIME_BITS,
                self.arrival_secs.min(MAX_TIME_SECS),
            )
            .with_field(SHARD_SHIFT, SHARD_BITS, u64::from(self.shard))
            .with_field(VERSION_SHIFT, NIBBLE_BITS, VERSION_DIGIT)
    }
}

/// Big-integer order of the decimal strings.
///
/// Values whose fields are in range compare exactly as their 188-bit values do.
/// Out-of-range values that clamp to the same number are then ordered by their raw fields,
/// so that the order stays consistent with `Eq`.
impl Ord for SequenceParts {
    fn cmp(&self, other: &Self) -> Ordering {
        let raw = |s: &Self| (s.epoch_secs, s.counter, s.arrival_secs, s.shard);
        self.encode()
            .cmp(&other.encode())
            .then_with(|| raw(self).cmp(&raw(other)))
    }
}

impl PartialOrd for SequenceParts {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SequenceParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.encode().fmt_decimal(f)
    }
}

/// Checks `0|([1-9]\d{0,128})`, saying what is wrong.
fn check_pattern(s: &str) -> Result<(), &'static str> {
    let bytes = s.as_bytes();
    match bytes {
        [] => Err("it is empty"),
        _ if !bytes.iter().all(u8::is_ascii_digit) => Err("it has a character that is not a digit"),
        [b'0', _, ..] => Err("it has a leading zero"),
        _ if bytes.len() > MAX_DECIMAL_DIGITS => Err("it is longer than 129 digits"),
        _ => Ok(()),
    }
}

/// An unsigned integer below 2^188, as three little-endian 64-bit limbs.
///
/// Only what sequence numbers need: decimal in and out, and fixed-width fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Wide188(pub(crate) [u64; 3]);

/// 10^19, the largest power of ten below 2^64: decimal digits go in and out 19 at a time.
const DECIMAL_CHUNK_DIGITS: usize = 19;

impl Wide188 {
    /// Parses ASCII decimal digits; `None` at 2^188 or above. Non-digits also give `None`.
    pub(crate) fn from_decimal(digits: &[u8]) -> Option<Wide188> {
        let mut limbs = [0u64; 3];
        for chunk in digits.chunks(DECIMAL_CHUNK_DIGITS) {
            let mut value = 0u64;
            let mut scale = 1u64;
            for &digit in chunk {
                if !digit.is_ascii_digit() {
                    return None;
                }
                // At most 19 digits: fits u64 without overflow.
                value = value * 10 + u64::from(digit - b'0');
                scale *= 10;
            }
            let mut carry = u128::from(value);
            for limb in &mut limbs {
                let wide = u128::from(*limb) * u128::from(scale) + carry;
                *limb = wide as u64;
                carry = wide >> 64;
            }
            if carry != 0 {
                return None;
            }
        }
        let wide = Wide188(limbs);
        (wide.0[2] >> (TOTAL_BITS - 128) == 0).then_some(wide)
    }

    pub(crate) fn fmt_decimal(self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Runs for every record put or read, so it avoids 128-bit division: the value is cut
        // into 32-bit limbs and divided by 10^9 with 64-bit arithmetic (a multiply by a
        // constant), giving 9-digit chunks. 2^192 < 10^63: at most seven chunks.
        const CHUNK: u64 = 1_000_000_000;
        const DIGITS: usize = 9;
        let mut limbs = [0u32; 6];
        for (i, l) in self.0.iter().enumerate() {
            limbs[2 * i] = *l as u32;
            limbs[2 * i + 1] = (*l >> 32) as u32;
        }
        let mut chunks = [0u32; 7];
        let mut len = 0;
        while limbs != [0; 6] && len < chunks.len() {
            let mut rem = 0u64;
            for limb in limbs.iter_mut().rev() {
                let cur = (rem << 32) | u64::from(*limb);
                *limb = (cur / CHUNK) as u32;
                rem = cur % CHUNK;
            }
            chunks[len] = rem as u32;
            len += 1;
        }
        if len == 0 {
            return f.write_str("0");
        }
        let mut buf = [b'0'; 7 * DIGITS];
        for (i, chunk) in chunks[..len].iter().enumerate() {
            let mut c = *chunk;
            let end = buf.len() - i * DIGITS;
            for d in buf[end - DIGITS..end].iter_mut().rev() {
                *d = b'0' + (c % 10) as u8;
                c /= 10;
            }
        }
        let digits = &buf[buf.len() - len * DIGITS..];
        let first = digits
            .iter()
            .position(|d| *d != b'0')
            .unwrap_or(digits.len() - 1);
        // Only ASCII digits were written.
        f.write_str(std::str::from_utf8(&digits[first..]).map_err(|_| fmt::Error)?)
    }

    /// Bits `shift .. shift + width` (width ≤ 64).
    pub(crate) fn field(&self, shift: u32, width: u32) -> u64 {
        let limb = (shift / 64) as usize;
        let offset = shift % 64;
        let mut value = self.0.get(limb).copied().unwrap_or(0) >> offset;
        if offset != 0 {
            value |= self.0.get(limb + 1).copied().unwrap_or(0) << (64 - offset);
        }
        value & mask(width)
    }

    /// ORs `value` into bits `shift .. shift + width` (width ≤ 64), which must be zero.
    /// Bits of `value` above `width` are dropped.
    pub(crate) fn with_field(mut self, shift: u32, width: u32, value: u64) -> Self {
        let value = value & mask(width);
        let limb = (shift / 64) as usize;
        let offset = shift % 64;
        if let Some(l) = self.0.get_mut(limb) {
            *l |= value << offset;
        }
        if offset != 0 {
            if let Some(l) = self.0.get_mut(limb + 1) {
                *l |= value >> (64 - offset);
            }
        }
        self
    }
}

impl Ord for Wide188 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.iter().rev().cmp(other.0.iter().rev())
    }
}

impl PartialOrd for Wide188 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn mask(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1 << width) - 1
    }
}

#[cfg(test)]
mod tests;
