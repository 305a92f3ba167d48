#!/usr/bin/env bash
# 1 KiB native ingest against the disk's fdatasynced write bandwidth (docs/performance.md,
# issue 5).
#
# Runs `rounds` times (default 3): `dd` writing 1 GiB in 1 MiB writes with `oflag=dsync`,
# through the page cache and again with `oflag=direct,dsync` past it (the disk's synced
# bandwidth is the higher of the two), then one 1 KiB run against a fresh server (io_uring,
# durability sync, 4 shards, 2 producers, batches of 1,000, 12 s of which the first 2 are
# not measured), with the server's CPU use over the run from /proc. One line per step.
# Data directories live under $TMPDIR (the disk being measured). Each step is followed by a
# 10 s pause, so the discards of what it deleted do not slow down the next one.
#
# Settings from the environment: SHARDS (4), PRODUCERS (2), BATCH (1000), DURABILITY
# (sync), SHARDLINE_IO (uring), SERVE_ARGS (more `serve` flags, e.g. --direct-writes).
#
#   cargo build --release --bin shardline && benches/native/kib.sh 3
#
# SHARDLINE_BIN=path runs another build of the binary (for side-by-side comparisons).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${SHARDLINE_BIN:-$PWD/target/release/shardline}
. benches/native/server.sh
rounds=${1:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dd if=/dev/urandom of="$work/src.bin" bs=1M count=1024 status=none

disk() {
    local flags
    for flags in dsync direct,dsync; do
        dd if="$work/src.bin" of="$work/dsync.bin" bs=1M count=1024 oflag=$flags 2>&1 |
            grep -oE '[0-9.]+ [MG]B/s' | sed "s/^/dd 1 MiB, oflag=$flags: /"
        rm -f "$work/dsync.bin"
        # The disk is mounted with `discard`: let the deletion's discards finish first.
        sync; sleep 10
    done
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

kib() {
    local dir pid e n t0 t1 c0 c1
    dir=$(mktemp -d)
    # shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
    start_server "$dir" --durability "${DURABILITY:-sync}" ${SERVE_ARGS:-}
    c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
    $B bench --endpoint "$e" --native "$n" --stream kib --shards ${SHARDS:-4} --producers ${PRODUCERS:-2} \
        --batch-size ${BATCH:-1000} --record-size 1024 --duration 12 --warmup 2 --cleanup --json > "$dir/json"
    c1=$(cpu_ticks "$pid"); t1=$(date +%s.%N)
    python3 - "$dir/json" "$c0" "$c1" "$t0" "$t1" "$(getconf CLK_TCK)" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))["runs"][0]["produce"]
c0, c1, t0, t1, hz = (float(x) for x in sys.argv[2:])
load = open("/proc/loadavg").read().split()[0]
print(f"1 KiB: {run['mb_per_sec']:.0f} MB/s of data ({run['records_per_sec']:.0f} records/s), "
      f"server {(c1 - c0) / hz / (t1 - t0):.2f} CPUs, load {load}")
PY
    kill "$pid"
    wait "$pid" 2> /dev/null || true
    rm -rf "$dir"
    sync; sleep 10
}

for _ in $(seq "$rounds"); do
    disk
    kib
done
disk
