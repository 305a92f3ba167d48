//! The io_uring backend: every shard's write linked to its `fdatasync`, submitted together.
//!
//! This module and `log/mmap.rs` are the only hand-written places allowed `unsafe`: the
//! kernel reads our buffers after `submit`, which the type system cannot see.
//!
//! Invariants:
//! - Every buffer pushed to the ring belongs to an op in the `ops` slice that `submit` borrows,
//!   and `submit` waits for every completion before returning, so no buffer is freed or moved
//!   while the kernel may still read it.
//! - A short write breaks the link (the kernel cancels the linked sync); the rest of that op
//!   is finished with plain system calls, so a short write is never reported as success.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, squeue, types, IoUring};

use super::{Appender, WriteOp};

/// Ring entries; a submit with more ops runs in rounds of `RING_ENTRIES / 2` ops.
const RING_ENTRIES: u32 = 256;

/// io_uring with linked write + fdatasync.
pub struct UringAppender {
    ring: IoUring,
}

impl UringAppender {
    /// Sets up a ring.
    ///
    /// # Errors
    /// The kernel's refusal (ENOSYS on old kernels, EPERM under seccomp).
    pub fn new() -> io::Result<UringAppender> {
        Ok(UringAppender {
            ring: IoUring::new(RING_ENTRIES)?,
        })
    }

    fn round(&mut self, ops: &[WriteOp], results: &mut [io::Result<()>]) {
        // Per op: bytes written by the ring, and the sync's outcome.
        let mut written: Vec<Option<i32>> = vec![None; ops.len()];
        let mut synced: Vec<Option<i32>> = vec![None; ops.len()];
        let mut expected = 0usize;
        for (i, op) in ops.iter().enumerate() {
            let fd = types::Fd(op.file.as_raw_fd());
            // Buffers are below 4 GiB (batches are capped at 256 MiB, one write per shard).
            let len = op.data.len().min(u32::MAX as usize) as u32;
            let mut write = opcode::Write::new(fd, op.data.as_ptr(), len)
                .offset(op.pos)
                .build()
                .user_data((i as u64) << 1);
            if op.sync {
                write = write.flags(squeue::Flags::IO_LINK);
            }
            // SAFETY: `op.data` lives in `ops`, borrowed for this whole call, and we wait for
            // this entry's completion below before returning; the ring has room because a
            // round holds at most RING_ENTRIES / 2 ops of two entries each.
            let pushed = unsafe { self.ring.submission().push(&write) };
            if pushed.is_err() {
                written[i] = Some(-libc::EAGAIN);
                continue;
            }
            expected += 1;
            if op.sync {
                let sync = opcode::Fsync::new(fd)
                    .flags(types::FsyncFlags::DATASYNC)
                    .build()
                    .user_data(((i as u64) << 1) | 1);
                // SAFETY: an fsync entry references no memory.
                if unsafe { self.ring.submission().push(&sync) }.is_ok() {
                    expected += 1;
                } else {
                    synced[i] = Some(-libc::EAGAIN);
                }
            }
        }
        let mut seen = 0usize;
        while seen < expected {
            if let Err(e) = self.ring.submit_and_wait(expected - seen) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The ring itself failed: finish every unfinished op the portable way.
                for (i, op) in ops.iter().enumerate() {
                    if written[i].is_none() {
                        results[i] = super::sync::write_op(op, 0);
                        written[i] = Some(op.data.len() as i32);
                        synced[i] = Some(0);
                    }
                }
                return;
            }
            for cqe in self.ring.completion() {
                seen += 1;
                let i = (cqe.user_data() >> 1) as usize;
                if i >= ops.len() {
                    continue;
                }
                if cqe.user_data() & 1 == 0 {
                    written[i] = Some(cqe.result());
                } else {
                    synced[i] = Some(cqe.result());
                }
            }
        }
        for (i, op) in ops.iter().enumerate() {
            let w = written[i].unwrap_or(-libc::EIO);
            results[i] = if w < 0 {
                if w == -libc::EAGAIN {
                    super::sync::write_op(op, 0)
                } else {
                    Err(io::Error::from_raw_os_error(-w))
                }
            } else if (w as usize) < op.data.len() {
                // Short write: the linked sync was cancelled; finish with system calls.
                super::sync::write_op(op, w as usize)
            } else if !op.sync {
                Ok(())
            } else {
                match synced[i] {
                    Some(s) if s >= 0 => Ok(()),
                    Some(s) if s == -libc::ECANCELED || s == -libc::EAGAIN => op.file.sync_data(),
                    Some(s) => Err(io::Error::from_raw_os_error(-s)),
                    None => op.file.sync_data(),
                }
            };
        }
    }
}

impl Appender for UringAppender {
    fn name(&self) -> &'static str {
        "uring"
    }

    fn submit(&mut self, ops: &[WriteOp]) -> Vec<io::Result<()>> {
        let mut results: Vec<io::Result<()>> = ops.iter().map(|_| Ok(())).collect();
        let per_round = (RING_ENTRIES / 2) as usize;
        for (chunk, res) in ops.chunks(per_round).zip(results.chunks_mut(per_round)) {
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
        let ops: Vec<WriteOp> = (0..300)
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
                data: vec![i as u8; 1000 + i],
                sync: i % 2 == 0,
            })
            .collect();
        let res = ring.submit(&ops);
        assert!(res.iter().all(|r| r.is_ok()));
        for (i, op) in ops.iter().enumerate() {
            let mut b = vec![0u8; 1000 + i];
            op.file.read_exact_at(&mut b, 3).unwrap();
            assert!(b.iter().all(|x| *x == i as u8));
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
        let res = ring.submit(&[WriteOp {
            file: f,
            pos: 0,
            data: vec![1; 10],
            sync: true,
        }]);
        assert!(res[0].is_err());
    }
}
