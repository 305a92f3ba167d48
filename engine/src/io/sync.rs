//! The portable backend: positional writes and `fdatasync`, one op after another.

use std::io;
use std::os::unix::fs::FileExt;

use super::{Appender, WriteOp};

/// `pwrite` + `fdatasync`.
pub struct SyncAppender;

/// Performs one op with plain system calls; also the uring backend's fallback for short writes.
pub(crate) fn write_op(op: &WriteOp, from: usize) -> io::Result<()> {
    op.file
        .write_all_at(&op.data[from..], op.pos + from as u64)?;
    if op.sync {
        op.file.sync_data()?;
    }
    Ok(())
}

impl Appender for SyncAppender {
    fn name(&self) -> &'static str {
        "sync"
    }

    fn submit(&mut self, ops: &mut [WriteOp]) -> Vec<io::Result<()>> {
        ops.iter().map(|op| write_op(op, 0)).collect()
    }
}
