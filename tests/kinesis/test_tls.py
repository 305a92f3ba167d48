"""`serve --tls-cert/--tls-key`: HTTPS with ALPN `h2` and `http/1.1` (wire reference §1.8).

A throwaway CA and a leaf for 127.0.0.1/localhost are made per module with `cryptography`.
Clients trust only that CA, so each passing call also proves the server presented the
configured chain. Covered: boto3 (HTTP/1.1), httpx with ALPN `h2` and with `http/1.1`, HTTP/2
with no ALPN at all (Java SDK v2 before 2025), and the start-up errors for bad files.
"""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import socket
import ssl
import subprocess
import tempfile
from pathlib import Path

import boto3
import h2.config
import h2.connection
import h2.events
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import SSLError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import Server
from kinesis_client import (
    JSON_TYPE,
    REGION,
    TARGET_PREFIX,
    aws_error,
    create_stream,
    not_found,
    shard_id,
    unique_name,
)

HTTPS_READY_PREFIX = "listening on https://"
TIMEOUT_SECS = 30


class TlsServer(Server):
    """conftest's `Server`, started with TLS: its ready line must say `https://`."""

    @property
    def endpoint(self) -> str:
        return f"https://{self.addr}"

    def _read_ready_line(self) -> str:
        line = super()._read_ready_line()
        assert line.startswith(HTTPS_READY_PREFIX), f"not an https ready line: {line!r}"
        # The base class parses the address out of the plain-HTTP form of the line.
        return "listening on http://" + line[len(HTTPS_READY_PREFIX) :]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(directory: Path) -> dict[str, Path]:
    """Writes ca.pem, and cert.pem + key.pem for a leaf valid for 127.0.0.1 and localhost."""
    now = dt.datetime.now(dt.timezone.utc)
    validity = (now - dt.timedelta(minutes=5), now + dt.timedelta(days=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("shardline test CA"))
        .issuer_name(_name("shardline test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=False, content_commitment=False,
                          key_encipherment=False, data_encipherment=False,
                          key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("localhost"),
            ]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {name: directory / f"{name}.pem" for name in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    return paths


@pytest.fixture(scope="module")
def pki():
    with tempfile.TemporaryDirectory(prefix="shardline-tls-pki-") as tmp:
        yield make_pki(Path(tmp))


@pytest.fixture(scope="module")
def server(shardline_binary, pki):
    """Overrides conftest's `server`: this module's server speaks only TLS."""
    with tempfile.TemporaryDirectory(prefix="shardline-tls-") as tmp:
        args = ["--tls-cert", str(pki["cert"]), "--tls-key", str(pki["key"])]
        srv = TlsServer(shardline_binary, Path(tmp) / "data", args).start()
        try:
            yield srv
        finally:
            if srv.proc is not None:
                srv.stop_and_check()


def tls_boto_client(server, verify):
    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region_name=REGION,
    )
    return session.client(
        "kinesis",
        endpoint_url=server.endpoint,
        verify=verify,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                      connect_timeout=5, read_timeout=TIMEOUT_SECS, tcp_keepalive=False),
    )


@pytest.fixture(scope="module")
def kinesis(server, pki):
    return tls_boto_client(server, str(pki["ca"]))


def client_context(pki, alpn: list[str] | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    return ctx


def json_headers(op: str) -> dict[str, str]:
    return {"X-Amz-Target": TARGET_PREFIX + op, "Content-Type": JSON_TYPE}


def test_boto3_round_trip_over_https(kinesis):
    stream = unique_name("tls")
    create_stream(kinesis, stream, 1)
    data = bytes(range(256))
    put = kinesis.put_record(StreamName=stream, Data=data, PartitionKey="pk")
    it = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=put["ShardId"], ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=put["SequenceNumber"],
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=it)["Records"]
    assert [r["Data"] for r in records] == [data]
    with aws_error("ResourceNotFoundException", not_found("ghost")):
        kinesis.describe_stream_summary(StreamName="ghost")
    kinesis.delete_stream(StreamName=stream)


def test_boto3_rejects_the_certificate_without_the_test_ca(server):
    """The system trust store does not know the test CA: the handshake really is verified."""
    with pytest.raises(SSLError):
        tls_boto_client(server, True).list_streams()


def test_httpx_alpn_h2_is_http2(server, pki, kinesis):
    stream = unique_name("tls-h2")
    create_stream(kinesis, stream, 1)
    ctx = client_context(pki, None)  # httpx sets ALPN itself: h2 first, then http/1.1
    with httpx.Client(http1=True, http2=True, verify=ctx, timeout=TIMEOUT_SECS,
                      trust_env=False) as client:
        def call(op, payload):
            return client.post(server.endpoint + "/", content=json.dumps(payload).encode(),
                               headers=json_headers(op))

        put = call("PutRecord", {"StreamName": stream, "Data": "aDI=", "PartitionKey": "h2"})
        assert put.http_version == "HTTP/2"
        assert put.status_code == 200, put.text
        it = call("GetShardIterator", {
            "StreamName": stream, "ShardId": shard_id(0), "ShardIteratorType": "TRIM_HORIZON",
        }).json()["ShardIterator"]
        got = call("GetRecords", {"ShardIterator": it})
        assert got.http_version == "HTTP/2"
        assert [r["Data"] for r in got.json()["Records"]] == ["aDI="]
        err = call("DescribeStreamSummary", {"StreamName": "ghost"})
        assert err.http_version == "HTTP/2"
        assert err.status_code == 400
        assert err.json() == {"__type": "ResourceNotFoundException", "message": not_found("ghost")}
        health = client.get(server.endpoint + "/health")
        assert (health.http_version, health.status_code, health.text) == ("HTTP/2", 200, "ok\n")


def test_httpx_alpn_http11_is_http11(server, pki):
    with httpx.Client(http1=True, http2=False, verify=client_context(pki, None),
                      timeout=TIMEOUT_SECS, trust_env=False) as client:
        resp = client.post(server.endpoint + "/", content=b"{}", headers=json_headers("ListStreams"))
        assert resp.http_version == "HTTP/1.1"
        assert resp.status_code == 200, resp.text
        assert "StreamNames" in resp.json()


def test_http2_without_alpn_is_detected_from_the_preface(server, pki):
    """Java SDK v2 (Netty) before 2025 spoke HTTP/2 over TLS without offering ALPN."""
    ctx = client_context(pki, None)
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT_SECS) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
            assert sock.selected_alpn_protocol() is None
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            conn.initiate_connection()
            body = b"{}"
            conn.send_headers(1, [
                (":method", "POST"), (":scheme", "https"), (":authority", server.addr),
                (":path", "/"), ("x-amz-target", TARGET_PREFIX + "ListStreams"),
                ("content-type", JSON_TYPE), ("content-length", str(len(body))),
            ])
            conn.send_data(1, body, end_stream=True)
            sock.sendall(conn.data_to_send())
            status, data, ended = None, b"", False
            while not ended:
                chunk = sock.recv(65536)
                assert chunk, "server closed the connection before the response ended"
                for event in conn.receive_data(chunk):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = dict(event.headers)[b":status"]
                    elif isinstance(event, h2.events.DataReceived):
                        data += event.data
                        conn.acknowledge_received_data(event.flow_controlled_length,
                                                       event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        ended = True
                sock.sendall(conn.data_to_send())
    assert status == b"200"
    assert "StreamNames" in json.loads(data)


def test_cleartext_request_to_the_tls_port_is_not_served(server):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT_SECS)
    try:
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            conn.request("GET", "/health")
            conn.getresponse()
    finally:
        conn.close()


