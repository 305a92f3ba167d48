"""Stream and account settings through boto3: tags, resource policies, encryption, enhanced
monitoring, DescribeLimits, account settings, capacity mode, UpdateShardCount,
MaxRecordSize and warm throughput."""

import json

import pytest

from kinesis_client import (
    ACCOUNT,
    MAX_HASH_KEY,
    REGION,
    aws_error,
    create_stream,
    item,
    not_found,
    read_shard,
    shard_id,
    unique_name,
    validation_message,
    wait_active,
)

ONE_MIB = 1 << 20


def fresh(kinesis, shards=1, **kw):
    name = unique_name("settings")
    create_stream(kinesis, name, shards, **kw)
    return name


def arn_of(name):
    return f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"


def tag_dict(tags):
    return {t["Key"]: t.get("Value", "") for t in tags}


class TestTags:
    def test_add_list_remove(self, kinesis):
        name = fresh(kinesis)
        kinesis.add_tags_to_stream(StreamName=name, Tags={"team": "data", "env": "test"})
        kinesis.add_tags_to_stream(StreamName=name, Tags={"env": "prod", "empty": ""})
        resp = kinesis.list_tags_for_stream(StreamName=name)
        assert tag_dict(resp["Tags"]) == {"team": "data", "env": "prod", "empty": ""}
        assert resp["HasMoreTags"] is False
        kinesis.remove_tags_from_stream(StreamName=name, TagKeys=["team", "not-there"])
        assert tag_dict(kinesis.list_tags_for_stream(StreamName=name)["Tags"]) == {
            "env": "prod", "empty": ""}

    def test_list_pages_by_key(self, kinesis):
        name = fresh(kinesis)
        kinesis.add_tags_to_stream(StreamName=name, Tags={f"k{i:02d}": str(i) for i in range(7)})
        first = kinesis.list_tags_for_stream(StreamName=name, Limit=3)
        assert len(first["Tags"]) == 3 and first["HasMoreTags"] is True
        seen = [t["Key"] for t in first["Tags"]]
        while True:
            resp = kinesis.list_tags_for_stream(StreamName=name, Limit=3,
                                                ExclusiveStartTagKey=seen[-1])
            seen += [t["Key"] for t in resp["Tags"]]
            if not resp["HasMoreTags"]:
                break
        assert sorted(seen) == [f"k{i:02d}" for i in range(7)]
        assert len(seen) == len(set(seen))

    def test_tags_given_at_creation(self, kinesis):
        name = unique_name("tagged")
        kinesis.create_stream(StreamName=name, ShardCount=1, Tags={"owner": "me"})
        wait_active(kinesis, name)
        assert tag_dict(kinesis.list_tags_for_stream(StreamName=name)["Tags"]) == {"owner": "me"}

    def test_resource_arn_operations(self, kinesis):
        name = fresh(kinesis)
        arn = arn_of(name)
        kinesis.tag_resource(ResourceARN=arn, Tags={"a": "1", "b": "2"})
        assert tag_dict(kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"]) == {
            "a": "1", "b": "2"}
        kinesis.untag_resource(ResourceARN=arn, TagKeys=["a"])
        assert tag_dict(kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"]) == {"b": "2"}
        assert tag_dict(kinesis.list_tags_for_stream(StreamName=name)["Tags"]) == {"b": "2"}

    def test_at_most_50_tags_per_stream(self, kinesis):
        name = fresh(kinesis)
        kinesis.add_tags_to_stream(StreamName=name, Tags={f"t{i}": "v" for i in range(50)})
        with aws_error("LimitExceededException"):
            kinesis.add_tags_to_stream(StreamName=name, Tags={"one-too-many": "v"})
        # Overwriting an existing key does not add a tag.
        kinesis.add_tags_to_stream(StreamName=name, Tags={"t0": "new"})
        assert len(kinesis.list_tags_for_stream(StreamName=name, Limit=50)["Tags"]) == 50

    def test_tag_key_length(self, kinesis):
        name = fresh(kinesis)
        with aws_error("ValidationException") as info:
            kinesis.add_tags_to_stream(StreamName=name, Tags={"k" * 129: "v"})
        msg = info.value.response["Error"]["Message"]
        assert msg.startswith("1 validation error detected: ")
        assert ("at 'tags' failed to satisfy constraint: Map keys must satisfy constraint: "
                "[Member must have length less than or equal to 128, Member must have length "
                "greater than or equal to 1]") in msg

    def test_unknown_stream(self, kinesis):
        with aws_error("ResourceNotFoundException", not_found("tagless")):
            kinesis.list_tags_for_stream(StreamName="tagless")
        with aws_error("ResourceNotFoundException"):
            kinesis.list_tags_for_resource(ResourceARN=arn_of("tagless"))


class TestResourcePolicy:
    def test_put_get_delete(self, kinesis):
        name = fresh(kinesis)
        arn = arn_of(name)
        assert kinesis.get_resource_policy(ResourceARN=arn)["Policy"] == "{}"
        policy = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kinesis:GetRecords", "Resource": arn}]})
        kinesis.put_resource_policy(ResourceARN=arn, Policy=policy)
        assert json.loads(kinesis.get_resource_policy(ResourceARN=arn)["Policy"]) == \
            json.loads(policy)
        kinesis.delete_resource_policy(ResourceARN=arn)
        assert kinesis.get_resource_policy(ResourceARN=arn)["Policy"] == "{}"

    def test_delete_without_policy(self, kinesis):
        name = fresh(kinesis)
        arn = arn_of(name)
        with aws_error("ResourceNotFoundException",
                       f"No resource policy found for resource ARN {arn}."):
            kinesis.delete_resource_policy(ResourceARN=arn)

    def test_unknown_stream(self, kinesis):
        with aws_error("ResourceNotFoundException"):
            kinesis.get_resource_policy(ResourceARN=arn_of("policyless"))


class TestEncryption:
    def test_start_and_stop(self, kinesis):
        name = fresh(kinesis)
        kinesis.start_stream_encryption(StreamName=name, EncryptionType="KMS",
                                        KeyId="alias/aws/kinesis")
        desc = wait_active(kinesis, name)
        assert desc["EncryptionType"] == "KMS"
        assert desc["KeyId"] == "alias/aws/kinesis"
        put = kinesis.put_record(StreamName=name, Data=b"secret", PartitionKey="k")
        assert put["EncryptionType"] == "KMS"
        records, _ = read_shard(kinesis, name, shard_id(0))
        assert [r["Data"] for r in records] == [b"secret"]
        kinesis.stop_stream_encryption(StreamName=name, EncryptionType="KMS",
                                       KeyId="alias/aws/kinesis")
        desc = wait_active(kinesis, name)
        assert desc["EncryptionType"] == "NONE"
        assert "KeyId" not in desc

    def test_key_id_is_required(self, kinesis):
        name = fresh(kinesis)
        with aws_error("ValidationException",
                       validation_message(item(None, "keyId", "Member must not be null"))):
            kinesis.start_stream_encryption(StreamName=name, EncryptionType="KMS")


class TestEnhancedMonitoring:
    def test_enable_and_disable(self, kinesis):
        name = fresh(kinesis)
        resp = kinesis.enable_enhanced_monitoring(
            StreamName=name, ShardLevelMetrics=["IncomingBytes", "OutgoingRecords"])
        assert resp["StreamName"] == name
        assert resp["CurrentShardLevelMetrics"] == []
        assert sorted(resp["DesiredShardLevelMetrics"]) == ["IncomingBytes", "OutgoingRecords"]
        wait_active(kinesis, name)
        desc = kinesis.describe_stream(StreamName=name)["StreamDescription"]
        assert sorted(desc["EnhancedMonitoring"][0]["ShardLevelMetrics"]) == [
            "IncomingBytes", "OutgoingRecords"]
        resp = kinesis.disable_enhanced_monitoring(StreamName=name,
                                                   ShardLevelMetrics=["IncomingBytes"])
        assert sorted(resp["CurrentShardLevelMetrics"]) == ["IncomingBytes", "OutgoingRecords"]
        assert resp["DesiredShardLevelMetrics"] == ["OutgoingRecords"]

    def test_all(self, kinesis):
        name = fresh(kinesis)
        resp = kinesis.enable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["ALL"])
        assert sorted(resp["DesiredShardLevelMetrics"]) == sorted([
            "IncomingBytes", "IncomingRecords", "OutgoingBytes", "OutgoingRecords",
            "WriteProvisionedThroughputExceeded", "ReadProvisionedThroughputExceeded",
            "IteratorAgeMilliseconds"])
        wait_active(kinesis, name)
        resp = kinesis.disable_enhanced_monitoring(StreamName=name, ShardLevelMetrics=["ALL"])
        assert resp["DesiredShardLevelMetrics"] == []


