//! The table printed at the end (without `--json`).

use std::fmt::Write as _;

use super::progress::thousands;
use super::run::Output;
use super::stats::{Percentiles, SideResult};

fn latency_cells(l: &Percentiles) -> String {
    if l.count == 0 {
        return format!("{:>8} (no latency measured)", "-");
    }
    format!(
        "{:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>9.3}",
        l.p50, l.p90, l.p99, l.p99_9, l.p99_99, l.max
    )
}

fn side_row(out: &mut String, name: &str, s: &SideResult) {
    let _ = writeln!(
        out,
        "  {name:<22} {:>12} {:>9.1} {:>9} {}",
        thousands(s.records_per_sec),
        s.mb_per_sec,
        thousands(s.records as f64),
        latency_cells(&s.latency)
    );
}

/// The whole table.
pub fn render(o: &Output) -> String {
    let c = &o.config;
    let mut out = String::new();
    let filled = o.runs.iter().any(|r| r.produce.is_some());
    if !filled {
        let _ = writeln!(
            out,
            "shardline bench {:?}: the data the streams hold",
            o.workload
        );
    } else {
        let _ = writeln!(
        out,
        "shardline bench {:?}: {} producer(s), record size {} B, batches of {}, {} s ({} s warm-up), rate {}",
        o.workload,
        c.producers,
        c.record_size,
        c.batch_size,
        c.duration_secs,
        c.warmup_secs,
        c.rate.map_or("max".to_string(), |r| format!("{} rec/s", thousands(r)))
    );
    }
    for run in &o.runs {
        let _ = writeln!(
            out,
            "\n{} via {}: {} stream(s), {} shard(s){}",
            run.endpoint,
            run.transport,
            run.streams.len(),
            run.shards,
            run.load_average.map_or(String::new(), |l| format!(
                ", load average {:.2} {:.2} {:.2}",
                l[0], l[1], l[2]
            ))
        );
        let _ = writeln!(
            out,
            "  {:<22} {:>12} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "latency in ms",
            "records/s",
            "MB/s",
            "records",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "p99.99",
            "max"
        );
        if let Some(s) = &run.produce {
            side_row(&mut out, "produce (ack)", s);
        }
        if let Some(s) = &run.consume {
            side_row(&mut out, "consume (call)", s);
        }
        if let Some(l) = &run.end_to_end_latency {
            let _ = writeln!(
                out,
                "  {:<22} {:>12} {:>9} {:>9} {}",
                "end-to-end (send→recv)",
                "",
                "",
                thousands(l.count as f64),
                latency_cells(l)
            );
        }
        if let Some(s) = &run.replay {
            side_row(&mut out, "replay (GetRecords)", s);
        }
        for (title, map) in [("errors", &run.errors), ("throttles", &run.throttles)] {
            let list: Vec<String> = map.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(
                out,
                "  {title}: {}",
                if list.is_empty() {
                    "none".to_string()
                } else {
                    list.join(", ")
                }
            );
        }
    }
    if let Some(cmp) = &o.comparison {
        let r = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}x"));
        let _ = writeln!(
            out,
            "\n{} vs {}:\n  throughput {} (MB/s {}), p50 latency {}, p99 latency {}",
            cmp.first,
            cmp.second,
            r(cmp.throughput_ratio),
            r(cmp.mb_per_sec_ratio),
            r(cmp.p50_latency_ratio),
            r(cmp.p99_latency_ratio)
        );
    }
    out
}
