//! Counters and latency histograms shared by every producer and consumer task, and the
//! once-a-second timeline.
//!
//! Latencies are recorded in nanoseconds into hdrhistogram (3 significant digits), one
//! value per record (a batch's latency counts once for each of its records). Anything
//! that completes before the warm-up ends counts in the totals but not in the rates or
//! histograms.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

/// Highest latency recorded (1 hour); longer ones are clamped.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
        .expect("invariant: 1 <= MAX_LATENCY_NS and 3 significant digits are valid bounds")
}

/// A whole-run histogram and the current second's.
struct Hists {
    all: Histogram<u64>,
    interval: Histogram<u64>,
}

impl Hists {
    fn new() -> Hists {
        Hists {
            all: new_histogram(),
            interval: new_histogram(),
        }
    }

    fn record(&mut self, ns: u64, count: u64) {
        let ns = ns.clamp(1, MAX_LATENCY_NS);
        // In range by the clamp; a failure could only be a counter overflow.
        let _ = self.all.record_n(ns, count);
        let _ = self.interval.record_n(ns, count);
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Values recorded (records).
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub p99_99: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |ns: u64| ns as f64 / 1e6;
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            mean: h.mean() / 1e6,
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            p99_99: ms(h.value_at_quantile(0.9999)),
            max: ms(h.max()),
        }
    }
}

/// One side (producers or consumers): what went through and how long it took.
pub struct Side {
    /// Records completed after the warm-up.
    records: AtomicU64,
    bytes: AtomicU64,
    /// Records completed, warm-up included: what the stream gained (producers).
    records_total: AtomicU64,
    latency: Mutex<Hists>,
}

impl Side {
    fn new() -> Side {
        Side {
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            records_total: AtomicU64::new(0),
            latency: Mutex::new(Hists::new()),
        }
    }
}

/// One second of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Seconds since the start (end of this second).
    pub t: f64,
    pub produce_records_per_sec: f64,
    pub produce_mb_per_sec: f64,
    pub consume_records_per_sec: f64,
    pub consume_mb_per_sec: f64,
    /// Producer acknowledgement latency during this second.
    pub produce_latency: Percentiles,
    /// Send-to-receipt latency during this second.
    pub end_to_end_latency: Percentiles,
}

/// Everything the tasks of one run report into.
pub struct Stats {
    start: Instant,
    /// End of the warm-up.
    measure_from: Instant,
    pub produce: Side,
    /// Consumers; the latency is per call (GetRecords round trip).
    pub consume: Side,
    /// Send-to-receipt latency of consumed records.
    end_to_end: Mutex<Hists>,
    errors: Mutex<BTreeMap<String, u64>>,
    throttles: Mutex<BTreeMap<String, u64>>,
    timeline: Mutex<Vec<Point>>,
    /// Counters at the last tick: (time, produced records, bytes, consumed records, bytes).
    last_tick: Mutex<(Instant, u64, u64, u64, u64)>,
}

/// Whether an error type means "slow down" rather than "failed".
pub fn is_throttle(kind: &str) -> bool {
    kind.contains("ProvisionedThroughputExceeded")
        || kind.contains("LimitExceeded")
        || kind.contains("Throttl")
        || kind.contains("SlowDown")
}

impl Stats {
    /// Stats for a run starting now whose measurements start at `measure_from`.
    pub fn new(start: Instant, measure_from: Instant) -> Stats {
        Stats {
            start,
            measure_from,
            produce: Side::new(),
            consume: Side::new(),
            end_to_end: Mutex::new(Hists::new()),
            errors: Mutex::new(BTreeMap::new()),
            throttles: Mutex::new(BTreeMap::new()),
            timeline: Mutex::new(Vec::new()),
            last_tick: Mutex::new((start, 0, 0, 0, 0)),
        }
    }

    /// When the measurements start.
    pub fn measure_from(&self) -> Instant {
        self.measure_from
    }

    fn side_record(&self, side: &Side, records: u64, bytes: u64, latency_ns: Option<u64>) {
        side.records_total.fetch_add(records, Ordering::Relaxed);
        if Instant::now() < self.measure_from {
            return;
        }
        side.records.fetch_add(records, Ordering::Relaxed);
        side.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let (Some(ns), true) = (latency_ns, records > 0) {
            side.latency.lock().record(ns, records);
        }
    }

    /// `records` acknowledged (`bytes` of data), `latency_ns` after they were due.
    pub fn produced(&self, records: u64, bytes: u64, latency_ns: u64) {
        self.side_record(&self.produce, records, bytes, Some(latency_ns));
    }

    /// `records` received by one call that took `call_ns` (if it was a call).
    pub fn consumed(&self, records: u64, bytes: u64, call_ns: Option<u64>) {
        self.side_record(&self.consume, records, bytes, call_ns);
    }

