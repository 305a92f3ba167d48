//! Zero-ahead: blocks of the active segment written with zeros, and synced, ahead of the
//! log's end, so that direct writes overwrite blocks instead of growing the file.
//!
//! A direct write that grows the file needs new blocks and a new file size: ext4 cannot
//! do it without blocking, so io_uring hands it to a worker thread, and the `fdatasync`
//! after it commits the journal. A write into blocks that were written before changes no
//! metadata: io_uring completes it inline, and it can be made durable with `RWF_DSYNC`
//! instead of a linked `fdatasync`. `benches/src/bin/overwrite_probe.rs` measured a third
//! less time and CPU per round, and half the context switches (docs/performance.md,
//! "Synced direct writes into prepared files").
//!
//! One process-wide thread (`shardline-zero`) keeps zeros past each registered segment's
//! end, [`CHUNK`] at a time: a lead of what the shard appends in [`LEAD_TIME`], at least
//! one chunk and at most [`LEAD`], and nothing before the segment's first write (an idle
//! or closed shard costs nothing). Zeroing writes every byte twice, so it stops for a
//! shard that appends faster than [`MAX_RATE`]: there the disk, not the CPU, bounds the
//! log.
//!
//! Invariants:
//! - The zeroer writes only at or past `log_end`, the block-aligned end of every write the
//!   log has handed out; a write that reaches into a chunk being zeroed waits for it
//!   ([`ZeroAhead::claim_write`]). So zeros never land on the log's bytes.
//! - After [`ZeroAhead::close`] returns, the zeroer never writes the file again: rolls,
//!   shard closes and a switch away from direct writes close it before cutting the file at
//!   the log's end.
//! - Blocks below `frontier` hold the log or zeros, and were synced: a write that ends at
//!   or below it overwrites only. (A wrong answer would cost time, not data: `RWF_DSYNC`
//!   makes a write durable either way.)
//! - Zeros past the log's end are what recovery cuts as a torn tail (docs/formats/segment.md).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::direct::BLOCK;

/// Most bytes kept zeroed past the log's end.
pub const LEAD: u64 = 8 << 20;
/// The lead is what the shard appends in this long (within one chunk and [`LEAD`]).
pub const LEAD_TIME: Duration = Duration::from_millis(250);
/// Bytes zeroed (and synced) per step.
pub const CHUNK: u64 = 1 << 20;
/// A shard appending faster than this (bytes per second) is not zeroed ahead.
pub const MAX_RATE: u64 = 256 << 20;
/// Period over which the append rate is measured.
const RATE_WINDOW: Duration = Duration::from_millis(200);
/// The zeroer's sleep when no segment needs a chunk.
const IDLE: Duration = Duration::from_millis(5);

fn align_up(n: u64) -> u64 {
    n.div_ceil(BLOCK as u64) * BLOCK as u64
}

#[derive(Debug)]
struct State {
    frontier: u64,
    log_end: u64,
    /// Start of the chunk being zeroed, if any (it ends [`CHUNK`] later).
    zeroing: Option<u64>,
    closed: bool,
    /// The rate gate: whether the last window's appends exceeded [`MAX_RATE`].
    too_fast: bool,
    /// Bytes per second appended in the last whole window.
    rate: f64,
    window_start: Instant,
    window_from: u64,
    /// Whether a write was claimed since the segment opened.
    written: bool,
}

/// One active segment's zero-ahead state, shared by the log, the committer and the zeroer.
#[derive(Debug)]
pub struct ZeroAhead {
    /// The segment, opened with `O_DIRECT`.
    file: Arc<File>,
    /// Zeroing stops here: the segment rolls once it holds this much.
    limit: u64,
    state: Mutex<State>,
    changed: Condvar,
}

impl ZeroAhead {
    /// State for a segment (opened with `O_DIRECT`) whose log ends at `end`, rolled at
    /// `limit` bytes. Nothing is zeroed until [`ZeroAhead::start`].
    pub fn new(file: Arc<File>, end: u64, limit: u64) -> Arc<ZeroAhead> {
        let end = align_up(end);
        Arc::new(ZeroAhead {
            file,
            limit,
            state: Mutex::new(State {
                frontier: end,
                log_end: end,
                zeroing: None,
                closed: false,
                too_fast: false,
                rate: 0.0,
                window_start: Instant::now(),
                window_from: end,
                written: false,
            }),
            changed: Condvar::new(),
        })
    }

