//! A shard: its log, its pending writes, and the waiters on both.
//!
//! Invariants:
//! - Offsets and arrival times are assigned under the shard's lock, in submission order;
//!   arrival times never decrease (`max(now, previous)`).
//! - Appends accumulate as pending chunks while the previous write is in flight: at most
//!   one write per shard is in flight, and each covers every batch that arrived meanwhile
//!   (group commit). A batch is queued as the buffer it was encoded in, not copied (small
//!   ones are appended to a small last chunk, to keep the vectored write short). An append
//!   is acknowledged only after the write carrying it completed (and was synced, with
//!   durability `sync`).
//! - After a failed write or sync the shard is poisoned: the failed appends and every later
//!   one get [`Error::Poisoned`], never success, until the engine is reopened.
//! - A closed shard (split or merged) takes no appends; closing waits for pending writes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::{oneshot, watch};

use crate::commit::Committer;
use crate::error::{Error, Result};
use crate::ids::{Offset, ShardId};
use crate::log::batch::{BatchHeader, PendingBatch};
use crate::log::read::Limits;
use crate::log::{BatchRead, DirectTarget, NewSegment, ReadOutcome, RollPlan, ShardLog, Target};

/// What an acknowledged append got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the batch's first record; the others follow consecutively.
    pub first_offset: Offset,
    pub record_count: u32,
    /// Arrival time given to every record of the batch.
    pub timestamp_ms: u64,
}

/// A pending acknowledgement.
pub type AppendReceiver = oneshot::Receiver<Result<Appended>>;

struct Waiter {
    tx: oneshot::Sender<Result<Appended>>,
    appended: Appended,
}

/// Below this size a batch joins the last pending chunk if that is below it too: copying a
/// small batch costs less than another piece in the vectored write.
const COALESCE_BELOW_BYTES: usize = 64 << 10;

#[derive(Default)]
pub(crate) struct Pending {
    /// The bytes to write, in order; each chunk holds whole batches.
    pub chunks: Vec<Vec<u8>>,
    /// Sum of the chunks' lengths.
    pub len: u64,
    /// Each batch's position in the write and header, for the index.
    pub batches: Vec<(u64, BatchHeader)>,
    waiters: Vec<Waiter>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Queues an encoded batch's bytes after the others.
    fn push_bytes(&mut self, buf: Vec<u8>) {
        self.len += buf.len() as u64;
        match self.chunks.last_mut() {
            Some(last) if last.len() < COALESCE_BELOW_BYTES && buf.len() < COALESCE_BELOW_BYTES => {
                last.extend_from_slice(&buf);
            }
            _ => self.chunks.push(buf),
        }
    }
}

pub(crate) struct ShardState {
    pub log: ShardLog,
    /// Next offset to assign (beyond the log's visible end while writes are pending).
    assigned_next: u64,
    last_assigned_ts: u64,
    pending: Pending,
    pub in_flight: bool,
    /// A roll is sealing the active segment off the lock; no write may start meanwhile.
    rolling: bool,
    pub queued: bool,
    poisoned: Option<String>,
    closed: bool,
}

/// One shard's log with its write queue.
pub struct Shard {
    id: ShardId,
    stream: String,
    pub(crate) state: Mutex<ShardState>,
    /// Signalled whenever the visible end moves or a write finishes.
    changed: Condvar,
    /// Next visible offset, for async tail readers.
    visible: watch::Sender<u64>,
    committer: Arc<Committer>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A write taken by the committer.
pub(crate) struct TakenWrite {
    pub pos: u64,
    pub chunks: Vec<Vec<u8>>,
    pub file: Arc<std::fs::File>,
    /// With direct writes, where to stage the write instead.
    pub direct: Option<DirectTarget>,
    pub(crate) pending: Pending,
}

impl Shard {
    pub(crate) fn new(
        id: ShardId,
        stream: String,
        log: ShardLog,
        committer: Arc<Committer>,
    ) -> Arc<Shard> {
        let next = log.next_offset();
        let last_ts = log.last_timestamp_ms();
        Arc::new(Shard {
            id,
            stream,
            state: Mutex::new(ShardState {
                log,
                assigned_next: next,
                last_assigned_ts: last_ts,
                pending: Pending::default(),
                in_flight: false,
                rolling: false,
                queued: false,
                poisoned: None,
                closed: false,
            }),
            changed: Condvar::new(),
            visible: watch::channel(next).0,
            committer,
        })
    }

