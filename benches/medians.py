#!/usr/bin/env python3
"""Prints the median of every shardline benchmark from criterion's saved estimates.

Usage: python3 benches/medians.py [TARGET_DIR [BASELINE]]   (defaults: target, new)

Reads TARGET_DIR/criterion/<group>/<bench>/BASELINE/{estimates,benchmark}.json, written by
the last `cargo bench -p shardline-benches` run of each benchmark (`new`), or by the run
given `-- --save-baseline BASELINE`, and prints a Markdown table:
median time per iteration, the throughput at that median, and for `append_sync` the ratio
to the median of `append_sync/raw_fdatasync/1024KiB` from the same run.
"""

import json
import os
import sys

GROUPS = ["append_sync", "append_none", "replay", "seek_seqno", "seek_time", "recovery"]
MIB = float(1 << 20)


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def records_per_sec(full_id, secs):
    """Records per second of an append benchmark (`<group>/<N>p-.../<size>B/batch<M>`)."""
    parts = full_id.split("/")
    if not parts[0].startswith("append_") or len(parts) != 4:
        return ""
    producers = int(parts[1].split("p-")[0])
    batch = int(parts[3].removeprefix("batch"))
    rate = producers * batch / secs
    return f"{rate / 1e6:.3f} M" if rate >= 1e5 else f"{rate / 1e3:.1f} K"


def load(root, baseline):
    rows = []
    for group in GROUPS:
        gdir = os.path.join(root, "criterion", group)
        if not os.path.isdir(gdir):
            continue
        for dirpath, _, files in os.walk(gdir):
            if os.path.basename(dirpath) != baseline or "estimates.json" not in files:
                continue
            with open(os.path.join(dirpath, "estimates.json")) as f:
                est = json.load(f)
            with open(os.path.join(dirpath, "benchmark.json")) as f:
                bench = json.load(f)
            rows.append((bench["full_id"], est["median"]["point_estimate"], bench.get("throughput")))
    return sorted(rows, key=lambda r: (GROUPS.index(r[0].split("/")[0]), r[0]))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "target"
    baseline = sys.argv[2] if len(sys.argv) > 2 else "new"
    rows = load(root, baseline)
    raw = {r[0]: r for r in rows}.get("append_sync/raw_fdatasync/1024KiB")
    raw_bps = raw[2]["Bytes"] / (raw[1] / 1e9) if raw and raw[2] else None
    print("| benchmark | median time | median throughput | records/s | vs raw fdatasync 1 MiB |")
    print("| --- | --- | --- | --- | --- |")
    for full_id, ns, tp in rows:
        secs = ns / 1e9
        ratio = ""
        if tp and "Bytes" in tp:
            bps = tp["Bytes"] / secs
            thrpt = f"{bps / MIB:.1f} MiB/s"
            if full_id.startswith("append_sync/") and raw_bps:
                ratio = f"{bps / raw_bps:.2f}"
        elif tp and "Elements" in tp:
            eps = tp["Elements"] / secs
            thrpt = f"{eps / 1e6:.3f} M/s" if eps >= 1e5 else f"{eps / 1e3:.1f} K/s"
        else:
            thrpt = ""
        print(f"| {full_id} | {fmt_time(ns)} | {thrpt} | {records_per_sec(full_id, secs)} | {ratio} |")


if __name__ == "__main__":
    main()
