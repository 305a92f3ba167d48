"""`GET /metrics` (Prometheus text) and `--emulate-limits` (AWS's per-shard quotas: 1,000
records/s and 1 MiB/s written, 5 GetRecords calls/s read), on one server started with the
flag."""

import re
import time

from kinesis_client import (
    ACCOUNT,
    REGION,
    aws_error,
    create_stream,
    raw_request,
    shard_id,
    unique_name,
)

SERVER_ARGS = ["--emulate-limits"]
SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def rate_exceeded(stream, shard=0):
    return f"Rate exceeded for shard {shard_id(shard)} in stream {stream} under account {ACCOUNT}."


def scrape(server):
    resp = raw_request(server.addr, method="GET", path="/metrics", content_type=None)
    assert resp.status == 200
    assert resp.header("Content-Type").startswith("text/plain") or \
        resp.header("Content-Type").startswith("application/openmetrics-text")
    samples = []
    for line in resp.body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not a Prometheus sample: {line!r}"
        labels = dict(LABEL_RE.findall(m.group(3) or ""))
        samples.append((m.group(1), labels, float(m.group(4))))
    return samples


def value(samples, name, **labels):
    found = [v for n, ls, v in samples if n == name and all(ls.get(k) == w for k, w in labels.items())]
    return sum(found) if found else None


def test_health(server):
    resp = raw_request(server.addr, method="GET", path="/health", content_type=None)
    assert resp.status == 200


def test_metrics_count_records_and_requests(server, kinesis):
    name = unique_name("metered")
    create_stream(kinesis, name, 2)
    kinesis.put_records(StreamName=name, Records=[
        {"Data": b"abcd", "PartitionKey": "k", "ExplicitHashKey": "0"} for _ in range(3)])
    kinesis.put_record(StreamName=name, Data=b"xy", PartitionKey="k", ExplicitHashKey="0")
    it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard_id(0),
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert len(kinesis.get_records(ShardIterator=it)["Records"]) == 4
    with aws_error("ResourceNotFoundException"):
        kinesis.describe_stream(StreamName="not-metered")
    samples = scrape(server)
    shard0 = {"stream": name, "shard": shard_id(0)}
    assert value(samples, "shardline_incoming_records_total", **shard0) == 4
    # Bytes are partition key plus data, as AWS counts them.
    assert value(samples, "shardline_incoming_bytes_total", **shard0) == 3 * 5 + 3
    assert value(samples, "shardline_get_records_records_total", **shard0) == 4
    assert not value(samples, "shardline_incoming_records_total", stream=name,
                     shard=shard_id(1))
    assert value(samples, "shardline_requests_total", operation="PutRecords") >= 1
    assert value(samples, "shardline_request_errors_total", operation="DescribeStream") >= 1


def test_commit_metrics_count_one_round_for_a_request_across_shards(server, kinesis):
    name = unique_name("committed")
    create_stream(kinesis, name, 2)
    before = scrape(server)
    # Hash key 0 is shard 0's; 2**127 is the upper half, shard 1's. Enough data that the
    # committer would start a round with the first shard before the second's batch was
    # encoded, if the stream queued them one by one.
    records = [{"Data": b"x" * 1000, "PartitionKey": "k", "ExplicitHashKey": "0"}] * 250 + \
        [{"Data": b"y" * 1000, "PartitionKey": "k", "ExplicitHashKey": str(2**127)}] * 250
    resp = kinesis.put_records(StreamName=name, Records=records)
    assert resp["FailedRecordCount"] == 0
    assert {r["ShardId"] for r in resp["Records"]} == {shard_id(0), shard_id(1)}
    after = scrape(server)

    def delta(metric, **labels):
        return value(after, metric, **labels) - (value(before, metric, **labels) or 0)

    # The stream hands both shards to the committer together: one round writes (and
    # syncs) both, rather than one round each.
    assert delta("shardline_commit_rounds_total") == 1
    assert delta("shardline_commit_writes_total") == 2
    assert delta("shardline_commit_write_errors_total") == 0
    # Two batches: the records' keys and data plus batch and record headers.
    appended = delta("shardline_commit_appended_bytes_total")
    assert 500 * 1001 < appended < 500 * (1001 + 32) + 1024
    assert delta("shardline_commit_round_duration_seconds_count") == 1
    assert 0 < delta("shardline_commit_round_duration_seconds_sum") < 5
    assert delta("shardline_commit_round_duration_seconds_bucket", le="+Inf") == 1


def test_put_records_over_1000_per_second_fail_per_record(kinesis):
    name = unique_name("throttled")
    create_stream(kinesis, name, 2)
    batch = [{"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": "0"}] * 500
    results = []
    for _ in range(4):
        results += kinesis.put_records(StreamName=name, Records=batch)["Records"]
    failed = [r for r in results if "ErrorCode" in r]
    ok = [r for r in results if "SequenceNumber" in r]
    assert failed, "2,000 records in well under a second to one shard were all accepted"
    assert len(ok) >= 1000
    for r in failed:
        assert r["ErrorCode"] == "ProvisionedThroughputExceededException"
        assert r["ErrorMessage"] == rate_exceeded(name)
        assert "SequenceNumber" not in r and "ShardId" not in r
    # Another shard has its own quota.
    other = kinesis.put_records(StreamName=name, Records=[
        {"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": str(2**128 - 1)}] * 10)
    assert other["FailedRecordCount"] == 0


def test_put_record_over_1_mib_per_second(kinesis):
    name = unique_name("bytes")
    create_stream(kinesis, name, 1)
    big = b"\0" * ((1 << 20) - 100)
    kinesis.put_record(StreamName=name, Data=big, PartitionKey="k")
    with aws_error("ProvisionedThroughputExceededException", rate_exceeded(name)):
        kinesis.put_record(StreamName=name, Data=big, PartitionKey="k")
    time.sleep(1.1)
    kinesis.put_record(StreamName=name, Data=big, PartitionKey="k")


def test_failed_record_count_matches(kinesis):
    name = unique_name("count")
    create_stream(kinesis, name, 1)
    batch = [{"Data": b"x", "PartitionKey": "k"}] * 500
    for _ in range(3):
        resp = kinesis.put_records(StreamName=name, Records=batch)
        assert resp["FailedRecordCount"] == sum("ErrorCode" in r for r in resp["Records"])


def test_more_than_5_get_records_per_second(kinesis):
    name = unique_name("reads")
    create_stream(kinesis, name, 1)
    kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k")
    it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard_id(0),
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    with aws_error("ProvisionedThroughputExceededException", rate_exceeded(name)):
        for _ in range(20):
            kinesis.get_records(ShardIterator=it)
    time.sleep(1.1)
    assert len(kinesis.get_records(ShardIterator=it)["Records"]) == 1


def test_create_stream_beyond_the_shard_quota(kinesis):
    """DescribeLimits states the account's shard quota; CreateStream past it is refused with
    AWS's LimitExceededException text."""
    limits = kinesis.describe_limits()
    current, limit = limits["OpenShardCount"], limits["ShardLimit"]
    extra = limit - current + 1
    with aws_error("LimitExceededException",
                   f"This request would exceed the shard limit for the account {ACCOUNT} in "
                   f"{REGION}. Current shard count for the account: {current}. Limit: {limit}. "
                   f"Number of additional shards that would have resulted from this request: "
                   f"{extra}. Refer to the AWS Service Limits page "
                   "(http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for "
                   "current limits and how to request higher limits."):
        kinesis.create_stream(StreamName=unique_name("quota"), ShardCount=extra)
