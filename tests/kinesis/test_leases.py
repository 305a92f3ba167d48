"""The Lease API (`X-Amz-Target: ShardlineLeases_20261126.<Operation>`) against the real
server: every operation and its errors, the conditional rules workers rely on, sync after
SplitShard and MergeShards, initial positions, `kill -9` durability, and SigV4 with `--auth`.

Requests are plain awsJson1.1 over HTTP (there is no botocore model for this API); the
contract is the "Lease API" section of docs/api.md.
"""

import json
import tempfile
import threading
import time
from pathlib import Path

import cbor2
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import start_server
from kinesis_client import (
    ACCOUNT,
    CBOR_TYPE,
    JSON_TYPE,
    MAX_HASH_KEY,
    REGION,
    UUID_RE,
    assert_validation,
    create_stream,
    item,
    raw_request,
    shard_id,
    unique_name,
)

PREFIX = "ShardlineLeases_20261126."
SEQ = "49590338271490256608559692538361571095921575989136588898"


def call(server, op, payload, *, content_type=JSON_TYPE):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return raw_request(server.addr, target=PREFIX + op, body=body, content_type=content_type)


def ok(server, op, payload):
    resp = call(server, op, payload)
    assert resp.status == 200, (op, resp.status, resp.body)
    assert UUID_RE.match(resp.header("x-amzn-RequestId") or ""), resp.headers
    return resp.json()


def fails(server, op, payload, code, message=None, status=400):
    resp = call(server, op, payload)
    assert resp.status == status, (op, resp.status, resp.body)
    assert resp.header("x-amzn-RequestId"), resp.headers
    body = resp.json() if resp.body else {}
    assert body.get("__type") == code, body
    if message is not None:
        assert body.get("message") == message, body
    return body


def new_stream(server, shards=2):
    name = unique_name("leases")
    create_stream(server.client(), name, shards)
    return name


def sync(server, app, stream, **extra):
    return ok(server, "SyncLeases", {"ApplicationName": app, "StreamName": stream, **extra})


def lease_map(resp):
    return {l["LeaseKey"]: l for l in resp["Leases"]}


def take(server, app, key, owner, counter):
    return ok(server, "TakeLease", {"ApplicationName": app, "LeaseKey": key, "Owner": owner,
                                    "ExpectedCounter": counter})["Lease"]


def conditional(server, op, app, key, owner, counter, **extra):
    return call(server, op, {"ApplicationName": app, "LeaseKey": key, "Owner": owner,
                             "ExpectedCounter": counter, **extra})


