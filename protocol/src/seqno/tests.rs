use std::fmt;

use proptest::prelude::*;

use super::*;

fn reason(s: &str) -> String {
    match SequenceParts::parse(s) {
        Err(Error::InvalidSequenceNumber { reason }) => reason,
        other => panic!("{s}: expected InvalidSequenceNumber, got {other:?}"),
    }
}

/// Formats a raw value, for tests that build values the type would not.
struct Decimal(Wide188);

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_decimal(f)
    }
}

#[test]
fn layout_matches_the_documented_hex_digits() {
    // (first hex digit, last hex digit) per field, as in docs/formats/sequence-numbers.md.
    let digits = |shift: u32, width: u32| {
        let last = (TOTAL_BITS - shift) / 4 - 1;
        (last + 1 - width / 4, last)
    };
    assert_eq!(TOTAL_BITS, 188);
    assert_eq!(digits(LEAD_SHIFT, NIBBLE_BITS), (0, 0));
    assert_eq!(digits(EPOCH_SHIFT, TIME_BITS), (1, 9));
    assert_eq!(digits(SHARD_NIBBLE_SHIFT, NIBBLE_BITS), (10, 10));
    assert_eq!(digits(COUNTER_SHIFT, COUNTER_BITS), (11, 26));
    assert_eq!(digits(RESERVED_SHIFT, RESERVED_BITS), (27, 28));
    assert_eq!(digits(ARRIVAL_SHIFT, TIME_BITS), (29, 37));
    assert_eq!(digits(SHARD_SHIFT, SHARD_BITS), (38, 45));
    assert_eq!(digits(VERSION_SHIFT, NIBBLE_BITS), (46, 46));
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

    // Shard 0x15 (low nibble 5), counter 9; one field off at a time.
    let fields = [
        (LEAD_SHIFT, NIBBLE_BITS, LEAD_DIGIT),
        (EPOCH_SHIFT, TIME_BITS, 1_600_000_000),
        (SHARD_NIBBLE_SHIFT, NIBBLE_BITS, 5),
        (COUNTER_SHIFT, COUNTER_BITS, 9),
        (RESERVED_SHIFT, RESERVED_BITS, 0),
        (ARRIVAL_SHIFT, TIME_BITS, 1_600_000_001),
        (SHARD_SHIFT, SHARD_BITS, 0x15),
        (VERSION_SHIFT, NIBBLE_BITS, VERSION_DIGIT),
    ];
    let with = |shift: u32, value: u64| {
        let wide = fields
            .iter()
            .fold(Wide188::default(), |wide, &(s, width, v)| {
                wide.with_field(s, width, if s == shift { value } else { v })
            });
        Decimal(wide).to_string()
    };
    let good = SequenceParts::parse(&with(VERSION_SHIFT, VERSION_DIGIT)).unwrap();
    assert_eq!(good.shard, 0x15);
    assert_eq!(good.counter, 9);
    assert_eq!(good.arrival_secs, 1_600_000_001);
    assert!(reason(&with(VERSION_SHIFT, 3)).contains("layout version) is 3"));
    assert!(reason(&with(LEAD_SHIFT, 1)).contains("leading hex digit is 1"));
    assert!(reason(&with(RESERVED_SHIFT, 0x10)).contains("reserved byte"));
    assert!(reason(&with(SHARD_NIBBLE_SHIFT, 4)).contains("shard nibble"));
    assert!(reason(&with(SHARD_SHIFT, 0x16)).contains("shard nibble"));
    assert!(reason(&with(COUNTER_SHIFT, ENDING_COUNTER + 1)).contains("above the ending"));
}

#[test]
fn decimal_conversion_agrees_with_u128() {
    for v in [
        0u128,
        1,
        9,
        10,
        u64::MAX.into(),
        u128::from(u64::MAX) + 1,
        u128::MAX,
    ] {
        let wide = Wide188([v as u64, (v >> 64) as u64, 0]);
        assert_eq!(Decimal(wide).to_string(), v.to_string());
        assert_eq!(Wide188::from_decimal(v.to_string().as_bytes()), Some(wide));
    }
}

/// AWS's documented example renders from its parts (shard 6, created 2018-11-21, record
/// written 2018-12-17; kinesis-wire reference, section 4).
#[test]
fn parts_render_the_aws_example() {
    let parts = SequenceParts {
        shard: 6,
        epoch_secs: 1_542_776_258,
        counter: 0x6764_8a17,
        arrival_secs: 1_545_084_650,
    };
    let text = "49590338271490256608559692538361571095921575989136588898";
    assert_eq!(parts.to_string(), text);
    assert_eq!(SequenceParts::parse(text).unwrap(), parts);
}

proptest! {
    #[test]
    fn parse_never_panics(s in any::<String>()) {
        let _ = SequenceParts::parse(&s);
    }
}