    /// Send-to-receipt latencies of received records.
    pub fn end_to_end(&self, latencies_ns: &[u64]) {
        if latencies_ns.is_empty() || Instant::now() < self.measure_from {
            return;
        }
        let mut h = self.end_to_end.lock();
        for ns in latencies_ns {
            h.record(*ns, 1);
        }
    }

    /// `count` failures of type `kind` (throttles are told apart by [`is_throttle`]).
    pub fn error(&self, kind: &str, count: u64) {
        let map = if is_throttle(kind) {
            &self.throttles
        } else {
            &self.errors
        };
        *map.lock().entry(kind.to_string()).or_default() += count;
    }

    /// Closes the current second: appends it to the timeline and returns it.
    pub fn tick(&self) -> Point {
        let now = Instant::now();
        let mut last = self.last_tick.lock();
        let secs = (now - last.0).as_secs_f64().max(1e-9);
        let p_records = self.produce.records_total.load(Ordering::Relaxed);
        let p_bytes = self.produce.bytes.load(Ordering::Relaxed);
        let c_records = self.consume.records_total.load(Ordering::Relaxed);
        let c_bytes = self.consume.bytes.load(Ordering::Relaxed);
        let interval = |h: &Mutex<Hists>| {
            let mut h = h.lock();
            let p = Percentiles::of(&h.interval);
            h.interval.reset();
            p
        };
        let point = Point {
            t: (now - self.start).as_secs_f64(),
            produce_records_per_sec: (p_records - last.1) as f64 / secs,
            produce_mb_per_sec: p_bytes.saturating_sub(last.2) as f64 / secs / 1e6,
            consume_records_per_sec: (c_records - last.3) as f64 / secs,
            consume_mb_per_sec: c_bytes.saturating_sub(last.4) as f64 / secs / 1e6,
            produce_latency: interval(&self.produce.latency),
            end_to_end_latency: interval(&self.end_to_end),
        };
        *last = (now, p_records, p_bytes, c_records, c_bytes);
        self.timeline.lock().push(point.clone());
        point
    }

    /// The totals of one side over `seconds` of measurement.
    pub fn side_result(&self, side: &Side, seconds: f64) -> SideResult {
        let records = side.records.load(Ordering::Relaxed);
        let bytes = side.bytes.load(Ordering::Relaxed);
        let seconds = seconds.max(1e-9);
        SideResult {
            records,
            bytes,
            records_total: side.records_total.load(Ordering::Relaxed),
            seconds,
            records_per_sec: records as f64 / seconds,
            mb_per_sec: bytes as f64 / seconds / 1e6,
            latency: Percentiles::of(&side.latency.lock().all),
        }
    }

    /// Send-to-receipt latency over the whole run.
    pub fn end_to_end_result(&self) -> Percentiles {
        Percentiles::of(&self.end_to_end.lock().all)
    }

    /// Errors and throttles by type.
    pub fn failures(&self) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
        (self.errors.lock().clone(), self.throttles.lock().clone())
    }

    /// The seconds so far.
    pub fn timeline(&self) -> Vec<Point> {
        self.timeline.lock().clone()
    }

    /// Records produced so far (warm-up included) and consumed so far.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.produce.records_total.load(Ordering::Relaxed),
            self.consume.records_total.load(Ordering::Relaxed),
        )
    }
}

/// One side's totals.
#[derive(Debug, Clone, Serialize)]
pub struct SideResult {
    /// Records after the warm-up.
    pub records: u64,
    /// Data bytes after the warm-up.
    pub bytes: u64,
    /// Records including the warm-up.
    pub records_total: u64,
    /// Seconds measured.
    pub seconds: f64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    pub latency: Percentiles,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_ordered_and_in_milliseconds() {
        let stats = Stats::new(Instant::now(), Instant::now());
        for i in 1..=1000u64 {
            stats.produced(2, 200, i * 1_000_000);
        }
        let r = stats.side_result(&stats.produce, 1.0);
        assert_eq!(r.records, 2000);
        assert_eq!(r.latency.count, 2000);
        let l = r.latency;
        assert!((l.p50 - 500.0).abs() < 1.0, "{l:?}");
        assert!(l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p99_9 && l.p99_9 <= l.max);
        assert!((l.max - 1000.0).abs() < 1.0, "{l:?}");
    }

    #[test]
    fn throttles_are_kept_apart() {
        let stats = Stats::new(Instant::now(), Instant::now());
        stats.error("ProvisionedThroughputExceededException", 3);
        stats.error("InternalFailure", 1);
        let (errors, throttles) = stats.failures();
        assert_eq!(errors.get("InternalFailure"), Some(&1));
        assert_eq!(
            throttles.get("ProvisionedThroughputExceededException"),
            Some(&3)
        );
    }
}
