//! The live line: one per second on stderr (when it is a terminal, or with `--progress`).

use super::stats::Point;

/// `[  3s] produce 312,456 rec/s 31.2 MB/s p99 4.12 ms | consume ... e2e p99 ...`.
pub fn line(label: &str, p: &Point) -> String {
    let mut s = format!("[{:>5.0}s] {label}", p.t);
    if p.produce_records_per_sec > 0.0 || p.consume_records_per_sec == 0.0 {
        s += &format!(
            "produce {} rec/s {:.1} MB/s p99 {:.2} ms",
            thousands(p.produce_records_per_sec),
            p.produce_mb_per_sec,
            p.produce_latency.p99
        );
    }
    if p.consume_records_per_sec > 0.0 {
        s += &format!(
            " | consume {} rec/s {:.1} MB/s",
            thousands(p.consume_records_per_sec),
            p.consume_mb_per_sec
        );
        if p.end_to_end_latency.count > 0 {
            s += &format!(" e2e p99 {:.2} ms", p.end_to_end_latency.p99);
        }
    }
    s
}

/// `1234567.8` as `1,234,568`.
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
    }
}
