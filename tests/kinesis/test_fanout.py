"""Enhanced fan-out against the real server with boto3 (HTTP/1.1, chunked event stream):
the consumer registry (RegisterStreamConsumer, Describe, List with paging, Deregister,
tags, the 20-consumer limit, EnforceConsumerDeletion, durability across kill -9) and
SubscribeToShard (every starting position, resubscribing across the subscription lifetime
with nothing lost or repeated, ChildShards at the end of a split parent, the 5-second
takeover rule, the 5-second idle heartbeat, an exception event when the consumer goes, a
slow reader next to a fast producer, CBOR, metrics).

The module's server ends subscriptions after SUBSCRIPTION_LIFETIME_MS (AWS: 5 minutes) so
that resubscribing is exercised in seconds.
"""

from __future__ import annotations

import http.client
import re
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import cbor2
import pytest
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import EventStreamError

from conftest import start_server
from test_metrics_and_limits import scrape, value
from kinesis_client import (
    ACCOUNT,
    CBOR_TYPE,
    TARGET_PREFIX,
    aws_error,
    create_stream,
    shard_id,
    unique_name,
    wait_active,
)

SUBSCRIPTION_LIFETIME_MS = 3000
SERVER_ARGS = ["--subscription-lifetime-ms", str(SUBSCRIPTION_LIFETIME_MS)]
CONSUMER_ARN_RE = re.compile(
    r"^arn:aws:kinesis:us-east-1:000000000000:stream/(?P<stream>[a-zA-Z0-9_.-]+)"
    r"/consumer/(?P<name>[a-zA-Z0-9_.-]+):(?P<secs>[0-9]+)$"
)
SHARD0 = shard_id(0)


def stream_arn(kinesis, name: str) -> str:
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
        "StreamARN"]


def new_stream(kinesis, prefix: str, shards: int = 1) -> tuple[str, str]:
    name = unique_name(prefix)
    create_stream(kinesis, name, shards)
    wait_active(kinesis, name)
    return name, stream_arn(kinesis, name)


def register(kinesis, arn: str, name: str) -> str:
    consumer = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName=name)["Consumer"]
    return consumer["ConsumerARN"]


def put(kinesis, stream: str, payloads: list[bytes]) -> list[str]:
    """PutRecords in chunks of 500; returns the sequence numbers, in order."""
    seqs = []
    for i in range(0, len(payloads), 500):
        chunk = payloads[i:i + 500]
        out = kinesis.put_records(StreamName=stream, Records=[
            {"Data": p, "PartitionKey": "k"} for p in chunk])
        assert out["FailedRecordCount"] == 0
        seqs += [r["SequenceNumber"] for r in out["Records"]]
    return seqs


def subscribe(kinesis, consumer_arn: str, position: dict, shard: str = SHARD0):
    return kinesis.subscribe_to_shard(
        ConsumerARN=consumer_arn, ShardId=shard, StartingPosition=position)["EventStream"]


@contextmanager
def aws_error_event(code: str, message: str):
    """Expects an exception event (`:message-type: exception`) of type `code` in the stream."""
    with pytest.raises(EventStreamError) as info:
        yield
    assert info.value.response["Error"] == {"Code": code, "Message": message}


