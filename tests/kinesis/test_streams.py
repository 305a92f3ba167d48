"""Stream lifecycle through boto3: CreateStream, DeleteStream, DescribeStream(Summary),
ListStreams and the retention operations, with AWS's exact errors."""

import datetime as dt
import time

import pytest

from kinesis_client import (
    ACCOUNT,
    MAX_HASH_KEY,
    REGION,
    UUID_RE,
    assert_validation,
    aws_error,
    create_stream,
    item,
    not_found,
    shard_id,
    unique_name,
    validation_message,
    wait_active,
)

NAME_PATTERN = "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"


def test_create_stream_describes_shards_spanning_the_hash_space(kinesis):
    name = unique_name("create")
    before = time.time()
    create_stream(kinesis, name, 3)
    desc = kinesis.describe_stream(StreamName=name)["StreamDescription"]
    assert desc["StreamName"] == name
    assert desc["StreamARN"] == f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"
    assert desc["StreamStatus"] == "ACTIVE"
    assert desc["RetentionPeriodHours"] == 24
    assert desc["HasMoreShards"] is False
    assert desc["EncryptionType"] == "NONE"
    assert desc["EnhancedMonitoring"] == [{"ShardLevelMetrics": []}]
    assert desc["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert UUID_RE.match(kinesis.describe_stream(StreamName=name)["ResponseMetadata"]["RequestId"])
    created = desc["StreamCreationTimestamp"].timestamp()
    assert before - 2 <= created <= time.time() + 1
    step = 2**128 // 3
    assert [s["ShardId"] for s in desc["Shards"]] == [shard_id(i) for i in range(3)]
    for i, s in enumerate(desc["Shards"]):
        end = MAX_HASH_KEY if i == 2 else (i + 1) * step - 1
        assert s["HashKeyRange"] == {"StartingHashKey": str(i * step), "EndingHashKey": str(end)}
        assert "ParentShardId" not in s
        assert "EndingSequenceNumber" not in s["SequenceNumberRange"]
        assert len(s["SequenceNumberRange"]["StartingSequenceNumber"]) == 56


def test_two_shard_ranges_match_aws(kinesis):
    name = unique_name("two")
    create_stream(kinesis, name, 2)
    shards = kinesis.list_shards(StreamName=name)["Shards"]
    assert [s["HashKeyRange"] for s in shards] == [
        {"StartingHashKey": "0", "EndingHashKey": "170141183460469231731687303715884105727"},
        {
            "StartingHashKey": "170141183460469231731687303715884105728",
            "EndingHashKey": "340282366920938463463374607431768211455",
        },
    ]


def test_describe_stream_summary(kinesis):
    name = unique_name("summary")
    create_stream(kinesis, name, 2)
    s = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["StreamName"] == name
    assert s["OpenShardCount"] == 2
    assert s["ConsumerCount"] == 0
    assert s["RetentionPeriodHours"] == 24
    assert s["StreamARN"].endswith(f":stream/{name}")
    # The ARN alone names the stream too.
    by_arn = kinesis.describe_stream_summary(StreamARN=s["StreamARN"])
    assert by_arn["StreamDescriptionSummary"]["StreamName"] == name


def test_create_existing_stream_is_resource_in_use(kinesis):
    name = unique_name("dup")
    create_stream(kinesis, name, 1)
    with aws_error("ResourceInUseException",
                   f"Stream {name} under account {ACCOUNT} already exists."):
        kinesis.create_stream(StreamName=name, ShardCount=1)


def test_delete_stream_then_it_is_not_found(kinesis):
    name = unique_name("delete")
    create_stream(kinesis, name, 1)
    kinesis.delete_stream(StreamName=name)
    deadline = time.monotonic() + 10
    while True:
        try:
            status = kinesis.describe_stream_summary(StreamName=name)[
                "StreamDescriptionSummary"]["StreamStatus"]
        except kinesis.exceptions.ResourceNotFoundException as e:
            assert e.response["Error"]["Message"] == not_found(name)
            break
        assert status == "DELETING"
        assert time.monotonic() < deadline, "stream never went away"
        time.sleep(0.05)
    assert name not in kinesis.list_streams(Limit=10000)["StreamNames"]
    # The name is free again.
    create_stream(kinesis, name, 1)


@pytest.mark.parametrize("op, args", [
    ("describe_stream", {}),
    ("describe_stream_summary", {}),
    ("delete_stream", {}),
    ("list_shards", {}),
    ("put_record", {"Data": b"x", "PartitionKey": "k"}),
    ("put_records", {"Records": [{"Data": b"x", "PartitionKey": "k"}]}),
    ("increase_stream_retention_period", {"RetentionPeriodHours": 48}),
    ("decrease_stream_retention_period", {"RetentionPeriodHours": 24}),
    ("split_shard", {"ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "5"}),
    ("merge_shards", {"ShardToMerge": "shardId-000000000000",
                      "AdjacentShardToMerge": "shardId-000000000001"}),
])
def test_unknown_stream_is_resource_not_found(kinesis, op, args):
    with aws_error("ResourceNotFoundException", not_found("no-such-stream")):
        getattr(kinesis, op)(StreamName="no-such-stream", **args)


def test_unknown_stream_arn_is_resource_not_found(kinesis):
    arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/no-such-arn-stream"
    with aws_error("ResourceNotFoundException", not_found("no-such-arn-stream")):
        kinesis.describe_stream_summary(StreamARN=arn)


def test_create_stream_empty_name_and_zero_shards_lists_three_items(kinesis):
    with aws_error("ValidationException") as info:
        kinesis.create_stream(StreamName="", ShardCount=0)
    assert_validation(info.value.response["Error"]["Message"], [
        item("0", "shardCount", "Member must have value greater than or equal to 1"),
        item("", "streamName", NAME_PATTERN),
        item("", "streamName", "Member must have length greater than or equal to 1"),
    ])


@pytest.mark.parametrize("name, constraint", [
    ("bad name!", NAME_PATTERN),
    ("a" * 129, "Member must have length less than or equal to 128"),
    (f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/x", NAME_PATTERN),
])
def test_bad_stream_name_is_validation_error(kinesis, name, constraint):
    with aws_error("ValidationException", validation_message(item(name, "streamName", constraint))):
        kinesis.create_stream(StreamName=name, ShardCount=1)
    with aws_error("ValidationException", validation_message(item(name, "streamName", constraint))):
        kinesis.describe_stream(StreamName=name)


def test_missing_stream_name_is_validation_error(kinesis):
    with aws_error("ValidationException",
                   validation_message(item(None, "streamName", "Member must not be null"))):
        kinesis.create_stream(ShardCount=1)


def test_longest_legal_name_works(kinesis):
    name = "a.b_c-" + "z" * 122
    assert len(name) == 128
    create_stream(kinesis, name, 1)
    assert kinesis.describe_stream_summary(StreamName=name)[
        "StreamDescriptionSummary"]["StreamName"] == name


def test_describe_stream_pages_shards(kinesis):
    name = unique_name("paging")
    create_stream(kinesis, name, 5)
    first = kinesis.describe_stream(StreamName=name, Limit=2)["StreamDescription"]
    assert [s["ShardId"] for s in first["Shards"]] == [shard_id(0), shard_id(1)]
    assert first["HasMoreShards"] is True
    second = kinesis.describe_stream(
        StreamName=name, Limit=2, ExclusiveStartShardId=shard_id(1))["StreamDescription"]
    assert [s["ShardId"] for s in second["Shards"]] == [shard_id(2), shard_id(3)]
    assert second["HasMoreShards"] is True
    last = kinesis.describe_stream(
        StreamName=name, Limit=2, ExclusiveStartShardId=shard_id(3))["StreamDescription"]
    assert [s["ShardId"] for s in last["Shards"]] == [shard_id(4)]
    assert last["HasMoreShards"] is False
    everything = kinesis.describe_stream(StreamName=name)["StreamDescription"]
    assert len(everything["Shards"]) == 5 and everything["HasMoreShards"] is False


def test_describe_stream_limit_bounds(kinesis):
    name = unique_name("limits")
    create_stream(kinesis, name, 1)
    with aws_error("ValidationException", validation_message(
            item("0", "limit", "Member must have value greater than or equal to 1"))):
        kinesis.describe_stream(StreamName=name, Limit=0)
    with aws_error("ValidationException", validation_message(
            item("10001", "limit", "Member must have value less than or equal to 10000"))):
        kinesis.describe_stream(StreamName=name, Limit=10001)


def test_list_streams_pages_with_next_token_and_exclusive_start(kinesis):
    prefix = unique_name("ls")
    for i in range(5):
        create_stream(kinesis, f"{prefix}-{i}", 1)
    everything = kinesis.list_streams(Limit=10000)
    assert everything["HasMoreStreams"] is False
    names = everything["StreamNames"]
    assert names == sorted(names)
    assert {f"{prefix}-{i}" for i in range(5)} <= set(names)
    assert [s["StreamName"] for s in everything["StreamSummaries"]] == names
    for s in everything["StreamSummaries"]:
        assert s["StreamStatus"] == "ACTIVE"
        assert s["StreamARN"].endswith(f":stream/{s['StreamName']}")
        assert isinstance(s["StreamCreationTimestamp"], dt.datetime)

    paged, token = [], None
    while True:
        resp = kinesis.list_streams(Limit=2, NextToken=token) if token else \
            kinesis.list_streams(Limit=2)
        assert len(resp["StreamNames"]) <= 2
        paged += resp["StreamNames"]
        if not resp["HasMoreStreams"]:
            assert "NextToken" not in resp
            break
        token = resp["NextToken"]
    assert paged == names

    after = kinesis.list_streams(ExclusiveStartStreamName=f"{prefix}-1", Limit=3)
    assert after["StreamNames"][:3] == [f"{prefix}-{i}" for i in (2, 3, 4)]


def test_list_streams_limit_bounds(kinesis):
    with aws_error("ValidationException", validation_message(
            item("0", "limit", "Member must have value greater than or equal to 1"))):
        kinesis.list_streams(Limit=0)


class TestRetention:
    def test_increase_then_decrease(self, kinesis):
        name = unique_name("retention")
        create_stream(kinesis, name, 1)
        kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
        assert wait_active(kinesis, name)["RetentionPeriodHours"] == 48
        # Increasing to the current value is allowed, as is decreasing to it.
        kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
        kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=30)
        assert wait_active(kinesis, name)["RetentionPeriodHours"] == 30
        kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=8760)
        assert wait_active(kinesis, name)["RetentionPeriodHours"] == 8760
        kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=24)
        assert wait_active(kinesis, name)["RetentionPeriodHours"] == 24

    @pytest.mark.parametrize("op", ["increase_stream_retention_period",
                                    "decrease_stream_retention_period"])
    def test_bounds(self, kinesis, op):
        name = unique_name("bounds")
        create_stream(kinesis, name, 1)
        with aws_error("InvalidArgumentException",
                       "Minimum allowed retention period is 24 hours. "
                       "Requested retention period (23 hours) is too short."):
            getattr(kinesis, op)(StreamName=name, RetentionPeriodHours=23)
        with aws_error("InvalidArgumentException",
                       "Maximum allowed retention period is 8760 hours. "
                       "Requested retention period (8761 hours) is too long."):
            getattr(kinesis, op)(StreamName=name, RetentionPeriodHours=8761)

    def test_increase_below_current(self, kinesis):
        name = unique_name("incbelow")
        create_stream(kinesis, name, 1)
        kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=30)
        wait_active(kinesis, name)
        with aws_error("InvalidArgumentException",
                       f"Requested retention period (25 hours) for stream {name} can not be "
                       "shorter than existing retention period (30 hours). "
                       "Use DecreaseRetentionPeriod API."):
            kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=25)

    def test_decrease_above_current(self, kinesis):
        name = unique_name("decabove")
        create_stream(kinesis, name, 1)
        with aws_error("InvalidArgumentException",
                       f"Requested retention period (40 hours) for stream {name} can not be "
                       "longer than existing retention period (24 hours). "
                       "Use IncreaseRetentionPeriod API."):
            kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=40)

    def test_missing_hours_is_validation_error(self, kinesis):
        name = unique_name("nohours")
        create_stream(kinesis, name, 1)
        with aws_error("ValidationException", validation_message(
                item(None, "retentionPeriodHours", "Member must not be null"))):
            kinesis.increase_stream_retention_period(StreamName=name)
