"""Process-level crash recovery (STYLE.md section 6, layer 3): write with acknowledgements,
`kill -9` the server mid-load, restart it on the same data directory, and check that every
acknowledged record is there exactly once, in order, with the sequence number it was
acknowledged with. Also: a graceful restart keeps streams, shards, records and iterators.

Everything runs on loopback and is bounded: KILLS kills at random moments, each a few
seconds apart (about 20 s in all). The random seed is printed and can be fixed with
SHARDLINE_CRASH_SEED to replay a failure's kill timing.
"""

import os
import random
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from conftest import start_server
from kinesis_client import boto_client, create_stream, read_shard, seq_fields, shard_id, wait_active

SHARDS = 4
PRODUCERS = 4
BATCH = 20
KILLS = 5
GAP_SECS = (1.5, 3.5)  # load between two kills
TAIL_SECS = 1.0        # load after the last restart


class Endpoint:
    """Where the producers should send: changes on every restart."""

    def __init__(self, url):
        self._lock = threading.Lock()
        self.url = url
        self.generation = 0

    def set(self, url):
        with self._lock:
            self.url = url
            self.generation += 1

    def get(self):
        with self._lock:
            return self.generation, self.url


class Producer(threading.Thread):
    """Sends PutRecords batches until stopped; keeps every acknowledged record and every
    record it ever tried to send."""

    def __init__(self, pid, stream, endpoint, stop):
        super().__init__(name=f"producer-{pid}", daemon=True)
        self.pid = pid
        self.stream = stream
        self.endpoint = endpoint
        self.stop = stop
        self.acked = []      # (batch, shard, seq, data)
        self.attempted = set()
        self.transport_errors = 0
        self.client_errors = []
        self.record_failures = []
        self.crashed = None

    def run(self):
        try:
            self._run()
        except BaseException as e:  # surfaced by the test after join()
            self.crashed = e

    def _run(self):
        gen, client, batch_no = None, None, 0
        while not self.stop.is_set():
            g, url = self.endpoint.get()
            if g != gen:
                gen, client = g, boto_client(url, read_timeout=15)
            batch = [{"Data": f"p{self.pid}-b{batch_no}-r{j}".encode(),
                      "PartitionKey": f"p{self.pid}-k{j % 7}"} for j in range(BATCH)]
            self.attempted.update(e["Data"] for e in batch)
            try:
                resp = client.put_records(StreamName=self.stream, Records=batch)
            except BotoCoreError:
                # Connection refused/reset/closed while the server is down: not acknowledged.
                self.transport_errors += 1
                time.sleep(0.02)
            except ClientError as e:
                self.client_errors.append(e.response.get("Error"))
                time.sleep(0.02)
            else:
                assert len(resp["Records"]) == len(batch)
                for entry, r in zip(batch, resp["Records"]):
                    if "SequenceNumber" in r:
                        self.acked.append((batch_no, r["ShardId"], r["SequenceNumber"],
                                           entry["Data"]))
                    else:
                        self.record_failures.append((r.get("ErrorCode"), r.get("ErrorMessage")))
            batch_no += 1


def read_everything(client, stream):
    """{shard_id: [(seq, data, partition_key)]} from TRIM_HORIZON to the end of each shard."""
    out = {}
    for s in client.list_shards(StreamName=stream)["Shards"]:
        records, _ = read_shard(client, stream, s["ShardId"], limit=10_000)
        out[s["ShardId"]] = [(r["SequenceNumber"], r["Data"], r["PartitionKey"]) for r in records]
    return out


def check_log(log, producers):
    """Every acknowledged record exactly once with its sequence number; nothing twice;
    nothing that was never sent; per shard in sequence order."""
    attempted = set().union(*(p.attempted for p in producers))
    where = {}
    for shard, records in log.items():
        seqs = [int(seq) for seq, _, _ in records]
        assert seqs == sorted(seqs), f"{shard}: records out of sequence-number order"
        assert len(set(seqs)) == len(seqs), f"{shard}: a sequence number appears twice"
        for seq, data, _ in records:
            assert data not in where, f"{data!r} appears twice: {where[data]} and {(shard, seq)}"
            assert data in attempted, f"{data!r} was never sent"
            assert seq_fields(seq)["shard"] == int(shard[-12:])
            where[data] = (shard, seq)
    missing, moved = [], []
    for p in producers:
        for _batch, shard, seq, data in p.acked:
            if data not in where:
                missing.append((data, shard, seq))
            elif where[data] != (shard, seq):
                moved.append((data, (shard, seq), where[data]))
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:5]}"
    assert not moved, f"{len(moved)} records changed shard/sequence number, e.g. {moved[:5]}"
    # A producer's batches are sequential: in each shard, a later batch sorts later.
    for p in producers:
        last = defaultdict(lambda: (-1, 0))  # shard -> (batch, max seq)
        for batch, shard, seq, _data in p.acked:
            prev_batch, prev_seq = last[shard]
            if batch > prev_batch:
                assert int(seq) > prev_seq, f"producer {p.pid}: batch {batch} sorts before " \
                                            f"batch {prev_batch} in {shard}"
                last[shard] = (batch, int(seq))
            else:
                last[shard] = (batch, max(prev_seq, int(seq)))
    return len(where)