class Reader:
    """Reads a shard through subscriptions in a thread: whenever a stream ends it subscribes
    again `AFTER_SEQUENCE_NUMBER` the last ContinuationSequenceNumber, as the KCL does, until
    `want` records arrived or a ChildShards event ended the shard."""

    def __init__(self, kinesis, consumer_arn: str, position: dict, want: int,
                 shard: str = SHARD0, pause: threading.Event | None = None):
        self.kinesis = kinesis
        self.consumer_arn = consumer_arn
        self.position = position
        self.want = want
        self.shard = shard
        self.pause = pause
        self.records: list[dict] = []
        self.events: list[dict] = []
        self.subscriptions = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Reader":
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            position = self.position
            while len(self.records) < self.want:
                stream = subscribe(self.kinesis, self.consumer_arn, position, self.shard)
                self.subscriptions += 1
                for event in stream:
                    if self.pause is not None:
                        self.pause.wait()
                    e = event["SubscribeToShardEvent"]
                    self.events.append(e)
                    self.records += e["Records"]
                    if e.get("ChildShards"):
                        return
                    if len(self.records) >= self.want:
                        stream.close()
                        return
                last = self.events[-1]["ContinuationSequenceNumber"]
                position = {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": last}
        except BaseException as e:  # noqa: BLE001 - reported by join()
            self.error = e

    def join(self, timeout: float = 60) -> "Reader":
        self.thread.join(timeout)
        assert not self.thread.is_alive(), (
            f"reader still running after {timeout}s with {len(self.records)} of {self.want}")
        if self.error is not None:
            raise self.error
        return self

    def data(self) -> list[bytes]:
        return [r["Data"] for r in self.records]


# --- consumer registry ---------------------------------------------------------------------


def test_register_describe_list_deregister(kinesis):
    name, arn = new_stream(kinesis, "efo-reg")
    before = time.time()
    consumer = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="app")["Consumer"]
    m = CONSUMER_ARN_RE.match(consumer["ConsumerARN"])
    assert m, consumer["ConsumerARN"]
    assert (m["stream"], m["name"]) == (name, "app")
    created = consumer["ConsumerCreationTimestamp"].timestamp()
    assert int(m["secs"]) == int(created)
    assert before - 1 <= created <= time.time() + 1
    assert consumer["ConsumerStatus"] == "ACTIVE"

    by_arn = kinesis.describe_stream_consumer(ConsumerARN=consumer["ConsumerARN"])
    by_name = kinesis.describe_stream_consumer(StreamARN=arn, ConsumerName="app")
    for d in (by_arn, by_name):
        desc = d["ConsumerDescription"]
        assert desc["ConsumerARN"] == consumer["ConsumerARN"]
        assert desc["StreamARN"] == arn
        assert desc["ConsumerStatus"] == "ACTIVE"
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["ConsumerCount"] == 1
    listed = kinesis.list_stream_consumers(StreamARN=arn)
    assert [c["ConsumerName"] for c in listed["Consumers"]] == ["app"]
    assert "NextToken" not in listed

    kinesis.deregister_stream_consumer(StreamARN=arn, ConsumerName="app")
    with aws_error("ResourceNotFoundException",
                   f"Consumer {consumer['ConsumerARN']}, account {ACCOUNT} not found."):
        kinesis.describe_stream_consumer(ConsumerARN=consumer["ConsumerARN"])
    assert kinesis.list_stream_consumers(StreamARN=arn)["Consumers"] == []
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["ConsumerCount"] == 0
    # Re-registered under the same name: a new incarnation, the old ARN stays unknown.
    time.sleep(1.0)
    again = register(kinesis, arn, "app")
    assert again != consumer["ConsumerARN"]
    kinesis.deregister_stream_consumer(ConsumerARN=again)


def test_consumer_tags_by_arn(kinesis):
    _, arn = new_stream(kinesis, "efo-tags")
    consumer_arn = kinesis.register_stream_consumer(
        StreamARN=arn, ConsumerName="tagged", Tags={"team": "a"})["Consumer"]["ConsumerARN"]
    assert kinesis.list_tags_for_resource(ResourceARN=consumer_arn)["Tags"] == [
        {"Key": "team", "Value": "a"}]
    kinesis.tag_resource(ResourceARN=consumer_arn, Tags={"env": "test", "team": "b"})
    assert kinesis.list_tags_for_resource(ResourceARN=consumer_arn)["Tags"] == [
        {"Key": "env", "Value": "test"}, {"Key": "team", "Value": "b"}]
    kinesis.untag_resource(ResourceARN=consumer_arn, TagKeys=["team"])
    assert kinesis.list_tags_for_resource(ResourceARN=consumer_arn)["Tags"] == [
        {"Key": "env", "Value": "test"}]
    # The stream's own tags are separate.
    assert kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"] == []
    missing = consumer_arn.rsplit(":", 1)[0] + ":1"
    with aws_error("ResourceNotFoundException", f"Consumer {missing}, account {ACCOUNT} not found."):
        kinesis.tag_resource(ResourceARN=missing, Tags={"a": "b"})


