//! The portable backend: positional writes and `fdatasync`, one op after another.

use std::io;

use super::{Appender, WriteOp};

/// `pwrite` + `fdatasync`.
pub struct SyncAppender;

impl Appender for SyncAppender {
    fn name(&self) -> &'static str {
        "sync"
    }

    fn submit(&mut self, ops: &mut [WriteOp]) -> Vec<io::Result<()>> {
        ops.iter().map(|op| op.perform_from(0)).collect()
    }
}
