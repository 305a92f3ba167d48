//! A fault-injecting backend for tests: `pwrite`/`fdatasync` that fails chosen operations.
//!
//! Counting is shared through [`FaultPlan`], so a test keeps a handle and can arm a failure
//! while the engine runs. A failed op reports the error without touching the file, as a
//! disk that refused the write or the flush would.

use std::io;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use super::{Appender, WriteOp};

/// Which ops fail. `-1` means never; `n >= 0` means the op after `n` more successes fails,
/// and every later one too (a disk that failed stays failed).
#[derive(Debug)]
pub struct FaultPlan {
    pub syncs_before_failure: AtomicI64,
    pub writes_before_failure: AtomicI64,
    /// The errno reported (e.g. `libc::EIO`, `libc::ENOSPC`).
    pub errno: i32,
}

impl FaultPlan {
    /// A plan that fails nothing until armed.
    pub fn new(errno: i32) -> Arc<FaultPlan> {
        Arc::new(FaultPlan {
            syncs_before_failure: AtomicI64::new(-1),
            writes_before_failure: AtomicI64::new(-1),
            errno,
        })
    }

    fn take(counter: &AtomicI64) -> bool {
        let mut cur = counter.load(Ordering::SeqCst);
        loop {
            if cur < 0 {
                return false;
            }
            if cur == 0 {
                return true;
            }
            match counter.compare_exchange(cur, cur - 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return false,
                Err(now) => cur = now,
            }
        }
    }
}

/// Plain `pwrite`/`fdatasync`, failing ops as `plan` says.
pub struct FaultyAppender {
    pub plan: Arc<FaultPlan>,
}

impl Appender for FaultyAppender {
    fn name(&self) -> &'static str {
        "faulty"
    }

    fn submit(&mut self, ops: &mut [WriteOp]) -> Vec<io::Result<()>> {
        ops.iter()
            .map(|op| {
                if FaultPlan::take(&self.plan.writes_before_failure) {
                    return Err(io::Error::from_raw_os_error(self.plan.errno));
                }
                op.write_data_from(0)?;
                if op.sync {
                    if FaultPlan::take(&self.plan.syncs_before_failure) {
                        return Err(io::Error::from_raw_os_error(self.plan.errno));
                    }
                    op.file.sync_data()?;
                }
                Ok(())
            })
            .collect()
    }
}
