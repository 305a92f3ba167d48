//! The I/O seam under the log's append path.
//!
//! The committer hands an [`Appender`] a set of writes, one per shard that has data waiting,
//! and each write may ask to be made durable (`fdatasync`). Backends:
//! - [`uring::UringAppender`]: io_uring, each write linked to its `fdatasync` (or, for an
//!   op that only overwrites, one write with `RWF_DSYNC`), all shards' writes submitted at
//!   once so the kernel runs them in parallel. A write not to be synced is linked to a
//!   `sync_file_range` that starts its writeback (see the module);
//! - [`sync::SyncAppender`]: portable `pwrite` + `fdatasync`, used when io_uring is refused
//!   (old kernels, seccomp sandboxes); writes that are not synced are left to the kernel's
//!   own writeback;
//! - [`faulty::FaultyAppender`]: wraps another backend and fails chosen writes or syncs, so
//!   tests can check that an I/O error is never acknowledged as success.
//!
//! Invariant: `submit` returns only when every op has finished (or failed), so the buffers
//! it was given are never referenced after it returns.

pub mod faulty;
pub mod sync;
pub mod uring;

use std::fs::File;
use std::io;
use std::sync::Arc;

use bytes::Bytes;

/// One write for the committer: `chunks`, one after another, at `pos` in `file`, then
/// optionally `fdatasync`.
///
/// The chunks are the shard's batches as they were encoded, so that queueing an append
/// never copies it into one buffer (a vectored write takes them as they are); with direct
/// writes, one block-aligned staging buffer (`log::direct`).
pub struct WriteOp {
    pub file: Arc<File>,
    pub pos: u64,
    pub chunks: Vec<Bytes>,
    pub sync: bool,
    /// The write only overwrites blocks written and synced before (`log::zero_ahead`): a
    /// backend may make it durable with `RWF_DSYNC` instead of a separate `fdatasync`.
    pub overwrite: bool,
}

impl WriteOp {
    /// Bytes to write.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.chunks.iter().all(Bytes::is_empty)
    }

    /// Writes the op's bytes from byte `from` on with positional writes, without syncing.
    ///
    /// # Errors
    /// The first failing `pwrite`.
    pub fn write_data_from(&self, from: usize) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let mut at = 0usize;
        for chunk in &self.chunks {
            let end = at + chunk.len();
            if end > from {
                let skip = from.saturating_sub(at);
                self.file
                    .write_all_at(&chunk[skip..], self.pos + (at + skip) as u64)?;
            }
            at = end;
        }
        Ok(())
    }

    /// Performs the op from byte `from` on with plain system calls: the portable backend,
    /// and the uring backend's way to finish a short write.
    ///
    /// # Errors
    /// The first failing `pwrite` or `fdatasync`.
    pub fn perform_from(&self, from: usize) -> io::Result<()> {
        self.write_data_from(from)?;
        if self.sync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// A backend that performs the committer's writes.
pub trait Appender: Send {
    /// A short name for logs and benchmarks (`uring`, `sync`).
    fn name(&self) -> &'static str;

    /// Performs every op and returns one result per op, in order. An op succeeds only if all
    /// its bytes were written and, when asked, synced. A backend may take an op's buffer
    /// (leaving it empty) when it cannot prove the kernel is done with it; that op then fails.
    fn submit(&mut self, ops: &mut [WriteOp]) -> Vec<io::Result<()>>;
}

/// Which backend the engine uses.
#[derive(Clone, Default)]
pub enum IoMode {
    /// io_uring when the kernel allows it, else `pwrite`/`fdatasync`.
    #[default]
    Auto,
    /// io_uring, failing to open if it is unavailable.
    Uring,
    /// `pwrite`/`fdatasync`.
    Sync,
    /// A caller-supplied backend (fault injection in tests).
    Custom(Arc<dyn Fn() -> Box<dyn Appender> + Send + Sync>),
}

impl std::fmt::Debug for IoMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IoMode::Auto => "auto",
            IoMode::Uring => "uring",
            IoMode::Sync => "sync",
            IoMode::Custom(_) => "custom",
        })
    }
}

impl IoMode {
    /// Parses `auto`, `uring` or `sync` (the values of `SHARDLINE_IO`).
    pub fn parse(s: &str) -> Option<IoMode> {
        match s {
            "auto" => Some(IoMode::Auto),
            "uring" => Some(IoMode::Uring),
            "sync" => Some(IoMode::Sync),
            _ => None,
        }
    }

    /// Reads `SHARDLINE_IO`, defaulting to [`IoMode::Auto`].
    ///
    /// # Errors
    /// Returns the offending value if it is not `auto`, `uring` or `sync`.
    pub fn from_env() -> Result<IoMode, String> {
        match std::env::var("SHARDLINE_IO") {
            Ok(v) => IoMode::parse(&v)
                .ok_or_else(|| format!("SHARDLINE_IO={v} is not one of uring, sync, auto")),
            Err(_) => Ok(IoMode::Auto),
        }
    }

    /// Builds the backend.
    ///
    /// # Errors
    /// With [`IoMode::Uring`], the kernel's refusal to set up a ring.
    pub fn build(&self) -> io::Result<Box<dyn Appender>> {
        match self {
            IoMode::Auto => match uring::UringAppender::new() {
                Ok(u) => Ok(Box::new(u)),
                Err(e) => {
                    tracing::info!("io_uring unavailable ({e}); using pwrite/fdatasync");
                    Ok(Box::new(sync::SyncAppender))
                }
            },
            IoMode::Uring => Ok(Box::new(uring::UringAppender::new()?)),
            IoMode::Sync => Ok(Box::new(sync::SyncAppender)),
            IoMode::Custom(make) => Ok(make()),
        }
    }
}
