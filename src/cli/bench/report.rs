//! `--report FILE.html`: one self-contained page (inline SVG and CSS, no scripts, no
//! network fetches) with throughput over time, latency percentiles over time, and each
//! run's latency by percentile, plus the table.

use std::fmt::Write as _;

use super::run::{Output, RunResult};
use super::stats::Percentiles;
use super::table;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 280.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// A named line of (x, y) points.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart; `log_y` plots y on a log10 scale (values <= 0 are skipped).
fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series], log_y: bool) -> String {
    let f = |y: f64| if log_y { y.log10() } else { y };
    let pts = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(_, y)| !log_y || *y > 0.0)
    };
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(f(y));
        y1 = y1.max(f(y));
    }
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"><title>{t}</title><text x="{LEFT}" y="18" class="title">{t}</text>"#,
        t = escape(title)
    );
    if x0 > x1 {
        svg += r#"<text x="100" y="120">no data</text></svg>"#;
        return svg;
    }
    if log_y {
        y0 = y0.floor();
        y1 = y1.ceil().max(y0 + 1.0);
    } else {
        y0 = 0.0_f64.min(y0);
        y1 = if y1 > y0 { y1 * 1.05 } else { y0 + 1.0 };
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| TOP + ph - (f(y) - y0) / (y1 - y0) * ph;
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##
    );
    for i in 0..=4 {
        let v = y0 + (y1 - y0) * f64::from(i) / 4.0;
        let y = TOP + ph - ph * f64::from(i) / 4.0;
        let label = if log_y { 10f64.powf(v) } else { v };
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 5.0,
            y + 4.0,
            short(label)
        );
        let xv = x0 + (x1 - x0) * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
            sx(xv),
            TOP + ph + 15.0,
            short(xv)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{}" class="axis" text-anchor="middle">{}</text><text x="14" y="{:.1}" class="axis" transform="rotate(-90 14 {:.1})" text-anchor="middle">{}</text>"#,
        LEFT + pw / 2.0,
        HEIGHT - 5.0,
        escape(x_label),
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        escape(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .filter(|(_, y)| !log_y || *y > 0.0)
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{}"/>"#,
            path.join(" ")
        );
        if path.len() == 1 {
            let _ = write!(
                svg,
                r#"<circle cx="{}" r="3" fill="{color}" cy="{}"/>"#,
                path[0].split(',').next().unwrap_or("0"),
                path[0].split(',').nth(1).unwrap_or("0")
            );
        }
        let ly = TOP + 14.0 * i as f64 + 8.0;
        let _ = write!(
            svg,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}" class="legend">{}</text>"#,
            LEFT + pw + 10.0,
            LEFT + pw + 28.0,
            LEFT + pw + 32.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
    svg += "</svg>";
    svg
}

/// `12345.6` as `12.3k`, `0.0123` as `0.0123`.
fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn run_name(run: &RunResult) -> String {
    if run.transport == "http" {
        run.endpoint.clone()
    } else {
        run.transport.clone()
    }
}

/// (percentile as "nines" on the x axis, latency ms): 50% is 0.3, 99% is 2, 99.9% is 3.
fn by_percentile(l: &Percentiles) -> Vec<(f64, f64)> {
    let nines = |q: f64| -(1.0 - q).log10();
    vec![
        (nines(0.5), l.p50),
        (nines(0.9), l.p90),
        (nines(0.99), l.p99),
        (nines(0.999), l.p99_9),
        (nines(0.9999), l.p99_99),
        (5.0, l.max),
    ]
}

/// The page.
pub fn html(o: &Output) -> String {
    let mut throughput = Vec::new();
    let mut latency_time = Vec::new();
    let mut latency_pct = Vec::new();
    let mut replay = Vec::new();
    for run in &o.runs {
        let name = run_name(run);
        let tl = &run.timeline;
        if run.produce.is_some() {
            throughput.push(Series {
                name: format!("{name} produce"),
                points: tl
                    .iter()
                    .map(|p| (p.t, p.produce_records_per_sec))
                    .collect(),
            });
        }
        if run.consume.is_some() {
            throughput.push(Series {
                name: format!("{name} consume"),
                points: tl
                    .iter()
                    .map(|p| (p.t, p.consume_records_per_sec))
                    .collect(),
            });
        }
        for (label, pick) in [
            ("p50", (|l: &Percentiles| l.p50) as fn(&Percentiles) -> f64),
            ("p99", |l| l.p99),
            ("max", |l| l.max),
        ] {
            latency_time.push(Series {
                name: format!("{name} ack {label}"),
                points: tl
                    .iter()
                    .filter(|p| p.produce_latency.count > 0)
                    .map(|p| (p.t, pick(&p.produce_latency)))
                    .collect(),
            });
            if run.end_to_end_latency.is_some() {
                latency_time.push(Series {
                    name: format!("{name} e2e {label}"),
                    points: tl
                        .iter()
                        .filter(|p| p.end_to_end_latency.count > 0)
                        .map(|p| (p.t, pick(&p.end_to_end_latency)))
                        .collect(),
                });
            }
        }
        if let Some(p) = &run.produce {
            latency_pct.push(Series {
                name: format!("{name} ack"),
                points: by_percentile(&p.latency),
            });
        }
        if let Some(l) = &run.end_to_end_latency {
            latency_pct.push(Series {
                name: format!("{name} e2e"),
                points: by_percentile(l),
            });
        }
        if let Some(r) = &run.replay {
            latency_pct.push(Series {
                name: format!("{name} GetRecords"),
                points: by_percentile(&r.latency),
            });
            replay.push(Series {
                name: format!("{name} replay MB/s"),
                points: run
                    .replay_timeline
                    .iter()
                    .map(|p| (p.t, p.consume_mb_per_sec))
                    .collect(),
            });
        }
    }
    let mut page = String::from(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>shardline bench report</title><style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}svg{display:block;margin:1em 0;background:#fff}
.title{font-size:14px;font-weight:600}.tick{font-size:10px;fill:#555}.axis{font-size:11px}.legend{font-size:11px}
pre{background:#f6f6f6;padding:1em;overflow-x:auto}</style></head><body><h1>shardline bench report</h1>"#,
    );
    let _ = write!(page, "<pre>{}</pre>", escape(&table::render(o)));
    page += &line_chart(
        "Throughput over time",
        "seconds",
        "records/s",
        &throughput,
        false,
    );
    page += &line_chart(
        "Latency percentiles over time (per second)",
        "seconds",
        "ms (log)",
        &latency_time,
        true,
    );
    page += &line_chart(
        "Latency by percentile (x: nines; 0.3 = p50, 2 = p99, 3 = p99.9, 4 = p99.99, 5 = max)",
        "nines",
        "ms (log)",
        &latency_pct,
        true,
    );
    if !replay.is_empty() {
        page += &line_chart(
            "Replay throughput over time",
            "seconds",
            "MB/s",
            &replay,
            false,
        );
    }
    page += "</body></html>\n";
    page
}
