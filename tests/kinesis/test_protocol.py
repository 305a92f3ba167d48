"""The wire below the SDKs: raw HTTP/1.1 requests (malformed envelopes, AWS's check order,
Java-style SerializationException messages), CBOR 1.1 bodies, and HTTP/2 prior knowledge."""

import json
import os
import time

import cbor2
import httpx
import pytest

from kinesis_client import (
    ACCOUNT,
    CBOR_TYPE,
    JSON_TYPE,
    TARGET_PREFIX,
    UUID_RE,
    call_json,
    create_stream,
    item,
    not_found,
    raw_request,
    shard_id,
    unique_name,
    validation_message,
)

NUMBER = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber"


@pytest.fixture(scope="module")
def stream(kinesis):
    name = unique_name("wire")
    create_stream(kinesis, name, 1)
    return name


def assert_request_id(resp):
    rid = resp.header("x-amzn-RequestId")
    assert rid and UUID_RE.match(rid), resp.headers


def assert_json_error(resp, type_name, message=None, *, key="message", status=400):
    assert resp.status == status, (resp.status, resp.body)
    assert resp.header("Content-Type") == JSON_TYPE
    assert_request_id(resp)
    body = resp.json()
    assert body["__type"] == type_name, body
    if message is None:
        assert set(body) == {"__type"}, body
    else:
        assert body == {"__type": type_name, key: message}


class TestEnvelope:
    def test_get_is_access_denied_xml(self, server):
        resp = raw_request(server.addr, method="GET", content_type=None)
        assert resp.status == 403
        assert_request_id(resp)
        body = resp.body.decode()
        assert "<AccessDeniedException>" in body
        assert ("<Message>Unable to determine service/operation name to be authorized</Message>"
                in body)

    def test_plain_json_content_type_is_404(self, server):
        resp = raw_request(server.addr, target=TARGET_PREFIX + "ListStreams", body=b"{}",
                           content_type="application/json")
        assert resp.status == 404
        assert_request_id(resp)
        assert resp.json() == {
            "Output": {"__type": "com.amazon.coral.service#UnknownOperationException"},
            "Version": "1.0",
        }

    @pytest.mark.parametrize("content_type", ["text/plain", None])
    def test_other_content_type_is_404_xml(self, server, content_type):
        resp = raw_request(server.addr, target=TARGET_PREFIX + "ListStreams", body=b"{}",
                           content_type=content_type)
        assert resp.status == 404
        assert_request_id(resp)
        assert resp.body.decode().strip() == "<UnknownOperationException/>"

    def test_content_type_parameters_are_ignored(self, server):
        resp = raw_request(server.addr, target=TARGET_PREFIX + "ListStreams", body=b"{}",
                           content_type="application/x-amz-json-1.1; charset=UTF-8")
        assert resp.status == 200
        assert_request_id(resp)
        assert "StreamNames" in resp.json()

    def test_path_is_ignored(self, server):
        resp = raw_request(server.addr, target=TARGET_PREFIX + "ListStreams", body=b"{}",
                           path="/some/where?x=1")
        assert resp.status == 200
        assert "StreamNames" in resp.json()

    def test_empty_body_is_serialization_error(self, server):
        resp = raw_request(server.addr, target=TARGET_PREFIX + "ListStreams", body=b"")
        assert_json_error(resp, "SerializationException")

    def test_empty_body_with_unknown_target(self, server):
        resp = raw_request(server.addr, target=TARGET_PREFIX + "Nope", body=b"")
        assert_json_error(resp, "UnknownOperationException")

    @pytest.mark.parametrize("target", [TARGET_PREFIX + "FlyToTheMoon", "Kinesis_20131202",
                                        "Firehose_20150804.ListStreams", ""])
    def test_unknown_operation(self, server, target):
        resp = raw_request(server.addr, target=target, body=b"{}")
        assert_json_error(resp, "UnknownOperationException")

    def test_missing_target(self, server):
        resp = raw_request(server.addr, body=b"{}")
        assert_json_error(resp, "UnknownOperationException")

    @pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"\"s\"", b"42", b"{\"a\":", b"null"])
    def test_body_not_an_object_is_serialization_error(self, server, body):
        resp = raw_request(server.addr, target=TARGET_PREFIX + "ListStreams", body=body)
        assert_json_error(resp, "SerializationException")

    def test_bad_body_is_checked_before_the_target(self, server):
        resp = raw_request(server.addr, target=TARGET_PREFIX + "Nope", body=b"nope")
        assert_json_error(resp, "SerializationException")

    def test_success_has_request_id_and_empty_body_for_void_operations(self, server):
        name = unique_name("void")
        resp = call_json(server.addr, "CreateStream", {"StreamName": name, "ShardCount": 1})
        assert resp.status == 200
        assert resp.body == b""
        assert_request_id(resp)
        assert resp.header("Content-Type") == JSON_TYPE

    def test_errors_carry_x_amzn_error_type(self, server):
        resp = call_json(server.addr, "DescribeStream", {"StreamName": "ghost"})
        assert_json_error(resp, "ResourceNotFoundException", not_found("ghost"))
        assert resp.header("x-amzn-ErrorType") == "ResourceNotFoundException"

    def test_request_ids_are_unique(self, server):
        ids = {raw_request(server.addr, target=TARGET_PREFIX + "ListStreams", body=b"{}")
               .header("x-amzn-RequestId") for _ in range(5)}
        assert len(ids) == 5

    def test_null_members_are_absent(self, server):
        resp = call_json(server.addr, "ListStreams", {"Limit": None, "NextToken": None})
        assert resp.status == 200


