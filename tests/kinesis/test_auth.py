"""SigV4 authentication (`serve --auth FILE`): real signed clients get in, everything else
gets AWS's authentication errors, checked in AWS's order (after the target, before types)."""

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from conftest import start_server
from kinesis_client import (
    JSON_TYPE,
    REGION,
    TARGET_PREFIX,
    aws_error,
    create_stream,
    raw_request,
    unique_name,
)

KEY_ID = "AKIDSHARDLINETEST"
SECRET = "c2hhcmRsaW5lLXRlc3Qtc2VjcmV0LWtleS0xMjM0NTY="
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation "
    "for details.")


@pytest.fixture(scope="module")
def server(shardline_binary):
    with tempfile.TemporaryDirectory(prefix="shardline-auth-") as tmp:
        keys = Path(tmp) / "keys"
        keys.write_text(f"# test keys\n{KEY_ID}\t{SECRET}\n\nAKIDOTHER other-secret\n")
        srv = start_server(shardline_binary, Path(tmp) / "data", ["--auth", str(keys)])
        try:
            yield srv
        finally:
            srv.stop_and_check()


def client_with(server, key_id, secret):
    return boto3.session.Session(
        aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=REGION,
    ).client("kinesis", endpoint_url=server.endpoint,
             config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))


@pytest.fixture(scope="module")
def kinesis(server):
    return client_with(server, KEY_ID, SECRET)


def signed_request(server, op, payload, *, key_id=KEY_ID, secret=SECRET, when=None):
    body = json.dumps(payload).encode()
    req = AWSRequest(method="POST", url=server.endpoint + "/", data=body, headers={
        "X-Amz-Target": TARGET_PREFIX + op, "Content-Type": JSON_TYPE})
    signer = SigV4Auth(Credentials(key_id, secret), "kinesis", REGION)
    if when is None:
        signer.add_auth(req)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            signer.add_auth(req)
    headers = {k: v for k, v in req.headers.items()}
    return raw_request(server.addr, target=None, content_type=None, body=body, headers=headers)


def test_signed_clients_work(kinesis):
    name = unique_name("auth")
    create_stream(kinesis, name, 1)
    put = kinesis.put_record(StreamName=name, Data=b"signed", PartitionKey="k")
    it = kinesis.get_shard_iterator(StreamName=name, ShardId=put["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert [r["Data"] for r in kinesis.get_records(ShardIterator=it)["Records"]] == [b"signed"]


def test_second_key_in_file_works(server):
    client_with(server, "AKIDOTHER", "other-secret").list_streams()


def test_unknown_access_key(server):
    with aws_error("UnrecognizedClientException",
                   "The security token included in the request is invalid."):
        client_with(server, "AKIDNOBODY", SECRET).list_streams()


def test_wrong_secret(server):
    with aws_error("InvalidSignatureException", SIGNATURE_MISMATCH):
        client_with(server, KEY_ID, "not-the-secret").list_streams()


def test_tampered_body(server):
    body = json.dumps({"Limit": 5}).encode()
    req = AWSRequest(method="POST", url=server.endpoint + "/", data=body, headers={
        "X-Amz-Target": TARGET_PREFIX + "ListStreams", "Content-Type": JSON_TYPE})
    SigV4Auth(Credentials(KEY_ID, SECRET), "kinesis", REGION).add_auth(req)
    resp = raw_request(server.addr, target=None, content_type=None,
                       body=json.dumps({"Limit": 6}).encode(), headers=dict(req.headers.items()))
    assert resp.status == 400
    assert resp.json() == {"__type": "InvalidSignatureException", "message": SIGNATURE_MISMATCH}


def test_signed_raw_request_works(server):
    resp = signed_request(server, "ListStreams", {})
    assert resp.status == 200, resp.body
    assert "StreamNames" in resp.json()


def test_expired_signature(server):
    old = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=20)
    resp = signed_request(server, "ListStreams", {}, when=old)
    assert resp.status == 400
    body = resp.json()
    assert body["__type"] == "InvalidSignatureException"
    assert body["message"].startswith("Signature expired: ")


def test_missing_authentication_token(server):
    resp = raw_request(server.addr, target=TARGET_PREFIX + "ListStreams", body=b"{}")
    assert resp.status == 400
    assert resp.json() == {"__type": "MissingAuthenticationTokenException",
                           "message": "Missing Authentication Token"}


def test_unknown_operation_is_checked_before_auth(server):
    resp = raw_request(server.addr, target=TARGET_PREFIX + "Nope", body=b"{}")
    assert resp.json() == {"__type": "UnknownOperationException"}


def test_auth_is_checked_before_member_types(server):
    resp = raw_request(server.addr, target=TARGET_PREFIX + "DescribeStream",
                       body=b'{"StreamName": 5}')
    assert resp.json()["__type"] == "MissingAuthenticationTokenException"
    resp = signed_request(server, "DescribeStream", {"StreamName": 5})
    assert resp.json()["__type"] == "SerializationException"


def test_aws_cli_with_the_key(server, tmp_path):
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
           "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": str(tmp_path / "c"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "k")}
    aws = [str(Path(sys.executable).parent / "aws"), "--endpoint-url", server.endpoint,
           "--output", "json", "kinesis"]
    ok = subprocess.run(aws + ["list-streams"], env=env, capture_output=True, text=True,
                        timeout=60, stdin=subprocess.DEVNULL)
    assert ok.returncode == 0, ok.stderr
    assert "StreamNames" in json.loads(ok.stdout)
    env["AWS_SECRET_ACCESS_KEY"] = "wrong"
    bad = subprocess.run(aws + ["list-streams"], env=env, capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert bad.returncode != 0
    assert "InvalidSignatureException" in bad.stderr
