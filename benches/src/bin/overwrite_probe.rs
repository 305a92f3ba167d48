//! What a synced direct write costs when it grows the file, and when it overwrites blocks
//! that were written before: the evidence for preparing segment files ahead of the writer
//! (docs/performance.md, "Synced direct writes into prepared files").
//!
//! Each of `--files` threads owns one file in a fresh directory under `--dir` (default
//! `$TMPDIR`), opened with `O_DIRECT`. A round is one write of `--write-bytes` per file, at
//! the end of the previous round's write, made durable, all files in parallel; the next
//! round starts when every file's write is durable, as the committer's rounds do. Files:
//! - `extend`: empty, so every write grows the file (what the log does today);
//! - `zeroed`: written in full with zeros and synced beforehand, so every write overwrites;
//! - `fallocated`: space reserved with `fallocate` beforehand (unwritten extents).
//!
//! Durability: `fdatasync` after the write, or the write with `RWF_DSYNC`.
//!
//! Backends: `threads` (the default) makes plain system calls, one thread per file;
//! `uring` hands each round to the engine's io_uring appender (`io::uring`), which links
//! each write to its `fdatasync` as the committer does, or, with `--sync dsync`, sends one
//! `RWF_DSYNC` write (what the committer does for writes into zeroed blocks,
//! `log::zero_ahead`). io_uring runs a write that would block (one that grows the file
//! does) and every `fdatasync` on its own worker threads, whose context switches and CPU
//! this counts.
//!
//! It prints, per round: the median and p99 time, the context switches of the process's
//! threads (`/proc/self/task/*/status`), and the CPU the whole machine spent (`/proc/stat`,
//! all processes and kernel threads: the file system's journal and the block layer's
//! workers run outside this process). The CPU figures have the kernel's tick resolution
//! (10 ms), so runs should last a second or more.
//!
//! ```text
//! cargo run --release -p shardline-benches --bin overwrite_probe -- --mode zeroed --sync dsync
//! ```

use std::fs::File;
use std::io::IoSlice;
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use rustix::fs::{FallocateFlags, OFlags};
use rustix::io::ReadWriteFlags;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Extend,
    Zeroed,
    Fallocated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Sync {
    Fdatasync,
    Dsync,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    Threads,
    Uring,
}

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, value_enum, default_value = "threads")]
    backend: Backend,
    #[arg(long, value_enum, default_value = "extend")]
    mode: Mode,
    #[arg(long, value_enum, default_value = "fdatasync")]
    sync: Sync,
    #[arg(long, default_value_t = 4)]
    files: usize,
    /// A multiple of 4096.
    #[arg(long, default_value_t = 48 << 10)]
    write_bytes: usize,
    #[arg(long, default_value_t = 4000)]
    rounds: usize,
    /// Parent of the run's temporary directory (default: the system's).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

const BLOCK: usize = 4096;

/// A zeroed vector and the offset at which `len` bytes aligned to [`BLOCK`] start in it.
fn aligned(len: usize) -> (Vec<u8>, usize) {
    let v = vec![0u8; len + BLOCK];
    let at = v.as_ptr().align_offset(BLOCK);
    (v, at)
}