class TestMemberTypes:
    """Type mismatches are SerializationExceptions whose text is under a capital `Message`."""

    @pytest.mark.parametrize("op, payload, message", [
        ("DescribeStream", {"StreamName": 123},
         f"{NUMBER} can not be converted to an String"),
        ("DescribeStream", {"StreamName": 1.5},
         f"{NUMBER} can not be converted to an String"),
        ("DescribeStream", {"StreamName": True},
         "class java.lang.Boolean can not be converted to an String"),
        ("DescribeStream", {"StreamName": []}, "Start of list found where not expected"),
        ("DescribeStream", {"StreamName": {}},
         "Start of structure or map found where not expected."),
        ("CreateStream", {"StreamName": "x", "ShardCount": "1"},
         "class java.lang.String can not be converted to an Integer"),
        ("CreateStream", {"StreamName": "x", "ShardCount": True},
         "class java.lang.Boolean can not be converted to an Integer"),
        ("DeleteStream", {"StreamName": "x", "EnforceConsumerDeletion": "yes"},
         "'YES' can not be converted to an Boolean"),
        ("DeleteStream", {"StreamName": "x", "EnforceConsumerDeletion": 1},
         f"{NUMBER} can not be converted to an Boolean"),
        ("PutRecord", {"StreamName": "x", "PartitionKey": "k", "Data": "23456"},
         "'23456' can not be converted to a Blob: Base64 encoded length is expected a multiple "
         "of 4 bytes but found: 5"),
        ("PutRecord", {"StreamName": "x", "PartitionKey": "k", "Data": "aGk=aGk="},
         "'aGk=aGk=' can not be converted to a Blob: Invalid Base64 character: '='"),
        ("PutRecord", {"StreamName": "x", "PartitionKey": "k", "Data": "aGl="},
         "'aGl=' can not be converted to a Blob: Invalid last non-pad Base64 character "
         "dectected"),
        ("PutRecords", {"StreamName": "x", "Records": "r"}, "Expected list or null"),
        ("PutRecords", {"StreamName": "x", "Records": {}}, "Expected list or null"),
        ("ListShards", {"StreamName": "x", "ShardFilter": "AT_LATEST"}, "Expected null"),
        ("CreateStream", {"StreamName": "x", "ShardCount": 1, "Tags": "t"},
         "Expected map or null"),
        ("GetShardIterator", {"StreamName": "x", "ShardId": "0",
                              "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": "yesterday"},
         "class java.lang.String can not be converted to milliseconds since epoch"),
    ])
    def test_type_mismatch(self, server, op, payload, message):
        resp = call_json(server.addr, op, payload)
        assert_json_error(resp, "SerializationException", message, key="Message")

    def test_types_are_checked_before_constraints(self, server):
        resp = call_json(server.addr, "CreateStream", {"StreamName": "", "ShardCount": "0"})
        assert_json_error(resp, "SerializationException",
                          "class java.lang.String can not be converted to an Integer",
                          key="Message")

    def test_integers_are_clamped_before_validation(self, server, stream):
        resp = call_json(server.addr, "DescribeStream",
                         {"StreamName": stream, "Limit": 100000000000})
        assert_json_error(resp, "ValidationException", validation_message(item(
            "2147483647", "limit", "Member must have value less than or equal to 10000")))

    def test_fractions_are_floored(self, server, stream):
        resp = call_json(server.addr, "DescribeStream", {"StreamName": stream, "Limit": 0.9})
        assert_json_error(resp, "ValidationException", validation_message(item(
            "0", "limit", "Member must have value greater than or equal to 1")))

    def test_json_timestamps_accept_fractions(self, server, stream):
        at = time.time() - 60
        resp = call_json(server.addr, "GetShardIterator", {
            "StreamName": stream, "ShardId": shard_id(0), "ShardIteratorType": "AT_TIMESTAMP",
            "Timestamp": round(at, 3)})
        assert resp.status == 200, resp.body
        resp = call_json(server.addr, "GetShardIterator", {
            "StreamName": stream, "ShardId": shard_id(0), "ShardIteratorType": "AT_TIMESTAMP",
            "Timestamp": int(at)})
        assert resp.status == 200, resp.body

    def test_json_timestamps_are_plain_decimals(self, server, stream):
        resp = call_json(server.addr, "DescribeStreamSummary", {"StreamName": stream})
        text = resp.body.decode()
        created = text.split('"StreamCreationTimestamp":', 1)[1].split(",", 1)[0].rstrip("}")
        assert "e" not in created.lower()
        assert abs(float(created) - time.time()) < 600


