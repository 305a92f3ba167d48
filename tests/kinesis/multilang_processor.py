#!/usr/bin/env python3
"""A KCL MultiLangDaemon record processor written for the tests from the protocol
description (docs/consumers.md, reference section 7), without the KCL's Python library.

Run by `shardline consume ... -- python multilang_processor.py --log-dir DIR`. It logs every
record it receives and every checkpoint it requests (before sending it, and again with the
daemon's answer) as JSON lines
to DIR/<shard>-<pid>.jsonl, checkpoints every N records (--checkpoint-every) at the last
record received, at shardEnded (sequenceNumber null = SHARD_END) and at shutdownRequested.

With --probe-errors it also asks for two checkpoints the daemon must refuse: one during
initialize (no checkpointer: InvalidStateException) and one beyond the last delivered record
in its first batch (IllegalArgumentException), and it writes a non-JSON line and a JSON line
with an unknown action to stdout, which the daemon must skip.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time


class Processor:
    def __init__(self, log_dir: str, checkpoint_every: int, probe_errors: bool):
        self.log_dir = log_dir
        self.checkpoint_every = checkpoint_every
        self.probe_errors = probe_errors
        self.shard = os.environ.get("SHARDLINE_SHARD_ID", "unknown")
        self.log_file = None
        self.since_checkpoint = 0
        self.last_seq: str | None = None
        self.batches = 0

    def log(self, **entry) -> None:
        if self.log_file is None:
            path = os.path.join(self.log_dir, f"{self.shard}-{os.getpid()}.jsonl")
            self.log_file = open(path, "a", encoding="utf-8")
        entry.update(shard=self.shard, pid=os.getpid(), t=time.time())
        self.log_file.write(json.dumps(entry) + "\n")
        self.log_file.flush()
        os.fsync(self.log_file.fileno())

    @staticmethod
    def send(message: dict) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    @staticmethod
    def receive() -> dict | None:
        while True:
            line = sys.stdin.readline()
            if not line:
                return None
            line = line.strip()
            if line:
                return json.loads(line)

    def checkpoint(self, seq: str | None, why: str) -> dict:
        # Logged before it is sent: a kill between the daemon's write and this process's
        # log of the answer leaves a checkpoint that landed with no answer logged.
        self.log(event="checkpoint-request", why=why, requested=seq)
        self.send({"action": "checkpoint", "sequenceNumber": seq, "subSequenceNumber": 0})
        reply = self.receive()
        assert reply is not None and reply.get("action") == "checkpoint", reply
        error = reply.get("error")
        self.log(event="checkpoint", why=why, requested=seq, seq=reply.get("sequenceNumber"),
                 ok=error is None, error=error)
        if error is None:
            self.since_checkpoint = 0
        return reply

    def status(self, action: str) -> None:
        self.send({"action": "status", "responseFor": action})

    def run(self) -> None:
        while True:
            message = self.receive()
            if message is None:
                return
            action = message["action"]
            if action == "initialize":
                self.shard = message["shardId"]
                self.log(event="initialize", seq=message.get("sequenceNumber"))
                if self.probe_errors:
                    self.checkpoint(None, "probe-initialize")
                    print("this line is not JSON and must be skipped", flush=True)
                    self.send({"action": "dance"})
                    print(f"processor for {self.shard} started", file=sys.stderr, flush=True)
            elif action == "processRecords":
                self.batches += 1
                for record in message["records"]:
                    data = base64.b64decode(record["data"]).decode()
                    self.last_seq = record["sequenceNumber"]
                    self.since_checkpoint += 1
                    self.log(event="record", seq=self.last_seq, data=data,
                             key=record["partitionKey"], sub=record.get("subSequenceNumber"))
                if self.probe_errors and self.batches == 1:
                    self.checkpoint("9" * 70, "probe-beyond")
                if self.since_checkpoint >= self.checkpoint_every:
                    self.checkpoint(self.last_seq, "every")
            elif action == "shardEnded":
                self.log(event="shardEnded")
                self.checkpoint(None, "shardEnded")
            elif action == "shutdownRequested":
                self.log(event="shutdownRequested")
                if self.last_seq is not None:
                    self.checkpoint(None, "shutdown")
            elif action == "leaseLost":
                self.log(event="leaseLost")
            else:
                self.log(event="unknown", action=action)
            self.status(action)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log-dir", required=True)
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--probe-errors", action="store_true")
    args = parser.parse_args()
    Processor(args.log_dir, args.checkpoint_every, args.probe_errors).run()


if __name__ == "__main__":
    main()