class TestLimitsAndAccount:
    def test_describe_limits_counts_open_shards(self, kinesis):
        before = kinesis.describe_limits()
        for key in ("ShardLimit", "OpenShardCount", "OnDemandStreamCount",
                    "OnDemandStreamCountLimit"):
            assert isinstance(before[key], int), before
        name = fresh(kinesis, 3)
        after = kinesis.describe_limits()
        assert after["OpenShardCount"] == before["OpenShardCount"] + 3
        kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0),
                            NewStartingHashKey="1000")
        wait_active(kinesis, name)
        assert kinesis.describe_limits()["OpenShardCount"] == before["OpenShardCount"] + 4

    def test_account_settings(self, kinesis):
        status = kinesis.describe_account_settings()["MinimumThroughputBillingCommitment"]
        assert status["Status"] in ("ENABLED", "DISABLED", "ENABLED_UNTIL_EARLIEST_ALLOWED_END")
        resp = kinesis.update_account_settings(
            MinimumThroughputBillingCommitment={"Status": "ENABLED"})
        assert resp["MinimumThroughputBillingCommitment"]["Status"] == "ENABLED"
        now = kinesis.describe_account_settings()["MinimumThroughputBillingCommitment"]
        assert now["Status"] == "ENABLED"
        assert "StartedAt" in now

    def test_account_settings_status_enum(self, kinesis):
        with aws_error("ValidationException"):
            kinesis.update_account_settings(MinimumThroughputBillingCommitment={"Status": "MAYBE"})