def cbor_call(addr, op, payload):
    resp = raw_request(addr, target=TARGET_PREFIX + op, body=cbor2.dumps(payload),
                       content_type=CBOR_TYPE)
    assert resp.header("Content-Type") == CBOR_TYPE, resp.headers
    assert_request_id(resp)
    decoded = None
    if resp.body:
        # Keep tag 1 as a tag: Kinesis CBOR timestamps are epoch *milliseconds*, not the
        # RFC 8949 seconds cbor2 would assume.
        decoded = cbor2.loads(resp.body,
                              semantic_decoders={1: lambda value, _imm: cbor2.CBORTag(1, value)})
    return resp.status, decoded


class TestCbor:
    def test_round_trip_with_binary_data(self, server):
        name = unique_name("cbor")
        status, body = cbor_call(server.addr, "CreateStream", {"StreamName": name, "ShardCount": 1})
        assert (status, body) == (200, None)
        payloads = [bytes(range(256)), os.urandom(3000), b"", b"\x00\xff\xfe"]
        before_ms = int(time.time() * 1000)
        seqs = []
        for i, data in enumerate(payloads):
            status, body = cbor_call(server.addr, "PutRecord",
                                     {"StreamName": name, "Data": data, "PartitionKey": f"k{i}"})
            assert status == 200, body
            assert body["ShardId"] == shard_id(0)
            assert len(body["SequenceNumber"]) == 56
            seqs.append(body["SequenceNumber"])
        after_ms = int(time.time() * 1000)

        status, body = cbor_call(server.addr, "GetShardIterator", {
            "StreamName": name, "ShardId": shard_id(0), "ShardIteratorType": "AT_TIMESTAMP",
            "Timestamp": cbor2.CBORTag(1, before_ms - 1000)})
        assert status == 200, body
        status, body = cbor_call(server.addr, "GetRecords",
                                 {"ShardIterator": body["ShardIterator"]})
        assert status == 200, body
        records = body["Records"]
        assert [r["Data"] for r in records] == payloads
        assert all(isinstance(r["Data"], bytes) for r in records)
        assert [r["SequenceNumber"] for r in records] == seqs
        assert [r["PartitionKey"] for r in records] == [f"k{i}" for i in range(4)]
        for r in records:
            ts = r["ApproximateArrivalTimestamp"]
            assert isinstance(ts, cbor2.CBORTag) and ts.tag == 1, ts
            assert before_ms - 1000 <= ts.value <= after_ms + 1000, ts
        assert isinstance(body["NextShardIterator"], str)

        # A timestamp after the records: nothing to read.
        status, body = cbor_call(server.addr, "GetShardIterator", {
            "StreamName": name, "ShardId": shard_id(0), "ShardIteratorType": "AT_TIMESTAMP",
            "Timestamp": cbor2.CBORTag(1, after_ms + 1)})
        status, body = cbor_call(server.addr, "GetRecords",
                                 {"ShardIterator": body["ShardIterator"]})
        assert body["Records"] == []

        status, body = cbor_call(server.addr, "DescribeStream", {"StreamName": name})
        assert status == 200
        desc = body["StreamDescription"]
        assert desc["StreamName"] == name and len(desc["Shards"]) == 1
        created = desc["StreamCreationTimestamp"]
        assert isinstance(created, cbor2.CBORTag) and created.tag == 1
        assert abs(created.value - before_ms) < 120_000

    def test_put_records_with_cbor(self, server, stream):
        status, body = cbor_call(server.addr, "PutRecords", {"StreamName": stream, "Records": [
            {"Data": b"\x01\x02", "PartitionKey": "a"}, {"Data": b"\x03", "PartitionKey": "b"}]})
        assert status == 200
        assert body["FailedRecordCount"] == 0 and len(body["Records"]) == 2

    def test_errors_are_cbor_maps(self, server):
        status, body = cbor_call(server.addr, "DescribeStream", {"StreamName": "ghost"})
        assert status == 400
        assert body == {"__type": "ResourceNotFoundException", "message": not_found("ghost")}

    def test_cbor_validation_error(self, server):
        status, body = cbor_call(server.addr, "CreateStream", {"StreamName": "bad name"})
        assert status == 400
        assert body["__type"] == "ValidationException"

    def test_body_not_a_map_is_serialization_error(self, server):
        for raw in (cbor2.dumps([1, 2]), b"\xff\xff", cbor2.dumps("s")):
            resp = raw_request(server.addr, target=TARGET_PREFIX + "ListStreams", body=raw,
                               content_type=CBOR_TYPE)
            assert resp.status == 400
            assert cbor2.loads(resp.body) == {"__type": "SerializationException"}

    def test_indefinite_length_request(self, server, stream):
        # Java SDKs may stream maps with indefinite length (0xBF ... 0xFF).
        body = b"\xbf" + cbor2.dumps("StreamName") + cbor2.dumps(stream) + b"\xff"
        resp = raw_request(server.addr, target=TARGET_PREFIX + "DescribeStreamSummary",
                           body=body, content_type=CBOR_TYPE)
        assert resp.status == 200
        assert cbor2.loads(resp.body, semantic_decoders={1: lambda v, _i: v})[
            "StreamDescriptionSummary"]["StreamName"] == stream


