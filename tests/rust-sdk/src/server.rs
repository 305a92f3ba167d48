//! Starts the real `shardline` binary for the Rust SDK test.
//!
//! Same contract as `tests/kinesis/conftest.py` and `tests/js/server.js`: port 0, a fresh data
//! directory, wait for the one `listening on http://ADDR` line, SIGTERM at the end and exit
//! status 0 required. The binary comes from `SHARDLINE_BIN` (relative paths resolve against the
//! repository root), else `<CARGO_TARGET_DIR or target>/debug/shardline`; `scripts/test` builds
//! it first. Everything listens and connects on 127.0.0.1 only.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, ensure, Context as _};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, BufReader};
use tokio::process::{Child, Command};

const READY_PREFIX: &str = "listening on http://";
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Below `CHECK_TIMEOUT`, so the stop check fails with the server's stderr, not a bare timeout.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How much of the server's stderr to keep for failure messages.
const STDERR_TAIL_BYTES: usize = 8000;

/// The repository root: this package lives in `tests/rust-sdk/`.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// Where the server binary is, per the module docs.
pub fn binary_path() -> PathBuf {
    if let Some(bin) = std::env::var_os("SHARDLINE_BIN") {
        return repo_root().join(bin);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
    repo_root().join(target).join("debug").join("shardline")
}

/// A running `shardline serve`. Dropping it kills the process (SIGKILL), so a failed or
/// timed-out run never leaves a server behind; [`Server::stop`] is the orderly way out.
pub struct Server {
    child: Child,
    /// `host:port` from the ready line.
    pub addr: String,
    data_dir: PathBuf,
    /// The last [`STDERR_TAIL_BYTES`] of the server's stderr.
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Server {
    /// Starts the server on 127.0.0.1:0 with a fresh data directory and waits for its ready line.
    pub async fn start() -> anyhow::Result<Self> {
        let binary = binary_path();
        if !binary.exists() {
            bail!(
                "{} does not exist: run `cargo build --bin shardline` or set SHARDLINE_BIN",
                binary.display()
            );
        }
        let data_dir =
            std::env::temp_dir().join(format!("shardline-rust-sdk-{}", std::process::id()));
        // A leftover from an earlier run with the same pid: start empty.
        let _ = std::fs::remove_dir_all(&data_dir);
        let mut child = Command::new(&binary)
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stderr_pipe = child.stderr.take().context("stderr is piped")?;
        tokio::spawn(keep_tail(stderr_pipe, Arc::clone(&stderr)));
        let stdout = child.stdout.take().context("stdout is piped")?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let read = tokio::time::timeout(START_TIMEOUT, stdout.read_line(&mut line)).await;
        // Whatever else the server prints must not fill the pipe and block it.
        tokio::spawn(keep_tail(stdout, Arc::new(Mutex::new(Vec::new()))));
        let mut server = Self {
            child,
            addr: String::new(),
            data_dir,
            stderr,
        };
        match read {
            Err(_) => bail!(
                "no ready line within {START_TIMEOUT:?}; stderr:\n{}",
                server.stderr_tail()
            ),
            Ok(Err(e)) => bail!(
                "reading the ready line: {e}; stderr:\n{}",
                server.stderr_tail()
            ),
            Ok(Ok(0)) => bail!(
                "server closed stdout before it was ready; stderr:\n{}",
                server.stderr_tail()
            ),
            Ok(Ok(_)) => {}
        }
        let Some(addr) = line.trim_end().strip_prefix(READY_PREFIX) else {
            bail!(
                "unexpected ready line {line:?}; stderr:\n{}",
                server.stderr_tail()
            );
        };
        server.addr = addr.to_owned();
        Ok(server)
    }

    /// The end of what the server wrote to stderr, for failure messages.
    pub fn stderr_tail(&self) -> String {
        let tail = self.stderr.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&tail).into_owned()
    }

    /// Sends SIGTERM and requires exit status 0 (SIGKILL after [`STOP_TIMEOUT`]).
    ///
    /// # Errors
    /// The signal could not be sent, the process did not exit in time, or it exited with
    /// anything but status 0; the error carries the end of its stderr.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().context("server already reaped")?;
        let pid = Pid::from_raw(i32::try_from(pid).context("pid fits in i32")?);
        kill(pid, Signal::SIGTERM).context("sending SIGTERM")?;
        let status = tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await;
        let _ = std::fs::remove_dir_all(&self.data_dir);
        let status: ExitStatus = match status {
            Ok(status) => status.context("waiting for the server")?,
            Err(_) => bail!(
                "still running {STOP_TIMEOUT:?} after SIGTERM; stderr:\n{}",
                self.stderr_tail()
            ),
        };
        ensure!(
            status.code() == Some(0),
            "server exited with {status} after SIGTERM; stderr:\n{}",
            self.stderr_tail()
        );
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Drains `pipe`, keeping its last [`STDERR_TAIL_BYTES`] bytes in `tail`.
async fn keep_tail(mut pipe: impl AsyncRead + Unpin, tail: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = pipe.read(&mut buf).await {
        if let Ok(mut tail) = tail.lock() {
            tail.extend_from_slice(&buf[..n]);
            let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
            tail.drain(..excess);
        }
    }
}