def test_first_sync_creates_a_lease_per_shard_and_the_table_lists_them(server):
    stream = new_stream(server, 2)
    app = unique_name("app")
    resp = sync(server, app, stream)
    half = MAX_HASH_KEY // 2
    assert resp["InitialPosition"] == "TRIM_HORIZON"
    assert "Timestamp" not in resp
    assert resp["CreatedLeaseKeys"] == [shard_id(0), shard_id(1)]
    assert resp["Leases"] == [
        {"LeaseKey": shard_id(0), "StreamName": stream, "LeaseCounter": 0,
         "Checkpoint": "TRIM_HORIZON", "CheckpointSubSequenceNumber": 0,
         "OwnerSwitchesSinceCheckpoint": 0, "ParentShardIds": [], "ChildShardIds": [],
         "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(half)}},
        {"LeaseKey": shard_id(1), "StreamName": stream, "LeaseCounter": 0,
         "Checkpoint": "TRIM_HORIZON", "CheckpointSubSequenceNumber": 0,
         "OwnerSwitchesSinceCheckpoint": 0, "ParentShardIds": [], "ChildShardIds": [],
         "HashKeyRange": {"StartingHashKey": str(half + 1), "EndingHashKey": str(MAX_HASH_KEY)}},
    ]
    # Idempotent; a later InitialPosition does not change the table's.
    again = sync(server, app, stream, InitialPosition="LATEST")
    assert again["CreatedLeaseKeys"] == []
    assert again["Leases"] == resp["Leases"]
    assert again["InitialPosition"] == "TRIM_HORIZON"
    listed = ok(server, "ListLeases", {"ApplicationName": app})
    assert listed == {"Leases": resp["Leases"], "StreamName": stream,
                      "InitialPosition": "TRIM_HORIZON"}
    # StreamARN works as well as StreamName.
    arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{stream}"
    by_arn = ok(server, "SyncLeases", {"ApplicationName": app, "StreamARN": arn})
    assert by_arn["Leases"] == resp["Leases"]
    assert app in ok(server, "ListLeaseTables", {})["ApplicationNames"]
    # Lease keys are normalised like ShardId elsewhere.
    for key in [shard_id(1), "shardId-1", "1"]:
        got = ok(server, "DescribeLease", {"ApplicationName": app, "LeaseKey": key})
        assert got == {"Lease": resp["Leases"][1]}


def test_cbor_requests_get_cbor_answers(server):
    stream = new_stream(server, 1)
    app = unique_name("app")
    resp = call(server, "SyncLeases", cbor2.dumps({"ApplicationName": app, "StreamName": stream}),
                content_type=CBOR_TYPE)
    assert resp.status == 200, resp.body
    assert resp.header("Content-Type") == CBOR_TYPE
    body = cbor2.loads(resp.body)
    assert [l["LeaseKey"] for l in body["Leases"]] == [shard_id(0)]
    assert body["Leases"][0]["LeaseCounter"] == 0


def test_conditional_rules_refuse_a_stale_worker(server):
    stream = new_stream(server, 1)
    app = unique_name("app")
    sync(server, app, stream)
    key = shard_id(0)
    l = take(server, app, key, "worker-1", 0)
    assert (l["LeaseOwner"], l["LeaseCounter"], l["OwnerSwitchesSinceCheckpoint"]) == ("worker-1", 1, 1)
    resp = conditional(server, "RenewLease", app, key, "worker-1", 1)
    assert resp.status == 200 and resp.json()["Lease"]["LeaseCounter"] == 2
    # worker-2 decides the lease expired and takes it at the counter it saw.
    l = take(server, app, key, "worker-2", 2)
    assert (l["LeaseOwner"], l["LeaseCounter"], l["OwnerSwitchesSinceCheckpoint"]) == ("worker-2", 3, 2)
    # The stale worker's renew and checkpoint are refused, whatever counter it sends.
    for counter in (2, 3):
        for op, extra in (("RenewLease", {}), ("Checkpoint", {"SequenceNumber": SEQ})):
            fails(server, op, {"ApplicationName": app, "LeaseKey": key, "Owner": "worker-1",
                               "ExpectedCounter": counter, **extra},
                  "ConditionalCheckFailedException",
                  f"Lease {key} of application {app} is held by worker-2 at counter 3, "
                  f"not by worker-1 at counter {counter}")
    # A take with a stale counter is refused too; nothing changed.
    fails(server, "TakeLease", {"ApplicationName": app, "LeaseKey": key, "Owner": "worker-3",
                                "ExpectedCounter": 2},
          "ConditionalCheckFailedException",
          f"Lease {key} of application {app} is held by worker-2 at counter 3, not at counter 2")
    assert ok(server, "DescribeLease", {"ApplicationName": app, "LeaseKey": key})["Lease"] == l
    # The owner checkpoints: switches reset, counter bumped.
    resp = conditional(server, "Checkpoint", app, key, "worker-2", 3,
                       SequenceNumber=SEQ, SubSequenceNumber=7)
    assert resp.status == 200, resp.body
    l = resp.json()["Lease"]
    assert (l["Checkpoint"], l["CheckpointSubSequenceNumber"], l["LeaseCounter"],
            l["OwnerSwitchesSinceCheckpoint"]) == (SEQ, 7, 4, 0)
    # Evict: only by the owner at the counter; then anyone takes it.
    assert conditional(server, "EvictLease", app, key, "worker-1", 4).status == 400
    resp = conditional(server, "EvictLease", app, key, "worker-2", 4)
    assert resp.status == 200, resp.body
    l = resp.json()["Lease"]
    assert "LeaseOwner" not in l and l["LeaseCounter"] == 5
    fails(server, "RenewLease", {"ApplicationName": app, "LeaseKey": key, "Owner": "worker-2",
                                 "ExpectedCounter": 5},
          "ConditionalCheckFailedException",
          f"Lease {key} of application {app} is unowned at counter 5, not by worker-2 at counter 5")
    l = take(server, app, key, "worker-3", 5)
    assert (l["LeaseOwner"], l["LeaseCounter"], l["Checkpoint"]) == ("worker-3", 6, SEQ)
    # Sentinels are checkpoints too.
    resp = conditional(server, "Checkpoint", app, key, "worker-3", 6, SequenceNumber="SHARD_END")
    assert resp.json()["Lease"]["Checkpoint"] == "SHARD_END"


def test_validation_errors_use_aws_wording(server):
    body = fails(server, "TakeLease", {"ApplicationName": "bad name!", "LeaseKey": "x y",
                                       "ExpectedCounter": -1}, "ValidationException")
    assert_validation(body["message"], [
        item("bad name!", "applicationName",
             "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"),
        item("x y", "leaseKey", "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"),
        item(None, "owner", "Member must not be null"),
        item("-1", "expectedCounter", "Member must have value greater than or equal to 0"),
    ])
    body = fails(server, "Checkpoint", {"ApplicationName": "a" * 257, "LeaseKey": "1",
                                        "Owner": "w", "ExpectedCounter": 0,
                                        "SequenceNumber": "0123"}, "ValidationException")
    assert_validation(body["message"], [
        item("a" * 257, "applicationName", "Member must have length less than or equal to 256"),
        item("0123", "sequenceNumber", "Member must satisfy regular expression pattern: "
             r"0|([1-9]\d{0,128})|TRIM_HORIZON|LATEST|AT_TIMESTAMP|SHARD_END"),
    ])
    body = fails(server, "SyncLeases", {"StreamName": "s", "InitialPosition": "OLDEST"},
                 "ValidationException")
    assert_validation(body["message"], [
        item(None, "applicationName", "Member must not be null"),
        item("OLDEST", "initialPosition",
             "Member must satisfy enum value set: [TRIM_HORIZON, LATEST, AT_TIMESTAMP]"),
    ])
    body = fails(server, "RenewLease", {"ApplicationName": "a", "LeaseKey": "1",
                                        "Owner": "tab\there", "ExpectedCounter": 0},
                 "ValidationException")
    assert_validation(body["message"], [
        item("tab\there", "owner", r"Member must satisfy regular expression pattern: [^\p{Cc}]+"),
    ])
    fails(server, "SyncLeases", {"ApplicationName": "a"}, "InvalidArgumentException",
          "Either StreamName or StreamARN should be provided.")
    stream = new_stream(server, 1)
    fails(server, "SyncLeases", {"ApplicationName": "a", "StreamName": stream,
                                 "InitialPosition": "AT_TIMESTAMP"},
          "InvalidArgumentException",
          "Timestamp must be provided for the AT_TIMESTAMP InitialPosition.")
    # Member types are checked first, as SerializationException.
    fails(server, "TakeLease", {"ApplicationName": "a", "LeaseKey": "1", "Owner": "w",
                                "ExpectedCounter": "7"}, "SerializationException")
    fails(server, "ListLeases", {"ApplicationName": 5}, "SerializationException")


def test_envelope_errors(server):
    fails(server, "StealEverything", {}, "UnknownOperationException")
    # As for Kinesis: an empty body is an unknown operation's error, a malformed one a
    # serialization error, whatever the operation.
    resp = call(server, "StealEverything", b"")
    assert resp.status == 400 and resp.json()["__type"] == "UnknownOperationException"
    resp = call(server, "StealEverything", b"{not json")
    assert resp.status == 400 and resp.json()["__type"] == "SerializationException"
    resp = call(server, "ListLeases", b"")
    assert resp.status == 400 and resp.json()["__type"] == "SerializationException"
    resp = call(server, "ListLeases", b"{not json")
    assert resp.status == 400 and resp.json()["__type"] == "SerializationException"
    resp = call(server, "ListLeases", b"[1, 2]")
    assert resp.status == 400 and resp.json()["__type"] == "SerializationException"


def test_unknown_application_lease_and_stream(server):
    app = unique_name("nobody")
    msg = f"Application {app} has no lease table."
    fails(server, "ListLeases", {"ApplicationName": app}, "ResourceNotFoundException", msg)
    fails(server, "DeleteLeaseTable", {"ApplicationName": app}, "ResourceNotFoundException", msg)
    for op, extra in (("DescribeLease", {}), ("DeleteLease", {}),
                      ("TakeLease", {"Owner": "w", "ExpectedCounter": 0}),
                      ("RenewLease", {"Owner": "w", "ExpectedCounter": 0}),
                      ("EvictLease", {"Owner": "w", "ExpectedCounter": 0}),
                      ("Checkpoint", {"Owner": "w", "ExpectedCounter": 0,
                                      "SequenceNumber": "1"})):
        fails(server, op, {"ApplicationName": app, "LeaseKey": "shardId-000000000000", **extra},
              "ResourceNotFoundException", msg)
    stream = new_stream(server, 1)
    sync(server, app, stream)
    for key in ("shardId-000000000009", "shardIdx-1"):
        fails(server, "DescribeLease", {"ApplicationName": app, "LeaseKey": key},
              "ResourceNotFoundException")
    fails(server, "TakeLease", {"ApplicationName": app, "LeaseKey": "9", "Owner": "w",
                                "ExpectedCounter": 0}, "ResourceNotFoundException",
          f"Lease shardId-000000000009 of application {app} not found.")
    missing = unique_name("missing")
    fails(server, "SyncLeases", {"ApplicationName": unique_name("app"), "StreamName": missing},
          "ResourceNotFoundException", f"Stream {missing} under account {ACCOUNT} not found.")
    other = new_stream(server, 1)
    fails(server, "SyncLeases", {"ApplicationName": app, "StreamName": other},
          "InvalidArgumentException",
          f"The lease table of application {app} belongs to stream {stream}, not {other}.")


def test_deleting_the_stream_leaves_the_table_readable_but_refuses_sync(server):
    client = server.client()
    stream = new_stream(server, 1)
    app = unique_name("app")
    sync(server, app, stream)
    take(server, app, shard_id(0), "w", 0)
    client.delete_stream(StreamName=stream)
    fails(server, "SyncLeases", {"ApplicationName": app, "StreamName": stream},
          "ResourceNotFoundException", f"Stream {stream} under account {ACCOUNT} not found.")
    # Same name again: a new stream whose shards are not the ones the leases name.
    create_stream(client, stream, 1)
    fails(server, "SyncLeases", {"ApplicationName": app, "StreamName": stream},
          "ResourceNotFoundException")
    listed = ok(server, "ListLeases", {"ApplicationName": app})
    assert lease_map(listed)[shard_id(0)]["LeaseOwner"] == "w"
    ok(server, "DeleteLeaseTable", {"ApplicationName": app})
    assert app not in ok(server, "ListLeaseTables", {})["ApplicationNames"]
    assert sync(server, app, stream)["CreatedLeaseKeys"] == [shard_id(0)]


def test_sync_after_split_and_merge_creates_child_leases(server):
    client = server.client()
    stream = new_stream(server, 2)
    app = unique_name("app")
    sync(server, app, stream)
    half = MAX_HASH_KEY // 2
    client.split_shard(StreamName=stream, ShardToSplit=shard_id(0),
                       NewStartingHashKey=str(half // 2))
    resp = sync(server, app, stream)
    assert resp["CreatedLeaseKeys"] == [shard_id(2), shard_id(3)]
    leases = lease_map(resp)
    assert leases[shard_id(0)]["ChildShardIds"] == [shard_id(2), shard_id(3)]
    assert leases[shard_id(2)]["ParentShardIds"] == [shard_id(0)]
    assert leases[shard_id(2)]["Checkpoint"] == "TRIM_HORIZON"
    assert leases[shard_id(2)]["HashKeyRange"] == {"StartingHashKey": "0",
                                                   "EndingHashKey": str(half // 2 - 1)}
    assert leases[shard_id(3)]["HashKeyRange"] == {"StartingHashKey": str(half // 2),
                                                   "EndingHashKey": str(half)}
    client.merge_shards(StreamName=stream, ShardToMerge=shard_id(3),
                        AdjacentShardToMerge=shard_id(1))
    resp = sync(server, app, stream)
    assert resp["CreatedLeaseKeys"] == [shard_id(4)]
    leases = lease_map(resp)
    assert leases[shard_id(4)]["ParentShardIds"] == [shard_id(3), shard_id(1)]
    assert leases[shard_id(4)]["HashKeyRange"] == {"StartingHashKey": str(half // 2),
                                                   "EndingHashKey": str(MAX_HASH_KEY)}
    assert leases[shard_id(3)]["ChildShardIds"] == [shard_id(4)]
    assert leases[shard_id(1)]["ChildShardIds"] == [shard_id(4)]
    assert leases[shard_id(2)]["ChildShardIds"] == []
    assert sorted(leases) == [shard_id(i) for i in range(5)]
    # A finished parent's lease, once deleted, stays deleted.
    ok(server, "DeleteLease", {"ApplicationName": app, "LeaseKey": shard_id(0)})
    fails(server, "DeleteLease", {"ApplicationName": app, "LeaseKey": shard_id(0)},
          "ResourceNotFoundException")
    resp = sync(server, app, stream)
    assert resp["CreatedLeaseKeys"] == []
    assert shard_id(0) not in lease_map(resp)


def test_latest_leases_open_shards_and_never_the_skipped_ones(server):
    client = server.client()
    stream = new_stream(server, 2)
    client.split_shard(StreamName=stream, ShardToSplit=shard_id(1),
                       NewStartingHashKey=str(MAX_HASH_KEY // 4 * 3))
    latest, horizon = unique_name("latest"), unique_name("horizon")
    resp = sync(server, latest, stream, InitialPosition="LATEST")
    assert resp["InitialPosition"] == "LATEST"
    assert resp["CreatedLeaseKeys"] == [shard_id(0), shard_id(2), shard_id(3)]
    assert {l["Checkpoint"] for l in resp["Leases"]} == {"LATEST"}
    assert lease_map(resp)[shard_id(2)]["ParentShardIds"] == [shard_id(1)]
    resp = sync(server, horizon, stream, InitialPosition="TRIM_HORIZON")
    assert resp["CreatedLeaseKeys"] == [shard_id(i) for i in range(4)]
    assert {l["Checkpoint"] for l in resp["Leases"]} == {"TRIM_HORIZON"}
    assert lease_map(resp)[shard_id(1)]["ChildShardIds"] == [shard_id(2), shard_id(3)]
    # The shard LATEST left out is remembered; later children are leased at TRIM_HORIZON.
    client.split_shard(StreamName=stream, ShardToSplit=shard_id(0),
                       NewStartingHashKey=str(MAX_HASH_KEY // 4))
    resp = sync(server, latest, stream)
    assert resp["CreatedLeaseKeys"] == [shard_id(4), shard_id(5)]
    leases = lease_map(resp)
    assert shard_id(1) not in leases
    assert leases[shard_id(4)]["Checkpoint"] == "TRIM_HORIZON"
    assert leases[shard_id(0)]["ChildShardIds"] == [shard_id(4), shard_id(5)]


def test_at_timestamp_leases_shards_open_then_and_since(server):
    client = server.client()
    stream = new_stream(server, 1)
    client.split_shard(StreamName=stream, ShardToSplit=shard_id(0),
                       NewStartingHashKey=str(MAX_HASH_KEY // 2))
    # Shard 0 closed before now, so it is left out; its children are open now.
    later = time.time() + 1
    resp = sync(server, unique_name("app"), stream, InitialPosition="AT_TIMESTAMP",
                Timestamp=later)
    assert resp["InitialPosition"] == "AT_TIMESTAMP"
    assert abs(resp["Timestamp"] - later) < 0.01
    assert resp["CreatedLeaseKeys"] == [shard_id(1), shard_id(2)]
    assert {l["Checkpoint"] for l in resp["Leases"]} == {"AT_TIMESTAMP"}
    # Long ago every shard was open or still to come.
    resp = sync(server, unique_name("app"), stream, InitialPosition="AT_TIMESTAMP",
                Timestamp=1000)
    assert resp["CreatedLeaseKeys"] == [shard_id(0), shard_id(1), shard_id(2)]


ACKS_BEFORE_KILL = 20


class Worker(threading.Thread):
    """Takes one lease, then renews and checkpoints it as fast as the server answers,
    remembering the last acknowledged state and the request in flight."""

    def __init__(self, app, key, owner, server):
        super().__init__(daemon=True)
        self.app, self.key, self.owner, self.server = app, key, owner, server
        self.stop = threading.Event()
        self.acked = None        # (counter, checkpoint) after the last acknowledged change
        self.attempted = None    # (counter, checkpoint) the change in flight would produce
        self.acks = 0
        self.error = None

    def run(self):
        counter, n = None, 0
        while not self.stop.is_set():
            try:
                if counter is None:
                    resp = call(self.server, "TakeLease", {
                        "ApplicationName": self.app, "LeaseKey": self.key, "Owner": self.owner,
                        "ExpectedCounter": 0})
                    self.attempted = (1, "TRIM_HORIZON")
                else:
                    n += 1
                    seq = str(1000 + n)
                    self.attempted = (counter + 1, seq if n % 2 else self.acked[1])
                    op = "Checkpoint" if n % 2 else "RenewLease"
                    extra = {"SequenceNumber": seq} if n % 2 else {}
                    resp = call(self.server, op, {
                        "ApplicationName": self.app, "LeaseKey": self.key, "Owner": self.owner,
                        "ExpectedCounter": counter, **extra})
            except OSError:
                return  # the server died
            if resp.status != 200:
                self.error = f"{resp.status}: {resp.body!r}"
                return
            lease = resp.json()["Lease"]
            counter = lease["LeaseCounter"]
            self.acked = (counter, lease["Checkpoint"])
            if self.acked != self.attempted:
                self.error = f"acknowledged {self.acked}, expected {self.attempted}"
                return
            self.acks += 1


def test_acknowledged_lease_changes_survive_kill_9(shardline_binary):
    with tempfile.TemporaryDirectory(prefix="shardline-leases-crash-") as tmp:
        srv = start_server(shardline_binary, Path(tmp) / "data")
        try:
            stream = unique_name("crash")
            create_stream(srv.client(), stream, 4)
            app = unique_name("app")
            sync(srv, app, stream)
            for round_ in range(3):
                workers = [Worker(app, shard_id(i), f"w{round_}-{i}", srv) for i in range(4)]
                for w in workers:
                    w.start()
                deadline = time.monotonic() + 60
                while (min(w.acks for w in workers) < ACKS_BEFORE_KILL
                       and all(w.is_alive() for w in workers)
                       and time.monotonic() < deadline):
                    time.sleep(0.02)
                srv.kill()
                for w in workers:
                    w.join(timeout=30)
                    assert not w.is_alive()
                srv.start()
                leases = lease_map(ok(srv, "ListLeases", {"ApplicationName": app}))
                for w in workers:
                    assert w.error is None, (w.key, w.error)
                    assert w.acks >= ACKS_BEFORE_KILL, f"{w.key}: only {w.acks} acknowledged"
                    got = leases[w.key]
                    state = (got["LeaseCounter"], got["Checkpoint"])
                    # The acknowledged state, or the one change in flight at the kill.
                    assert state in (w.acked, w.attempted), (w.key, state, w.acked, w.attempted)
                    assert got["LeaseOwner"] == w.owner
                # Hand the leases back so that the next round's workers can take them at 0:
                # delete the table and sync again.
                ok(srv, "DeleteLeaseTable", {"ApplicationName": app})
                sync(srv, app, stream)
            # A deleted table stays deleted after a crash too.
            gone = unique_name("gone")
            sync(srv, gone, stream)
            ok(srv, "DeleteLeaseTable", {"ApplicationName": gone})
            srv.kill()
            srv.start()
            assert gone not in ok(srv, "ListLeaseTables", {})["ApplicationNames"]
            assert app in ok(srv, "ListLeaseTables", {})["ApplicationNames"]
        finally:
            if srv.proc is not None:
                srv.stop_and_check()


def test_a_damaged_table_file_stops_the_server_with_its_name(shardline_binary):
    with tempfile.TemporaryDirectory(prefix="shardline-leases-damaged-") as tmp:
        data = Path(tmp) / "data"
        srv = start_server(shardline_binary, data)
        stream = unique_name("dmg")
        create_stream(srv.client(), stream, 1)
        sync(srv, "app", stream)
        srv.stop_and_check()
        path = data / "leases" / "app.leases"
        raw = bytearray(path.read_bytes())
        raw[-1] ^= 0x01
        path.write_bytes(bytes(raw))
        with pytest.raises(AssertionError) as info:
            start_server(shardline_binary, data)
        assert str(path) in str(info.value)
        assert "CRC mismatch" in str(info.value)


AUTH_KEY_ID = "AKIDLEASETEST"
AUTH_SECRET = "bGVhc2VzLXRlc3Qtc2VjcmV0"


def test_signed_lease_requests_work_with_auth(shardline_binary):
    with tempfile.TemporaryDirectory(prefix="shardline-leases-auth-") as tmp:
        keys = Path(tmp) / "keys"
        keys.write_text(f"{AUTH_KEY_ID} {AUTH_SECRET}\n")
        srv = start_server(shardline_binary, Path(tmp) / "data", ["--auth", str(keys)])
        try:
            body = json.dumps({}).encode()
            req = AWSRequest(method="POST", url=srv.endpoint + "/", data=body, headers={
                "X-Amz-Target": PREFIX + "ListLeaseTables", "Content-Type": JSON_TYPE})
            SigV4Auth(Credentials(AUTH_KEY_ID, AUTH_SECRET), "kinesis", REGION).add_auth(req)
            resp = raw_request(srv.addr, target=None, content_type=None, body=body,
                               headers=dict(req.headers.items()))
            assert resp.status == 200, resp.body
            assert resp.json() == {"ApplicationNames": []}
            unsigned = call(srv, "ListLeaseTables", {})
            assert unsigned.status == 400
            assert unsigned.json()["__type"] == "MissingAuthenticationTokenException"
        finally:
            srv.stop_and_check()