def test_duplicate_name_and_unknown_consumers(kinesis):
    name, arn = new_stream(kinesis, "efo-dup")
    consumer_arn = register(kinesis, arn, "twice")
    with aws_error("ResourceInUseException",
                   f"Consumer twice under stream {name} under account {ACCOUNT} already exists."):
        kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="twice")
    unknown = consumer_arn.replace("/consumer/twice:", "/consumer/nobody:")
    with aws_error("ResourceNotFoundException", f"Consumer {unknown}, account {ACCOUNT} not found."):
        kinesis.describe_stream_consumer(ConsumerARN=unknown)
    with aws_error("ResourceNotFoundException", f"Consumer {unknown}, account {ACCOUNT} not found."):
        kinesis.deregister_stream_consumer(ConsumerARN=unknown)
    with aws_error("ResourceNotFoundException", f"Consumer {unknown}, account {ACCOUNT} not found."):
        subscribe(kinesis, unknown, {"Type": "LATEST"})
    with aws_error("InvalidArgumentException"):
        kinesis.describe_stream_consumer(StreamARN=arn)
    with aws_error("ResourceNotFoundException"):
        kinesis.register_stream_consumer(
            StreamARN=arn.replace(name, unique_name("absent")), ConsumerName="x")


def test_twenty_consumers_per_stream_and_paging(kinesis):
    name, arn = new_stream(kinesis, "efo-limit")
    names = [f"c{i:02}" for i in range(20)]
    for n in names:
        register(kinesis, arn, n)
    with aws_error("LimitExceededException",
                   "Only 20 consumers can be registered to a stream at once"):
        kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="one-too-many")
    seen, pages, token = [], 0, None
    while True:
        kwargs = {"NextToken": token} if token else {}
        page = kinesis.list_stream_consumers(StreamARN=arn, MaxResults=7, **kwargs)
        pages += 1
        assert len(page["Consumers"]) <= 7
        seen += [c["ConsumerName"] for c in page["Consumers"]]
        token = page.get("NextToken")
        if not token:
            break
    assert pages == 3
    assert seen == names  # registration order, each once
    with aws_error("InvalidArgumentException", "Invalid NextToken."):
        kinesis.list_stream_consumers(StreamARN=arn, NextToken="bm90IGEgdG9rZW4=")
    # StreamCreationTimestamp picks the incarnation of the stream.
    created = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
        "StreamCreationTimestamp"]
    listed = kinesis.list_stream_consumers(StreamARN=arn, StreamCreationTimestamp=created)
    assert len(listed["Consumers"]) == 20
    with aws_error("ResourceNotFoundException",
                   f"Stream {name} under account {ACCOUNT} not found."):
        kinesis.list_stream_consumers(
            StreamARN=arn, StreamCreationTimestamp=datetime(2001, 1, 1, tzinfo=timezone.utc))
    kinesis.deregister_stream_consumer(StreamARN=arn, ConsumerName="c05")
    register(kinesis, arn, "replacement")


def test_delete_stream_needs_enforce_consumer_deletion(kinesis):
    name, arn = new_stream(kinesis, "efo-del")
    register(kinesis, arn, "holder")
    in_use = (f"Consumers exist in stream {name} under account {ACCOUNT} and "
              "EnforceConsumerDeletion is either not set or is false.")
    with aws_error("ResourceInUseException", in_use):
        kinesis.delete_stream(StreamName=name)
    with aws_error("ResourceInUseException", in_use):
        kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=False)
    kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    with aws_error("ResourceNotFoundException"):
        kinesis.describe_stream_summary(StreamName=name)