    /// The shard's id.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// Queues `batch` for writing and returns the receiver of its acknowledgement.
    ///
    /// # Errors
    /// [`Error::Poisoned`] after an I/O failure; [`Error::ShardClosed`] once closed.
    pub fn submit(self: &Arc<Self>, batch: PendingBatch) -> Result<AppendReceiver> {
        let (rx, queue) = self.submit_unqueued(batch)?;
        if queue {
            self.committer.enqueue(self.clone());
        }
        Ok(rx)
    }

    /// As [`Shard::submit`], but when the shard must be queued for the committer, says so
    /// (`true`) instead of queueing it. The caller must then queue it on the shard's
    /// committer with [`Committer::enqueue_all`], which lets a request's batches for
    /// several shards reach the committer together and be written in one round, not two.
    ///
    /// # Errors
    /// As [`Shard::submit`].
    pub(crate) fn submit_unqueued(
        self: &Arc<Self>,
        mut batch: PendingBatch,
    ) -> Result<(AppendReceiver, bool)> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.state.lock();
        if let Some(cause) = &st.poisoned {
            return Err(Error::Poisoned {
                shard: self.id,
                cause: cause.clone(),
            });
        }
        if st.closed {
            return Err(Error::ShardClosed {
                stream: self.stream.clone(),
                shard: self.id,
            });
        }
        let base = Offset(st.assigned_next);
        let ts = now_ms().max(st.last_assigned_ts);
        // The committer takes the whole pending buffer as one write, so the batch that finds
        // it empty is the first of its write.
        let write_start = st.pending.is_empty();
        batch.seal(base, ts, write_start);
        let count = batch.record_count();
        let header = BatchHeader {
            len: batch.len() as u32,
            base_offset: base,
            record_count: count,
            first_timestamp_ms: ts,
            last_timestamp_ms: ts,
            flags: if write_start {
                crate::log::batch::FLAG_WRITE_START
            } else {
                0
            },
        };
        let p = &mut st.pending;
        let rel = p.len;
        p.push_bytes(std::mem::take(&mut batch.buf));
        p.batches.push((rel, header));
        p.waiters.push(Waiter {
            tx,
            appended: Appended {
                first_offset: base,
                record_count: count,
                timestamp_ms: ts,
            },
        });
        st.assigned_next += u64::from(count);
        st.last_assigned_ts = ts;
        let queue = !st.queued && !st.in_flight;
        // Marked queued now: no one else queues it, and the caller does (see above).
        st.queued |= queue;
        Ok((rx, queue))
    }

    /// Appends `batch` and waits for its acknowledgement (blocking; not for async contexts).
    ///
    /// # Errors
    /// As [`Shard::submit`], or the I/O failure that poisoned the shard.
    pub fn append(self: &Arc<Self>, batch: PendingBatch) -> Result<Appended> {
        let rx = self.submit(batch)?;
        rx.blocking_recv().unwrap_or(Err(Error::ShuttingDown))
    }

    /// Called by the committer: takes the pending chunks and reserves their place in the log.
    pub(crate) fn take_write(&self) -> Option<TakenWrite> {
        let mut st = self.state.lock();
        st.queued = false;
        if st.in_flight || st.rolling || st.pending.is_empty() {
            return None;
        }
        let mut pending = std::mem::take(&mut st.pending);
        let chunks = std::mem::take(&mut pending.chunks);
        let at = st.log.reserve(pending.len);
        st.in_flight = true;
        Some(TakenWrite {
            pos: at.pos,
            chunks,
            file: at.file,
            direct: at.direct,
            pending,
        })
    }

