//! The AWS SDK for Rust (`aws-sdk-kinesis`) against the real `shardline` binary.
//!
//! One scenario, as a sequence of named checks against one server: create a two-shard stream,
//! write 101 binary records (PutRecord + PutRecords), read every one back byte-exact from
//! TRIM_HORIZON, a modelled error, a split with the parent drained to its end, delete, an
//! enhanced fan-out subscription (SubscribeToShard over the SDK's event-stream receiver), and
//! an orderly SIGTERM. The client goes through a wire tap so the test also checks which HTTP
//! version the SDK spoke (wire reference §1.8: HTTP/1.1 on `http://`).
//!
//! The checks build on each other, so after the first failure the rest are skipped; the
//! server is stopped either way. The last line is `rust-sdk: N passed, N failed[, N skipped]`
//! and the exit status is non-zero on any failure.
//!
//! # Layout
//! - [`server`]: start `shardline serve` on port 0, SIGTERM it, report its exit status.
//! - [`wire_tap`]: the loopback proxy that records how each connection opened.
//! - [`scenario`]: the checks, the client, the stream's lifecycle and resharding.
//! - [`records`]: the records written and read back, and how they are compared.
//! - [`fanout`]: RegisterStreamConsumer and SubscribeToShard.

mod fanout;
mod records;
mod scenario;
mod server;
mod wire_tap;

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use tokio::time::Instant;

/// Bounds every check before the server is stopped.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Bounds one check, which may make several calls.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// Counts and prints check outcomes.
struct Report {
    passed: usize,
    failed: usize,
    skipped: usize,
    /// End of [`RUN_TIMEOUT`]: no check runs past it.
    deadline: Instant,
}

impl Report {
    fn new() -> Self {
        Self {
            passed: 0,
            failed: 0,
            skipped: 0,
            deadline: Instant::now() + RUN_TIMEOUT,
        }
    }

    /// Runs one check, unless an earlier one failed: the scenario builds on earlier state.
    async fn check<T>(
        &mut self,
        name: &str,
        check: impl Future<Output = anyhow::Result<T>>,
    ) -> Option<T> {
        if self.failed > 0 {
            self.skipped += 1;
            println!("skip {name}");
            return None;
        }
        let bound = (Instant::now() + CHECK_TIMEOUT).min(self.deadline);
        self.run(name, bound, check).await
    }

    /// Runs one check even after failures or past the deadline (stopping the server).
    async fn check_always<T>(
        &mut self,
        name: &str,
        check: impl Future<Output = anyhow::Result<T>>,
    ) -> Option<T> {
        self.run(name, Instant::now() + CHECK_TIMEOUT, check).await
    }

    async fn run<T>(
        &mut self,
        name: &str,
        bound: Instant,
        check: impl Future<Output = anyhow::Result<T>>,
    ) -> Option<T> {
        let started = Instant::now();
        let outcome = tokio::time::timeout_at(bound, check).await;
        let ms = started.elapsed().as_millis();
        match outcome {
            Ok(Ok(value)) => {
                self.passed += 1;
                println!("ok   {name} ({ms} ms)");
                Some(value)
            }
            Ok(Err(e)) => {
                self.failed += 1;
                println!("FAIL {name} ({ms} ms): {e:#}");
                None
            }
            Err(_) => {
                self.failed += 1;
                println!("FAIL {name}: timed out after {ms} ms");
                None
            }
        }
    }

    fn summary(&self) -> String {
        let mut line = format!("rust-sdk: {} passed, {} failed", self.passed, self.failed);
        if self.skipped > 0 {
            line.push_str(&format!(", {} skipped", self.skipped));
        }
        line
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut report = Report::new();
    scenario::run(&mut report).await;
    println!("{}", report.summary());
    if report.failed == 0 && report.passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
