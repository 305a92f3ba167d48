#!/usr/bin/env bash
# Every benchmark target of issue 5 in one run, one line (or a few) per target, in the
# order the issue lists them (docs/performance.md, "Issue 5's targets in one run").
#
#   cargo build --release --bin shardline && benches/targets.sh
#
# 1. Native protocol, 100 B records, maximum rate for 60 s (4 shards, 2 producers, batches
#    of 5,000): records/s over the 60 s and the slowest second. Goal: 1 M records/s.
# 2. Native protocol, 1 KiB records, against the disk's synced write bandwidth:
#    `SERVE_ARGS=--direct-writes benches/native/kib.sh 2` (see that script). Goal: 80%.
# 3. p99 acknowledgement latency at half the maximum rate, through the page cache (the
#    default): `benches/native/half-rate.sh 1 4` (see that script). Goal: under 5 ms.
# 4. Kinesis HTTP API, PutRecords of 500 records of 100 B (4 shards, 2 producers, 10 s after
#    2 s of warm-up), against kinesalite with the identical workload (`bench --compare`).
#    Goals: 300,000 records/s, and 30 times kinesalite. kinesalite comes from $KINESALITE
#    (its executable) or is installed with `npm install kinesalite` into a scratch folder.
# 5. Replay from the trim horizon of a 4-shard stream filled with 6 s of 1 KiB records,
#    three times over the native protocol and once over GetRecords. Goal: 1 GB/s.
#
# Every step starts its own server (io_uring, durability sync, data under $TMPDIR) on
# loopback ports. STEPS="1 3" runs only those steps. SHARDLINE_BIN runs another build.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${SHARDLINE_BIN:-$PWD/target/release/shardline}
export SHARDLINE_BIN=$B
. benches/native/server.sh
work=$(mktemp -d)
trap 'kill $(jobs -p) 2> /dev/null || true; rm -rf "$work"' EXIT

step() { [[ " ${STEPS:-1 2 3 4 5} " == *" $1 "* ]]; }
stop_server() {
    kill "$pid"
    wait "$pid" 2> /dev/null || true
    rm -rf "$work/srv"
}
# json FILE EXPR: prints a Python expression over the bench's JSON output `j`.
json() { python3 -c "import json, sys; j = json.load(open(sys.argv[1])); print($2)" "$1"; }

if step 1; then
    mkdir "$work/srv"
    start_server "$work/srv" --durability sync
    $B bench --endpoint "$e" --native "$n" --stream sustained --shards 4 --producers 2 \
        --batch-size 5000 --duration 62 --warmup 2 --cleanup --json > "$work/1.json"
    json "$work/1.json" '"1. native 100 B, 60 s: %.2f M records/s, slowest second %.2f M, %d errors (goal 1 M/s)" % (
        j["runs"][0]["produce"]["records_per_sec"] / 1e6,
        min(p["produce_records_per_sec"] for p in j["runs"][0]["timeline"][2:-1]) / 1e6,
        sum(j["runs"][0]["errors"].values()))'
    stop_server
fi

if step 2; then
    echo "2. native 1 KiB against the disk (benches/native/kib.sh 2, --direct-writes):"
    SERVE_ARGS=--direct-writes benches/native/kib.sh 2 | sed 's/^/   /'
fi

if step 3; then
    echo "3. p99 at half the maximum rate (benches/native/half-rate.sh 1 4, page cache):"
    benches/native/half-rate.sh 1 4 | sed 's/^/   /'
fi

if step 4; then
    kinesalite=${KINESALITE:-}
    if [ -z "$kinesalite" ]; then
        (cd "$work" && npm install --silent --no-audit --no-fund kinesalite > /dev/null)
        kinesalite=$work/node_modules/.bin/kinesalite
    fi
    kport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$kinesalite" --port "$kport" --createStreamMs 0 --deleteStreamMs 0 --updateStreamMs 0 \
        > "$work/kinesalite.log" 2>&1 &
    kpid=$!
    mkdir "$work/srv"
    start_server "$work/srv" --durability sync
    sleep 1
    $B bench --endpoint "$e" --compare "http://127.0.0.1:$kport" --stream http --shards 4 \
        --producers 2 --batch-size 500 --record-size 100 --duration 12 --warmup 2 --cleanup \
        --json > "$work/4.json"
    json "$work/4.json" '"4. HTTP API, PutRecords 500 x 100 B: Shardline %.0f records/s (p99 %.1f ms), kinesalite %.0f (p99 %.1f ms): %.1fx (goals 300,000/s and 30x)" % (
        j["runs"][0]["produce"]["records_per_sec"], j["runs"][0]["produce"]["latency"]["p99"],
        j["runs"][1]["produce"]["records_per_sec"], j["runs"][1]["produce"]["latency"]["p99"],
        j["comparison"]["throughput_ratio"])'
    stop_server
    kill "$kpid"
    wait "$kpid" 2> /dev/null || true
fi

if step 5; then
    mkdir "$work/srv"
    start_server "$work/srv" --durability sync
    $B bench --endpoint "$e" --native "$n" --stream replay --shards 4 --batch-size 1000 \
        --record-size 1024 --duration 6 --json > "$work/fill.json"
    json "$work/fill.json" '"5. replay: filled %d records, %d bytes of data" % (
        j["runs"][0]["produce"]["records_total"], j["runs"][0]["produce"]["bytes"])'
    for how in native native native http; do
        if [ "$how" = native ]; then via=(--native "$n"); else via=(); fi
        $B bench replay --no-fill --endpoint "$e" "${via[@]}" --stream replay --json > "$work/5.json"
        json "$work/5.json" '"   %s: %d records, %.0f MB/s of data in %.2f s (goal 1,000 MB/s)" % (
            "'"$how"'".replace("http", "GetRecords"), j["runs"][0]["replay"]["records"],
            j["runs"][0]["replay"]["mb_per_sec"], j["runs"][0]["replay"]["seconds"])'
    done
    stop_server
fi
