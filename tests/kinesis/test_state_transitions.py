"""Stream states against a server whose transitions take 800 ms
(`--state-transition-ms`): CREATING -> ACTIVE, ACTIVE -> UPDATING -> ACTIVE on resharding,
and DELETING -> gone, with what AWS allows in each state."""

import time

from kinesis_client import ACCOUNT, aws_error, not_found, shard_id, unique_name, wait_active

TRANSITION_MS = 800
SERVER_ARGS = ["--state-transition-ms", str(TRANSITION_MS)]


def status(kinesis, name):
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
        "StreamStatus"]


def not_active(name, state):
    return f"Stream {name} under account {ACCOUNT} not ACTIVE, instead in state {state}"


def test_creating_then_active(kinesis):
    name = unique_name("creating")
    kinesis.create_stream(StreamName=name, ShardCount=2)
    desc = kinesis.describe_stream(StreamName=name)["StreamDescription"]
    assert desc["StreamStatus"] == "CREATING"
    assert desc["Shards"] == []
    assert desc["RetentionPeriodHours"] == 24
    summaries = kinesis.list_streams()["StreamSummaries"]
    assert {s["StreamName"]: s["StreamStatus"] for s in summaries}[name] == "CREATING"
    # Records need an ACTIVE (or UPDATING) stream; resharding needs ACTIVE.
    with aws_error("ResourceNotFoundException", not_found(name)):
        kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k")
    with aws_error("ResourceInUseException", not_active(name, "CREATING")):
        kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0), NewStartingHashKey="100")
    started = time.monotonic()
    wait_active(kinesis, name)
    assert time.monotonic() - started < 5
    desc = kinesis.describe_stream(StreamName=name)["StreamDescription"]
    assert len(desc["Shards"]) == 2
    kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k")


def test_resharding_goes_through_updating(kinesis):
    name = unique_name("updating")
    kinesis.create_stream(StreamName=name, ShardCount=2)
    wait_active(kinesis, name)
    kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0), NewStartingHashKey="1000")
    assert status(kinesis, name) == "UPDATING"
    # I/O continues while UPDATING.
    put = kinesis.put_record(StreamName=name, Data=b"during", PartitionKey="k",
                             ExplicitHashKey="0")
    it = kinesis.get_shard_iterator(StreamName=name, ShardId=put["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert [r["Data"] for r in kinesis.get_records(ShardIterator=it)["Records"]] == [b"during"]
    with aws_error("ResourceInUseException", not_active(name, "UPDATING")):
        kinesis.merge_shards(StreamName=name, ShardToMerge=shard_id(2),
                             AdjacentShardToMerge=shard_id(3))
    wait_active(kinesis, name)
    kinesis.merge_shards(StreamName=name, ShardToMerge=shard_id(2),
                         AdjacentShardToMerge=shard_id(3))
    assert status(kinesis, name) == "UPDATING"
    wait_active(kinesis, name)


def test_retention_change_needs_active(kinesis):
    name = unique_name("retain")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    with aws_error("ResourceInUseException", not_active(name, "CREATING")):
        kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    wait_active(kinesis, name)
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)


def test_deleting_then_gone(kinesis):
    name = unique_name("deleting")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    wait_active(kinesis, name)
    kinesis.delete_stream(StreamName=name)
    assert status(kinesis, name) == "DELETING"
    deadline = time.monotonic() + 5
    while True:
        try:
            assert status(kinesis, name) == "DELETING"
        except kinesis.exceptions.ResourceNotFoundException as e:
            assert e.response["Error"]["Message"] == not_found(name)
            break
        assert time.monotonic() < deadline, "stream never went away"
        time.sleep(0.05)
    kinesis.create_stream(StreamName=name, ShardCount=1)
    wait_active(kinesis, name)
