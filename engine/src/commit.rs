//! The committer: threads that write shards' pending buffers (group commit).
//!
//! Invariants:
//! - A shard is in the queue at most once (`queued` flag under the shard lock) and has at
//!   most one write in flight, so each shard's writes complete in log order even with
//!   several committer threads.
//! - One round takes every queued shard's pending chunks and hands all of them to the
//!   I/O backend at once: with io_uring, every shard's write and linked `fdatasync` run in
//!   parallel in the kernel, and appends that arrive during a round wait for the next one.
//! - A request that spans several shards of a stream queues them together, after encoding
//!   all of its batches (`Committer::enqueue_all`): a thread woken by the first shard
//!   would otherwise start a round with that shard alone, and the request would wait for
//!   two rounds.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::config::Durability;
use crate::error::{Error, Result};
use crate::io::{IoMode, WriteOp};
use crate::log::direct::StagingPool;
use crate::shard::Shard;

/// One completed round, as a [`CommitObserver`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Shards written (each one write, and one `fdatasync` with durability `sync`).
    pub writes: usize,
    /// Those writes that failed (their shards are poisoned).
    pub failed: usize,
    /// Log bytes appended: the batches, without direct writes' re-written block or padding.
    pub bytes: u64,
    /// From handing the writes to the I/O backend until it returned them all (write and
    /// sync), on the committer thread.
    pub elapsed: Duration,
}

/// Told about every round, for metrics: called on the committer thread once the round's
/// appends are acknowledged, so it must be cheap and must not block.
pub trait CommitObserver: Send + Sync + std::fmt::Debug {
    fn round(&self, round: &Round);
}

/// The shared queue of shards with pending data, and the threads that drain it.
pub struct Committer {
    queue: Mutex<VecDeque<Arc<Shard>>>,
    wake: Condvar,
    stop: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    backend_name: &'static str,
    observer: Option<Arc<dyn CommitObserver>>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("backend", &self.backend_name)
            .finish()
    }
}

impl Committer {
    /// Starts `threads` committer threads (default: 1 with io_uring, 4 otherwise), which
    /// report each round to `observer`.
    ///
    /// # Errors
    /// The backend's setup failure (io_uring requested but refused).
    pub fn start(
        io: &IoMode,
        durability: Durability,
        threads: Option<usize>,
        observer: Option<Arc<dyn CommitObserver>>,
    ) -> Result<Arc<Committer>> {
        let probe = io.build().map_err(|e| {
            Error::io(
                "set up I/O backend",
                std::path::PathBuf::from("io_uring"),
                e,
            )
        })?;
        let backend_name = probe.name();
        let n = threads
            .unwrap_or(if backend_name == "uring" { 1 } else { 4 })
            .max(1);
        let c = Arc::new(Committer {
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            backend_name,
            observer,
        });
        let mut backends = vec![probe];
        for _ in 1..n {
            backends.push(io.build().map_err(|e| {
                Error::io(
                    "set up I/O backend",
                    std::path::PathBuf::from("io_uring"),
                    e,
                )
            })?);
        }
        for (i, backend) in backends.into_iter().enumerate() {
            let me = c.clone();
            let h = std::thread::Builder::new()
                .name(format!("shardline-commit-{i}"))
                .spawn(move || me.run(backend, durability))
                .map_err(|e| Error::io("start committer thread", std::path::PathBuf::new(), e))?;
            c.threads.lock().push(h);
        }
        Ok(c)
    }

    /// The I/O backend in use (`uring`, `sync`, ...).
    pub fn backend_name(&self) -> &'static str {
        self.backend_name
    }

    pub(crate) fn enqueue(&self, shard: Arc<Shard>) {
        self.queue.lock().push_back(shard);
        self.wake.notify_one();
    }

    /// Queues several shards at once, so that a thread woken for the first finds them all
    /// and writes them in one round.
    pub(crate) fn enqueue_all(&self, shards: Vec<Arc<Shard>>) {
        let n = shards.len();
        self.queue.lock().extend(shards);
        for _ in 0..n {
            self.wake.notify_one();
        }
    }

    fn run(&self, mut backend: Box<dyn crate::io::Appender>, durability: Durability) {
        let sync = durability == Durability::Sync;
        let staging = StagingPool::default();
        loop {
            let shards: Vec<Arc<Shard>> = {
                let mut q = self.queue.lock();
                while q.is_empty() {
                    if self.stop.load(Ordering::Acquire) {
                        return;
                    }
                    self.wake.wait(&mut q);
                }
                q.drain(..).collect()
            };
            let mut ops = Vec::with_capacity(shards.len());
            let mut taken = Vec::with_capacity(shards.len());
            for shard in shards {
                if let Some(w) = shard.take_write() {
                    let chunks: Vec<bytes::Bytes> =
                        w.chunks.into_iter().map(bytes::Bytes::from).collect();
                    let len = w.pending.len;
                    ops.push(match &w.direct {
                        // From the partial block's start, padded to whole blocks.
                        Some(d) => {
                            let staged = staging.stage(&d.tail, &chunks);
                            let end = d.tail.start + staged.len() as u64;
                            // Waits if the zeroer is writing where this write goes.
                            let overwrite = d
                                .zero
                                .as_ref()
                                .is_some_and(|z| z.claim_write(d.tail.start, end));
                            WriteOp {
                                file: d.file.clone(),
                                pos: d.tail.start,
                                chunks: vec![staged],
                                sync,
                                overwrite,
                            }
                        }
                        None => WriteOp {
                            file: w.file.clone(),
                            pos: w.pos,
                            chunks: chunks.clone(),
                            sync,
                            overwrite: false,
                        },
                    });
                    taken.push((shard, w.pos, len, w.pending, chunks));
                }
            }
            if ops.is_empty() {
                continue;
            }
            let started = Instant::now();
            let results = backend.submit(&mut ops);
            let mut round = Round {
                writes: ops.len(),
                failed: results.iter().filter(|r| r.is_err()).count(),
                bytes: 0,
                elapsed: started.elapsed(),
            };
            drop(ops);
            for ((shard, pos, len, pending, chunks), result) in taken.into_iter().zip(results) {
                round.bytes += len;
                // The written chunks become the shard's in-memory tail (no copy).
                if shard.finish_write(pos, len, pending, result, chunks) {
                    self.enqueue(shard);
                }
            }
            if let Some(observer) = &self.observer {
                observer.round(&round);
            }
        }
    }

    /// Stops the threads once the queue is drained.
    pub fn shutdown(&self) {
        {
            // Under the queue lock: a thread between its `stop` check and its wait would
            // otherwise miss the wake-up and wait forever.
            let _queue = self.queue.lock();
            self.stop.store(true, Ordering::Release);
        }
        self.wake.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock());
        for t in threads {
            let _ = t.join();
        }
    }
}