    /// Called by the committer when a write finished; returns whether the shard has more
    /// pending data and must be queued again.
    pub(crate) fn finish_write(
        self: &Arc<Self>,
        pos: u64,
        len: u64,
        pending: Pending,
        result: std::io::Result<()>,
        written: Vec<bytes::Bytes>,
    ) -> bool {
        let mut st = self.state.lock();
        st.in_flight = false;
        let mut acks: Vec<(Waiter, Result<Appended>)> = Vec::new();
        let mut roll = None;
        match result {
            Ok(()) => {
                st.log.complete(pos, len, &pending.batches, written);
                for w in pending.waiters {
                    let a = w.appended;
                    acks.push((w, Ok(a)));
                }
                if st.log.roll_due(now_ms()) {
                    roll = st.log.plan_roll();
                    st.rolling = roll.is_some();
                }
            }
            Err(e) => {
                tracing::error!("shard {}: write failed: {e}", self.id);
                st.poisoned = Some(e.to_string());
                for w in pending.waiters {
                    acks.push((
                        w,
                        Err(Error::Poisoned {
                            shard: self.id,
                            cause: e.to_string(),
                        }),
                    ));
                }
            }
        }
        if let Some(cause) = st.poisoned.clone() {
            // Nothing queued behind a failure may succeed: fail it now.
            let later = std::mem::take(&mut st.pending);
            for w in later.waiters {
                acks.push((
                    w,
                    Err(Error::Poisoned {
                        shard: self.id,
                        cause: cause.clone(),
                    }),
                ));
            }
        }
        let requeue = !st.pending.is_empty() && !st.queued && !st.rolling;
        if requeue {
            st.queued = true;
        }
        let visible = st.log.next_offset();
        drop(st);
        for (w, r) in acks {
            let _ = w.tx.send(r);
        }
        self.visible.send_replace(visible);
        self.changed.notify_all();
        if let Some(plan) = roll {
            // A roll syncs and creates files: do it off the committer, so other shards'
            // writes go on meanwhile.
            let me = self.clone();
            let spawned = std::thread::Builder::new()
                .name("shardline-roll".into())
                .spawn(move || {
                    let r = plan.execute();
                    me.finish_roll(plan, r);
                });
            if let Err(e) = spawned {
                tracing::error!("shard {}: cannot start roll thread: {e}", self.id);
                let mut st = self.state.lock();
                st.rolling = false;
                st.poisoned = Some(format!("cannot start roll thread: {e}"));
            }
        }
        requeue
    }

    fn finish_roll(self: &Arc<Self>, plan: RollPlan, result: Result<NewSegment>) {
        let mut st = self.state.lock();
        st.rolling = false;
        let mut failed = Vec::new();
        match result {
            Ok(new) => st.log.install_roll(plan, new),
            Err(e) => {
                tracing::error!("shard {}: rolling segment failed: {e}", self.id);
                let cause = format!("segment roll failed: {e}");
                st.poisoned = Some(cause.clone());
                failed = std::mem::take(&mut st.pending).waiters;
            }
        }
        let requeue = st.poisoned.is_none() && !st.pending.is_empty() && !st.queued;
        if requeue {
            st.queued = true;
        }
        let cause = st.poisoned.clone().unwrap_or_default();
        drop(st);
        for w in failed {
            let _ = w.tx.send(Err(Error::Poisoned {
                shard: self.id,
                cause: cause.clone(),
            }));
        }
        if requeue {
            self.committer.enqueue(self.clone());
        }
        self.changed.notify_all();
    }

    /// Reads visible records from `from`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] on a damaged batch; I/O errors.
    pub fn read(&self, from: Offset, max_records: usize, max_bytes: usize) -> Result<ReadOutcome> {
        let view = self.state.lock().log.view(Target::Offset(from.0));
        view.read(
            from,
            Limits {
                max_records,
                max_bytes,
            },
        )
    }

