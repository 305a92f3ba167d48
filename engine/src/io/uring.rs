//! The io_uring backend: every shard's write linked to its `fdatasync`, submitted together.
//! A write that is not to be synced (durability `none`) is linked instead to a
//! `sync_file_range(SYNC_FILE_RANGE_WRITE)` of its range, which starts writeback without
//! waiting for it: otherwise the page cache holds up to a segment's worth of dirty pages,
//! and the `fsync` that seals a segment at a roll waits for all of them while the shard's
//! appends wait for the roll (p99 over 100 ms at 1.5 M records/s; docs/performance.md).
//!
//! This module and `log/mmap.rs` are the only hand-written places allowed `unsafe`: the
//! kernel reads our buffers after `submit`, which the type system cannot see.
//!
//! Invariants:
//! - Every buffer pushed to the ring belongs to an op in the `ops` slice that `submit`
//!   borrows, and `submit` returns only after every pushed entry completed. If the ring
//!   itself fails so that completions can no longer be awaited, the buffers of unfinished
//!   ops are leaked (never freed while the kernel might read them) and those ops fail.
//! - An op succeeds only if its completion said so: results start as failures.
//! - A short write breaks the link (the kernel cancels the linked sync); the rest of that op
//!   is finished with plain system calls, so a short write is never reported as success.
//! - `user_data` carries a round number, so a stray completion from an earlier round can
//!   never be credited to an op of this one.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types, IoUring};

use super::{Appender, WriteOp};

/// Ring entries; a submit with more ops runs in rounds of `RING_ENTRIES / 2` ops.
const RING_ENTRIES: u32 = 256;
/// Attempts at `submit_and_wait` before the ring is declared broken.
const RING_RETRIES: usize = 100;
/// Most chunks in one vectored write (Linux's `IOV_MAX`); an op with more is written with
/// plain system calls instead. Shards coalesce small batches, so this takes more than 64
/// MiB pending on one shard.
const MAX_IOVECS: usize = 1024;

/// io_uring with linked write + fdatasync.
pub struct UringAppender {
    ring: IoUring,
    round: u32,
    /// Set when the ring failed; later submits use plain system calls.
    broken: bool,
}

fn user_data(round: u32, op: usize, is_sync: bool) -> u64 {
    (u64::from(round) << 32) | ((op as u64) << 1) | u64::from(is_sync)
}

impl UringAppender {
    /// Sets up a ring.
    ///
    /// # Errors
    /// The kernel's refusal (ENOSYS on old kernels, EPERM under seccomp).
    pub fn new() -> io::Result<UringAppender> {
        Ok(UringAppender {
            ring: IoUring::new(RING_ENTRIES)?,
            round: 0,
            broken: false,
        })
    }

