"""`shardline bench` against real servers: each workload runs a few seconds and its JSON is
checked against what the stream holds afterwards (read back with boto3).

With `--rate R --duration D` the open-loop schedule sends exactly R*D records (every batch
due before the deadline is sent, however late), so the counts below are exact, not ranges.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import start_server

SERVER_ARGS = ["--native-listen", "127.0.0.1:0"]
BENCH_TIMEOUT_SECS = 120


@pytest.fixture(scope="module")
def native_addr(server) -> str:
    line = server.read_stdout_line()
    prefix = "native listening on "
    assert line.startswith(prefix), line
    return line[len(prefix) :].strip()


def bench(binary: Path, *args: str) -> dict:
    proc = subprocess.run(
        [str(binary), "bench", *args, "--json"],
        capture_output=True,
        timeout=BENCH_TIMEOUT_SECS,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def read_stream(client, stream: str) -> list[dict]:
    """Every record of every shard, from TRIM_HORIZON to the tip."""
    records = []
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        it = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while it:
            out = client.get_records(ShardIterator=it, Limit=10000)
            records += out["Records"]
            if not out["Records"] and out.get("MillisBehindLatest", 0) == 0:
                break
            it = out.get("NextShardIterator")
    return records


def check_percentiles(lat: dict, count: int) -> None:
    assert lat["count"] == count
    order = [lat[k] for k in ("p50", "p90", "p99", "p99_9", "p99_99", "max")]
    assert order == sorted(order), lat
    assert order[0] > 0, lat


def check_side(side: dict, records: int) -> None:
    assert side["records_total"] == records
    assert side["records"] == records  # no warm-up
    assert side["seconds"] > 0
    assert side["records_per_sec"] == pytest.approx(records / side["seconds"])
    assert side["mb_per_sec"] == pytest.approx(side["bytes"] / side["seconds"] / 1e6)


def only_run(doc: dict) -> dict:
    assert len(doc["runs"]) == 1 and doc["comparison"] is None
    run = doc["runs"][0]
    assert run["errors"] == {} and run["throttles"] == {}, run
    return run


def test_produce_http_writes_exactly_what_it_reports(server, shardline_binary):
    doc = bench(
        shardline_binary, "produce", "--endpoint", server.endpoint, "--stream", "b-http",
        "--shards", "3", "--rate", "20000", "--duration", "2",
        "--record-size", "uniform:20-200",
    )
    run = only_run(doc)
    assert doc["workload"] == "produce" and run["transport"] == "http" and run["shards"] == 3
    produce = run["produce"]
    check_side(produce, 40000)
    check_percentiles(produce["latency"], 40000)
    assert len(run["timeline"]) >= 1
    stored = read_stream(server.client(), "b-http")
    assert len(stored) == 40000
    assert sum(len(r["Data"]) for r in stored) == produce["bytes"]
    assert all(20 <= len(r["Data"]) <= 200 and r["Data"][:4] == b"SLB1" for r in stored)
    assert len({r["PartitionKey"] for r in stored}) == 1000


def test_produce_native(server, shardline_binary, native_addr):
    doc = bench(
        shardline_binary, "produce", "--endpoint", server.endpoint, "--native", native_addr,
        "--stream", "b-native", "--rate", "30000", "--duration", "2", "--batch-size", "1000",
        "--record-size", "100", "--keys", "10",
    )
    run = only_run(doc)
    assert run["transport"] == f"native {native_addr}"
    check_side(run["produce"], 60000)
    assert run["produce"]["bytes"] == 60000 * 100
    check_percentiles(run["produce"]["latency"], 60000)
    stored = read_stream(server.client(), "b-native")
    assert len(stored) == 60000
    assert {len(r["Data"]) for r in stored} == {100}
    assert len({r["PartitionKey"] for r in stored}) == 10


@pytest.mark.parametrize("workload,extra", [("end-to-end", []), ("consume", ["--fan-out"])])
def test_consumers_receive_everything_produced(server, shardline_binary, workload, extra):
    stream = f"b-{workload}{'-efo' if extra else ''}"
    doc = bench(
        shardline_binary, workload, *extra, "--endpoint", server.endpoint, "--stream", stream,
        "--rate", "5000", "--duration", "2", "--poll-interval-ms", "20",
    )
    run = only_run(doc)
    check_side(run["produce"], 10000)
    check_side(run["consume"], 10000)
    assert run["consume"]["bytes"] == run["produce"]["bytes"] == 10000 * 100
    e2e = run["end_to_end_latency"]
    check_percentiles(e2e, 10000)
    # Stamps are read back from the records: a garbled stamp would give absurd latencies.
    assert e2e["max"] < 60_000
    if extra:
        assert run["consume"]["latency"]["count"] == 0  # no calls to time with fan-out
    else:
        check_percentiles(run["consume"]["latency"], 10000)
    assert len(read_stream(server.client(), stream)) == 10000


def test_replay_reads_everything_retained(server, shardline_binary, native_addr):
    # Fill over the native protocol, then replay over it too (Read frames).
    doc = bench(
        shardline_binary, "replay", "--endpoint", server.endpoint, "--native", native_addr,
        "--stream", "b-replay", "--shards", "4", "--rate", "50000", "--duration", "2",
        "--batch-size", "2500", "--record-size", "uniform:1-600",
    )
    run = only_run(doc)
    assert run["transport"] == f"native {native_addr}"
    check_side(run["produce"], 100000)
    written = run["produce"]["bytes"]
    replay = run["replay"]
    check_side(replay, 100000)
    assert replay["bytes"] == written
    # One Read round trip is timed per record it returned.
    assert replay["latency"]["count"] == 100000
    # What the stream holds, read with boto3, adds up to the same.
    stored = read_stream(server.client(), "b-replay")
    assert len(stored) == 100000 and sum(len(r["Data"]) for r in stored) == written
    # Replaying what is there, without filling, reads the same again over GetRecords...
    again = only_run(bench(
        shardline_binary, "replay", "--no-fill", "--endpoint", server.endpoint,
        "--stream", "b-replay", "--consumers", "1",
    ))
    assert again["produce"] is None and again["transport"] == "http"
    check_side(again["replay"], 100000)
    assert again["replay"]["bytes"] == written
    # ...and over the native protocol, with one connection for all four shards.
    native = only_run(bench(
        shardline_binary, "replay", "--no-fill", "--endpoint", server.endpoint,
        "--native", native_addr, "--stream", "b-replay", "--consumers", "1",
    ))
    assert native["produce"] is None
    check_side(native["replay"], 100000)
    assert native["replay"]["bytes"] == written


def test_compare_and_report(server, shardline_binary, tmp_path):
    with tempfile.TemporaryDirectory(prefix="shardline-bench-") as tmp:
        other = start_server(shardline_binary, Path(tmp) / "data")
        try:
            report = tmp_path / "report.html"
            doc = bench(
                shardline_binary, "end-to-end", "--endpoint", server.endpoint,
                "--compare", other.endpoint, "--stream", "b-compare", "--rate", "4000",
                "--duration", "2", "--report", str(report),
            )
            assert len(read_stream(other.client(), "b-compare")) == 8000
        finally:
            other.stop_and_check()
    first, second = doc["runs"]
    assert first["endpoint"] == server.endpoint and second["endpoint"] == other.endpoint
    for run in doc["runs"]:
        assert run["errors"] == {} and run["throttles"] == {}
        check_side(run["produce"], 8000)
        check_side(run["consume"], 8000)
        check_percentiles(run["end_to_end_latency"], 8000)
    cmp = doc["comparison"]
    assert cmp["throughput_ratio"] == pytest.approx(
        first["produce"]["records_per_sec"] / second["produce"]["records_per_sec"]
    )
    assert cmp["p99_latency_ratio"] == pytest.approx(
        first["end_to_end_latency"]["p99"] / second["end_to_end_latency"]["p99"]
    )
    assert len(read_stream(server.client(), "b-compare")) == 8000
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>")
    for title in ("Throughput over time", "Latency percentiles over time", "Latency by percentile"):
        assert title in html
    assert html.count("<svg") == 3 and html.count("<polyline") >= 4
    # Self-contained: nothing fetched, nothing run.
    assert "<script" not in html and "src=" not in html and "href=" not in html


def test_bad_arguments_are_refused(server, shardline_binary):
    proc = subprocess.run(
        [str(shardline_binary), "bench", "--endpoint", server.endpoint, "--batch-size", "501"],
        capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != 0
    assert b"above PutRecords' 500 records" in proc.stderr
    proc = subprocess.run(
        [str(shardline_binary), "bench", "--record-size", "uniform:9-3"],
        capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != 0 and b"MIN is above MAX" in proc.stderr


def test_streams_and_warmup(server, shardline_binary):
    doc = bench(
        shardline_binary, "produce", "--endpoint", server.endpoint, "--stream", "b-multi",
        "--streams", "2", "--shards", "1", "--rate", "10000", "--duration", "2",
        "--warmup", "1", "--producers", "1",
    )
    run = only_run(doc)
    assert run["streams"] == ["b-multi-0", "b-multi-1"] and run["shards"] == 2
    produce = run["produce"]
    assert produce["records_total"] == 20000
    # The first second's records are written but not measured.
    assert 0 < produce["records"] < 20000
    assert produce["latency"]["count"] == produce["records"]
    assert produce["bytes"] == produce["records"] * 100
    held = [len(read_stream(server.client(), s)) for s in run["streams"]]
    # One producer alternates its batches between the streams.
    assert held == [10000, 10000]
