"""PutRecord, PutRecords, GetShardIterator and GetRecords through boto3, with AWS's exact
error codes and messages for bad input."""

import base64
import datetime as dt
import hashlib
import os
import re
import time

import pytest

from kinesis_client import (
    ACCOUNT,
    MAX_HASH_KEY,
    assert_validation,
    aws_error,
    create_stream,
    item,
    make_seq,
    read_shard,
    seq_fields,
    shard_id,
    unique_name,
    validation_message,
)

HALF = 2**127  # first hash key of shard 1 in a two-shard stream
HASH_KEY_PATTERN = r"Member must satisfy regular expression pattern: 0|([1-9]\d{0,38})"
SEQ_PATTERN = r"Member must satisfy regular expression pattern: 0|([1-9]\d{0,128})"
ITERATOR_TYPES = ("[AFTER_SEQUENCE_NUMBER, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER, "
                  "TRIM_HORIZON]")
ONE_MIB = 1 << 20


@pytest.fixture(scope="module")
def stream(kinesis):
    """A two-shard stream shared by the tests that only add records to it."""
    name = unique_name("records")
    create_stream(kinesis, name, 2)
    return name


def fresh(kinesis, shards=1):
    name = unique_name("rec")
    create_stream(kinesis, name, shards)
    return name


def md5_key(pk: str) -> int:
    return int.from_bytes(hashlib.md5(pk.encode()).digest(), "big")


def iterator(kinesis, name, shard=0, kind="TRIM_HORIZON", **kw):
    return kinesis.get_shard_iterator(
        StreamName=name, ShardId=shard_id(shard), ShardIteratorType=kind, **kw)["ShardIterator"]


