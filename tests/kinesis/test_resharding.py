"""SplitShard, MergeShards and ListShards (paging, every ShardFilter type), and reading
across splits and merges the way the KCL does: nothing lost, nothing duplicated, children
after parents."""

import datetime as dt
import time

import pytest

from kinesis_client import (
    ACCOUNT,
    MAX_HASH_KEY,
    aws_error,
    create_stream,
    item,
    read_shard,
    read_stream,
    seq_fields,
    shard_id,
    unique_name,
    validation_message,
    wait_active,
)

HALF = 2**127
HASH_KEY_PATTERN = r"Member must satisfy regular expression pattern: 0|([1-9]\d{0,38})"


def fresh(kinesis, shards):
    name = unique_name("reshard")
    create_stream(kinesis, name, shards)
    return name


def split(kinesis, name, shard, key):
    kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(shard),
                        NewStartingHashKey=str(key))
    wait_active(kinesis, name)


def merge(kinesis, name, a, b):
    kinesis.merge_shards(StreamName=name, ShardToMerge=shard_id(a),
                         AdjacentShardToMerge=shard_id(b))
    wait_active(kinesis, name)


def shards_by_id(kinesis, name):
    return {s["ShardId"]: s for s in kinesis.list_shards(StreamName=name)["Shards"]}


def ids(shards):
    return [s["ShardId"] for s in shards]


class TestSplitShard:
    def test_split_closes_parent_and_creates_children(self, kinesis):
        name = fresh(kinesis, 1)
        split(kinesis, name, 0, HALF)
        s = shards_by_id(kinesis, name)
        assert list(s) == [shard_id(0), shard_id(1), shard_id(2)]
        parent = s[shard_id(0)]
        assert "EndingSequenceNumber" in parent["SequenceNumberRange"]
        assert s[shard_id(1)]["ParentShardId"] == shard_id(0)
        assert s[shard_id(2)]["ParentShardId"] == shard_id(0)
        assert "AdjacentParentShardId" not in s[shard_id(1)]
        assert s[shard_id(1)]["HashKeyRange"] == {
            "StartingHashKey": "0", "EndingHashKey": str(HALF - 1)}
        assert s[shard_id(2)]["HashKeyRange"] == {
            "StartingHashKey": str(HALF), "EndingHashKey": str(MAX_HASH_KEY)}
        summary = wait_active(kinesis, name)
        assert summary["OpenShardCount"] == 2
        end = seq_fields(parent["SequenceNumberRange"]["EndingSequenceNumber"])
        assert end["counter"] == 0x7FFFFFFFFFFFFFFF and end["shard"] == 0

    def test_split_a_closed_shard(self, kinesis):
        name = fresh(kinesis, 1)
        split(kinesis, name, 0, HALF)
        with aws_error("InvalidArgumentException",
                       f"Shard {shard_id(0)} in stream {name} under account {ACCOUNT} has "
                       "already been merged or split, and thus is not eligible for merging or "
                       "splitting."):
            kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0),
                                NewStartingHashKey=str(HALF // 2))

    @pytest.mark.parametrize("key", [0, 1, MAX_HASH_KEY, 2**128])
    def test_bad_split_key(self, kinesis, key):
        name = fresh(kinesis, 1)
        with aws_error("InvalidArgumentException",
                       f"NewStartingHashKey {key} used in SplitShard() on shard {shard_id(0)} in "
                       f"stream {name} under account {ACCOUNT} is not both greater than one plus "
                       f"the shard's StartingHashKey 0 and less than the shard's EndingHashKey "
                       f"{MAX_HASH_KEY}."):
            kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0),
                                NewStartingHashKey=str(key))

    def test_smallest_legal_split_key(self, kinesis):
        name = fresh(kinesis, 1)
        split(kinesis, name, 0, 2)
        assert shards_by_id(kinesis, name)[shard_id(1)]["HashKeyRange"] == {
            "StartingHashKey": "0", "EndingHashKey": "1"}

    def test_unknown_shard(self, kinesis):
        name = fresh(kinesis, 1)
        with aws_error("ResourceNotFoundException",
                       f"Could not find shard shardId-000000000007 in stream {name} under account "
                       f"{ACCOUNT}."):
            kinesis.split_shard(StreamName=name, ShardToSplit="shardId-000000000007",
                                NewStartingHashKey=str(HALF))

    @pytest.mark.parametrize("form", ["ABKLFD8", "2147483648"])
    def test_unparsable_shard_id(self, kinesis, form):
        name = fresh(kinesis, 1)
        with aws_error("ResourceNotFoundException",
                       f"Could not find shard {form} in stream {name} under account {ACCOUNT}."):
            kinesis.split_shard(StreamName=name, ShardToSplit=form, NewStartingHashKey=str(HALF))
        with aws_error("ResourceNotFoundException",
                       f"Could not find shard {form} in stream {name} under account {ACCOUNT}."):
            kinesis.merge_shards(StreamName=name, ShardToMerge=form,
                                 AdjacentShardToMerge=shard_id(0))

    def test_short_shard_ids_are_normalised(self, kinesis):
        name = fresh(kinesis, 1)
        kinesis.split_shard(StreamName=name, ShardToSplit="0", NewStartingHashKey=str(HALF))
        wait_active(kinesis, name)
        kinesis.merge_shards(StreamName=name, ShardToMerge="shardId-1", AdjacentShardToMerge="2")
        wait_active(kinesis, name)
        assert shards_by_id(kinesis, name)[shard_id(3)]["AdjacentParentShardId"] == shard_id(2)

    def test_malformed_members(self, kinesis):
        name = fresh(kinesis, 1)
        with aws_error("ValidationException", validation_message(
                item("sth", "newStartingHashKey", HASH_KEY_PATTERN))):
            kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0),
                                NewStartingHashKey="sth")
        with aws_error("ValidationException", validation_message(item(
                "?", "shardToSplit",
                "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"))):
            kinesis.split_shard(StreamName=name, ShardToSplit="?", NewStartingHashKey="5")


