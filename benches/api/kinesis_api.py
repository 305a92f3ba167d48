#!/usr/bin/env python3
"""Server CPU cost of the Kinesis HTTP API under boto3 load (issue 3's performance goals).

Starts `shardline serve` (release build) on a loopback port with a fresh data directory,
then measures, from /proc/<pid>/stat (user + system time of every server thread):

  put:  PutRecords of 500 records x 100 B from two client threads; server CPU per record.
  read: GetRecords (Limit 10000) replaying retained 1 KiB records from TRIM_HORIZON;
        record bytes returned per second of server CPU.

Usage: .venv/bin/python benches/api/kinesis_api.py [--bin target/release/shardline]
       [--put-requests 300] [--read-mb 400] [--runs 3]
`--bin A,B` compares binaries side by side: each run measures A then B, so both see the
same machine load (CPU-time figures swing with contention on a shared machine).
Bounded: every run stops by itself; traffic goes to 127.0.0.1 only.
"""
import argparse
import os
import statistics
import subprocess
import tempfile
import threading
import time

import boto3
from botocore.config import Config

CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def start_server(binary, data_dir):
    p = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("listening on "):
        p.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return p, line.split()[-1]


def client(endpoint):
    return boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench",
                        config=Config(retries={"max_attempts": 1}))


def put_run(binary, requests):
    with tempfile.TemporaryDirectory() as d:
        p, ep = start_server(binary, d)
        try:
            c = client(ep)
            c.create_stream(StreamName="put", ShardCount=4)
            recs = [{"Data": os.urandom(100), "PartitionKey": f"pk{i}"} for i in range(500)]
            c.put_records(StreamName="put", Records=recs)  # warm-up
            c0 = cpu_seconds(p.pid)

            def worker():
                cl = client(ep)
                for _ in range(requests // 2):
                    assert cl.put_records(StreamName="put", Records=recs)["FailedRecordCount"] == 0

            ts = [threading.Thread(target=worker) for _ in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            used = cpu_seconds(p.pid) - c0
            return used / (requests // 2 * 2 * 500) * 1e6
        finally:
            p.terminate()
            p.wait(timeout=30)


def read_run(binary, megabytes):
    with tempfile.TemporaryDirectory() as d:
        p, ep = start_server(binary, d)
        try:
            c = client(ep)
            c.create_stream(StreamName="read", ShardCount=1)
            recs = [{"Data": os.urandom(1024), "PartitionKey": f"pk{i}"} for i in range(500)]
            for _ in range(megabytes * 1024 * 1024 // (500 * 1024)):
                c.put_records(StreamName="read", Records=recs)
            it = c.get_shard_iterator(StreamName="read", ShardId="shardId-000000000000",
                                      ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            c0 = cpu_seconds(p.pid)
            got = 0
            while True:
                out = c.get_records(ShardIterator=it, Limit=10000)
                got += sum(len(r["Data"]) for r in out["Records"])
                it = out["NextShardIterator"]
                if not out["Records"] and out["MillisBehindLatest"] == 0:
                    break
            used = cpu_seconds(p.pid) - c0
            return got / 1e9 / used, got
        finally:
            p.terminate()
            p.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/shardline")
    ap.add_argument("--put-requests", type=int, default=300)
    ap.add_argument("--read-mb", type=int, default=400)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    bins = a.bin.split(",")
    puts = {b: [] for b in bins}
    for _ in range(a.runs):
        for b in bins:
            puts[b].append(put_run(b, a.put_requests))
    for b in bins:
        print(f"put [{b}]: server CPU per record written (PutRecords 500 x 100 B): "
              f"runs {[round(x, 2) for x in puts[b]]} us, median {statistics.median(puts[b]):.2f} us")
    reads = {b: [] for b in bins}
    for _ in range(a.runs):
        for b in bins:
            reads[b].append(read_run(b, a.read_mb))
    for b in bins:
        rates = [r for r, _ in reads[b]]
        print(f"read [{b}]: GetRecords record bytes per server CPU second "
              f"({reads[b][0][1] / 1e6:.0f} MB of 1 KiB records): "
              f"runs {[round(x, 2) for x in rates]} GB/s, median {statistics.median(rates):.2f} GB/s")


if __name__ == "__main__":
    main()
