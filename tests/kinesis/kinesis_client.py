"""Client-side pieces the Kinesis black-box tests share: a boto3 client set up for a local
server, AWS error assertions, raw HTTP requests, sequence-number decoding and shard readers.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import uuid
from contextlib import contextmanager

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

ACCOUNT = "000000000000"
REGION = "us-east-1"
MAX_HASH_KEY = 2**128 - 1
JSON_TYPE = "application/x-amz-json-1.1"
CBOR_TYPE = "application/x-amz-cbor-1.1"
TARGET_PREFIX = "Kinesis_20131202."
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def boto_client(endpoint: str, *, validate: bool = False, read_timeout: float = 60):
    """A Kinesis client for `endpoint` with dummy credentials and no retries.

    `validate=False` turns off botocore's client-side parameter checks so that bad input
    reaches the server and the server's ValidationException is what the test sees.
    """
    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region_name=REGION,
    )
    return session.client(
        "kinesis",
        endpoint_url=endpoint,
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            parameter_validation=validate,
            connect_timeout=5,
            read_timeout=read_timeout,
            tcp_keepalive=False,
        ),
    )


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def not_found(stream: str) -> str:
    return f"Stream {stream} under account {ACCOUNT} not found."


def shard_id(index: int) -> str:
    return f"shardId-{index:012d}"


@contextmanager
def aws_error(code: str, message: str | None = None, *, pattern: str | None = None):
    """Expects the block to fail with AWS error `code` (HTTP 400) and, if given, exactly
    `message` or a message fully matching the regex `pattern`."""
    with pytest.raises(ClientError) as info:
        yield info
    resp = info.value.response
    err = resp["Error"]
    assert err["Code"] == code, f"expected {code}, got {err}"
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 400, resp["ResponseMetadata"]
    if message is not None:
        assert err.get("Message") == message
    if pattern is not None:
        assert re.fullmatch(pattern, err.get("Message", "")), err.get("Message")


def validation_message(*items: str) -> str:
    n = len(items)
    head = "1 validation error detected: " if n == 1 else f"{n} validation errors detected: "
    return head + "; ".join(items)


def assert_validation(message: str, items: list[str]) -> None:
    """AWS lists validation items in no fixed order: compare the count and the set."""
    n = len(items)
    head = "1 validation error detected: " if n == 1 else f"{n} validation errors detected: "
    assert message.startswith(head), message
    assert sorted(message[len(head) :].split("; ")) == sorted(items), message


def item(value: str | None, path: str, constraint: str) -> str:
    """One validation item in AWS's wording."""
    shown = "null" if value is None else f"'{value}'"
    return f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}"


def create_stream(client, name: str, shards: int, **kwargs) -> None:
    client.create_stream(StreamName=name, ShardCount=shards, **kwargs)
    wait_active(client, name)


def wait_active(client, name: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE":
            return summary
        assert time.monotonic() < deadline, f"stream {name} not ACTIVE: {summary}"
        time.sleep(0.05)


def list_all_shards(client, name: str) -> list[dict]:
    shards, token = [], None
    while True:
        resp = (
            client.list_shards(NextToken=token) if token else client.list_shards(StreamName=name)
        )
        shards += resp["Shards"]
        token = resp.get("NextToken")
        if not token:
            return shards


def read_shard(client, name: str, shard: str, *, limit: int | None = None,
               start: dict | None = None, max_calls: int = 10_000):
    """Reads `shard` from TRIM_HORIZON (or `start`, GetShardIterator arguments).

    A closed shard is read until GetRecords returns no NextShardIterator; an open one until a
    call returns no records. Returns (records, child_shards or None).
    """
    args = start or {"ShardIteratorType": "TRIM_HORIZON"}
    it = client.get_shard_iterator(StreamName=name, ShardId=shard, **args)["ShardIterator"]
    records = []
    for _ in range(max_calls):
        kw = {"ShardIterator": it}
        if limit:
            kw["Limit"] = limit
        resp = client.get_records(**kw)
        records += resp["Records"]
        nxt = resp.get("NextShardIterator")
        if nxt is None:
            children = resp.get("ChildShards")
            assert children, f"no NextShardIterator and no ChildShards: {resp}"
            return records, children
        assert not resp.get("ChildShards"), f"ChildShards with a NextShardIterator: {resp}"
        if not resp["Records"]:
            return records, None
        it = nxt
    raise AssertionError(f"shard {shard} did not end after {max_calls} GetRecords calls")


def read_stream(client, name: str, *, limit: int | None = None) -> list[tuple[str, list]]:
    """Reads every shard the way the KCL does: roots first, a child only once all its parents
    have been drained (learning children from ChildShards). Returns [(shard_id, records)] in
    the order the shards were read."""
    shards = {s["ShardId"]: s for s in list_all_shards(client, name)}
    done: set[str] = set()
    order: list[tuple[str, list]] = []
    ready = sorted(
        sid for sid, s in shards.items()
        if not {s.get("ParentShardId"), s.get("AdjacentParentShardId")} & shards.keys()
    )
    waiting: dict[str, set[str]] = {}
    while ready:
        sid = ready.pop(0)
        records, children = read_shard(client, name, sid, limit=limit)
        done.add(sid)
        order.append((sid, records))
        for child in children or []:
            cid = child["ShardId"]
            assert sid in child["ParentShards"], child
            waiting.setdefault(cid, set(child["ParentShards"]))
            if waiting[cid] <= done and cid not in done and cid not in ready:
                ready.append(cid)
    assert done == set(shards), f"unread shards: {set(shards) - done}"
    return order


# --- sequence numbers (layout: /work/shared reference section 4, docs/formats) ---

def seq_fields(seq: str) -> dict:
    """Decodes the 47 hex digits of a 56-digit sequence number."""
    h = format(int(seq), "x")
    assert len(h) == 47, (seq, h)
    return {
        "lead": int(h[0], 16),
        "epoch": int(h[1:10], 16),
        "nibble": int(h[10], 16),
        "counter": int(h[11:27], 16),
        "reserved": int(h[27:29], 16),
        "arrival": int(h[29:38], 16),
        "shard": int(h[38:46], 16),
        "version": int(h[46], 16),
    }


def make_seq(*, epoch: int, shard: int, counter: int, arrival: int) -> str:
    h = f"2{epoch:09x}{shard & 0xF:x}{counter:016x}00{arrival:09x}{shard:08x}2"
    assert len(h) == 47
    return str(int(h, 16))


# --- raw HTTP ---

class RawResponse:
    def __init__(self, status: int, headers: dict, body: bytes, version: int = 11):
        self.status = status
        self.headers = headers
        self.body = body
        self.version = version

    def json(self):
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None


def raw_request(addr: str, *, method: str = "POST", target: str | None = None,
                body: bytes = b"", content_type: str | None = JSON_TYPE,
                headers: dict | None = None, path: str = "/") -> RawResponse:
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        h = dict(headers or {})
        if target is not None:
            h["X-Amz-Target"] = target
        if content_type is not None:
            h["Content-Type"] = content_type
        conn.request(method, path, body=body if method != "GET" else None, headers=h)
        resp = conn.getresponse()
        return RawResponse(resp.status, dict(resp.getheaders()), resp.read(), resp.version)
    finally:
        conn.close()


def call_json(addr: str, operation: str, payload) -> RawResponse:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return raw_request(addr, target=TARGET_PREFIX + operation, body=body)
