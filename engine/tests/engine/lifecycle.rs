//! Opening and shutting down: no hang, no wait, no threads left behind.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use shardline_engine::{CreateStream, EngineConfig, ShardId};

use crate::harness::{self, close, config, put_batch};

/// Threads of this process whose name starts with `prefix` (Linux truncates names to 15
/// bytes).
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|t| {
            let comm = t.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|c| c.starts_with(prefix))
        })
        .count()
}

/// Runs `f` on its own thread and fails if it takes longer than `limit` (instead of hanging
/// the test binary).
fn within(limit: Duration, what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} still running after {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

fn many_committers() -> EngineConfig {
    let mut c = config();
    c.committer_threads = Some(4);
    c
}

/// Regression test for a hang in `Engine::shutdown`: `Committer::shutdown` set its `stop`
/// flag and notified the committer threads without holding their queue's lock, so a thread
/// that had just found `stop` unset, and was about to wait, slept through the only wake-up;
/// `shutdown` then joined it forever. Opening an engine and shutting it down at once (as
/// `lock::lock_holder` does) hit the window on its first run.
#[test]
fn shutdown_never_hangs_when_it_races_committer_threads_starting() {
    within(Duration::from_secs(60), "200 opens and shutdowns", || {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..200 {
            close(harness::open(dir.path(), many_committers()).unwrap());
        }
    });
}

/// Regression test for slow shutdowns: the maintenance thread slept in 100 ms steps and
/// `Engine::shutdown` joined it, so every shutdown (every reopen, in tests and in a
/// restarting server) took up to 100 ms. The thread is now parked between runs and
/// unparked by `shutdown`.
#[test]
fn shutdown_returns_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let engine = harness::open(dir.path(), config()).unwrap();
    engine.create_stream(CreateStream::new("s", 1)).unwrap();
    close(engine);
    let start = Instant::now();
    for i in 0..20 {
        let engine = harness::open(dir.path(), config()).unwrap();
        // An append (and its fsync) gives the maintenance thread time to go to sleep.
        let s = engine.stream("s").unwrap();
        put_batch(&s, ShardId(0), &[("k", format!("{i}").as_bytes())]);
        drop(s);
        close(engine);
    }
    // Before the fix this took about 1.9 s (each shutdown waited out most of a 100 ms
    // sleep); opening, appending and closing takes a few milliseconds.
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "20 reopens took {:?}",
        start.elapsed()
    );
}

/// Regression test for a thread leak: `Engine::open` started the committer before
/// recovering the streams, and a recovery error (`Error::Corrupt`, `Error::BadFormat`, ...)
/// returned without stopping it. Its threads hold the committer, so they waited forever:
/// every refused open leaked them, and with io_uring their rings.
#[test]
fn a_refused_open_stops_its_committer_threads() {
    let dir = tempfile::tempdir().unwrap();
    let engine = harness::open(dir.path(), config()).unwrap();
    let s = engine.create_stream(CreateStream::new("s", 1)).unwrap();
    let meta = shardline_engine::meta::stream_meta_path(s.dir());
    drop(s);
    close(engine);
    std::fs::write(&meta, b"not a stream description").unwrap();
    let before = threads_named("shardline-commi");
    for _ in 0..40 {
        match harness::open(dir.path(), many_committers()) {
            Err(shardline_engine::Error::BadFormat { path, .. }) => assert_eq!(path, meta),
            other => panic!("expected Error::BadFormat, got {other:?}"),
        }
    }
    // Other tests' engines come and go meanwhile, a few threads each; the leak was 160.
    let after = threads_named("shardline-commi");
    assert!(
        after < before + 12,
        "committer threads: {before} before 40 refused opens, {after} after"
    );
}