class TestHttp2:
    def test_h2c_prior_knowledge(self, server, stream):
        with httpx.Client(http1=False, http2=True, timeout=30, trust_env=False) as client:
            def call(op, payload):
                return client.post(server.endpoint + "/", content=json.dumps(payload).encode(),
                                   headers={"X-Amz-Target": TARGET_PREFIX + op,
                                            "Content-Type": JSON_TYPE})

            resp = call("PutRecord", {"StreamName": stream, "Data": "aGVsbG8=",
                                      "PartitionKey": "h2"})
            assert resp.http_version == "HTTP/2"
            assert resp.status_code == 200, resp.text
            assert UUID_RE.match(resp.headers["x-amzn-requestid"])
            seq = resp.json()["SequenceNumber"]
            it = call("GetShardIterator", {
                "StreamName": stream, "ShardId": shard_id(0),
                "ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": seq,
            }).json()["ShardIterator"]
            records = call("GetRecords", {"ShardIterator": it}).json()["Records"]
            assert records[0]["Data"] == "aGVsbG8="
            # Several requests multiplexed on the one connection.
            resps = [call("DescribeStreamSummary", {"StreamName": stream}) for _ in range(3)]
            assert all(r.http_version == "HTTP/2" and r.status_code == 200 for r in resps)
            err = call("DescribeStream", {"StreamName": "ghost"})
            assert err.status_code == 400
            assert err.json() == {"__type": "ResourceNotFoundException",
                                  "message": not_found("ghost")}

    def test_http2_get_is_access_denied(self, server):
        with httpx.Client(http1=False, http2=True, timeout=30, trust_env=False) as client:
            resp = client.get(server.endpoint + "/")
            assert resp.http_version == "HTTP/2"
            assert resp.status_code == 403
            assert "AccessDeniedException" in resp.text


def test_account_in_messages_is_the_default(server):
    resp = call_json(server.addr, "DescribeStreamSummary", {"StreamName": "nobody"})
    assert resp.json()["message"] == f"Stream nobody under account {ACCOUNT} not found."