    /// Reads visible records from `from` as whole shared batches (the bulk read path: one
    /// reference count per batch rather than two per record).
    ///
    /// # Errors
    /// [`Error::Corrupt`] on a damaged batch; I/O errors.
    pub fn read_batches(
        &self,
        from: Offset,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<BatchRead> {
        let view = self.state.lock().log.view(Target::Offset(from.0));
        view.read_batches(
            from,
            Limits {
                max_records,
                max_bytes,
            },
        )
    }

    /// The offset of the first record that arrived at or after `timestamp_ms` (the next
    /// offset if none has).
    ///
    /// # Errors
    /// [`Error::Corrupt`] on a damaged batch; I/O errors.
    pub fn offset_at_time(&self, timestamp_ms: u64) -> Result<Offset> {
        let view = self.state.lock().log.view(Target::Time(timestamp_ms));
        view.offset_at_time(timestamp_ms)
    }

    /// One past the last visible record.
    pub fn next_offset(&self) -> Offset {
        Offset(self.state.lock().log.next_offset())
    }

    /// The lowest retained offset.
    pub fn trim_offset(&self) -> Offset {
        Offset(self.state.lock().log.trim_offset())
    }

    /// Arrival time of the newest visible record (0 if none).
    pub fn last_timestamp_ms(&self) -> u64 {
        self.state.lock().log.last_timestamp_ms()
    }

    /// Whether the shard's active segment is written with `O_DIRECT`.
    pub fn writes_direct(&self) -> bool {
        self.state.lock().log.writes_direct()
    }

    /// Bytes the shard's log takes on disk, and its number of segments.
    pub fn disk_usage(&self) -> (u64, usize) {
        let st = self.state.lock();
        (st.log.size_bytes(), st.log.segment_count())
    }

    /// A receiver of the next visible offset, for async tail readers: wait with
    /// `rx.wait_for(|next| *next > offset)`. It also fires, with the value unchanged, once a
    /// split or merge has closed the shard and recorded its end in the stream's metadata.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.visible.subscribe()
    }

    /// Wakes async tail readers ([`Shard::subscribe`]) without moving the visible end: the
    /// shard was closed and its end is now in the stream's metadata.
    pub(crate) fn wake_readers(&self) {
        self.visible.send_modify(|_| {});
    }

    /// Blocks until a record past `offset` is visible or `timeout` passes; returns the next
    /// visible offset.
    pub fn wait_for_records_after(&self, offset: Offset, timeout: Duration) -> Offset {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock();
        while st.log.next_offset() <= offset.0 {
            if self.changed.wait_until(&mut st, deadline).timed_out() {
                break;
            }
        }
        Offset(st.log.next_offset())
    }

    /// Closes the shard to appends and waits for pending writes; returns the offset one past
    /// its last record.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if the shard's writes failed.
    pub fn close(&self) -> Result<Offset> {
        let mut st = self.state.lock();
        st.closed = true;
        while st.in_flight || st.rolling || !st.pending.is_empty() || st.queued {
            if let Some(cause) = &st.poisoned {
                return Err(Error::Poisoned {
                    shard: self.id,
                    cause: cause.clone(),
                });
            }
            self.changed.wait_for(&mut st, Duration::from_millis(50));
        }
        if let Some(cause) = &st.poisoned {
            return Err(Error::Poisoned {
                shard: self.id,
                cause: cause.clone(),
            });
        }
        st.log.cut_padding();
        Ok(Offset(st.log.next_offset()))
    }

    /// Undoes [`Shard::close`] when the resharding that closed the shard could not be persisted.
    pub(crate) fn reopen_after_failed_reshard(&self) {
        self.state.lock().closed = false;
    }

    /// Marks the shard closed without waiting (used when loading a closed shard).
    pub(crate) fn mark_closed(&self) {
        self.state.lock().closed = true;
    }

    /// Whether the shard refuses appends because it was closed.
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Deletes segments past retention or over the byte cap, and rolls an old active segment.
    ///
    /// # Errors
    /// I/O errors from deleting or rolling.
    pub fn enforce_retention(&self, cutoff_ms: u64, byte_cap: Option<u64>) -> Result<usize> {
        let mut st = self.state.lock();
        if st.rolling || st.in_flight {
            // The committer's roll or write owns the active segment now; next run.
            return Ok(0);
        }
        let result = if st.log.roll_due(now_ms()) {
            st.log
                .roll()
                .and_then(|()| st.log.trim(cutoff_ms, byte_cap))
        } else {
            st.log.trim(cutoff_ms, byte_cap)
        };
        if let Err(e) = &result {
            // A failed roll or delete leaves the log's files in doubt: refuse writes until a
            // reopen recovers them, as after a failed write.
            if st.poisoned.is_none() {
                st.poisoned = Some(format!("retention or segment roll failed: {e}"));
            }
        }
        result
    }
}