# The default committer, several committer threads (shards' writes and syncs overlap), and
# direct (O_DIRECT) writes, whose padding past the log's end recovery must cut off.
@pytest.mark.parametrize("server_args", [[], ["--committer-threads", "4"], ["--direct-writes"]],
                         ids=["default", "4-committers", "direct-writes"])
def test_acknowledged_records_survive_repeated_kill_9(shardline_binary, server_args):
    seed = int(os.environ.get("SHARDLINE_CRASH_SEED", random.randrange(1 << 32)))
    print(f"crash test seed: {seed} (set SHARDLINE_CRASH_SEED to replay)")
    rng = random.Random(seed)
    stream = "crash"
    with tempfile.TemporaryDirectory(prefix="shardline-crash-") as tmp:
        server = start_server(shardline_binary, Path(tmp) / "data", server_args)
        try:
            create_stream(server.client(), stream, SHARDS)
            endpoint = Endpoint(server.endpoint)
            stop = threading.Event()
            producers = [Producer(i, stream, endpoint, stop) for i in range(PRODUCERS)]
            for p in producers:
                p.start()
            try:
                acked_at_restart = 0
                for kill in range(KILLS):
                    time.sleep(rng.uniform(*GAP_SECS))
                    acked_now = sum(len(p.acked) for p in producers)
                    assert acked_now > acked_at_restart, (
                        f"no record acknowledged between restart and kill {kill + 1}; "
                        f"stderr:\n{server.stderr_tail()}")
                    server.kill()
                    time.sleep(rng.uniform(0, 0.2))
                    server.start()
                    endpoint.set(server.endpoint)
                    acked_at_restart = sum(len(p.acked) for p in producers)
                time.sleep(TAIL_SECS)
                # A graceful stop in the middle of the load: in-flight requests finish and
                # the process exits 0.
                server.stop_and_check()
            finally:
                stop.set()
                for p in producers:
                    p.join(timeout=30)
            for p in producers:
                assert not p.is_alive(), f"producer {p.pid} did not stop"
                assert p.crashed is None, f"producer {p.pid} failed: {p.crashed!r}"
                assert not p.client_errors, f"server errors under load: {p.client_errors[:5]}"
            acked = sum(len(p.acked) for p in producers)
            assert acked >= 1000, f"only {acked} records acknowledged"
            server.start()
            client = server.client()
            wait_active(client, stream)
            log = read_everything(client, stream)
            present = check_log(log, producers)
            failures = sum(len(p.record_failures) for p in producers)
            print(f"acknowledged {acked}, present {present}, per-record failures {failures}, "
                  f"transport errors {sum(p.transport_errors for p in producers)}")
            # A clean stop and start changes nothing.
            server.stop_and_check()
            server.start()
            assert read_everything(server.client(), stream) == log
        finally:
            if server.proc is not None:
                server.stop_and_check()


def test_create_stream_flag_survives_restarts(shardline_binary):
    """`serve --create-stream NAME:SHARDS` creates the stream once; starting again with the
    same flag keeps the existing stream and its records."""
    with tempfile.TemporaryDirectory(prefix="shardline-flag-") as tmp:
        server = start_server(shardline_binary, Path(tmp) / "data",
                              ["--create-stream", "preset:3"])
        try:
            client = server.client()
            summary = wait_active(client, "preset")
            assert summary["OpenShardCount"] == 3
            put = client.put_record(StreamName="preset", Data=b"kept", PartitionKey="k")
            server.stop_and_check()
            server.start()
            client = server.client()
            assert wait_active(client, "preset")["OpenShardCount"] == 3
            records, _ = read_shard(client, "preset", put["ShardId"])
            assert [(r["Data"], r["SequenceNumber"]) for r in records] == [
                (b"kept", put["SequenceNumber"])]
        finally:
            if server.proc is not None:
                server.stop_and_check()