class TestPutRecord:
    def test_routes_by_md5_of_partition_key(self, kinesis, stream):
        keys = [f"key-{i}" for i in range(20)] + ["ключ", "héllo wörld", "😀", "a" * 256]
        for pk in keys:
            resp = kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey=pk)
            expected = 0 if md5_key(pk) < HALF else 1
            assert resp["ShardId"] == shard_id(expected), pk
            assert len(resp["SequenceNumber"]) == 56
            assert seq_fields(resp["SequenceNumber"])["shard"] == expected

    @pytest.mark.parametrize("key, shard", [
        (0, 0), (HALF - 1, 0), (HALF, 1), (MAX_HASH_KEY, 1),
    ])
    def test_explicit_hash_key_overrides_partition_key(self, kinesis, stream, key, shard):
        resp = kinesis.put_record(StreamName=stream, Data=b"e", PartitionKey="ignored",
                                  ExplicitHashKey=str(key))
        assert resp["ShardId"] == shard_id(shard)

    def test_explicit_hash_key_of_2_pow_128_is_invalid_argument(self, kinesis, stream):
        v = str(2**128)
        with aws_error("InvalidArgumentException",
                       "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: "
                       f"[0, 2^128-1]. Specified value was {v}"):
            kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey="k",
                               ExplicitHashKey=v)

    @pytest.mark.parametrize("key", ["", "abc", "01", "-1"])
    def test_malformed_explicit_hash_key_is_validation_error(self, kinesis, stream, key):
        with aws_error("ValidationException", validation_message(
                item(key, "explicitHashKey", HASH_KEY_PATTERN))):
            kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey="k",
                               ExplicitHashKey=key)

    def test_sequence_number_for_ordering(self, kinesis):
        name = fresh(kinesis)
        first = kinesis.put_record(StreamName=name, Data=b"1", PartitionKey="a")
        second = kinesis.put_record(StreamName=name, Data=b"2", PartitionKey="b",
                                    SequenceNumberForOrdering=first["SequenceNumber"])
        assert int(second["SequenceNumber"]) > int(first["SequenceNumber"])
        records, _ = read_shard(kinesis, name, shard_id(0))
        assert [r["Data"] for r in records] == [b"1", b"2"]

    def test_bad_sequence_number_for_ordering(self, kinesis, stream):
        with aws_error("InvalidArgumentException",
                       f"ExclusiveMinimumSequenceNumber 12345 used in PutRecord on stream "
                       f"{stream} under account {ACCOUNT} is invalid."):
            kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey="k",
                               SequenceNumberForOrdering="12345")
        with aws_error("ValidationException", validation_message(
                item("x1", "sequenceNumberForOrdering", SEQ_PATTERN))):
            kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey="k",
                               SequenceNumberForOrdering="x1")

    def test_partition_key_length_bounds(self, kinesis, stream):
        with aws_error("ValidationException", validation_message(item(
                "", "partitionKey", "Member must have length greater than or equal to 1"))):
            kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey="")
        long_key = "k" * 257
        with aws_error("ValidationException", validation_message(item(
                long_key, "partitionKey", "Member must have length less than or equal to 256"))):
            kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey=long_key)
        kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey="k" * 256)

    def test_missing_members_are_validation_errors(self, kinesis, stream):
        with aws_error("ValidationException") as info:
            kinesis.put_record(StreamName=stream)
        assert_validation(info.value.response["Error"]["Message"], [
            item(None, "data", "Member must not be null"),
            item(None, "partitionKey", "Member must not be null"),
        ])

    def test_record_over_one_mib_is_rejected(self, kinesis, stream):
        with aws_error("ValidationException", validation_message(
                "Value at 'data' failed to satisfy constraint: "
                "Member must have length less than or equal to 1048576")):
            kinesis.put_record(StreamName=stream, Data=b"\0" * (ONE_MIB + 1), PartitionKey="k")

    def test_record_of_exactly_one_mib_with_its_key_is_accepted(self, kinesis):
        name = fresh(kinesis)
        data = os.urandom(ONE_MIB - 1)
        kinesis.put_record(StreamName=name, Data=data, PartitionKey="k")
        records, _ = read_shard(kinesis, name, shard_id(0))
        assert [r["Data"] for r in records] == [data]

    def test_empty_data_is_accepted(self, kinesis):
        name = fresh(kinesis)
        kinesis.put_record(StreamName=name, Data=b"", PartitionKey="k")
        records, _ = read_shard(kinesis, name, shard_id(0))
        assert [r["Data"] for r in records] == [b""]


