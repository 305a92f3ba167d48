//! Starting the real `shardline serve` for the Rust integration test crates
//! (`tests/native`, `tests/producer`, `tests/consumer`, each of which includes this file with
//! `#[path]`): loopback port 0, a data directory the caller owns, and the ready lines the
//! server prints on stdout (`listening on http://ADDR`, then `native listening on ADDR`
//! when `--native-listen` is given), as `tests/kinesis/conftest.py` reads them.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A started server: its process and the addresses from its ready lines.
pub struct Started {
    pub child: Child,
    pub http: SocketAddr,
    /// Present when `native` was asked for.
    pub native: Option<SocketAddr>,
}

/// Starts `shardline serve --listen 127.0.0.1:0 [--native-listen 127.0.0.1:0] --data-dir
/// DIR ARGS...` and waits for its ready lines. The server's stderr goes to `stderr`.
pub fn serve(data_dir: &Path, native: bool, args: &[&str], stderr: Stdio) -> Started {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shardline"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    if native {
        cmd.args(["--native-listen", "127.0.0.1:0"]);
    }
    let mut child = cmd
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("the shardline binary starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let mut next = || {
        lines
            .next()
            .expect("server exited before printing its ready lines")
            .expect("server stdout is readable")
    };
    let line = next();
    let http = line
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("the ready line names a socket address");
    let native = native.then(|| {
        let line = next();
        line.strip_prefix("native listening on ")
            .unwrap_or_else(|| panic!("unexpected second line {line:?}"))
            .parse()
            .expect("the native ready line names a socket address")
    });
    Started {
        child,
        http,
        native,
    }
}
