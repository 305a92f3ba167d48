#!/usr/bin/env python3
"""What a group-commit round costs the disk: one file or several, direct writes, each write
followed by `fdatasync` (docs/performance.md, "Direct writes").

Per round, writes SIZE bytes with O_DIRECT to each of N files at the round's offset, each
from its own thread, then syncs: every file with `fdatasync` (as the committer does), or
once with `syncfs`. Files are extended by each write ("append"), or were written in full
beforehand ("prewritten": no size or extent change to commit), or preallocated with
`posix_fallocate` ("fallocate": unwritten extents). Prints the median, p90 and p99 round
time of 400 rounds. Files live in a temporary directory under $TMPDIR (the disk measured).

    python3 benches/disk/syncs.py
"""
import ctypes
import mmap
import os
import statistics
import tempfile
import threading
import time

LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
ROUNDS = 400


def run(root, nfiles, size, prep, sync):
    fds = []
    for i in range(nfiles):
        fd = os.open(os.path.join(root, f"f{i}"), os.O_CREAT | os.O_TRUNC | os.O_RDWR | os.O_DIRECT)
        if prep == "prewritten":
            block = mmap.mmap(-1, 1 << 20)
            for k in range(ROUNDS * size // (1 << 20) + 2):
                os.pwrite(fd, block, k << 20)
            os.fsync(fd)
        elif prep == "fallocate":
            os.posix_fallocate(fd, 0, ROUNDS * size + (1 << 20))
            os.fsync(fd)
        fds.append(fd)
    buf = mmap.mmap(-1, size)  # page-aligned, as O_DIRECT wants
    buf.write(os.urandom(size))
    times = []
    for r in range(ROUNDS):
        t = time.perf_counter()

        def one(fd):
            os.pwrite(fd, buf, r * size)
            if sync == "fdatasync":
                os.fdatasync(fd)

        threads = [threading.Thread(target=one, args=(fd,)) for fd in fds]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if sync == "syncfs" and LIBC.syncfs(fds[0]) != 0:
            raise OSError(ctypes.get_errno(), "syncfs")
        times.append((time.perf_counter() - t) * 1000)
    for fd in fds:
        os.close(fd)
    times.sort()
    print(f"{prep:10s} {sync:9s} files={nfiles} {size >> 10:4d} KiB each: "
          f"median {statistics.median(times):.2f} ms, p90 {times[int(ROUNDS * .9)]:.2f}, "
          f"p99 {times[int(ROUNDS * .99)]:.2f}")


def main():
    with tempfile.TemporaryDirectory(prefix="shardline-syncs-") as root:
        for prep, sync in [("append", "fdatasync"), ("prewritten", "fdatasync"),
                           ("fallocate", "fdatasync"), ("append", "syncfs")]:
            run(root, 1, 256 << 10, prep, sync)
            run(root, 4, 64 << 10, prep, sync)


if __name__ == "__main__":
    main()
