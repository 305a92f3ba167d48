//! `--compare`: the ratios between the first target and the second, same workload.

use serde::Serialize;

use super::run::RunResult;
use super::stats::SideResult;
use super::Workload;

/// First target over second: above 1 means the first did more (throughput) or took
/// longer (latency).
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub first: String,
    pub second: String,
    /// The headline side's records/s, first / second.
    pub throughput_ratio: Option<f64>,
    pub mb_per_sec_ratio: Option<f64>,
    pub p50_latency_ratio: Option<f64>,
    pub p99_latency_ratio: Option<f64>,
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite()).then(|| a / b)
}

/// The side a workload is judged by.
pub fn headline(workload: Workload, run: &RunResult) -> Option<&SideResult> {
    match workload {
        Workload::Produce | Workload::EndToEnd => run.produce.as_ref(),
        Workload::Consume => run.consume.as_ref(),
        Workload::Replay => run.replay.as_ref(),
    }
}

/// Compares two runs of `workload`.
pub fn compare(workload: Workload, a: &RunResult, b: &RunResult) -> Comparison {
    let (sa, sb) = (headline(workload, a), headline(workload, b));
    let both = |f: fn(&SideResult) -> f64| match (sa, sb) {
        (Some(x), Some(y)) => ratio(f(x), f(y)),
        _ => None,
    };
    let (p50, p99) = if workload == Workload::EndToEnd {
        match (&a.end_to_end_latency, &b.end_to_end_latency) {
            (Some(x), Some(y)) => (ratio(x.p50, y.p50), ratio(x.p99, y.p99)),
            _ => (None, None),
        }
    } else {
        (both(|s| s.latency.p50), both(|s| s.latency.p99))
    };
    Comparison {
        first: format!("{} ({})", a.endpoint, a.transport),
        second: format!("{} ({})", b.endpoint, b.transport),
        throughput_ratio: both(|s| s.records_per_sec),
        mb_per_sec_ratio: both(|s| s.mb_per_sec),
        p50_latency_ratio: p50,
        p99_latency_ratio: p99,
    }
}
