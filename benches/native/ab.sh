#!/usr/bin/env bash
# Two builds of `shardline` side by side on one native workload (docs/performance.md).
#
#   benches/native/ab.sh OLD_BINARY NEW_BINARY [PAIRS]
#
# Runs PAIRS (default 2) pairs in the order A B B A A B ..., so that neither build always
# runs first: on this machine a run straight after another is up to 15% faster than one
# after a pause, whichever build it is. Each run gets a fresh server (io_uring, durability
# sync, data under $TMPDIR) on 127.0.0.1 and `shardline bench` (the new build's) with 100 B
# records, 2 producers, 12 s of which the first 2 are not measured, then a pause of PAUSE
# seconds (default 8). One line per run: records/s, latency percentiles, and the server's
# CPU time per record over the whole run (utime + stime from /proc, warm-up included).
#
# Settings from the environment: SHARDS (4), BATCH (5000), RATE (records/s; unset: the
# maximum), SERVE_ARGS (more `serve` flags), BENCH_ARGS (more `bench` flags, e.g.
# `--keys 2000000`).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY [PAIRS]" >&2; exit 2; }
builds=("$(realpath "$1")" "$(realpath "$2")")
pairs=${3:-2}
bench=${builds[1]}
. benches/native/server.sh

run() { # binary label
    local dir pid e n rate=()
    dir=$(mktemp -d)
    B=$1
    # shellcheck disable=SC2086 # SERVE_ARGS and BENCH_ARGS are lists of flags
    SHARDLINE_IO=uring start_server "$dir" --durability sync ${SERVE_ARGS:-}
    [ -n "${RATE:-}" ] && rate=(--rate "$RATE")
    # shellcheck disable=SC2086
    "$bench" bench --endpoint "$e" --native "$n" --stream ab --shards "${SHARDS:-4}" \
        --producers 2 --batch-size "${BATCH:-5000}" "${rate[@]}" --duration 12 --warmup 2 \
        --cleanup --json ${BENCH_ARGS:-} > "$dir/json"
    python3 - "$dir/json" "$2" "$(awk '{print $14 + $15}' "/proc/$pid/stat")" \
        "$(getconf CLK_TCK)" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))["runs"][0]["produce"]
lat = run["latency"]
cpu_ns = int(sys.argv[3]) / int(sys.argv[4]) * 1e9
print(f"{sys.argv[2]}: records/s={run['records_per_sec']:.0f} p50={lat['p50']:.2f} "
      f"p99={lat['p99']:.2f} max={lat['max']:.2f} ms | "
      f"server CPU {cpu_ns / run['records_total']:.0f} ns/record")
PY
    kill "$pid"
    wait "$pid" 2> /dev/null || true
    rm -rf "$dir"
    sleep "${PAUSE:-8}"
}

for ((i = 0; i < pairs; i++)); do
    if ((i % 2 == 0)); then order=(0 1); else order=(1 0); fi
    for b in "${order[@]}"; do
        run "${builds[$b]}" "$([ "$b" = 0 ] && echo old || echo new)"
    done
done
