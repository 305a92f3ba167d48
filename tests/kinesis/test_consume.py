"""`shardline consume` (src/cli/consume.rs) with a MultiLangDaemon record processor written
in Python from the protocol description (multilang_processor.py), against the real server:
delivery, checkpoints and their refusals, shard end across a split, graceful shutdown, and
fail-over after a worker is killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path

from kinesis_client import create_stream, list_all_shards, unique_name, wait_active

PROCESSOR = Path(__file__).with_name("multilang_processor.py")
LEASES_TARGET = "ShardlineLeases_20261126"


def seq_key(seq: str) -> tuple[int, str]:
    return (len(seq), seq)


def lease_call(server, op: str, body: dict) -> dict:
    request = urllib.request.Request(
        server.endpoint + "/",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"{LEASES_TARGET}.{op}",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def leases(server, app: str) -> list[dict]:
    return lease_call(server, "ListLeases", {"ApplicationName": app})["Leases"]


class Consumer:
    """One `shardline consume` process in its own process group (its processors with it)."""

    def __init__(self, binary, server, stream: str, app: str, worker: str, log_dir: Path,
                 *extra: str, checkpoint_every: int = 10, probe: bool = False):
        self.stderr_path = log_dir / f"{worker}.stderr"
        self.killed = False
        cmd = [
            str(binary), "consume", stream, "--app", app, "--endpoint", server.endpoint,
            "--worker-id", worker, "--idle-ms", "100", "--shard-sync-ms", "1000", *extra,
            "--", sys.executable, str(PROCESSOR), "--log-dir", str(log_dir),
            "--checkpoint-every", str(checkpoint_every),
        ]
        if probe:
            cmd.append("--probe-errors")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["SHARDLINE_LOG"] = "info"
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=stderr, env=env, start_new_session=True)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def terminate(self, timeout: float = 20) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            raise AssertionError(f"consume did not stop on SIGTERM; stderr:\n{self.stderr()}")

    def kill_group(self) -> None:
        self.killed = True
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


def read_log(log_dir: Path) -> list[dict]:
    entries = []
    for path in log_dir.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            if line.strip():
                entries.append(json.loads(line))
    entries.sort(key=lambda e: e["t"])
    return entries


def wait_until(what: str, timeout: float, check, consumers=()) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        exited = [c for c in consumers if c.proc.poll() is not None and not c.killed]
        if exited or time.monotonic() > deadline:
            reason = "a consumer exited" if exited else "timed out"
            details = "\n".join(f"--- {c.stderr_path.name}\n{c.stderr()}" for c in consumers)
            raise AssertionError(f"{reason} waiting for {what}\n{details}")
        time.sleep(0.1)


def put(kinesis, stream: str, prefix: str, n: int) -> list[tuple[str, str, str]]:
    """Writes n records (data `prefix-i`); returns (shard, sequence number, data) each."""
    written = []
    for start in range(0, n, 100):
        entries = [{"PartitionKey": f"k{i % 13}", "Data": f"{prefix}-{i:05d}".encode()}
                   for i in range(start, min(n, start + 100))]
        out = kinesis.put_records(StreamName=stream, Records=entries)
        assert out["FailedRecordCount"] == 0
        for entry, result in zip(entries, out["Records"]):
            written.append((result["ShardId"], result["SequenceNumber"], entry["Data"].decode()))
    return written


def test_multilang_processor_sees_every_record_and_checkpoints(shardline_binary, server,
                                                              kinesis, tmp_path):
    stream = unique_name("consume")
    app = unique_name("app")
    create_stream(kinesis, stream, 2)
    wait_active(kinesis, stream)
    written = put(kinesis, stream, "a", 60)
    c = Consumer(shardline_binary, server, stream, app, "w1", tmp_path, probe=True)
    try:
        def records():
            return [e for e in read_log(tmp_path) if e["event"] == "record"]

        wait_until("60 records", 30, lambda: len(records()) >= 60, [c])
        # Split a shard under the consumer, then write to the children.
        parent = written[0][0]
        shard = next(s for s in list_all_shards(kinesis, stream) if s["ShardId"] == parent)
        lo = int(shard["HashKeyRange"]["StartingHashKey"])
        hi = int(shard["HashKeyRange"]["EndingHashKey"])
        kinesis.split_shard(StreamName=stream, ShardToSplit=parent,
                            NewStartingHashKey=str((lo + hi) // 2))
        wait_active(kinesis, stream)
        written += put(kinesis, stream, "b", 40)
        wait_until("100 records", 30, lambda: len(records()) >= 100, [c])
        assert c.terminate() == 0, c.stderr()
    finally:
        if c.proc.poll() is None:
            c.kill_group()

    log = read_log(tmp_path)
    # Every record exactly once, in sequence-number order within its shard.
    by_shard = defaultdict(list)
    for e in log:
        if e["event"] == "record":
            by_shard[e["shard"]].append((e["seq"], e["data"]))
    expected = defaultdict(list)
    for shard_id, seq, data in written:
        expected[shard_id].append((seq, data))
    for shard_id in expected:
        expected[shard_id].sort(key=lambda r: seq_key(r[0]))
    assert dict(by_shard) == dict(expected)

    checkpoints = [e for e in log if e["event"] == "checkpoint"]
    # The refusals the protocol promises.
    errors = {e["why"]: e["error"] for e in checkpoints if not e["ok"]}
    assert errors.get("probe-initialize") == "InvalidStateException", checkpoints
    assert errors.get("probe-beyond") == "IllegalArgumentException", checkpoints
    assert all(e["ok"] for e in checkpoints if not e["why"].startswith("probe")), checkpoints
    # The split parent ended: shardEnded checkpointed SHARD_END, before any child started.
    ended = [e for e in checkpoints if e["why"] == "shardEnded"]
    assert [(e["shard"], e["seq"]) for e in ended] == [(parent, "SHARD_END")]
    children = [s["ShardId"] for s in list_all_shards(kinesis, stream)
                if s.get("ParentShardId") == parent]
    assert len(children) == 2
    child_inits = [e for e in log if e["event"] == "initialize" and e["shard"] in children]
    assert child_inits and all(e["t"] >= ended[0]["t"] for e in child_inits)

    # Shutdown: the final checkpoints are in the table at each shard's last record, and every
    # lease was handed back.
    table = {lease["LeaseKey"]: lease for lease in leases(server, app)}
    assert table[parent]["Checkpoint"] == "SHARD_END"
    for shard_id, records in expected.items():
        if shard_id == parent:
            continue
        assert table[shard_id]["Checkpoint"] == records[-1][0], table[shard_id]
    assert all("LeaseOwner" not in lease for lease in table.values()), table


def test_stolen_lease_refuses_the_childs_checkpoint_then_lease_lost(shardline_binary, server,
                                                                   kinesis, tmp_path):
    stream = unique_name("stolen")
    app = unique_name("app")
    create_stream(kinesis, stream, 1)
    wait_active(kinesis, stream)
    first = put(kinesis, stream, "a", 3)
    # A long failover: renewals (every 20 s) stay out of the way, so the refusal comes from
    # the child's own checkpoint.
    c = Consumer(shardline_binary, server, stream, app, "w1", tmp_path, "--failover-ms", "60000",
                 checkpoint_every=1)
    try:
        def events(kind):
            return [e for e in read_log(tmp_path) if e["event"] == kind]

        wait_until("a checkpoint at the third record", 30,
                   lambda: any(e["seq"] == first[-1][1] for e in events("checkpoint")), [c])
        shard_id = first[0][0]
        while True:
            lease = lease_call(server, "DescribeLease",
                               {"ApplicationName": app, "LeaseKey": shard_id})["Lease"]
            try:
                lease_call(server, "TakeLease", {"ApplicationName": app, "LeaseKey": shard_id,
                                                 "Owner": "intruder",
                                                 "ExpectedCounter": lease["LeaseCounter"]})
                break
            except urllib.error.HTTPError as e:
                # A renewal moved the counter between the two calls: read it again.
                assert json.loads(e.read())["__type"] == "ConditionalCheckFailedException"
        put(kinesis, stream, "b", 1)
        wait_until("leaseLost", 30, lambda: events("leaseLost"), [c])
        assert c.terminate() == 0, c.stderr()
    finally:
        if c.proc.poll() is None:
            c.kill_group()
    log = read_log(tmp_path)
    refused = [e for e in log if e["event"] == "checkpoint" and not e["ok"]]
    assert [e["error"] for e in refused] == ["ShutdownException"]
    lost = [e for e in log if e["event"] == "leaseLost"]
    assert len(lost) == 1 and lost[0]["t"] >= refused[0]["t"]
    lease = lease_call(server, "DescribeLease", {"ApplicationName": app, "LeaseKey": shard_id})
    assert lease["Lease"]["LeaseOwner"] == "intruder"
    assert lease["Lease"]["Checkpoint"] == first[-1][1]


def test_fanout_consume_reads_through_subscribe_to_shard(shardline_binary, server, kinesis,
                                                        tmp_path):
    stream = unique_name("efo")
    app = unique_name("app")
    create_stream(kinesis, stream, 2)
    wait_active(kinesis, stream)
    written = put(kinesis, stream, "a", 50)
    c = Consumer(shardline_binary, server, stream, app, "w1", tmp_path, "--fanout", "multilang")
    try:
        def count():
            return sum(1 for e in read_log(tmp_path) if e["event"] == "record")

        wait_until("50 records", 30, lambda: count() >= 50, [c])
        written += put(kinesis, stream, "b", 30)
        wait_until("80 records", 30, lambda: count() >= 80, [c])
        assert c.terminate() == 0, c.stderr()
    finally:
        if c.proc.poll() is None:
            c.kill_group()
    by_shard = defaultdict(list)
    for e in read_log(tmp_path):
        if e["event"] == "record":
            by_shard[e["shard"]].append(e["seq"])
    expected = defaultdict(list)
    for shard_id, seq, _ in written:
        expected[shard_id].append(seq)
    assert dict(by_shard) == {k: sorted(v, key=seq_key) for k, v in expected.items()}
    arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    names = [c["ConsumerName"] for c in kinesis.list_stream_consumers(StreamARN=arn)["Consumers"]]
    assert names == ["multilang"]
    table = {lease["LeaseKey"]: lease for lease in leases(server, app)}
    for shard_id, seqs in expected.items():
        assert table[shard_id]["Checkpoint"] == max(seqs, key=seq_key)


def test_killed_worker_shards_fail_over_and_resume_from_checkpoints(shardline_binary, server,
                                                                   kinesis, tmp_path):
    stream = unique_name("failover")
    app = unique_name("app")
    create_stream(kinesis, stream, 8)
    wait_active(kinesis, stream)
    failover_ms = 1500
    workers = ["w1", "w2", "w3"]
    consumers = {w: Consumer(shardline_binary, server, stream, app, w, tmp_path,
                             "--failover-ms", str(failover_ms), checkpoint_every=5)
                 for w in workers}
    written: list[tuple[str, str, str]] = []
    stop = threading.Event()

    def produce():
        i = 0
        while not stop.is_set():
            written.extend(put(kinesis, stream, f"p{i:03d}", 20))
            i += 1
            time.sleep(0.1)

    producer = threading.Thread(target=produce)
    try:
        def balanced():
            owners = defaultdict(int)
            try:
                table = leases(server, app)
            except urllib.error.HTTPError as e:
                # Before the first worker's SyncLeases the table does not exist.
                assert json.loads(e.read())["__type"] == "ResourceNotFoundException"
                return False
            for lease in table:
                owners[lease.get("LeaseOwner")] += 1
            return sorted(owners.get(w, 0) for w in workers) == [2, 3, 3]

        wait_until("the 8 leases spread 3/3/2 over the workers", 30, balanced,
                   consumers.values())
        # A worker whose lease was just stolen notices at its next renewal (every
        # failover/3): let that happen before any record exists, so that the only
        # redeliveries are those the kill causes.
        time.sleep(2 * failover_ms / 3000)
        assert balanced()
        producer.start()
        time.sleep(3)
        victim = "w3"
        victim_shards = {l["LeaseKey"] for l in leases(server, app)
                         if l.get("LeaseOwner") == victim}
        consumers[victim].kill_group()
        kill_t = time.time()
        time.sleep(3)
        stop.set()
        producer.join()

        def all_processed():
            seen = {e["data"] for e in read_log(tmp_path) if e["event"] == "record"}
            return all(data in seen for _, _, data in written)

        wait_until("every record processed", 30, all_processed, consumers.values())
        for w in workers:
            if w != victim:
                assert consumers[w].terminate() == 0, consumers[w].stderr()
    finally:
        stop.set()
        if producer.is_alive():
            producer.join()
        for c in consumers.values():
            if c.proc.poll() is None:
                c.kill_group()

    log = read_log(tmp_path)
    assert len(victim_shards) in (2, 3)
    # The victim's processors died with it: nothing of theirs is logged after the kill.
    victim_pids = {e["pid"] for e in log if e["event"] == "initialize"
                   and e["t"] < kill_t and e["shard"] in victim_shards}
    assert victim_pids and not [e for e in log if e["pid"] in victim_pids and e["t"] > kill_t]
    # The survivors took the victim's shards over after the failover time, resuming from the
    # last checkpoint the victim made: the last one answered, or the one it had asked for
    # when it was killed (which the daemon may have written before the kill).
    last_checkpoint = {}
    in_flight = {}
    for e in log:
        if e["pid"] not in victim_pids:
            continue
        if e["event"] == "checkpoint-request":
            in_flight[e["shard"]] = e["requested"]
        elif e["event"] == "checkpoint":
            del in_flight[e["shard"]]
            if e["ok"]:
                last_checkpoint[e["shard"]] = e["seq"]
    resumed = {}
    for shard_id in victim_shards:
        takeover = [e for e in log if e["event"] == "initialize" and e["shard"] == shard_id
                    and e["t"] > kill_t]
        assert takeover, f"{shard_id} was not taken over"
        assert takeover[0]["t"] - kill_t >= failover_ms / 1000 - 0.6, takeover[0]
        landed = {last_checkpoint.get(shard_id, "TRIM_HORIZON")}
        if in_flight.get(shard_id) is not None:
            landed.add(in_flight[shard_id])
        assert takeover[0]["seq"] in landed, (shard_id, takeover[0], landed)
        resumed[shard_id] = takeover[0]["seq"]
    # At least once: every record processed; twice only after the checkpoint its shard was
    # resumed from.
    counts = defaultdict(int)
    record_shard = {}
    for e in log:
        if e["event"] == "record":
            counts[e["data"]] += 1
            record_shard[e["data"]] = (e["shard"], e["seq"])
    assert {data for _, _, data in written} <= set(counts)
    duplicates = [data for data, n in counts.items() if n > 1]
    for data in duplicates:
        shard_id, seq = record_shard[data]
        assert shard_id in victim_shards, (data, shard_id)
        floor = resumed[shard_id]
        assert floor == "TRIM_HORIZON" or seq_key(seq) > seq_key(floor), (data, seq, floor)
    # Per shard, each process saw its records in order.
    per_pid = defaultdict(list)
    for e in log:
        if e["event"] == "record":
            per_pid[(e["shard"], e["pid"])].append(seq_key(e["seq"]))
    assert all(seqs == sorted(seqs) for seqs in per_pid.values())