class TestStreamMode:
    def test_on_demand_stream(self, kinesis):
        name = unique_name("ondemand")
        kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
        summary = wait_active(kinesis, name)
        assert summary["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
        assert summary["OpenShardCount"] >= 1
        kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k")
        on_demand = f"Request is invalid. Stream {name} under account {ACCOUNT} is in On-Demand mode."
        with aws_error("ValidationException", on_demand):
            kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0),
                                NewStartingHashKey="1000")
        with aws_error("ValidationException", on_demand):
            kinesis.merge_shards(StreamName=name, ShardToMerge=shard_id(0),
                                 AdjacentShardToMerge=shard_id(1))
        with aws_error("ValidationException", on_demand):
            kinesis.update_shard_count(StreamName=name, TargetShardCount=8,
                                       ScalingType="UNIFORM_SCALING")

    def test_update_stream_mode_both_ways(self, kinesis):
        name = fresh(kinesis, 2)
        arn = arn_of(name)
        kinesis.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
        assert wait_active(kinesis, name)["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
        with aws_error("ValidationException"):
            kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0),
                                NewStartingHashKey="1000")
        kinesis.update_stream_mode(StreamARN=arn,
                                   StreamModeDetails={"StreamMode": "PROVISIONED"})
        assert wait_active(kinesis, name)["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
        kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0), NewStartingHashKey="1000")

    def test_bad_mode(self, kinesis):
        with aws_error("ValidationException", validation_message(item(
                "SOMETIMES", "streamModeDetails.streamMode",
                "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]"))):
            kinesis.create_stream(StreamName=unique_name("mode"), ShardCount=1,
                                  StreamModeDetails={"StreamMode": "SOMETIMES"})


