"""`shardline streams|put|tail` (src/cli/) against the real server, run as a person would:
the built binary as a subprocess, records through stdin and stdout, boto3 only to check
what the commands did or to reshard under them."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import start_server
from kinesis_client import list_all_shards, not_found, shard_id, unique_name

KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without AWS settings (credentials, endpoints) that would
    change what the command does, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def cli(shardline_binary, server):
    """Runs `shardline ARGS --endpoint <module server>`; returns the CompletedProcess."""

    def run(*args: str, stdin: str | None = None, endpoint: str | bool | None = None,
            env: dict[str, str] | None = None, timeout: float = 60):
        cmd = [str(shardline_binary), *args]
        if endpoint is not False:
            cmd += ["--endpoint", endpoint or server.endpoint]
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True,
                              timeout=timeout, env=env or clean_env(),
                              stdin=None if stdin is not None else subprocess.DEVNULL)

    return run


def ok(proc) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}; stderr:\n{proc.stderr}"
    return proc.stdout


def tail_json(cli, name: str) -> list[dict]:
    out = ok(cli("tail", name, "--from", "trim-horizon", "--no-follow", "--json"))
    return [json.loads(line) for line in out.splitlines()]


def by_shard(records: list[dict]) -> dict[str, list[dict]]:
    shards: dict[str, list[dict]] = {}
    for r in records:
        shards.setdefault(r["shard"], []).append(r)
    return shards


def assert_shard_order(records: list[dict]) -> None:
    """Within each shard: sequence numbers and the line numbers in the data both increase."""
    for shard, rs in by_shard(records).items():
        seqs = [int(r["sequence_number"]) for r in rs]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), shard
        lines = [int(r["data"].split("-")[1]) for r in rs]
        assert lines == sorted(lines), f"{shard} out of order: {lines}"


def lines(first: int, last: int) -> str:
    return "".join(f"line-{i:04d}\n" for i in range(first, last + 1))


def test_streams_create_list_describe_delete(cli, kinesis):
    name = unique_name("cli-streams")
    assert ok(cli("streams", "create", name, "--shards", "2")) == (
        f"created stream {name} with 2 shard(s)\n")
    assert name in ok(cli("streams", "list")).splitlines()

    text = ok(cli("streams", "describe", name))
    assert f"Stream       {name}\n" in text
    assert "Status       ACTIVE\n" in text
    assert "Retention    24 hours\n" in text
    assert "Shards       2 open, 2 in all\n" in text
    for shard in list_all_shards(kinesis, name):
        keys = shard["HashKeyRange"]
        start = shard["SequenceNumberRange"]["StartingSequenceNumber"]
        assert f"{shard['ShardId']}  open\n" in text
        assert f"  hash keys  {keys['StartingHashKey']} - {keys['EndingHashKey']}\n" in text
        assert f"  sequence   {start} - (open)\n" in text

    assert ok(cli("streams", "delete", name)) == f"deleted stream {name}\n"
    assert name not in ok(cli("streams", "list")).splitlines()


def test_put_then_tail_no_follow_reads_every_line_in_shard_order(cli, kinesis):
    name = unique_name("cli-put")
    ok(cli("streams", "create", name, "--shards", "4"))
    put = cli("put", name, stdin=lines(1, 1000))
    ok(put)
    assert "1000 record(s) written" in put.stderr and "0 failed" in put.stderr

    records = tail_json(cli, name)
    assert sorted(r["data"] for r in records) == sorted(lines(1, 1000).split())
    # The default partition key is the line number, which spreads lines over every shard.
    assert all(r["partition_key"] == str(int(r["data"].split("-")[1])) for r in records)
    assert set(by_shard(records)) == {shard_id(i) for i in range(4)}
    assert_shard_order(records)
    assert all(r["encoding"] == "utf-8" and r["timestamp"].endswith("Z") for r in records)

    plain = ok(cli("tail", name, "--from", "trim-horizon", "--no-follow")).splitlines()
    assert plain == [r["data"] for r in records]


def test_put_with_one_partition_key_keeps_input_order(cli):
    name = unique_name("cli-key")
    ok(cli("streams", "create", name, "--shards", "3"))
    ok(cli("put", name, "--partition-key", "same", stdin=lines(1, 50)))
    records = tail_json(cli, name)
    assert len(by_shard(records)) == 1
    assert [r["data"] for r in records] == lines(1, 50).split()


def test_tail_continues_into_child_shards_after_a_split(cli, kinesis):
    name = unique_name("cli-split")
    ok(cli("streams", "create", name, "--shards", "1"))
    ok(cli("put", name, stdin=lines(1, 100)))
    kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0),
                        NewStartingHashKey=str(2**127))
    ok(cli("put", name, stdin=lines(101, 200)))

    records = tail_json(cli, name)
    assert len(records) == 200
    # The parent is read to its end before its children start.
    assert [r["shard"] for r in records[:100]] == [shard_id(0)] * 100
    assert [r["data"] for r in records[:100]] == lines(1, 100).split()
    children = by_shard(records[100:])
    assert set(children) == {shard_id(1), shard_id(2)}
    assert sorted(r["data"] for r in records[100:]) == lines(101, 200).split()
    assert_shard_order(records)


def test_tail_follow_prints_new_records_and_stops_on_ctrl_c(shardline_binary, server, cli):
    name = unique_name("cli-follow")
    ok(cli("streams", "create", name, "--shards", "2"))
    tail = subprocess.Popen(
        [str(shardline_binary), "tail", name, "--from", "trim-horizon", "--endpoint",
         server.endpoint], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, env=clean_env())
    try:
        ok(cli("put", name, stdin=lines(1, 20)))
        got = b""
        deadline = time.monotonic() + 30
        while got.count(b"\n") < 20 and time.monotonic() < deadline:
            ready, _, _ = select.select([tail.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(tail.stdout.fileno(), 65536)
                assert chunk, f"tail exited early: {tail.stderr.read().decode()}"
                got += chunk
        assert sorted(got.decode().split()) == lines(1, 20).split()
        tail.send_signal(signal.SIGINT)
        assert tail.wait(timeout=10) == 0, tail.stderr.read().decode()
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
        tail.stdout.close()
        tail.stderr.close()


def test_missing_stream_prints_the_server_error_and_fails(cli):
    name = unique_name("cli-missing")
    expected = f"shardline: ResourceNotFoundException: {not_found(name)}"
    for args, stdin in [
        (("streams", "describe", name), None),
        (("streams", "delete", name), None),
        (("put", name), "a\n"),
        (("tail", name, "--no-follow"), None),
    ]:
        proc = cli(*args, stdin=stdin)
        assert proc.returncode == 1, args
        assert proc.stderr.strip() == expected, args
        assert proc.stdout == "", args

    existing = unique_name("cli-twice")
    ok(cli("streams", "create", existing))
    proc = cli("streams", "create", existing)
    assert proc.returncode == 1
    assert proc.stderr.startswith("shardline: ResourceInUseException: "), proc.stderr


def test_endpoint_comes_from_the_environment(cli, server):
    name = unique_name("cli-env")
    ok(cli("streams", "create", name))
    for var in ("AWS_ENDPOINT_URL_KINESIS", "AWS_ENDPOINT_URL"):
        proc = cli("streams", "list", endpoint=False, env=clean_env(**{var: server.endpoint}))
        assert name in ok(proc).splitlines(), var

    proc = cli("streams", "list", endpoint="http://127.0.0.1:1")
    assert proc.returncode == 1
    assert proc.stderr.startswith("shardline: cannot reach http://127.0.0.1:1"), proc.stderr


def test_credentials_in_the_environment_sign_requests(shardline_binary, cli):
    with tempfile.TemporaryDirectory(prefix="shardline-cli-auth-") as tmp:
        keys = Path(tmp) / "keys"
        keys.write_text(f"{KEY_ID} {SECRET}\n")
        srv = start_server(shardline_binary, Path(tmp) / "data", ["--auth", str(keys)])
        try:
            creds = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
                     "AWS_REGION": "eu-west-1"}
            name = unique_name("cli-auth")
            ok(cli("streams", "create", name, endpoint=srv.endpoint, env=clean_env(**creds)))
            ok(cli("put", name, stdin="signed\n", endpoint=srv.endpoint,
                   env=clean_env(**creds)))
            out = ok(cli("tail", name, "--from", "trim-horizon", "--no-follow",
                         endpoint=srv.endpoint, env=clean_env(**creds)))
            assert out == "signed\n"

            unsigned = cli("streams", "list", endpoint=srv.endpoint)
            assert unsigned.returncode == 1
            assert unsigned.stderr.startswith(
                "shardline: MissingAuthenticationTokenException"), unsigned.stderr
            wrong = cli("streams", "list", endpoint=srv.endpoint,
                        env=clean_env(**{**creds, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}))
            assert wrong.returncode == 1
            assert wrong.stderr.startswith("shardline: InvalidSignatureException"), wrong.stderr
        finally:
            srv.stop_and_check()



def test_put_retries_throttled_entries_until_all_are_written(shardline_binary, cli):
    """With AWS's quotas on (1,000 records/s per shard), 2,500 lines into one shard need
    retries of the entries PutRecords reports as ProvisionedThroughputExceededException."""
    with tempfile.TemporaryDirectory(prefix="shardline-cli-limits-") as tmp:
        srv = start_server(shardline_binary, Path(tmp) / "data", ["--emulate-limits"])
        try:
            name = unique_name("cli-throttled")
            ok(cli("streams", "create", name, endpoint=srv.endpoint))
            put = cli("put", name, stdin=lines(1, 2500), endpoint=srv.endpoint)
            ok(put)
            assert "2500 record(s) written" in put.stderr and "0 failed" in put.stderr
            retried = re.search(r"(\d+) retried", put.stderr)
            assert retried and int(retried.group(1)) > 0, put.stderr
            out = ok(cli("tail", name, "--from", "trim-horizon", "--no-follow",
                         endpoint=srv.endpoint))
            assert sorted(out.split()) == lines(1, 2500).split()
        finally:
            srv.stop_and_check()


def test_put_exits_non_zero_when_a_line_is_over_the_record_limit(cli):
    name = unique_name("cli-big")
    ok(cli("streams", "create", name))
    too_big = "x" * (1024 * 1024)  # plus the partition key: over the 1 MiB default
    put = cli("put", name, stdin=f"first\n{too_big}\nlast\n")
    assert put.returncode == 1
    assert "line 2: " in put.stderr and "not written" in put.stderr, put.stderr
    assert "2 record(s) written" in put.stderr and "1 failed" in put.stderr, put.stderr
    assert put.stderr.rstrip().endswith(
        "shardline: 1 of 3 record(s) could not be written (last error: line 2 too large)")
    out = ok(cli("tail", name, "--from", "trim-horizon", "--no-follow"))
    assert out == "first\nlast\n"