class TestPutRecords:
    def test_per_record_results_in_request_order(self, kinesis):
        name = fresh(kinesis, 2)
        entries = [{"Data": f"d{i}".encode(), "PartitionKey": f"pk{i}"} for i in range(30)]
        entries[3]["ExplicitHashKey"] = "0"
        entries[4]["ExplicitHashKey"] = str(MAX_HASH_KEY)
        resp = kinesis.put_records(StreamName=name, Records=entries)
        assert resp["FailedRecordCount"] == 0
        assert len(resp["Records"]) == 30
        for i, (e, r) in enumerate(zip(entries, resp["Records"])):
            key = int(e["ExplicitHashKey"]) if "ExplicitHashKey" in e else md5_key(e["PartitionKey"])
            assert r["ShardId"] == shard_id(0 if key < HALF else 1), i
            assert "ErrorCode" not in r
            assert len(r["SequenceNumber"]) == 56
        got = {}
        for s in (0, 1):
            records, _ = read_shard(kinesis, name, shard_id(s))
            for rec in records:
                got[rec["Data"]] = (shard_id(s), rec["SequenceNumber"], rec["PartitionKey"])
        for e, r in zip(entries, resp["Records"]):
            assert got[e["Data"]] == (r["ShardId"], r["SequenceNumber"], e["PartitionKey"])

    def test_501_records_is_validation_error(self, kinesis, stream):
        entries = [{"Data": b"x", "PartitionKey": "k"}] * 501
        with aws_error("ValidationException", validation_message(
                "Value at 'records' failed to satisfy constraint: "
                "Member must have length less than or equal to 500")):
            kinesis.put_records(StreamName=stream, Records=entries)

    def test_500_records_is_accepted(self, kinesis, stream):
        entries = [{"Data": b"x", "PartitionKey": f"k{i}"} for i in range(500)]
        resp = kinesis.put_records(StreamName=stream, Records=entries)
        assert resp["FailedRecordCount"] == 0 and len(resp["Records"]) == 500

    def test_no_records_is_validation_error(self, kinesis, stream):
        with aws_error("ValidationException", validation_message(
                "Value at 'records' failed to satisfy constraint: "
                "Member must have length greater than or equal to 1")):
            kinesis.put_records(StreamName=stream, Records=[])

    def test_oversize_entry_is_named_by_index(self, kinesis, stream):
        entries = [{"Data": b"x", "PartitionKey": "k"},
                   {"Data": b"\0" * (ONE_MIB + 1), "PartitionKey": "k"}]
        with aws_error("ValidationException", validation_message(
                "Value at 'records.2.member.data' failed to satisfy constraint: "
                "Member must have length less than or equal to 1048576")):
            kinesis.put_records(StreamName=stream, Records=entries)

    def test_request_over_ten_mib_is_invalid_argument(self, kinesis, stream):
        entries = [{"Data": b"\0" * 1_000_000, "PartitionKey": "k"}] * 11
        with aws_error("InvalidArgumentException", "Records size exceeds 10 MB limit"):
            kinesis.put_records(StreamName=stream, Records=entries)

    def test_entry_errors_use_member_paths(self, kinesis, stream):
        entries = [{"Data": b"x", "PartitionKey": "k"},
                   {"Data": b"x"},
                   {"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": "nope"}]
        with aws_error("ValidationException") as info:
            kinesis.put_records(StreamName=stream, Records=entries)
        assert_validation(info.value.response["Error"]["Message"], [
            item(None, "records.2.member.partitionKey", "Member must not be null"),
            item("nope", "records.3.member.explicitHashKey", HASH_KEY_PATTERN),
        ])

    def test_explicit_hash_key_of_2_pow_128_is_invalid_argument(self, kinesis, stream):
        v = str(2**128)
        with aws_error("InvalidArgumentException",
                       "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: "
                       f"[0, 2^128-1]. Specified value was {v}"):
            kinesis.put_records(StreamName=stream, Records=[
                {"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": v}])