class TestUpdateShardCount:
    @pytest.mark.parametrize("start, target", [(2, 4), (4, 2), (3, 5), (4, 3)])
    def test_scales_uniformly(self, kinesis, start, target):
        name = fresh(kinesis, start)
        kinesis.put_records(StreamName=name, Records=[
            {"Data": str(i).encode(), "PartitionKey": f"k{i}"} for i in range(50)])
        resp = kinesis.update_shard_count(StreamName=name, TargetShardCount=target,
                                          ScalingType="UNIFORM_SCALING")
        assert resp["StreamName"] == name
        assert resp["CurrentShardCount"] == start
        assert resp["TargetShardCount"] == target
        assert wait_active(kinesis, name)["OpenShardCount"] == target
        open_shards = kinesis.list_shards(StreamName=name,
                                          ShardFilter={"Type": "AT_LATEST"})["Shards"]
        ranges = sorted((int(s["HashKeyRange"]["StartingHashKey"]),
                         int(s["HashKeyRange"]["EndingHashKey"])) for s in open_shards)
        assert ranges[0][0] == 0 and ranges[-1][1] == MAX_HASH_KEY
        for (_, end), (start_next, _) in zip(ranges, ranges[1:]):
            assert start_next == end + 1
        width = 2**128 // target
        for lo, hi in ranges:
            assert abs((hi - lo + 1) - width) <= width // 100
        # Every record is still readable, and new records go to the open shards.
        total = sum(len(read_shard(kinesis, name, s["ShardId"])[0])
                    for s in kinesis.list_shards(StreamName=name)["Shards"])
        assert total == 50
        put = kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k")
        assert put["ShardId"] in {s["ShardId"] for s in open_shards}

    def test_target_outside_half_to_double(self, kinesis):
        """AWS documents these bounds as UpdateShardCount's limits: LimitExceededException."""
        name = fresh(kinesis, 4)
        with aws_error("LimitExceededException"):
            kinesis.update_shard_count(StreamName=name, TargetShardCount=9,
                                       ScalingType="UNIFORM_SCALING")
        with aws_error("LimitExceededException"):
            kinesis.update_shard_count(StreamName=name, TargetShardCount=1,
                                       ScalingType="UNIFORM_SCALING")

    def test_validation(self, kinesis):
        name = fresh(kinesis, 1)
        with aws_error("ValidationException", validation_message(item(
                "0", "targetShardCount", "Member must have value greater than or equal to 1"))):
            kinesis.update_shard_count(StreamName=name, TargetShardCount=0,
                                       ScalingType="UNIFORM_SCALING")
        with aws_error("ValidationException", validation_message(item(
                "RANDOM", "scalingType",
                "Member must satisfy enum value set: [UNIFORM_SCALING]"))):
            kinesis.update_shard_count(StreamName=name, TargetShardCount=2, ScalingType="RANDOM")

    def test_unknown_stream(self, kinesis):
        with aws_error("ResourceNotFoundException", not_found("unscaled")):
            kinesis.update_shard_count(StreamName="unscaled", TargetShardCount=2,
                                       ScalingType="UNIFORM_SCALING")


class TestMaxRecordSize:
    def test_created_with_a_larger_max(self, kinesis):
        name = fresh(kinesis, 1, MaxRecordSizeInKiB=2048)
        assert wait_active(kinesis, name)["MaxRecordSizeInKiB"] == 2048
        big = b"\x01" * (ONE_MIB + ONE_MIB // 2)
        kinesis.put_record(StreamName=name, Data=big, PartitionKey="k")
        records, _ = read_shard(kinesis, name, shard_id(0))
        assert [r["Data"] for r in records] == [big]
        with aws_error("ValidationException"):
            kinesis.put_record(StreamName=name, Data=b"\0" * (2 * ONE_MIB + 1), PartitionKey="k")

    def test_update_max_record_size(self, kinesis):
        name = fresh(kinesis)
        assert wait_active(kinesis, name)["MaxRecordSizeInKiB"] == 1024
        with aws_error("ValidationException"):
            kinesis.put_record(StreamName=name, Data=b"\0" * (ONE_MIB + 10), PartitionKey="k")
        kinesis.update_max_record_size(StreamARN=arn_of(name), MaxRecordSizeInKiB=4096)
        assert wait_active(kinesis, name)["MaxRecordSizeInKiB"] == 4096
        kinesis.put_record(StreamName=name, Data=b"\0" * (ONE_MIB + 10), PartitionKey="k")

    @pytest.mark.parametrize("kib, constraint", [
        (1023, "Member must have value greater than or equal to 1024"),
        (10241, "Member must have value less than or equal to 10240"),
    ])
    def test_bounds(self, kinesis, kib, constraint):
        name = fresh(kinesis)
        with aws_error("ValidationException",
                       validation_message(item(str(kib), "maxRecordSizeInKiB", constraint))):
            kinesis.update_max_record_size(StreamARN=arn_of(name), MaxRecordSizeInKiB=kib)
        with aws_error("ValidationException",
                       validation_message(item(str(kib), "maxRecordSizeInKiB", constraint))):
            kinesis.create_stream(StreamName=unique_name("size"), ShardCount=1,
                                  MaxRecordSizeInKiB=kib)


class TestWarmThroughput:
    def test_on_demand_stream(self, kinesis):
        name = unique_name("warm")
        kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
        wait_active(kinesis, name)
        resp = kinesis.update_stream_warm_throughput(StreamName=name, WarmThroughputMiBps=100)
        assert resp["StreamName"] == name
        assert resp["StreamARN"] == arn_of(name)
        assert resp["WarmThroughput"]["TargetMiBps"] == 100