    /// Hands the segment to the zeroer. `too_fast` carries the rate gate over from the
    /// shard's previous segment, so a fast shard's new segment is not zeroed at all.
    pub fn start(self: &Arc<Self>, too_fast: bool) {
        self.state.lock().too_fast = too_fast;
        zeroer().register(self);
    }

    /// Whether the rate gate is closed (the shard appends faster than [`MAX_RATE`]).
    pub fn too_fast(&self) -> bool {
        self.state.lock().too_fast
    }

    /// Called before a direct write of `[start, end)` (block-aligned) is issued: waits
    /// while a chunk being zeroed overlaps it, and moves the log's end. Returns whether the
    /// write only overwrites blocks written and synced before.
    pub fn claim_write(&self, start: u64, end: u64) -> bool {
        let mut st = self.state.lock();
        while st.zeroing.is_some_and(|z| z < end && start < z + CHUNK) {
            self.changed.wait(&mut st);
        }
        st.log_end = st.log_end.max(end);
        st.written = true;
        end <= st.frontier
    }

    /// Stops zeroing this segment for good, waiting for a chunk in progress.
    pub fn close(&self) {
        let mut st = self.state.lock();
        st.closed = true;
        while st.zeroing.is_some() {
            self.changed.wait(&mut st);
        }
    }

    /// Zeroes one chunk if the segment needs one. Returns whether it wrote.
    fn step(&self, zeros: &[u8], now: Instant) -> bool {
        let start = {
            let mut st = self.state.lock();
            if st.closed {
                return false;
            }
            let elapsed = now.duration_since(st.window_start);
            if elapsed >= RATE_WINDOW {
                let appended = st.log_end - st.window_from;
                st.rate = appended as f64 / elapsed.as_secs_f64();
                st.too_fast = st.rate > MAX_RATE as f64;
                st.window_start = now;
                st.window_from = st.log_end;
            }
            let lead = ((st.rate * LEAD_TIME.as_secs_f64()) as u64).clamp(CHUNK, LEAD);
            let start = st.frontier.max(st.log_end);
            if !st.written
                || st.too_fast
                || start >= st.log_end + lead
                || start + CHUNK > self.limit
            {
                return false;
            }
            st.zeroing = Some(start);
            start
        };
        let result = self
            .file
            .write_all_at(zeros, start)
            .and_then(|()| self.file.sync_data());
        let mut st = self.state.lock();
        st.zeroing = None;
        match result {
            Ok(()) => st.frontier = start + CHUNK,
            Err(e) => {
                // The log does not need the zeros: it grows the file as without them.
                tracing::warn!("zeroing ahead of the log's end stopped: {e}");
                st.closed = true;
            }
        }
        self.changed.notify_all();
        true
    }
}

/// [`CHUNK`] zeros at a block-aligned address (`O_DIRECT` wants the buffer aligned).
struct Zeros {
    buf: Vec<u8>,
    at: usize,
}

impl Zeros {
    fn new() -> Zeros {
        let buf = vec![0u8; CHUNK as usize + BLOCK];
        let at = buf.as_ptr().align_offset(BLOCK);
        Zeros { buf, at }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.at..self.at + CHUNK as usize]
    }
}

/// The process-wide zeroer: its segments, and a wake-up for new ones.
struct Zeroer {
    segments: Mutex<Vec<Weak<ZeroAhead>>>,
    added: Condvar,
}

impl Zeroer {
    fn register(&self, z: &Arc<ZeroAhead>) {
        self.segments.lock().push(Arc::downgrade(z));
        self.added.notify_one();
    }

    fn run(&self) {
        let zeros = Zeros::new();
        let zeros = zeros.bytes();
        loop {
            let live: Vec<Arc<ZeroAhead>> = {
                let mut segments = self.segments.lock();
                segments.retain(|w| w.upgrade().is_some_and(|z| !z.state.lock().closed));
                if segments.is_empty() {
                    self.added.wait(&mut segments);
                    continue;
                }
                segments.iter().filter_map(Weak::upgrade).collect()
            };
            let now = Instant::now();
            let mut wrote = false;
            for z in &live {
                wrote |= z.step(zeros, now);
            }
            drop(live);
            if !wrote {
                std::thread::sleep(IDLE);
            }
        }
    }
}