def test_graceful_restart_keeps_streams_records_and_iterators(shardline_binary):
    with tempfile.TemporaryDirectory(prefix="shardline-restart-") as tmp:
        server = start_server(shardline_binary, Path(tmp) / "data")
        try:
            client = server.client()
            create_stream(client, "kept", 2)
            client.increase_stream_retention_period(StreamName="kept", RetentionPeriodHours=48)
            wait_active(client, "kept")
            client.add_tags_to_stream(StreamName="kept", Tags={"team": "streams"})
            client.start_stream_encryption(StreamName="kept", EncryptionType="KMS",
                                           KeyId="alias/kept")
            wait_active(client, "kept")
            sent = [client.put_record(StreamName="kept", Data=f"r{i}".encode(),
                                      PartitionKey=f"k{i}", ExplicitHashKey="0")
                    for i in range(5)]
            client.split_shard(StreamName="kept", ShardToSplit=shard_id(0),
                               NewStartingHashKey=str(2**126))
            wait_active(client, "kept")
            after = client.put_record(StreamName="kept", Data=b"child", PartitionKey="c",
                                      ExplicitHashKey="0")
            shards_before = client.list_shards(StreamName="kept")["Shards"]
            it = client.get_shard_iterator(StreamName="kept", ShardId=shard_id(0),
                                           ShardIteratorType="AT_SEQUENCE_NUMBER",
                                           StartingSequenceNumber=sent[2]["SequenceNumber"]
                                           )["ShardIterator"]
            server.stop_and_check()
            server.start()
            client = server.client()
            summary = wait_active(client, "kept")
            assert summary["RetentionPeriodHours"] == 48
            assert summary["EncryptionType"] == "KMS" and summary["KeyId"] == "alias/kept"
            assert client.list_tags_for_stream(StreamName="kept")["Tags"] == [
                {"Key": "team", "Value": "streams"}]
            assert summary["OpenShardCount"] == 3
            assert client.list_shards(StreamName="kept")["Shards"] == shards_before
            resp = client.get_records(ShardIterator=it)
            assert [r["Data"] for r in resp["Records"]] == [b"r2", b"r3", b"r4"]
            assert [r["SequenceNumber"] for r in resp["Records"]] == [
                s["SequenceNumber"] for s in sent[2:]]
            child, _ = read_shard(client, "kept", after["ShardId"])
            assert [(r["Data"], r["SequenceNumber"]) for r in child] == [
                (b"child", after["SequenceNumber"])]
            more = client.put_record(StreamName="kept", Data=b"later", PartitionKey="c",
                                     ExplicitHashKey="0")
            assert more["ShardId"] == after["ShardId"]
            assert int(more["SequenceNumber"]) > int(after["SequenceNumber"])
        finally:
            if server.proc is not None:
                server.stop_and_check()


def test_segment_max_bytes_flag_rolls_segments_and_keeps_records(shardline_binary):
    """`serve --segment-max-bytes 1048576`: a shard's log rolls into segments of about 1 MiB
    (at most one write over), with direct writes too, and every record reads back before
    and after a restart. Values outside 1 MiB to 4 GiB are refused at start."""
    with tempfile.TemporaryDirectory(prefix="shardline-seg-") as tmp:
        data = Path(tmp) / "data"
        server = start_server(shardline_binary, data,
                              ["--segment-max-bytes", "1048576", "--direct-writes"])
        try:
            client = server.client()
            create_stream(client, "seg", 1)
            sent = []
            for i in range(40):
                batch = [os.urandom(20_000 + 97 * k) for k in range(5)]
                out = client.put_records(StreamName="seg", Records=[
                    {"Data": d, "PartitionKey": f"k{i}"} for d in batch])
                assert out["FailedRecordCount"] == 0
                sent.extend(zip(batch, (r["SequenceNumber"] for r in out["Records"])))
            records, _ = read_shard(client, "seg", shard_id(0))
            assert [(r["Data"], r["SequenceNumber"]) for r in records] == sent
            server.stop_and_check()
            logs = sorted(data.glob("streams/*-seg/shardId-000000000000/*.log"))
            assert len(logs) >= 4, [p.name for p in logs]
            for p in logs[:-1]:
                # Sealed: over 1 MiB by at most one write (five records here).
                assert (1 << 20) <= p.stat().st_size < (1 << 20) + 150_000, (p, p.stat())
            server.start()
            records, _ = read_shard(server.client(), "seg", shard_id(0))
            assert [(r["Data"], r["SequenceNumber"]) for r in records] == sent
        finally:
            if server.proc is not None:
                server.stop_and_check()
    for bad in ["1048575", str((4 << 30) + 1), "lots"]:
        proc = subprocess.run(
            [str(shardline_binary), "serve", "--segment-max-bytes", bad, "--data-dir", tmp],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert proc.returncode != 0, bad
        assert "--segment-max-bytes" in proc.stderr, proc.stderr
