"""Starts the real `shardline` binary for black-box tests.

The shape follows mini-redis `tests/server.rs`: every test module gets its own server on
port 0 with a fresh data directory (fixture `server`), started through [`start_server`],
which waits for the one `listening on http://ADDR` line the binary prints when it is ready.
At the end the server gets SIGTERM and must exit with code 0: a server that cannot shut
down cleanly fails the module.

The binary is built once per session with `cargo build --bin shardline` (a debug build:
`scripts/test` has built the dependencies for `cargo test` already, so this only links the
binary), unless `SHARDLINE_BIN` names one to use.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from kinesis_client import boto_client

# Test traffic stays on loopback: never route it through a proxy the environment names.
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(filter(None, [os.environ.get(_var), "127.0.0.1", "localhost"]))

REPO = Path(__file__).resolve().parents[2]
READY_PREFIX = "listening on http://"
START_TIMEOUT_SECS = 60.0
STOP_TIMEOUT_SECS = 30.0


def build_binary() -> Path:
    """Builds the server (debug profile) and returns the path of the binary."""
    given = os.environ.get("SHARDLINE_BIN")
    if given:
        return Path(given)
    subprocess.run(
        ["cargo", "build", "--quiet", "--bin", "shardline"],
        cwd=REPO,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    binary = target / "debug" / "shardline"
    assert binary.is_file(), f"cargo build did not produce {binary}"
    return binary


class Server:
    """One running `shardline serve` process on a data directory.

    `kill()` + `start()` restarts it on the same data directory (on a new port).
    """

    def __init__(self, binary: Path, data_dir: Path, args: list[str]):
        self.binary = binary
        self.data_dir = Path(data_dir)
        self.args = list(args)
        self.proc: subprocess.Popen | None = None
        self.addr = ""
        self.stderr_path = self.data_dir.parent / f"{self.data_dir.name}.stderr.log"
        self.starts = 0

    @property
    def endpoint(self) -> str:
        return f"http://{self.addr}"

    @property
    def host(self) -> str:
        return self.addr.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.addr.rsplit(":", 1)[1])

    def start(self) -> "Server":
        assert self.proc is None, "server already running"
        self.starts += 1
        stderr = open(self.stderr_path, "ab")
        stderr.write(f"--- start {self.starts}\n".encode())
        stderr.flush()
        cmd = [
            str(self.binary),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(self.data_dir),
            *self.args,
        ]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
        )
        stderr.close()
        line = self._read_ready_line()
        assert line.startswith(READY_PREFIX), (
            f"unexpected first line {line!r} from {cmd}; stderr:\n{self.stderr_tail()}"
        )
        self.addr = line[len(READY_PREFIX) :].strip()
        return self

    def _read_ready_line(self) -> str:
        self._stdout_rest = b""
        return self.read_stdout_line()

    def read_stdout_line(self) -> str:
        """The next line the server prints on stdout (e.g. `native listening on ADDR`
        after the ready line, with `--native-listen`)."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + START_TIMEOUT_SECS
        buf = getattr(self, "_stdout_rest", b"")
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise AssertionError(
                    f"server printed no ready line within {START_TIMEOUT_SECS}s; "
                    f"stderr:\n{self.stderr_tail()}"
                )
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                code = self.proc.wait()
                self.proc = None
                raise AssertionError(
                    f"server exited with {code} before it was ready; "
                    f"stderr:\n{self.stderr_tail()}"
                )
            buf += chunk
        line, self._stdout_rest = buf.split(b"\n", 1)
        return line.decode()

    def stop(self) -> int:
        """SIGTERM, wait, and return the exit code."""
        assert self.proc is not None, "server not running"
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=STOP_TIMEOUT_SECS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(
                f"server did not stop within {STOP_TIMEOUT_SECS}s of SIGTERM; "
                f"stderr:\n{self.stderr_tail()}"
            )
        finally:
            if proc.stdout:
                proc.stdout.close()
        return code

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to flush anything."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()

    def stop_and_check(self) -> None:
        code = self.stop()
        assert code == 0, (
            f"server exited with {code} after SIGTERM; stderr:\n{self.stderr_tail()}"
        )

    def stderr_tail(self, max_bytes: int = 4000) -> str:
        try:
            data = self.stderr_path.read_bytes()
        except OSError:
            return "(no stderr)"
        return data[-max_bytes:].decode(errors="replace")

    def client(self, **kwargs):
        return boto_client(self.endpoint, **kwargs)


def start_server(binary: Path, data_dir: Path, args: list[str] | None = None) -> Server:
    """Starts a server on port 0 and returns once it is listening."""
    return Server(binary, data_dir, args or []).start()


@pytest.fixture(scope="session")
def shardline_binary() -> Path:
    return build_binary()


@pytest.fixture(scope="module")
def server(shardline_binary, request):
    """A server for this module. A module may set `SERVER_ARGS = [...]` for extra flags."""
    args = list(getattr(request.module, "SERVER_ARGS", []))
    with tempfile.TemporaryDirectory(prefix="shardline-test-") as tmp:
        srv = start_server(shardline_binary, Path(tmp) / "data", args)
        try:
            yield srv
        finally:
            if srv.proc is not None:
                srv.stop_and_check()


@pytest.fixture(scope="module")
def kinesis(server):
    """A boto3 client for the module's server: no retries, no client-side validation (so
    the server's own ValidationException texts are what the tests see)."""
    return server.client()


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path / "data"