def test_server_still_serves_after_failed_handshakes(server, kinesis):
    """Rejected and abandoned handshakes end their connection, not the server."""
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT_SECS) as s:
        s.sendall(b"\x16\x03\x01\x00\x05garbage")
    assert "StreamNames" in kinesis.list_streams()


# --- start-up errors: the server must refuse to start and say which file is wrong ---

def start_fails(binary: Path, tmp: Path, args: list[str]) -> str:
    proc = subprocess.run(
        [str(binary), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp / "data"),
         *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT_SECS,
    )
    assert proc.returncode != 0, proc.stdout
    assert "listening on" not in proc.stdout
    return proc.stderr


def test_missing_certificate_file_is_named(shardline_binary, pki, tmp_path):
    missing = tmp_path / "nope.pem"
    err = start_fails(shardline_binary, tmp_path,
                      ["--tls-cert", str(missing), "--tls-key", str(pki["key"])])
    assert f"reading TLS certificate file {missing}" in err, err


def test_unreadable_key_file_is_named(shardline_binary, pki, tmp_path):
    missing = tmp_path / "missing-key.pem"
    err = start_fails(shardline_binary, tmp_path,
                      ["--tls-cert", str(pki["cert"]), "--tls-key", str(missing)])
    assert f"reading TLS key file {missing}" in err, err


def test_key_file_without_a_key(shardline_binary, pki, tmp_path):
    err = start_fails(shardline_binary, tmp_path,
                      ["--tls-cert", str(pki["cert"]), "--tls-key", str(pki["cert"])])
    assert f"TLS key file {pki['cert']} holds no PEM private key" in err, err


def test_certificate_file_without_a_certificate(shardline_binary, pki, tmp_path):
    err = start_fails(shardline_binary, tmp_path,
                      ["--tls-cert", str(pki["key"]), "--tls-key", str(pki["key"])])
    assert f"TLS certificate file {pki['key']} holds no PEM `CERTIFICATE` section" in err, err


def test_key_of_another_certificate_is_rejected(shardline_binary, pki, tmp_path):
    other = make_pki(tmp_path)
    err = start_fails(shardline_binary, tmp_path,
                      ["--tls-cert", str(pki["cert"]), "--tls-key", str(other["key"])])
    assert f"TLS key {other['key']} does not belong to certificate {pki['cert']}" in err, err


def test_certificate_needs_a_key(shardline_binary, pki, tmp_path):
    err = start_fails(shardline_binary, tmp_path, ["--tls-cert", str(pki["cert"])])
    assert "--tls-key" in err, err
