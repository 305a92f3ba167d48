"""KPL aggregation interop with the `aws-kinesis-agg` package (the format's reference
implementation for Python): records it aggregates, put with boto3, are de-aggregated by
`shardline tail` and `shardline consume` (sub-sequence numbers, partition keys, data), and
records aggregated by Shardline's producer (`shardline put --aggregate`) are de-aggregated
by it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from collections import defaultdict

from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import iter_deaggregate_records

from kinesis_client import create_stream, read_stream, unique_name, wait_active
from test_consume import Consumer, read_log, wait_until

MAGIC = bytes([0xF3, 0x89, 0x9A, 0xC2])


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def put_aggregated(kinesis, stream: str) -> list[dict]:
    """Puts three aggregates made by aws_kinesis_agg (user records over several keys, one
    with an explicit hash key), a plain record, and a record that starts with the magic but
    has a wrong MD5 (which must pass through as an ordinary record). Returns, per Kinesis
    record, what a reader must see: the shard, sequence number and user records."""
    expected = []
    for batch in range(3):
        agg = RecordAggregator()
        users = []
        for i in range(5 + batch):
            key = f"user-{batch}-{i % 3}"
            data = f"agg {batch} record {i}".encode()
            ehk = str(2**127 + i) if (batch, i) == (1, 2) else None
            assert agg.add_user_record(key, data, ehk) is None  # far below the size limit
            users.append((key, data))
        record = agg.clear_and_get()
        pk, ehk, data = record.get_contents()
        assert data.startswith(MAGIC)
        kw = {"ExplicitHashKey": ehk} if ehk else {}
        out = kinesis.put_record(StreamName=stream, PartitionKey=pk, Data=data, **kw)
        expected.append({"shard": out["ShardId"], "seq": out["SequenceNumber"],
                         "users": users, "aggregated": True})
    plain = kinesis.put_record(StreamName=stream, PartitionKey="plain", Data=b"just a record")
    expected.append({"shard": plain["ShardId"], "seq": plain["SequenceNumber"],
                     "users": [("plain", b"just a record")], "aggregated": False})
    body = b"\x0a\x01k"  # a protobuf fragment
    forged = MAGIC + body + hashlib.md5(b"something else").digest()
    out = kinesis.put_record(StreamName=stream, PartitionKey="forged", Data=forged)
    expected.append({"shard": out["ShardId"], "seq": out["SequenceNumber"],
                     "users": [("forged", forged)], "aggregated": False})
    return expected


def expected_user_records(expected: list[dict]) -> list[tuple]:
    """(shard, seq, sub or None, key, data) per user record."""
    rows = []
    for r in expected:
        for sub, (key, data) in enumerate(r["users"]):
            rows.append((r["shard"], r["seq"], sub if r["aggregated"] else None, key, data))
    return rows


def test_tail_deaggregates_aws_kinesis_agg_records(shardline_binary, server, kinesis):
    stream = unique_name("kpltail")
    create_stream(kinesis, stream, 2)
    wait_active(kinesis, stream)
    expected = put_aggregated(kinesis, stream)

    out = subprocess.run(
        [str(shardline_binary), "tail", stream, "--from", "trim-horizon", "--no-follow",
         "--json", "--endpoint", server.endpoint],
        capture_output=True, timeout=60, env=clean_env(), stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr.decode()
    lines = [json.loads(line) for line in out.stdout.decode().splitlines()]
    got = []
    for line in lines:
        data = line["data"].encode() if line["encoding"] == "utf-8" else \
            base64.b64decode(line["data"])
        got.append((line["shard"], line["sequence_number"], line.get("sub_sequence_number"),
                    line["partition_key"], data))
    assert sorted(got) == sorted(expected_user_records(expected))
    # Plain text output: one line per user record.
    plain = subprocess.run(
        [str(shardline_binary), "tail", stream, "--from", "trim-horizon", "--no-follow",
         "--endpoint", server.endpoint],
        capture_output=True, timeout=60, env=clean_env(), stdin=subprocess.DEVNULL)
    assert plain.returncode == 0
    assert len(plain.stdout.splitlines()) == len(got)
    assert b"agg 2 record 6" in plain.stdout.splitlines()


def test_consume_deaggregates_aws_kinesis_agg_records(shardline_binary, server, kinesis,
                                                     tmp_path):
    stream = unique_name("kplconsume")
    app = unique_name("app")
    create_stream(kinesis, stream, 2)
    wait_active(kinesis, stream)
    expected = put_aggregated(kinesis, stream)
    # The forged record is not UTF-8 text; the processor decodes data as text.
    expected = [r for r in expected if r["users"][0][0] != "forged"]
    want = expected_user_records(expected)
    c = Consumer(shardline_binary, server, stream, app, "w1", tmp_path, checkpoint_every=1)
    try:
        def records():
            return [e for e in read_log(tmp_path) if e["event"] == "record"]

        wait_until(f"{len(want)} records", 30, lambda: len(records()) >= len(want), [c])
        assert c.terminate() == 0, c.stderr()
    finally:
        if c.proc.poll() is None:
            c.kill_group()
    got = [(e["shard"], e["seq"], e["sub"], e["key"], e["data"].encode()) for e in records()]
    # multilang always carries subSequenceNumber: 0 for plain records.
    assert sorted(got) == sorted((s, q, sub or 0, k, d) for s, q, sub, k, d in want)
    # Within a shard, user records arrive in (sequence number, sub-sequence number) order.
    per_shard = defaultdict(list)
    for shard, seq, sub, _, _ in got:
        per_shard[shard].append((len(seq), seq, sub))
    assert all(v == sorted(v) for v in per_shard.values())


def test_aws_kinesis_agg_deaggregates_the_rust_producers_aggregates(shardline_binary, server,
                                                                   kinesis):
    stream = unique_name("kplput")
    create_stream(kinesis, stream, 2)
    wait_active(kinesis, stream)
    lines = [f"line {i} " + "x" * (i % 50) for i in range(400)]
    out = subprocess.run(
        [str(shardline_binary), "put", stream, "--aggregate", "--endpoint", server.endpoint],
        input="\n".join(lines).encode() + b"\n", capture_output=True, timeout=60,
        env=clean_env())
    assert out.returncode == 0, out.stderr.decode()
    assert b"400 records written" in out.stderr, out.stderr.decode()

    stored = [r for _, records in read_stream(kinesis, stream) for r in records]
    aggregated = [r for r in stored if r["Data"].startswith(MAGIC)]
    assert aggregated and len(stored) < len(lines)
    users = list(iter_deaggregate_records(stored, data_format="Boto3"))
    got = {}
    subs = defaultdict(list)
    for u in users:
        rec = u["kinesis"]
        data = base64.b64decode(rec["data"]).decode()
        got[data] = rec["partitionKey"]
        if rec.get("aggregated"):
            subs[rec["sequenceNumber"]].append(rec["subSequenceNumber"])
    assert len(subs) == len(aggregated)
    assert all(v == list(range(len(v))) and len(v) > 1 for v in subs.values()), subs
    # Partition keys are the line numbers (1-based), as for plain `put`.
    assert got == {line: str(i + 1) for i, line in enumerate(lines)}
