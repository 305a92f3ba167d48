"""Shard iterator expiry, against a server whose iterators live 1 s instead of AWS's 300 s."""

import re
import time
from datetime import datetime, timezone

from kinesis_client import aws_error, create_stream, shard_id, unique_name

SERVER_ARGS = ["--iterator-ttl-secs", "1"]
TTL_MS = 1000
JAVA_DATE = r"[A-Z][a-z]{2} [A-Z][a-z]{2} \d{2} \d{2}:\d{2}:\d{2} UTC \d{4}"
EXPIRED = (rf"Iterator expired\. The iterator was created at time ({JAVA_DATE}) while right now "
           rf"it is ({JAVA_DATE}) which is further in the future than the tolerated delay of "
           rf"{TTL_MS} milliseconds\.")


def parse_java_date(text: str) -> float:
    return datetime.strptime(text, "%a %b %d %H:%M:%S UTC %Y").replace(
        tzinfo=timezone.utc).timestamp()


def test_iterator_expires_after_ttl(kinesis):
    name = unique_name("expiry")
    create_stream(kinesis, name, 1)
    kinesis.put_record(StreamName=name, Data=b"a", PartitionKey="k")
    issued = time.time()
    it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard_id(0),
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    # Fresh: works, and so does the next iterator it hands out.
    resp = kinesis.get_records(ShardIterator=it)
    assert [r["Data"] for r in resp["Records"]] == [b"a"]
    time.sleep(1.6)
    with aws_error("ExpiredIteratorException", pattern=EXPIRED) as info:
        kinesis.get_records(ShardIterator=it)
    created, now = re.fullmatch(EXPIRED, info.value.response["Error"]["Message"]).groups()
    assert abs(parse_java_date(created) - issued) <= 2
    assert abs(parse_java_date(now) - time.time()) <= 2
    assert parse_java_date(now) > parse_java_date(created)
    with aws_error("ExpiredIteratorException", pattern=EXPIRED):
        kinesis.get_records(ShardIterator=resp["NextShardIterator"])


def test_next_iterator_is_fresh(kinesis):
    """Each GetRecords hands out a new iterator with a new lifetime: a reader that keeps
    polling never sees its iterator expire."""
    name = unique_name("chain")
    create_stream(kinesis, name, 1)
    it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard_id(0),
                                    ShardIteratorType="LATEST")["ShardIterator"]
    got = []
    for i in range(4):
        time.sleep(0.5)
        kinesis.put_record(StreamName=name, Data=str(i).encode(), PartitionKey="k")
        resp = kinesis.get_records(ShardIterator=it)
        got += [r["Data"] for r in resp["Records"]]
        it = resp["NextShardIterator"]
    assert got == [b"0", b"1", b"2", b"3"]