def test_consumers_survive_kill_9(shardline_binary):
    with tempfile.TemporaryDirectory(prefix="shardline-efo-") as tmp:
        srv = start_server(shardline_binary, Path(tmp) / "data")
        try:
            client = srv.client()
            name, arn = new_stream(client, "efo-durable")
            consumer_arn = register(client, arn, "durable")
            srv.kill()
            srv.start()
            client = srv.client()
            desc = client.describe_stream_consumer(ConsumerARN=consumer_arn)
            assert desc["ConsumerDescription"]["ConsumerName"] == "durable"
            assert desc["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE"
            put(client, name, [b"after-restart"])
            got = Reader(client, consumer_arn, {"Type": "TRIM_HORIZON"}, 1).start().join()
            assert got.data() == [b"after-restart"]
        finally:
            if srv.proc is not None:
                srv.stop_and_check()


# --- SubscribeToShard -----------------------------------------------------------------------


def test_subscribe_from_every_starting_position(kinesis):
    name, arn = new_stream(kinesis, "efo-pos")
    early = put(kinesis, name, [b"p0", b"p1"])
    # AT_TIMESTAMP needs a time between p1 and p2 that boto3's whole-second timestamps hold.
    boundary = int(time.time()) + 1
    time.sleep(max(0.0, boundary - time.time()) + 0.05)
    late = put(kinesis, name, [b"p2", b"p3", b"p4"])
    before = [b"p0", b"p1", b"p2", b"p3", b"p4"]
    during = [f"d{i}".encode() for i in range(20)]
    positions = {
        "TRIM_HORIZON": ({"Type": "TRIM_HORIZON"}, before),
        "LATEST": ({"Type": "LATEST"}, []),
        "AT_SEQUENCE_NUMBER": ({"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": late[0]},
                               before[2:]),
        "AFTER_SEQUENCE_NUMBER": ({"Type": "AFTER_SEQUENCE_NUMBER",
                                   "SequenceNumber": late[0]}, before[3:]),
        "AT_TIMESTAMP": ({"Type": "AT_TIMESTAMP",
                          "Timestamp": datetime.fromtimestamp(boundary, timezone.utc)},
                         before[2:]),
    }
    readers = {}
    for kind, (position, expected) in positions.items():
        consumer_arn = register(kinesis, arn, f"pos-{kind.lower()}")
        readers[kind] = Reader(kinesis, consumer_arn, position, len(expected) + len(during))
        # Subscribe before the records "during" are written: start() then wait for the
        # first event, so LATEST is fixed before they arrive.
        readers[kind].start()
    deadline = time.time() + 10
    while any(r.subscriptions == 0 or not r.events for r in readers.values()):
        assert time.time() < deadline, "subscriptions did not start"
        time.sleep(0.02)
    all_seqs = early + late + put(kinesis, name, during[:10]) + put(kinesis, name, during[10:])
    for kind, (_, expected) in positions.items():
        reader = readers[kind].join()
        assert reader.data() == expected + during, kind
        seqs = [r["SequenceNumber"] for r in reader.records]
        assert seqs == all_seqs[len(all_seqs) - len(seqs):], kind
        assert all(isinstance(r["ApproximateArrivalTimestamp"], datetime)
                   for r in reader.records)


def test_bad_starting_positions_are_errors_before_streaming(kinesis):
    name, arn = new_stream(kinesis, "efo-bad")
    consumer_arn = register(kinesis, arn, "bad")
    with aws_error("InvalidArgumentException", pattern=r".*\(2\) TRIM_HORIZON or LATEST and "
                   r"no StartingSequenceNumber\. Request specified AT_SEQUENCE_NUMBER and no "
                   r"StartingSequenceNumber\."):
        subscribe(kinesis, consumer_arn, {"Type": "AT_SEQUENCE_NUMBER"})
    with aws_error("InvalidArgumentException", pattern="Must specify timestampInMillis .*"):
        subscribe(kinesis, consumer_arn, {"Type": "AT_TIMESTAMP"})
    with aws_error("ResourceNotFoundException",
                   f"Shard {shard_id(7)} in stream {name} under account {ACCOUNT} does not exist"):
        subscribe(kinesis, consumer_arn, {"Type": "LATEST"}, shard=shard_id(7))
    with aws_error("ValidationException", pattern=".*at 'startingPosition.type' .*"):
        subscribe(kinesis, consumer_arn, {"Type": "SOMEWHERE"})


def test_resubscribing_across_the_lifetime_loses_and_repeats_nothing(kinesis):
    name, arn = new_stream(kinesis, "efo-life")
    consumer_arn = register(kinesis, arn, "life")
    total = 600
    payloads = [f"r{i:05}".encode() for i in range(total)]
    reader = Reader(kinesis, consumer_arn, {"Type": "TRIM_HORIZON"}, total).start()
    # Spread the writes over about two lifetimes, so that cut-offs fall between them.
    started = time.time()
    for i in range(0, total, 50):
        put(kinesis, name, payloads[i:i + 50])
        time.sleep(2 * SUBSCRIPTION_LIFETIME_MS / 1000 / (total / 50))
    reader.join()
    assert time.time() - started >= SUBSCRIPTION_LIFETIME_MS / 1000
    assert reader.subscriptions >= 2, "no subscription reached its lifetime"
    assert reader.data() == payloads


def test_subscription_metrics(server, kinesis):
    name, arn = new_stream(kinesis, "efo-metrics")
    consumer_arn = register(kinesis, arn, "metered")
    put(kinesis, name, [b"abcd", b"ef"])
    reader = Reader(kinesis, consumer_arn, {"Type": "TRIM_HORIZON"}, 2).start().join()
    assert reader.data() == [b"abcd", b"ef"]
    samples = scrape(server)
    shard0 = {"stream": name, "shard": SHARD0}
    assert value(samples, "shardline_subscribe_to_shard_event_records_total", **shard0) == 2
    # Partition key plus data, as for GetRecords.
    assert value(samples, "shardline_subscribe_to_shard_event_bytes_total", **shard0) == 8
    assert value(samples, "shardline_requests_total", operation="SubscribeToShard",
                 status="200") >= 1


def test_end_of_split_parent_gives_child_shards(kinesis):
    name, arn = new_stream(kinesis, "efo-split")
    consumer_arn = register(kinesis, arn, "split")
    put(kinesis, name, [b"a", b"b", b"c"])
    stream = subscribe(kinesis, consumer_arn, {"Type": "TRIM_HORIZON"})
    events = iter(stream)
    first = next(events)["SubscribeToShardEvent"]
    assert [r["Data"] for r in first["Records"]] == [b"a", b"b", b"c"]
    kinesis.split_shard(StreamName=name, ShardToSplit=SHARD0,
                        NewStartingHashKey=str(2**127))
    split_at = time.time()
    rest = [e["SubscribeToShardEvent"] for e in events]  # ends when the server ends it
    assert time.time() - split_at < SUBSCRIPTION_LIFETIME_MS / 1000, "not pushed at close"
    last = rest[-1]
    assert last["Records"] == []
    assert last.get("ContinuationSequenceNumber") is None
    children = sorted(last["ChildShards"], key=lambda c: c["ShardId"])
    assert [c["ShardId"] for c in children] == [shard_id(1), shard_id(2)]
    assert all(c["ParentShards"] == [SHARD0] for c in children)
    assert children[1]["HashKeyRange"]["StartingHashKey"] == str(2**127)
    assert all(e.get("ContinuationSequenceNumber") for e in [first] + rest[:-1])


def test_slow_reader_does_not_block_a_producer(kinesis):
    name, arn = new_stream(kinesis, "efo-slow")
    consumer_arn = register(kinesis, arn, "slow")
    pause = threading.Event()
    payload_size = 8 * 1024
    count = 2000  # 16 MiB, many times what a subscription buffers
    reader = Reader(kinesis, consumer_arn, {"Type": "TRIM_HORIZON"}, count, pause=pause).start()
    deadline = time.time() + 10
    while reader.subscriptions == 0:
        assert time.time() < deadline
        time.sleep(0.02)
    # The reader takes nothing while the producer writes everything.
    payloads = [i.to_bytes(4, "little") * (payload_size // 4) for i in range(count)]
    put(kinesis, name, payloads)
    assert len(reader.records) == 0
    pause.set()
    reader.join(120)
    assert reader.data() == payloads


def test_cbor_subscription(server, kinesis):
    name, arn = new_stream(kinesis, "efo-cbor")
    consumer_arn = register(kinesis, arn, "cbor")
    put(kinesis, name, [b"\x00\xffcbor"])
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    conn.request("POST", "/", body=cbor2.dumps({
        "ConsumerARN": consumer_arn, "ShardId": SHARD0,
        "StartingPosition": {"Type": "TRIM_HORIZON"}}),
        headers={"Content-Type": CBOR_TYPE, "X-Amz-Target": TARGET_PREFIX + "SubscribeToShard"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/vnd.amazon.eventstream"
    buffer, messages = EventStreamBuffer(), []
    while len(messages) < 2:
        chunk = resp.read1(65536)
        assert chunk, "stream ended early"
        buffer.add_data(chunk)
        messages += list(buffer)
    conn.close()
    initial, event = messages[0], messages[1]
    assert initial.headers[":event-type"] == "initial-response"
    assert event.headers[":event-type"] == "SubscribeToShardEvent"
    assert event.headers[":message-type"] == "event"
    assert event.headers[":content-type"] == CBOR_TYPE
    # Timestamps are tag 1 over epoch milliseconds (Kinesis CBOR), not RFC 8949 seconds.
    body = cbor2.loads(event.payload,
                       semantic_decoders={1: lambda value, _imm: cbor2.CBORTag(1, value)})
    arrival = body["Records"][0]["ApproximateArrivalTimestamp"]
    assert isinstance(arrival, cbor2.CBORTag) and abs(arrival.value / 1000 - time.time()) < 60
    assert [r["Data"] for r in body["Records"]] == [b"\x00\xffcbor"]
    assert body["ContinuationSequenceNumber"] == body["Records"][0]["SequenceNumber"]


def test_second_subscription_within_five_seconds_then_takeover(shardline_binary):
    """A live subscription holds (consumer, shard) for 5 s; a call after that takes over and
    the old stream ends. Also: a CREATING consumer cannot subscribe, and deregistering a
    consumer ends its subscription with a ResourceNotFound exception event."""
    with tempfile.TemporaryDirectory(prefix="shardline-efo-") as tmp:
        # Long enough that the register call and the refused subscribe both land within
        # CREATING even on a loaded machine.
        srv = start_server(shardline_binary, Path(tmp) / "data",
                           ["--state-transition-ms", "2000"])
        try:
            client = srv.client()
            name, arn = new_stream(client, "efo-takeover")
            consumer = client.register_stream_consumer(
                StreamARN=arn, ConsumerName="one")["Consumer"]
            assert consumer["ConsumerStatus"] == "CREATING"
            secs = consumer["ConsumerARN"].rsplit(":", 1)[1]
            with aws_error("ResourceInUseException",
                           f"Consumer one with creation timestamp {secs} under stream: {name} , "
                           f"account {ACCOUNT} is not in ACTIVE status."):
                subscribe(client, consumer["ConsumerARN"], {"Type": "LATEST"})
            deadline = time.time() + 10
            while client.describe_stream_consumer(ConsumerARN=consumer["ConsumerARN"])[
                    "ConsumerDescription"]["ConsumerStatus"] != "ACTIVE":
                assert time.time() < deadline
                time.sleep(0.05)

            first = subscribe(client, consumer["ConsumerARN"], {"Type": "LATEST"})
            subscribed = time.monotonic()
            old_events = []
            drained = threading.Thread(
                target=lambda: old_events.extend(first), daemon=True)
            drained.start()
            with aws_error("ResourceInUseException",
                           "Another active subscription exists for this consumer"):
                subscribe(client, consumer["ConsumerARN"], {"Type": "LATEST"})
            time.sleep(max(0.0, 5.05 - (time.monotonic() - subscribed)))
            second = subscribe(client, consumer["ConsumerARN"], {"Type": "LATEST"})
            drained.join(10)
            assert not drained.is_alive(), "the old subscription did not end on takeover"
            assert old_events, "the old subscription sent no event"
            put(client, name, [b"for-the-new-one"])
            for event in second:
                records = event["SubscribeToShardEvent"]["Records"]
                if records:
                    assert [r["Data"] for r in records] == [b"for-the-new-one"]
                    break
            second.close()

            # A consumer deregistered under a live subscription: a ResourceNotFound exception
            # event within the 5 s check interval, then the end of the stream.
            other = register(client, arn, "two")
            deadline = time.time() + 10
            while client.describe_stream_consumer(ConsumerARN=other)[
                    "ConsumerDescription"]["ConsumerStatus"] != "ACTIVE":
                assert time.time() < deadline
                time.sleep(0.05)
            doomed = subscribe(client, other, {"Type": "LATEST"})
            client.deregister_stream_consumer(ConsumerARN=other)
            with aws_error_event("ResourceNotFoundException",
                                 f"Consumer {other}, account {ACCOUNT} not found."):
                for _ in doomed:
                    pass
        finally:
            if srv.proc is not None:
                srv.stop_and_check()


def test_idle_subscription_gets_an_event_every_five_seconds(shardline_binary):
    """With nothing written, events (without records, with the same continuation) still
    arrive every 5 s, so clients can tell a quiet shard from a dead connection. Needs the
    AWS lifetime (the module's server ends subscriptions after 3 s)."""
    with tempfile.TemporaryDirectory(prefix="shardline-efo-") as tmp:
        srv = start_server(shardline_binary, Path(tmp) / "data")
        try:
            client = srv.client()
            _, arn = new_stream(client, "efo-idle")
            consumer_arn = register(client, arn, "idle")
            stream = subscribe(client, consumer_arn, {"Type": "LATEST"})
            events = iter(stream)
            first = next(events)["SubscribeToShardEvent"]
            got_first = time.monotonic()
            second = next(events)["SubscribeToShardEvent"]
            gap = time.monotonic() - got_first
            stream.close()
            assert first["Records"] == [] and second["Records"] == []
            assert second["ContinuationSequenceNumber"] == first["ContinuationSequenceNumber"]
            # The heartbeat, not a polling loop: nothing in between, and not much later.
            assert 4.0 <= gap <= 8.0, gap
        finally:
            if srv.proc is not None:
                srv.stop_and_check()
