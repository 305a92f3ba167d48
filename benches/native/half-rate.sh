#!/usr/bin/env bash
# p99 acknowledgement latency at half the maximum native rate (docs/performance.md, issue 5).
#
# For each shard count given (default: 1 4): three runs at the maximum rate (batches of
# 5,000), a further pause of SETTLE seconds (default 60), then five open-loop runs at half
# the median maximum (batches of 1,000). The pause lets the disk settle after the
# maximum-rate runs, which write and delete several GB each. Through the page cache, the
# first half-rate run after them missed 5 ms in 5 cases of 7 after a 5 s pause in all and
# in 1 of 7 after 60-65 s; the runs after it missed in 1 of 40 (docs/performance.md,
# "Half rate on a faster disk"). SETTLE=0 repeats the runs before that. Each run
# gets its own server (io_uring, durability sync) on 127.0.0.1 with a fresh data directory
# under $TMPDIR, 2 producers, 100 B records, 12 s of which the first 2 are not measured,
# and a 5 s pause afterwards. One line per run. SERVE_ARGS adds `serve` flags (e.g.
# --direct-writes); BENCH_ARGS adds `bench` flags (e.g. --native-layout table);
# SHARDLINE_BIN runs another build.
#
# After `|`, each line has the server's view of the whole run (warm-up included) from its
# /metrics: group-commit rounds, shards written per round, the mean round (write and
# fdatasync) and the share of rounds that took over 1 and 2 ms.
#
#   cargo build --release --bin shardline && benches/native/half-rate.sh 1 4
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${SHARDLINE_BIN:-target/release/shardline}
. benches/native/server.sh

run() { # shards, max | records/s
    local dir out pid e n json
    dir=$(mktemp -d)
    # shellcheck disable=SC2086 # SERVE_ARGS and BENCH_ARGS are lists of flags
    SHARDLINE_IO=uring start_server "$dir" --durability sync ${SERVE_ARGS:-}
    if [ "$2" = max ]; then
        $B bench --endpoint "$e" --native "$n" --stream max --shards "$1" --producers 2 \
            --batch-size 5000 --duration 12 --warmup 2 --cleanup --json ${BENCH_ARGS:-} > "$dir/json"
    else
        $B bench --endpoint "$e" --native "$n" --stream half --shards "$1" --producers 2 \
            --batch-size 1000 --rate "$2" --duration 12 --warmup 2 --cleanup --json ${BENCH_ARGS:-} \
            > "$dir/json"
    fi
    python3 - "$dir/json" "$1" "$2" "$e/metrics" <<'PY'
import json, sys, urllib.request
run = json.load(open(sys.argv[1]))["runs"][0]["produce"]
lat = run["latency"]
load = open("/proc/loadavg").read().split()[0]
m = {}
for line in urllib.request.urlopen(sys.argv[4]).read().decode().splitlines():
    if line.startswith("shardline_commit_"):
        name, value = line.rsplit(" ", 1)
        m[name] = float(value)
rounds = m["shardline_commit_rounds_total"]
bucket = lambda le: m[f'shardline_commit_round_duration_seconds_bucket{{le="{le}"}}']
print(f"shards={sys.argv[2]} rate={sys.argv[3]} load={load} records/s={run['records_per_sec']:.0f} "
      f"p50={lat['p50']:.2f} p90={lat['p90']:.2f} p99={lat['p99']:.2f} "
      f"p99.9={lat['p99_9']:.2f} max={lat['max']:.2f} ms | rounds={rounds:.0f} "
      f"shards/round={m['shardline_commit_writes_total'] / rounds:.2f} "
      f"round={1000 * m['shardline_commit_round_duration_seconds_sum'] / rounds:.2f} ms "
      f">1ms={100 * (1 - bucket('0.001') / rounds):.1f}% >2ms={100 * (1 - bucket('0.002') / rounds):.1f}%")
PY
    kill "$pid"
    wait "$pid" 2> /dev/null || true
    rm -rf "$dir"
    sleep 5
}

[ $# -eq 0 ] && set -- 1 4
for shards in "$@"; do
    maxes=()
    for _ in 1 2 3; do
        line=$(run "$shards" max)
        echo "$line"
        maxes+=("$(echo "$line" | grep -oE 'records/s=[0-9]+' | cut -d= -f2)")
    done
    half=$(printf '%s\n' "${maxes[@]}" | sort -n | sed -n 2p)
    half=$((half / 2))
    sleep "${SETTLE:-60}"
    for _ in 1 2 3 4 5; do
        run "$shards" "$half"
    done
done