class TestGetRecords:
    def test_binary_data_round_trips_with_metadata(self, kinesis):
        name = fresh(kinesis)
        payloads = [bytes(range(256)), os.urandom(1000), b"", "héllo".encode()]
        before = time.time()
        seqs = [kinesis.put_record(StreamName=name, Data=p, PartitionKey=f"pk{i}")["SequenceNumber"]
                for i, p in enumerate(payloads)]
        after = time.time()
        records, children = read_shard(kinesis, name, shard_id(0))
        assert children is None
        assert [r["Data"] for r in records] == payloads
        assert [r["SequenceNumber"] for r in records] == seqs
        assert [r["PartitionKey"] for r in records] == [f"pk{i}" for i in range(4)]
        for r in records:
            ts = r["ApproximateArrivalTimestamp"].timestamp()
            assert before - 1 <= ts <= after + 1

    def test_limit_and_next_iterator(self, kinesis):
        name = fresh(kinesis)
        kinesis.put_records(StreamName=name, Records=[
            {"Data": str(i).encode(), "PartitionKey": "k"} for i in range(7)])
        it = iterator(kinesis, name)
        seen = []
        for expected in ([b"0", b"1", b"2"], [b"3", b"4", b"5"], [b"6"], []):
            resp = kinesis.get_records(ShardIterator=it, Limit=3)
            assert [r["Data"] for r in resp["Records"]] == expected
            assert resp["MillisBehindLatest"] >= 0
            seen += expected
            it = resp["NextShardIterator"]
        assert resp["MillisBehindLatest"] == 0
        # An open shard always hands out a next iterator, also when there is nothing new.
        kinesis.put_record(StreamName=name, Data=b"7", PartitionKey="k")
        assert [r["Data"] for r in kinesis.get_records(ShardIterator=it)["Records"]] == [b"7"]

    def test_one_call_returns_at_most_10_mib(self, kinesis):
        name = fresh(kinesis)
        for i in range(12):
            kinesis.put_record(StreamName=name, Data=bytes([i]) * (ONE_MIB - 1), PartitionKey="k")
        it = iterator(kinesis, name)
        first = kinesis.get_records(ShardIterator=it)
        assert 0 < len(first["Records"]) < 12
        assert sum(len(r["Data"]) for r in first["Records"]) <= 10 * ONE_MIB
        assert first["MillisBehindLatest"] >= 0
        rest = kinesis.get_records(ShardIterator=first["NextShardIterator"])
        got = [r["Data"][0] for r in first["Records"] + rest["Records"]]
        assert got == list(range(12))
        assert rest["MillisBehindLatest"] == 0

    def test_stream_arn_alone_names_the_stream(self, kinesis):
        name = fresh(kinesis)
        arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
            "StreamARN"]
        put = kinesis.put_record(StreamARN=arn, Data=b"by-arn", PartitionKey="k")
        batch = kinesis.put_records(StreamARN=arn, Records=[{"Data": b"b2", "PartitionKey": "k"}])
        assert batch["FailedRecordCount"] == 0
        shards = kinesis.list_shards(StreamARN=arn)["Shards"]
        assert [s["ShardId"] for s in shards] == [put["ShardId"]]
        it = kinesis.get_shard_iterator(StreamARN=arn, ShardId=put["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        resp = kinesis.get_records(ShardIterator=it, StreamARN=arn)
        assert [r["Data"] for r in resp["Records"]] == [b"by-arn", b"b2"]
        assert kinesis.describe_stream(StreamARN=arn)["StreamDescription"]["StreamName"] == name

    def test_an_iterator_can_be_reused(self, kinesis):
        name = fresh(kinesis)
        kinesis.put_record(StreamName=name, Data=b"a", PartitionKey="k")
        it = iterator(kinesis, name)
        first = kinesis.get_records(ShardIterator=it)["Records"]
        again = kinesis.get_records(ShardIterator=it)["Records"]
        assert [r["Data"] for r in first] == [r["Data"] for r in again] == [b"a"]

    @pytest.mark.parametrize("limit, constraint", [
        (0, "Member must have value greater than or equal to 1"),
        (100000, "Member must have value less than or equal to 10000"),
    ])
    def test_limit_bounds(self, kinesis, stream, limit, constraint):
        it = iterator(kinesis, stream)
        with aws_error("ValidationException",
                       validation_message(item(str(limit), "limit", constraint))):
            kinesis.get_records(ShardIterator=it, Limit=limit)

    def test_forged_iterator_is_invalid(self, kinesis):
        forged = base64.b64encode(os.urandom(96)).decode()
        with aws_error("InvalidArgumentException", "Invalid ShardIterator."):
            kinesis.get_records(ShardIterator=forged)
        aws_style = base64.b64encode(b"\0" * 7 + b"\1" + os.urandom(144)).decode()
        with aws_error("InvalidArgumentException", "Invalid ShardIterator."):
            kinesis.get_records(ShardIterator=aws_style)
        with aws_error("InvalidArgumentException", "Invalid ShardIterator."):
            kinesis.get_records(ShardIterator="not-an-iterator!")

    def test_tampered_iterator_is_invalid(self, kinesis, stream):
        it = iterator(kinesis, stream)
        raw = bytearray(base64.b64decode(it))
        for pos in (0, len(raw) // 2, len(raw) - 1):
            bad = bytearray(raw)
            bad[pos] ^= 0x01
            with aws_error("InvalidArgumentException", "Invalid ShardIterator."):
                kinesis.get_records(ShardIterator=base64.b64encode(bytes(bad)).decode())
        truncated = base64.b64encode(bytes(raw[:-4])).decode()
        with aws_error("InvalidArgumentException", "Invalid ShardIterator."):
            kinesis.get_records(ShardIterator=truncated)
        # The original still works.
        kinesis.get_records(ShardIterator=it)

    def test_iterator_length_bounds(self, kinesis):
        with aws_error("ValidationException", validation_message(item(
                "", "shardIterator", "Member must have length greater than or equal to 1"))):
            kinesis.get_records(ShardIterator="")
        long_it = "A" * 513
        with aws_error("ValidationException", validation_message(item(
                long_it, "shardIterator", "Member must have length less than or equal to 512"))):
            kinesis.get_records(ShardIterator=long_it)

    def test_iterator_of_a_deleted_stream_names_the_shard(self, kinesis):
        """AWS (kinesalite, recorded against it) answers GetRecords for a stream that is gone
        with the shard-level not-found text, as for an absent shard."""
        name = fresh(kinesis)
        kinesis.put_record(StreamName=name, Data=b"a", PartitionKey="k")
        it = iterator(kinesis, name)
        kinesis.delete_stream(StreamName=name)
        with aws_error("ResourceNotFoundException",
                       f"Shard {shard_id(0)} in stream {name} under account {ACCOUNT} "
                       "does not exist"):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                kinesis.get_records(ShardIterator=it)
                time.sleep(0.05)


@pytest.fixture(scope="module")
def filled(kinesis):
    """A two-shard stream with records r0..r4 in shard 0, and their sequence numbers."""
    name = unique_name("gsi")
    create_stream(kinesis, name, 2)
    seqs = [kinesis.put_record(StreamName=name, Data=f"r{i}".encode(), PartitionKey="p",
                               ExplicitHashKey="0")["SequenceNumber"] for i in range(5)]
    return name, seqs


class TestGetShardIterator:
    def read(self, kinesis, it):
        return [r["Data"].decode() for r in kinesis.get_records(ShardIterator=it)["Records"]]

    def test_trim_horizon_latest_at_after(self, kinesis, filled):
        name, seqs = filled
        assert self.read(kinesis, iterator(kinesis, name)) == [f"r{i}" for i in range(5)]
        assert self.read(kinesis, iterator(kinesis, name, kind="AT_SEQUENCE_NUMBER",
                                           StartingSequenceNumber=seqs[2])) == ["r2", "r3", "r4"]
        assert self.read(kinesis, iterator(kinesis, name, kind="AFTER_SEQUENCE_NUMBER",
                                           StartingSequenceNumber=seqs[2])) == ["r3", "r4"]
        assert self.read(kinesis, iterator(kinesis, name, kind="AFTER_SEQUENCE_NUMBER",
                                           StartingSequenceNumber=seqs[4])) == []
        latest = iterator(kinesis, name, kind="LATEST")
        assert self.read(kinesis, latest) == []
        start = kinesis.list_shards(StreamName=name)["Shards"][0]["SequenceNumberRange"][
            "StartingSequenceNumber"]
        assert self.read(kinesis, iterator(kinesis, name, kind="AT_SEQUENCE_NUMBER",
                                           StartingSequenceNumber=start))[:1] == ["r0"]

    def test_latest_sees_only_newer_records(self, kinesis):
        name = fresh(kinesis)
        kinesis.put_record(StreamName=name, Data=b"old", PartitionKey="k")
        it = iterator(kinesis, name, kind="LATEST")
        kinesis.put_record(StreamName=name, Data=b"new", PartitionKey="k")
        assert self.read(kinesis, it) == ["new"]

    def test_shard_id_forms_are_normalised(self, kinesis, filled):
        name, _ = filled
        for form in ("0", "shardId-0", shard_id(0)):
            it = kinesis.get_shard_iterator(StreamName=name, ShardId=form,
                                            ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            assert self.read(kinesis, it)[:1] == ["r0"]

    @pytest.mark.parametrize("form", ["9", "shardId-000000000009"])
    def test_unknown_shard(self, kinesis, filled, form):
        name, _ = filled
        with aws_error("ResourceNotFoundException",
                       f"Shard shardId-000000000009 in stream {name} under account {ACCOUNT} "
                       "does not exist"):
            kinesis.get_shard_iterator(StreamName=name, ShardId=form,
                                       ShardIteratorType="TRIM_HORIZON")

    def test_unknown_stream_names_the_shard(self, kinesis):
        """GetShardIterator on a missing stream: AWS reports the (normalised) shard as absent,
        not the stream (reference section 3; kinesalite's AWS-recorded tests)."""
        for form, normal in (("0", shard_id(0)), ("shardId-000000000003", shard_id(3)),
                             ("2147483647", "shardId-002147483647")):
            with aws_error("ResourceNotFoundException",
                           f"Shard {normal} in stream no-such-stream under account {ACCOUNT} "
                           "does not exist"):
                kinesis.get_shard_iterator(StreamName="no-such-stream", ShardId=form,
                                           ShardIteratorType="LATEST")

    @pytest.mark.parametrize("form", ["ABKLFD8", "2.14E4", "2147483648", "shardId-002147483648"])
    def test_unparsable_shard_id(self, kinesis, filled, form):
        """An id that names no shard index: `Could not find shard <id> ...` with the id as
        given (reference section 3, "any unparsable id")."""
        name, _ = filled
        with aws_error("ResourceNotFoundException",
                       f"Could not find shard {form} in stream {name} under account {ACCOUNT}."):
            kinesis.get_shard_iterator(StreamName=name, ShardId=form,
                                       ShardIteratorType="LATEST")

    @pytest.mark.parametrize("kind", ["AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"])
    def test_sequence_type_without_sequence_number(self, kinesis, filled, kind):
        name, _ = filled
        with aws_error("InvalidArgumentException",
                       "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and "
                       "StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no "
                       f"StartingSequenceNumber. Request specified {kind} and no "
                       "StartingSequenceNumber."):
            iterator(kinesis, name, kind=kind)

    @pytest.mark.parametrize("kind", ["TRIM_HORIZON", "LATEST"])
    def test_position_type_with_sequence_number(self, kinesis, filled, kind):
        name, seqs = filled
        with aws_error("InvalidArgumentException",
                       "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and "
                       "StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no "
                       f"StartingSequenceNumber. Request specified {kind} and also a "
                       "StartingSequenceNumber."):
            iterator(kinesis, name, kind=kind, StartingSequenceNumber=seqs[0])

    @pytest.mark.parametrize("seq", ["12345", "0", "9" * 56, "1" + "0" * 128])
    def test_bad_sequence_number(self, kinesis, filled, seq):
        name, _ = filled
        with aws_error("InvalidArgumentException",
                       f"StartingSequenceNumber {seq} used in GetShardIterator on shard "
                       f"{shard_id(0)} in stream {name} under account {ACCOUNT} is invalid."):
            iterator(kinesis, name, kind="AT_SEQUENCE_NUMBER", StartingSequenceNumber=seq)

    def test_malformed_sequence_number_is_validation_error(self, kinesis, filled):
        name, _ = filled
        for seq in ("", "abc", "0123"):
            with aws_error("ValidationException", validation_message(
                    item(seq, "startingSequenceNumber", SEQ_PATTERN))):
                iterator(kinesis, name, kind="AT_SEQUENCE_NUMBER", StartingSequenceNumber=seq)

    def test_sequence_number_of_another_shard(self, kinesis, filled):
        name, _ = filled
        other = kinesis.put_record(StreamName=name, Data=b"s1", PartitionKey="p",
                                   ExplicitHashKey=str(MAX_HASH_KEY))["SequenceNumber"]
        with aws_error("InvalidArgumentException",
                       "Invalid StartingSequenceNumber. It encodes shardId-000000000001, while "
                       "it was used in a call to a shard with shardId-000000000000"):
            iterator(kinesis, name, kind="AT_SEQUENCE_NUMBER", StartingSequenceNumber=other)

    def test_sequence_number_of_another_stream(self, kinesis, filled):
        name, seqs = filled
        f = seq_fields(seqs[0])
        foreign = make_seq(epoch=f["epoch"] - 1000, shard=0, counter=f["counter"],
                           arrival=f["arrival"])
        with aws_error("InvalidArgumentException",
                       f"StartingSequenceNumber {foreign} used in GetShardIterator on shard "
                       f"{shard_id(0)} in stream {name} under account {ACCOUNT} is invalid "
                       "because it did not come from this stream."):
            iterator(kinesis, name, kind="AT_SEQUENCE_NUMBER", StartingSequenceNumber=foreign)

    @pytest.mark.parametrize("kind", ["", "FOO", "trim_horizon"])
    def test_bad_iterator_type(self, kinesis, filled, kind):
        name, _ = filled
        with aws_error("ValidationException", validation_message(item(
                kind, "shardIteratorType", f"Member must satisfy enum value set: {ITERATOR_TYPES}"))):
            iterator(kinesis, name, kind=kind)

    def test_missing_members(self, kinesis, filled):
        name, _ = filled
        with aws_error("ValidationException") as info:
            kinesis.get_shard_iterator(StreamName=name)
        assert_validation(info.value.response["Error"]["Message"], [
            item(None, "shardId", "Member must not be null"),
            item(None, "shardIteratorType", "Member must not be null"),
        ])

    def test_at_timestamp(self, kinesis):
        name = fresh(kinesis)
        kinesis.put_records(StreamName=name, Records=[
            {"Data": b"before", "PartitionKey": "k"}])
        # boto3 sends whole seconds: wait for the next second boundary, then write more.
        boundary = int(time.time()) + 1
        time.sleep(boundary - time.time() + 0.05)
        kinesis.put_records(StreamName=name, Records=[
            {"Data": b"after1", "PartitionKey": "k"}, {"Data": b"after2", "PartitionKey": "k"}])
        at = dt.datetime.fromtimestamp(boundary, dt.timezone.utc)
        it = iterator(kinesis, name, kind="AT_TIMESTAMP", Timestamp=at)
        assert self.read(kinesis, it) == ["after1", "after2"]
        early = dt.datetime.fromtimestamp(boundary - 3600, dt.timezone.utc)
        it = iterator(kinesis, name, kind="AT_TIMESTAMP", Timestamp=early)
        assert self.read(kinesis, it) == ["before", "after1", "after2"]
        now = dt.datetime.now(dt.timezone.utc)
        assert self.read(kinesis, iterator(kinesis, name, kind="AT_TIMESTAMP",
                                           Timestamp=now)) == []

    def test_at_timestamp_without_timestamp(self, kinesis, filled):
        name, _ = filled
        with aws_error("InvalidArgumentException",
                       "Must specify timestampInMillis parameter for iterator of type "
                       "AT_TIMESTAMP. Current request has no timestamp parameter."):
            iterator(kinesis, name, kind="AT_TIMESTAMP")

    def test_at_timestamp_in_the_future(self, kinesis, filled):
        name, _ = filled
        future = int(time.time()) + 3600
        with aws_error("InvalidArgumentException",
                       pattern=r"The timestampInMillis parameter cannot be greater than the "
                               r"currentTimestampInMillis\. timestampInMillis: (\d+), "
                               r"currentTimestampInMillis: (\d+)") as info:
            iterator(kinesis, name, kind="AT_TIMESTAMP",
                     Timestamp=dt.datetime.fromtimestamp(future, dt.timezone.utc))
        msg = info.value.response["Error"]["Message"]
        given, current = map(int, re.findall(r"\d+", msg))
        assert given == future * 1000
        assert abs(current - time.time() * 1000) < 60_000