fn open_direct(path: &Path) -> Result<File> {
    let fd = rustix::fs::open(
        path,
        OFlags::CREATE | OFlags::RDWR | OFlags::DIRECT | OFlags::CLOEXEC,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .with_context(|| format!("open {} with O_DIRECT", path.display()))?;
    Ok(File::from(fd))
}

fn prepare(file: &File, mode: Mode, total: u64) -> Result<()> {
    match mode {
        Mode::Extend => {}
        Mode::Zeroed => {
            const CHUNK: usize = 1 << 20;
            let (buf, at) = aligned(CHUNK);
            let mut pos = 0u64;
            while pos < total {
                let n = rustix::io::pwrite(file, &buf[at..at + CHUNK], pos)?;
                pos += n as u64;
            }
        }
        Mode::Fallocated => rustix::fs::fallocate(file, FallocateFlags::empty(), 0, total)?,
    }
    rustix::fs::fsync(file)?;
    Ok(())
}

/// Context switches (voluntary and not) of all of this process's threads so far.
fn context_switches() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|s| {
            s.lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// CPU time the whole machine spent busy so far (user, nice, system, irq, softirq), in
/// clock ticks.
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    [0, 1, 2, 5, 6].iter().filter_map(|&i| fields.get(i)).sum()
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.write_bytes == 0 || !args.write_bytes.is_multiple_of(BLOCK) || args.files == 0 {
        bail!("--write-bytes must be a nonzero multiple of {BLOCK}, --files nonzero");
    }
    let dir = match &args.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let total = (args.write_bytes * args.rounds) as u64;
    let files: Vec<File> = (0..args.files)
        .map(|i| {
            let f = open_direct(&dir.path().join(format!("f{i}")))?;
            prepare(&f, args.mode, total)?;
            Ok(f)
        })
        .collect::<Result<_>>()?;

    let mut times = Vec::with_capacity(args.rounds);
    let (cs0, busy0) = (context_switches(), machine_busy_ticks());
    let began = Instant::now();
    match args.backend {
        Backend::Threads => run_threads(&args, &files, &mut times)?,
        Backend::Uring => run_uring(&args, files, &mut times)?,
    }
    let elapsed = began.elapsed();
    let (cs, busy) = (context_switches() - cs0, machine_busy_ticks() - busy0);
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let rounds = args.rounds as f64;
    // USER_HZ is 100 on Linux.
    let busy_us = busy as f64 * 10_000.0 / rounds;
    println!(
        "backend={:?} mode={:?} sync={:?} files={} write={} B: {:.0} rounds/s, {:.0} MB/s, \
         round p50 {:.3} ms p99 {:.3} ms, {:.1} context switches/round, machine CPU {:.0} \
         us/round",
        args.backend,
        args.mode,
        args.sync,
        args.files,
        args.write_bytes,
        rounds / elapsed.as_secs_f64(),
        (args.write_bytes * args.files) as f64 * rounds / elapsed.as_secs_f64() / 1e6,
        ms(pct(0.5)),
        ms(pct(0.99)),
        cs as f64 / rounds,
        busy_us,
    );
    Ok(())
}

/// Rounds through the engine's io_uring appender: every file's write, linked to its
/// `fdatasync` or with `RWF_DSYNC`, submitted at once.
fn run_uring(args: &Args, files: Vec<File>, times: &mut Vec<Duration>) -> Result<()> {
    use shardline_engine::io::{uring::UringAppender, Appender, WriteOp};
    let mut ring = UringAppender::new().context("io_uring setup")?;
    let (mut buf, at) = aligned(args.write_bytes);
    buf[at..].fill(7);
    let data = bytes::Bytes::from(buf).slice(at..at + args.write_bytes);
    let files: Vec<std::sync::Arc<File>> = files.into_iter().map(std::sync::Arc::new).collect();
    for r in 0..args.rounds {
        let pos = (r * args.write_bytes) as u64;
        let mut ops: Vec<WriteOp> = files
            .iter()
            .map(|f| WriteOp {
                file: f.clone(),
                pos,
                chunks: vec![data.clone()],
                sync: true,
                overwrite: args.sync == Sync::Dsync,
            })
            .collect();
        let t = Instant::now();
        for result in ring.submit(&mut ops) {
            result.context("write or fdatasync")?;
        }
        times.push(t.elapsed());
    }
    Ok(())
}

/// Rounds with one thread per file making plain system calls, in step.
fn run_threads(args: &Args, files: &[File], times: &mut Vec<Duration>) -> Result<()> {
    let start_round = Barrier::new(args.files + 1);
    let end_round = Barrier::new(args.files + 1);
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = files
            .iter()
            .map(|file| {
                let (start_round, end_round) = (&start_round, &end_round);
                s.spawn(move || -> Result<()> {
                    let (mut buf, at) = aligned(args.write_bytes);
                    buf[at..].fill(7);
                    let data = &buf[at..at + args.write_bytes];
                    // Every round waits at both barriers, even after an error, so the
                    // other threads never wait for this one forever.
                    let mut failed = None;
                    for r in 0..args.rounds {
                        start_round.wait();
                        let pos = (r * args.write_bytes) as u64;
                        let result = if failed.is_some() {
                            Ok(())
                        } else {
                            match args.sync {
                                Sync::Fdatasync => rustix::io::pwrite(file, data, pos)
                                    .and_then(|_| rustix::fs::fdatasync(file)),
                                Sync::Dsync => rustix::io::pwritev2(
                                    file,
                                    &[IoSlice::new(data)],
                                    pos,
                                    ReadWriteFlags::DSYNC,
                                )
                                .map(|_| ()),
                            }
                        };
                        end_round.wait();
                        failed = failed.or(result.err());
                    }
                    failed.map_or(Ok(()), |e| Err(e.into()))
                })
            })
            .collect();
        for _ in 0..args.rounds {
            let t = Instant::now();
            start_round.wait();
            end_round.wait();
            times.push(t.elapsed());
        }
        for w in workers {
            w.join().expect("a writer thread panicked")?;
        }
        Ok(())
    })
}
