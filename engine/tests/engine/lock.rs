//! Two processes on one data directory: the second is refused with `Error::Locked` while
//! the first lives, and gets in once it is killed (`kill -9`: the kernel drops the lock),
//! finding every record the first acknowledged.
//!
//! The other process is this test binary again, running only [`lock_holder`] with
//! [`CHILD_ENV`] set to the data directory.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use shardline_engine::datadir::DataDir;
use shardline_engine::{CreateStream, Error, ShardId};

use crate::harness::{self, close, config, contents, put_batch, read_all};

/// Set (to a data directory) in the child process only.
const CHILD_ENV: &str = "SHARDLINE_TEST_LOCK_HOLDER_DIR";
/// What the child prints once it holds the lock and its records are acknowledged.
const READY: &str = "lock-holder-ready";
const RECORDS: usize = 10;

/// In the child process (see [`a_second_process_is_refused_until_the_first_is_killed`]):
/// opens the engine, writes [`RECORDS`] records, says so, and waits to be killed.
///
/// In a normal run: a second open from this same process is refused while the first
/// engine lives, and succeeds once it is shut down and dropped.
#[test]
fn lock_holder() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        hold_lock(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let first = harness::open(dir.path(), config()).unwrap();
    match harness::open(dir.path(), config()) {
        Err(Error::Locked { path, .. }) => assert_eq!(path, dir.path()),
        other => panic!("expected Error::Locked, got {other:?}"),
    }
    close(first);
    close(harness::open(dir.path(), config()).unwrap());
}

fn hold_lock(dir: &Path) -> ! {
    let engine = harness::open(dir, config()).unwrap();
    let s = engine.create_stream(CreateStream::new("s", 1)).unwrap();
    for i in 0..RECORDS {
        put_batch(&s, ShardId(0), &[("k", format!("{i}").as_bytes())]);
    }
    println!("{READY} {}", std::process::id());
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Kills the child if the test fails before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_second_process_is_refused_until_the_first_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let child = harness::spawn(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "lock::lock_holder",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    );
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // libtest may print "test lock::lock_holder ... " on the same line.
    let pid: u32 = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the child reports that it holds the lock");
        if let Some((_, rest)) = line.split_once(READY) {
            break rest.trim().parse().unwrap();
        }
    };
    assert_eq!(pid, child.0.id());

    let e = harness::open(dir.path(), config()).unwrap_err();
    let Error::Locked { path, lock, .. } = &e else {
        panic!("expected Error::Locked, got {e}");
    };
    assert_eq!(path, dir.path());
    assert!(lock.starts_with(dir.path()));
    let msg = e.to_string();
    assert!(
        msg.contains(&dir.path().display().to_string()),
        "the error names the directory: {msg}"
    );
    assert!(msg.contains(&pid.to_string()), "and the holder: {msg}");
    assert_eq!(
        DataDir::holder_pid(dir.path()),
        Some(pid),
        "LOCK names the holder"
    );

    child.0.kill().unwrap();
    child.0.wait().unwrap();

    let engine = harness::open(dir.path(), config()).unwrap();
    let s = engine.stream("s").unwrap();
    let got = contents(&read_all(&s.shard(ShardId(0)).unwrap()));
    let expected: Vec<_> = (0..RECORDS)
        .map(|i| (i as u64, b"k".to_vec(), format!("{i}").into_bytes()))
        .collect();
    assert_eq!(
        got, expected,
        "every record the killed process acknowledged"
    );
    drop(s);
    close(engine);
    assert_eq!(DataDir::holder_pid(dir.path()), Some(std::process::id()));
}
