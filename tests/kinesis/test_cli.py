"""The AWS CLI (v1, from the venv) against the server: what a person would type."""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kinesis_client import ACCOUNT, REGION, unique_name

AWS = Path(sys.executable).parent / "aws"


@pytest.fixture(scope="module")
def aws(server, tmp_path_factory):
    home = tmp_path_factory.mktemp("aws-home")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_PAGER": "",
    }

    def run(*args, check=True):
        proc = subprocess.run(
            [str(AWS), "--endpoint-url", server.endpoint, "--output", "json", "kinesis", *args],
            env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if check:
            assert proc.returncode == 0, proc.stderr
            return json.loads(proc.stdout) if proc.stdout.strip() else None
        return proc

    return run


def test_create_put_get_describe(aws):
    name = unique_name("cli")
    assert aws("create-stream", "--stream-name", name, "--shard-count", "2") is None
    summary = aws("describe-stream-summary", "--stream-name", name)["StreamDescriptionSummary"]
    assert summary["StreamName"] == name
    assert summary["StreamStatus"] == "ACTIVE"
    assert summary["OpenShardCount"] == 2
    assert summary["StreamARN"] == f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"

    put = aws("put-record", "--stream-name", name, "--partition-key", "pk",
              "--data", "hello from the cli", "--explicit-hash-key", "0")
    assert put["ShardId"] == "shardId-000000000000"
    assert len(put["SequenceNumber"]) == 56

    it = aws("get-shard-iterator", "--stream-name", name, "--shard-id", put["ShardId"],
             "--shard-iterator-type", "TRIM_HORIZON")["ShardIterator"]
    got = aws("get-records", "--shard-iterator", it)
    assert [base64.b64decode(r["Data"]) for r in got["Records"]] == [b"hello from the cli"]
    assert got["Records"][0]["SequenceNumber"] == put["SequenceNumber"]
    assert got["Records"][0]["PartitionKey"] == "pk"
    assert "NextShardIterator" in got

    streams = aws("list-streams")
    assert name in streams["StreamNames"]


def test_cli_reports_aws_errors(aws):
    proc = aws("describe-stream-summary", "--stream-name", "cli-ghost", check=False)
    assert proc.returncode != 0
    assert "ResourceNotFoundException" in proc.stderr
    assert f"Stream cli-ghost under account {ACCOUNT} not found." in proc.stderr