    fn round(&mut self, ops: &mut [WriteOp], results: &mut [io::Result<()>]) {
        self.round = self.round.wrapping_add(1);
        let round = self.round;
        // Per op: bytes written by the ring, and the sync's outcome.
        let mut written: Vec<Option<i32>> = vec![None; ops.len()];
        let mut synced: Vec<Option<i32>> = vec![None; ops.len()];
        let mut pushed = vec![false; ops.len()];
        // The vectors the kernel reads the chunks' addresses from; they live (like the
        // chunks) until their writes complete.
        let mut iovecs: Vec<Vec<libc::iovec>> = Vec::with_capacity(ops.len());
        let mut expected = 0usize;
        for (i, op) in ops.iter().enumerate() {
            iovecs.push(
                op.chunks
                    .iter()
                    .map(|c| libc::iovec {
                        iov_base: c.as_ptr() as *mut libc::c_void,
                        iov_len: c.len(),
                    })
                    .collect(),
            );
            let iov = &iovecs[i];
            if iov.len() > MAX_IOVECS {
                continue;
            }
            let fd = types::Fd(op.file.as_raw_fd());
            // An op that only overwrites is one write made durable by itself (`RWF_DSYNC`):
            // no metadata changes, and the kernel completes it without a worker thread.
            let dsync = op.sync && op.overwrite;
            let write = opcode::Writev::new(fd, iov.as_ptr(), iov.len() as u32)
                .offset(op.pos)
                .rw_flags(if dsync { libc::RWF_DSYNC } else { 0 })
                .build()
                .user_data(user_data(round, i, false));
            // Otherwise the write is linked to an entry that runs only once it completed in
            // full.
            let then = (!dsync).then(|| {
                if op.sync {
                    opcode::Fsync::new(fd)
                        .flags(types::FsyncFlags::DATASYNC)
                        .build()
                } else {
                    // Length 0 means "to the end of the file".
                    let len = u32::try_from(op.len()).unwrap_or(0);
                    opcode::SyncFileRange::new(fd, len)
                        .offset(op.pos)
                        .flags(libc::SYNC_FILE_RANGE_WRITE)
                        .build()
                }
                .user_data(user_data(round, i, true))
            });
            let entries = 1 + usize::from(then.is_some());
            let mut sq = self.ring.submission();
            if sq.capacity() - sq.len() < entries {
                // Cannot happen with rounds of RING_ENTRIES / 2 ops; finish it the portable way.
                continue;
            }
            let write = if then.is_some() {
                write.flags(squeue::Flags::IO_LINK)
            } else {
                write
            };
            // SAFETY: `op.chunks` live in `ops`, borrowed for this whole call, and `iov` in
            // `iovecs`, which is neither dropped nor changed (its inner vectors never move)
            // until this round has waited for the entry's completion (or leaked both if the
            // ring breaks); the queue has room for the entries, checked above.
            unsafe {
                let _ = sq.push(&write);
            }
            match &then {
                // SAFETY: neither an fsync nor a sync_file_range entry references memory;
                // room was checked above.
                Some(then) => unsafe {
                    let _ = sq.push(then);
                },
                // Nothing separate to wait for: the write's completion is the sync's.
                None => synced[i] = Some(0),
            }
            expected += entries;
            pushed[i] = true;
        }
        let mut seen = 0usize;
        let mut failures = 0usize;
        while seen < expected {
            match self.ring.submit_and_wait(1) {
                Ok(_) => failures = 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failures += 1;
                    if failures < RING_RETRIES {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                        continue;
                    }
                    tracing::error!("io_uring failed ({e}); falling back to pwrite/fdatasync");
                    self.broken = true;
                    for (i, op) in ops.iter_mut().enumerate() {
                        let done = written[i].is_some() && synced[i].is_some();
                        if pushed[i] && !done {
                            // The kernel may still read these buffers: never free them.
                            std::mem::forget(std::mem::take(&mut op.chunks));
                            std::mem::forget(std::mem::take(&mut iovecs[i]));
                            results[i] = Err(io::Error::other(format!("io_uring failed: {e}")));
                            pushed[i] = false;
                        }
                    }
                    break;
                }
            }
            for cqe in self.ring.completion() {
                let ud = cqe.user_data();
                if (ud >> 32) as u32 != round {
                    continue;
                }
                seen += 1;
                let i = ((ud & 0xffff_ffff) >> 1) as usize;
                if i >= ops.len() {
                    continue;
                }
                if ud & 1 == 0 {
                    written[i] = Some(cqe.result());
                } else {
                    synced[i] = Some(cqe.result());
                }
            }
        }
        for (i, op) in ops.iter().enumerate() {
            if !pushed[i] {
                if op.chunks.is_empty() && results[i].is_err() {
                    continue;
                }
                results[i] = op.perform_from(0);
                continue;
            }
            let w = written[i].unwrap_or(-libc::EIO);
            results[i] = if w < 0 {
                Err(io::Error::from_raw_os_error(-w))
            } else if (w as usize) < op.len() {
                // Short write: the linked sync was cancelled; finish with system calls.
                op.perform_from(w as usize)
            } else if !op.sync {
                // Writeback was only started, as a hint: the write is what counts.
                Ok(())
            } else {
                match synced[i] {
                    Some(s) if s >= 0 => Ok(()),
                    Some(s) if s == -libc::ECANCELED => op.file.sync_data(),
                    Some(s) => Err(io::Error::from_raw_os_error(-s)),
                    None => Err(io::Error::other("fdatasync did not complete")),
                }
            };
        }
    }
}

impl Appender for UringAppender {
    fn name(&self) -> &'static str {
        "uring"
    }

    fn submit(&mut self, ops: &mut [WriteOp]) -> Vec<io::Result<()>> {
        if self.broken {
            return super::sync::SyncAppender.submit(ops);
        }
        let mut results: Vec<io::Result<()>> = ops
            .iter()
            .map(|_| Err(io::Error::other("not performed")))
            .collect();
        let per_round = (RING_ENTRIES / 2) as usize;
        for (chunk, res) in ops.chunks_mut(per_round).zip(results.chunks_mut(per_round)) {
            self.round(chunk, res);
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;
    use std::sync::Arc;

    #[test]
    fn writes_and_syncs_many_files() {
        let Ok(mut ring) = UringAppender::new() else {
            eprintln!("io_uring unavailable here; backend not exercised");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let mut ops: Vec<WriteOp> = (0..300)
            .map(|i| WriteOp {
                file: Arc::new(
                    std::fs::File::options()
                        .create(true)
                        .truncate(true)
                        .read(true)
                        .write(true)
                        .open(dir.path().join(format!("f{i}")))
                        .unwrap(),
                ),
                pos: 3,
                // Several chunks, so the vectored write's order is checked too.
                chunks: vec![vec![i as u8; 600].into(), vec![!(i as u8); 400 + i].into()],
                // Linked fdatasync, RWF_DSYNC, no sync.
                sync: i % 3 != 2,
                overwrite: i % 3 == 1,
            })
            .collect();
        let res = ring.submit(&mut ops);
        assert!(res.iter().all(|r| r.is_ok()));
        for (i, op) in ops.iter().enumerate() {
            let mut b = vec![0u8; 1000 + i];
            op.file.read_exact_at(&mut b, 3).unwrap();
            assert!(b[..600].iter().all(|x| *x == i as u8));
            assert!(b[600..].iter().all(|x| *x == !(i as u8)));
        }
    }

    #[test]
    fn a_write_error_is_reported() {
        let Ok(mut ring) = UringAppender::new() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro");
        std::fs::write(&path, b"x").unwrap();
        // Opened read-only: the write must fail with EBADF, and not be reported as success.
        let f = Arc::new(std::fs::File::open(&path).unwrap());
        for overwrite in [false, true] {
            let res = ring.submit(&mut [WriteOp {
                file: f.clone(),
                pos: 0,
                chunks: vec![vec![1; 10].into()],
                sync: true,
                overwrite,
            }]);
            assert!(res[0].is_err(), "overwrite {overwrite}");
        }
    }
}