fn zeroer() -> &'static Zeroer {
    static ZEROER: OnceLock<&'static Zeroer> = OnceLock::new();
    ZEROER.get_or_init(|| {
        let z: &'static Zeroer = Box::leak(Box::new(Zeroer {
            segments: Mutex::new(Vec::new()),
            added: Condvar::new(),
        }));
        if let Err(e) = std::thread::Builder::new()
            .name("shardline-zero".into())
            .spawn(move || z.run())
        {
            // Registered segments are then never zeroed: writes grow the file as before.
            tracing::warn!("cannot start the zero-ahead thread: {e}");
        }
        z
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::direct;

    /// A fresh directory with a 100-byte file `seg` opened for direct writes, and a chunk
    /// of zeros; `None` where the file system takes no direct writes (the test then checks
    /// nothing and says so).
    fn setup() -> Option<(tempfile::TempDir, Arc<File>, Zeros)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        std::fs::write(&path, [7u8; 100]).unwrap();
        let Some(file) = direct::open(&path) else {
            eprintln!("this file system takes no direct writes; zero-ahead not exercised");
            return None;
        };
        Some((dir, Arc::new(file), Zeros::new()))
    }

    #[test]
    fn zeroes_a_lead_past_the_log_and_never_below_it() {
        let Some((dir, file, zeros)) = setup() else {
            return;
        };
        let z = zeros.bytes();
        let za = ZeroAhead::new(file.clone(), 100, 64 << 20);
        let t0 = za.state.lock().window_start;
        assert!(!za.step(z, t0), "nothing before the first write");
        // A first write, in the block the log ends in: it overwrites.
        assert!(za.claim_write(0, BLOCK as u64));
        // No rate measured yet: a lead of one chunk.
        assert!(za.step(z, t0));
        assert!(!za.step(z, t0));
        let len = file.metadata().unwrap().len();
        assert_eq!(len, BLOCK as u64 + CHUNK);
        let bytes = std::fs::read(dir.path().join("seg")).unwrap();
        assert_eq!(bytes[..100], [7u8; 100], "the log's bytes are untouched");
        assert!(bytes[100..].iter().all(|b| *b == 0));
        // Writes inside the zeroed lead overwrite; past it they grow the file.
        assert!(za.claim_write(0, 3 * BLOCK as u64));
        assert!(!za.claim_write(2 * BLOCK as u64, 8 << 20));
        // 8 MiB in the first window, 40 MiB/s: a lead of at most LEAD, from the log's end.
        let mut steps = 0;
        while za.step(z, t0 + RATE_WINDOW) {
            steps += 1;
        }
        assert_eq!(steps, LEAD / CHUNK);
        assert_eq!(file.metadata().unwrap().len(), (8 << 20) + LEAD);
    }

    #[test]
    fn nothing_is_zeroed_past_the_limit_or_after_close() {
        let Some((_dir, file, zeros)) = setup() else {
            return;
        };
        let z = zeros.bytes();
        let t0 = Instant::now();
        let za = ZeroAhead::new(file.clone(), 100, 2 * CHUNK);
        za.claim_write(0, BLOCK as u64);
        za.state.lock().rate = 1e9;
        assert!(za.step(z, t0));
        assert!(!za.step(z, t0), "a second chunk would end past the limit");
        let za = ZeroAhead::new(file.clone(), 100, 64 << 20);
        za.claim_write(0, BLOCK as u64);
        za.close();
        assert!(!za.step(z, t0));
    }

    #[test]
    fn a_fast_log_closes_the_rate_gate_and_a_slow_one_opens_it() {
        let Some((_dir, file, zeros)) = setup() else {
            return;
        };
        let z = zeros.bytes();
        let za = ZeroAhead::new(file, 100, 1 << 40);
        let t0 = za.state.lock().window_start;
        // 100 MiB appended in one window of 200 ms: 500 MiB/s.
        za.claim_write(0, 100 << 20);
        assert!(!za.step(z, t0 + RATE_WINDOW));
        assert!(za.too_fast());
        // 1 MiB in the next: 5 MiB/s.
        za.claim_write((100 << 20) - BLOCK as u64, 101 << 20);
        assert!(za.step(z, t0 + 2 * RATE_WINDOW));
        assert!(!za.too_fast());
    }

    #[test]
    fn a_write_into_the_chunk_being_zeroed_waits_for_it() {
        let Some((_dir, file, _)) = setup() else {
            return;
        };
        let za = ZeroAhead::new(file, 100, 1 << 40);
        za.state.lock().zeroing = Some(BLOCK as u64);
        let writer = {
            let za = za.clone();
            std::thread::spawn(move || za.claim_write(0, 2 * BLOCK as u64))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!writer.is_finished(), "the write waits for the zeroing");
        {
            let mut st = za.state.lock();
            st.zeroing = None;
            st.frontier = BLOCK as u64 + CHUNK;
        }
        za.changed.notify_all();
        assert!(writer.join().unwrap(), "then overwrites the zeroed blocks");
    }
}