class TestMergeShards:
    def test_merge_adjacent(self, kinesis):
        name = fresh(kinesis, 3)
        merge(kinesis, name, 1, 2)
        s = shards_by_id(kinesis, name)
        child = s[shard_id(3)]
        assert child["ParentShardId"] == shard_id(1)
        assert child["AdjacentParentShardId"] == shard_id(2)
        assert child["HashKeyRange"] == {
            "StartingHashKey": s[shard_id(1)]["HashKeyRange"]["StartingHashKey"],
            "EndingHashKey": str(MAX_HASH_KEY)}
        for closed in (1, 2):
            assert "EndingSequenceNumber" in s[shard_id(closed)]["SequenceNumberRange"]
        assert wait_active(kinesis, name)["OpenShardCount"] == 2

    def test_merge_in_either_order(self, kinesis):
        name = fresh(kinesis, 2)
        merge(kinesis, name, 1, 0)
        child = shards_by_id(kinesis, name)[shard_id(2)]
        assert child["HashKeyRange"] == {"StartingHashKey": "0",
                                         "EndingHashKey": str(MAX_HASH_KEY)}
        assert {child["ParentShardId"], child["AdjacentParentShardId"]} == {
            shard_id(0), shard_id(1)}

    def test_merge_non_adjacent(self, kinesis):
        name = fresh(kinesis, 3)
        with aws_error("InvalidArgumentException",
                       f"Shards {shard_id(0)} and {shard_id(2)} in stream {name} under account "
                       f"{ACCOUNT} are not an adjacent pair of shards eligible for merging"):
            kinesis.merge_shards(StreamName=name, ShardToMerge=shard_id(0),
                                 AdjacentShardToMerge=shard_id(2))

    def test_merge_a_closed_shard(self, kinesis):
        name = fresh(kinesis, 2)
        split(kinesis, name, 0, HALF // 2)
        with aws_error("InvalidArgumentException",
                       f"Shard {shard_id(0)} in stream {name} under account {ACCOUNT} has "
                       "already been merged or split, and thus is not eligible for merging or "
                       "splitting."):
            kinesis.merge_shards(StreamName=name, ShardToMerge=shard_id(0),
                                 AdjacentShardToMerge=shard_id(1))

    def test_merge_unknown_shard(self, kinesis):
        name = fresh(kinesis, 2)
        with aws_error("ResourceNotFoundException",
                       f"Could not find shard shardId-000000000005 in stream {name} under account "
                       f"{ACCOUNT}."):
            kinesis.merge_shards(StreamName=name, ShardToMerge=shard_id(0),
                                 AdjacentShardToMerge="shardId-000000000005")


class TestListShards:
    def test_paging_with_next_token(self, kinesis):
        name = fresh(kinesis, 5)
        first = kinesis.list_shards(StreamName=name, MaxResults=2)
        assert ids(first["Shards"]) == [shard_id(0), shard_id(1)]
        second = kinesis.list_shards(NextToken=first["NextToken"], MaxResults=2)
        assert ids(second["Shards"]) == [shard_id(2), shard_id(3)]
        third = kinesis.list_shards(NextToken=second["NextToken"], MaxResults=2)
        assert ids(third["Shards"]) == [shard_id(4)]
        assert "NextToken" not in third
        everything = kinesis.list_shards(StreamName=name)
        assert len(everything["Shards"]) == 5 and "NextToken" not in everything

    def test_exclusive_start_shard_id(self, kinesis):
        name = fresh(kinesis, 4)
        resp = kinesis.list_shards(StreamName=name, ExclusiveStartShardId=shard_id(1))
        assert ids(resp["Shards"]) == [shard_id(2), shard_id(3)]

    def test_next_token_excludes_stream_name(self, kinesis):
        name = fresh(kinesis, 3)
        token = kinesis.list_shards(StreamName=name, MaxResults=1)["NextToken"]
        with aws_error("InvalidArgumentException",
                       "NextToken and StreamName cannot be provided together."):
            kinesis.list_shards(StreamName=name, NextToken=token)

    def test_neither_stream_nor_token(self, kinesis):
        with aws_error("InvalidArgumentException",
                       "Either NextToken or StreamName should be provided."):
            kinesis.list_shards()

    def test_bounds(self, kinesis):
        name = fresh(kinesis, 1)
        with aws_error("ValidationException", validation_message(
                item("0", "maxResults", "Member must have value greater than or equal to 1"))):
            kinesis.list_shards(StreamName=name, MaxResults=0)
        with aws_error("ValidationException", validation_message(
                item("", "nextToken", "Member must have length greater than or equal to 1"))):
            kinesis.list_shards(NextToken="")

    def test_every_shard_filter(self, kinesis):
        """Two shards; shard 0 split a couple of seconds after creation, so shard 0 is closed
        and 2 and 3 are its children. boto3 sends whole-second timestamps, so the split is
        placed strictly inside its own second."""
        name = fresh(kinesis, 2)
        time.sleep(int(time.time()) + 1.05 - time.time())
        before_split = int(time.time())  # a whole second after creation, before the split
        time.sleep(before_split + 1.05 - time.time())
        split(kinesis, name, 0, HALF // 2)
        time.sleep(int(time.time()) + 1.05 - time.time())
        after_split = int(time.time())

        def listed(**shard_filter):
            return ids(kinesis.list_shards(StreamName=name, ShardFilter=shard_filter)["Shards"])

        def ts(secs):
            return dt.datetime.fromtimestamp(secs, dt.timezone.utc)

        all_ids = [shard_id(i) for i in range(4)]
        assert ids(kinesis.list_shards(StreamName=name)["Shards"]) == all_ids
        assert listed(Type="FROM_TRIM_HORIZON") == all_ids
        assert listed(Type="AT_TRIM_HORIZON") == [shard_id(0), shard_id(1)]
        assert listed(Type="AT_LATEST") == [shard_id(1), shard_id(2), shard_id(3)]
        assert listed(Type="AFTER_SHARD_ID", ShardId=shard_id(1)) == [shard_id(2), shard_id(3)]
        assert listed(Type="AT_TIMESTAMP", Timestamp=ts(before_split)) == [
            shard_id(0), shard_id(1)]
        assert listed(Type="AT_TIMESTAMP", Timestamp=ts(after_split)) == [
            shard_id(1), shard_id(2), shard_id(3)]
        assert listed(Type="FROM_TIMESTAMP", Timestamp=ts(before_split)) == all_ids
        assert listed(Type="FROM_TIMESTAMP", Timestamp=ts(after_split)) == [
            shard_id(1), shard_id(2), shard_id(3)]

    def test_filter_pages_keep_the_filter(self, kinesis):
        name = fresh(kinesis, 4)
        split(kinesis, name, 0, HALF // 4)
        first = kinesis.list_shards(StreamName=name, MaxResults=2,
                                    ShardFilter={"Type": "AT_LATEST"})
        assert ids(first["Shards"]) == [shard_id(1), shard_id(2)]
        rest = kinesis.list_shards(NextToken=first["NextToken"], MaxResults=10)
        assert ids(rest["Shards"]) == [shard_id(3), shard_id(4), shard_id(5)]

    def test_filter_needs_its_argument(self, kinesis):
        name = fresh(kinesis, 1)
        with aws_error("InvalidArgumentException"):
            kinesis.list_shards(StreamName=name, ShardFilter={"Type": "AFTER_SHARD_ID"})
        for kind in ("AT_TIMESTAMP", "FROM_TIMESTAMP"):
            with aws_error("InvalidArgumentException"):
                kinesis.list_shards(StreamName=name, ShardFilter={"Type": kind})

    def test_bad_filter_type(self, kinesis):
        name = fresh(kinesis, 1)
        with aws_error("ValidationException", validation_message(item(
                "SOMETIMES", "shardFilter.type",
                "Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, "
                "FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]"))):
            kinesis.list_shards(StreamName=name, ShardFilter={"Type": "SOMETIMES"})


class TestSequenceNumbers:
    def test_56_digits_strictly_increasing_per_shard(self, kinesis):
        name = fresh(kinesis, 2)
        last, first = {}, {}
        for i in range(40):
            r = kinesis.put_record(StreamName=name, Data=b"x", PartitionKey=f"k{i % 7}")
            seq = r["SequenceNumber"]
            assert len(seq) == 56 and seq.isdigit()
            f = seq_fields(seq)
            assert f["lead"] == 2 and f["version"] == 2 and f["reserved"] == 0
            assert f["shard"] == int(r["ShardId"][-12:])
            assert f["nibble"] == f["shard"] & 0xF
            assert int(seq) > last.get(r["ShardId"], 0)
            last[r["ShardId"]] = int(seq)
            first.setdefault(r["ShardId"], int(seq))
        for s in (0, 1):
            seqs = [int(r["SequenceNumber"]) for r in read_shard(kinesis, name, shard_id(s))[0]]
            assert seqs == sorted(set(seqs))
        for sh in kinesis.list_shards(StreamName=name)["Shards"]:
            start = int(sh["SequenceNumberRange"]["StartingSequenceNumber"])
            assert start <= first[sh["ShardId"]]

    def test_children_sort_after_parents(self, kinesis):
        name = fresh(kinesis, 2)

        def put_to(key, n):
            return [int(kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="p",
                                           ExplicitHashKey=str(key))["SequenceNumber"])
                    for _ in range(n)]

        parent0 = put_to(0, 3)
        parent1 = put_to(MAX_HASH_KEY, 3)
        split(kinesis, name, 0, HALF // 2)          # -> 2 [0, HALF/2), 3 [HALF/2, HALF)
        child2 = put_to(0, 3)
        child3 = put_to(HALF // 2, 3)
        assert min(child2 + child3) > max(parent0)
        merge(kinesis, name, 3, 1)                  # -> 4 [HALF/2, MAX]
        merged = put_to(MAX_HASH_KEY, 3) + put_to(HALF // 2, 2)
        assert min(merged) > max(child3) and min(merged) > max(parent1)
        s = shards_by_id(kinesis, name)

        def seq_range(i):
            r = s[shard_id(i)]["SequenceNumberRange"]
            return int(r["StartingSequenceNumber"]), int(r.get("EndingSequenceNumber", 0))

        records = {0: parent0, 1: parent1, 2: child2, 3: child3, 4: merged}
        for child, parents in ((2, [0]), (3, [0]), (4, [3, 1])):
            child_start, _ = seq_range(child)
            for p in parents:
                p_start, p_end = seq_range(p)
                assert child_start > p_start
                assert p_end > max(records[p])
                assert min(records[child]) > max(records[p])


    def test_starting_sequence_number_is_not_above_the_first_record(self, kinesis):
        """A shard's StartingSequenceNumber starts its SequenceNumberRange: no record of the
        shard may sort below it. Children split off right after their parent was created get
        a sequence epoch one second ahead of the clock; their first records must still sort
        at or above the StartingSequenceNumber."""
        name = fresh(kinesis, 1)
        split(kinesis, name, 0, HALF)
        for key, child in ((0, 1), (MAX_HASH_KEY, 2)):
            seq = kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="p",
                                     ExplicitHashKey=str(key))["SequenceNumber"]
            start = shards_by_id(kinesis, name)[shard_id(child)]["SequenceNumberRange"][
                "StartingSequenceNumber"]
            assert int(start) <= int(seq), (seq_fields(start), seq_fields(seq))


class TestReadingAcrossReshards:
    def test_closed_shard_drains_then_returns_child_shards(self, kinesis):
        name = fresh(kinesis, 1)
        kinesis.put_records(StreamName=name, Records=[
            {"Data": str(i).encode(), "PartitionKey": f"k{i}"} for i in range(5)])
        it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard_id(0),
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        split(kinesis, name, 0, HALF)
        resp = kinesis.get_records(ShardIterator=it, Limit=3)
        assert [r["Data"] for r in resp["Records"]] == [b"0", b"1", b"2"]
        assert "NextShardIterator" in resp and not resp.get("ChildShards")
        resp = kinesis.get_records(ShardIterator=resp["NextShardIterator"], Limit=3)
        assert [r["Data"] for r in resp["Records"]] == [b"3", b"4"]
        if "NextShardIterator" in resp:
            # Allowed: the last records and the end of the shard in separate responses.
            assert not resp.get("ChildShards")
            resp = kinesis.get_records(ShardIterator=resp["NextShardIterator"])
            assert resp["Records"] == []
        assert "NextShardIterator" not in resp
        children = sorted(resp["ChildShards"], key=lambda c: c["ShardId"])
        assert children == [
            {"ShardId": shard_id(1), "ParentShards": [shard_id(0)],
             "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(HALF - 1)}},
            {"ShardId": shard_id(2), "ParentShards": [shard_id(0)],
             "HashKeyRange": {"StartingHashKey": str(HALF), "EndingHashKey": str(MAX_HASH_KEY)}},
        ]

    def test_empty_closed_shard_returns_child_shards_at_once(self, kinesis):
        name = fresh(kinesis, 2)
        merge(kinesis, name, 0, 1)
        for parent in (0, 1):
            records, children = read_shard(kinesis, name, shard_id(parent))
            assert records == []
            assert [c["ShardId"] for c in children] == [shard_id(2)]
            assert sorted(children[0]["ParentShards"]) == [shard_id(0), shard_id(1)]

    def test_latest_on_closed_shard_ends_at_once(self, kinesis):
        name = fresh(kinesis, 1)
        kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k")
        split(kinesis, name, 0, HALF)
        records, children = read_shard(kinesis, name, shard_id(0),
                                       start={"ShardIteratorType": "LATEST"})
        assert records == [] and len(children) == 2

    def test_nothing_lost_or_duplicated_across_split_and_merge(self, kinesis):
        """Each record's data names its key and the call that wrote it. AWS keeps no order
        inside one PutRecords call, so per key the call numbers must not go down, and reading
        parents before children must return every record exactly once."""
        name = fresh(kinesis, 2)
        keys = [f"user-{i}" for i in range(24)]
        written = {k: [] for k in keys}
        calls = 0

        def write_round():
            nonlocal calls
            calls += 1
            batch = []
            for k in keys:
                for j in range(2):
                    data = f"{k}#{calls}#{j}".encode()
                    written[k].append(data)
                    batch.append({"Data": data, "PartitionKey": k})
            resp = kinesis.put_records(StreamName=name, Records=batch)
            assert resp["FailedRecordCount"] == 0
            for k in keys[:6]:
                calls += 1
                data = f"{k}#{calls}#0".encode()
                written[k].append(data)
                kinesis.put_record(StreamName=name, Data=data, PartitionKey=k)

        write_round()
        split(kinesis, name, 0, HALF // 2)      # shards 2, 3 from 0
        write_round()
        merge(kinesis, name, 3, 1)              # shard 4 from 3 + 1
        write_round()
        split(kinesis, name, 4, HALF)           # shards 5, 6 from 4
        write_round()

        order = read_stream(kinesis, name, limit=7)
        assert [sid for sid, _ in order][:2] == [shard_id(0), shard_id(1)]
        position = {sid: i for i, (sid, _) in enumerate(order)}
        shards = shards_by_id(kinesis, name)
        assert len(shards) == 7
        for sid, sh in shards.items():
            for p in (sh.get("ParentShardId"), sh.get("AdjacentParentShardId")):
                if p:
                    assert position[p] < position[sid], f"{sid} read before its parent {p}"
        read = {k: [] for k in keys}
        total = 0
        for sid, records in order:
            seqs = [int(r["SequenceNumber"]) for r in records]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), sid
            for r in records:
                total += 1
                read[r["PartitionKey"]].append(r["Data"])
                assert shard_id(seq_fields(r["SequenceNumber"])["shard"]) == sid
        assert total == sum(len(v) for v in written.values())
        for k in keys:
            assert sorted(read[k]) == sorted(written[k]), k
            call_numbers = [int(d.split(b"#")[1]) for d in read[k]]
            assert call_numbers == sorted(call_numbers), (k, read[k])
