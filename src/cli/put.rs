//! `shardline put STREAM`: every line of stdin becomes one record.
//!
//! Lines are raw bytes (not necessarily UTF-8) without their `\n` or `\r\n`; an empty line is
//! an empty record. The partition key is `--partition-key`, else the line number, so lines
//! spread over the shards. Lines are batched into PutRecords calls of up to
//! [`MAX_BATCH_RECORDS`] records and [`MAX_BATCH_BYTES`]; a partial batch goes out after
//! [`LINGER`] without new lines, so a pipe that trickles is written as it comes.
//!
//! Entries a call reports as failed (throttling, internal failures), and whole calls that
//! failed for a retryable reason, are retried with exponential backoff and jitter before the
//! next batch is sent; after [`MAX_ATTEMPTS`] they count as failed. Retries can reorder
//! records within one batch, as with any PutRecords client. A record larger than the
//! stream's `MaxRecordSizeInKiB` is skipped and counted as failed. An error retrying cannot
//! fix (a missing stream, a refused signature) stops at once. Counts go to stderr at the end,
//! and the exit status is non-zero if any record was not written.

use std::io::BufRead;
use std::time::Duration;

use base64::Engine as _;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::streams;
use shardline_client::{Client, Error as CallError};

/// PutRecords takes at most 500 records per call (Kinesis API reference, PutRecords).
const MAX_BATCH_RECORDS: usize = 500;
/// Data plus partition keys per call. AWS takes 10 MiB (PutRecords); 5 MiB, about 6.7 MiB
/// once base64-encoded, stays under the 7 MiB body caps of older servers and emulators.
const MAX_BATCH_BYTES: usize = 5 << 20;
/// The record size limit (partition key plus data) when the server does not report
/// `MaxRecordSizeInKiB`: 1 MiB, Kinesis's default.
const DEFAULT_MAX_RECORD_KIB: u64 = 1024;
/// How long a partial batch waits for more lines.
const LINGER: Duration = Duration::from_millis(100);
/// Calls per batch before its remaining records count as failed.
const MAX_ATTEMPTS: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Lines read ahead of the batches being written.
pub(super) const LINE_QUEUE: usize = 4096;

/// One record ready to send.
struct Entry {
    data_base64: String,
    partition_key: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsRequest<'a> {
    stream_name: &'a str,
    records: Vec<RequestEntry<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RequestEntry<'a> {
    data: &'a str,
    partition_key: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsResponse {
    records: Vec<ResultEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultEntry {
    error_code: Option<String>,
    error_message: Option<String>,
}

/// Records waiting to be sent together.
#[derive(Default)]
struct Batch {
    entries: Vec<Entry>,
    /// Data plus partition key bytes, as PutRecords counts them.
    bytes: usize,
}

impl Batch {
    fn fits(&self, bytes: usize) -> bool {
        self.entries.len() < MAX_BATCH_RECORDS && self.bytes + bytes <= MAX_BATCH_BYTES
    }

    fn push(&mut self, entry: Entry, bytes: usize) {
        self.entries.push(entry);
        self.bytes += bytes;
    }

    fn take(&mut self) -> Vec<Entry> {
        self.bytes = 0;
        std::mem::take(&mut self.entries)
    }
}

/// What `put` did, printed at the end.
#[derive(Default)]
struct Report {
    lines: u64,
    written: u64,
    failed: u64,
    /// Entries sent again after a failure.
    retried: u64,
    last_error: Option<String>,
}

/// Writes stdin to `stream` (module docs).
///
/// # Errors
/// A missing stream or another error retrying cannot fix, a read error on stdin, or records
/// that could not be written.
pub async fn run(
    client: &Client,
    stream: &str,
    partition_key: Option<String>,
) -> anyhow::Result<()> {
    // Fails fast on a missing stream, before anything is read from stdin.
    let summary = streams::summary(client, stream).await?;
    let max_record_bytes = summary
        .max_record_size_in_kib
        .unwrap_or(DEFAULT_MAX_RECORD_KIB) as usize
        * 1024;
    let (tx, mut rx) = mpsc::channel(LINE_QUEUE);
    std::thread::spawn(move || read_lines(&tx));
    let mut batch = Batch::default();
    let mut report = Report::default();
    loop {
        let next = if batch.entries.is_empty() {
            rx.recv().await
        } else {
            match tokio::time::timeout(LINGER, rx.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    send(client, stream, batch.take(), &mut report).await?;
                    continue;
                }
            }
        };
        let line = match next {
            Some(Ok(line)) => line,
            Some(Err(e)) => {
                send(client, stream, batch.take(), &mut report).await?;
                print_report(stream, &report);
                return Err(anyhow::Error::new(e).context("reading stdin"));
            }
            None => break,
        };
        report.lines += 1;
        let key = partition_key
            .clone()
            .unwrap_or_else(|| report.lines.to_string());
        let bytes = line.len() + key.len();
        if bytes > max_record_bytes {
            eprintln!(
                "line {}: {bytes} bytes with its partition key, over the stream's record limit of {max_record_bytes}; not written",
                report.lines
            );
            report.failed += 1;
            report.last_error = Some(format!("line {} too large", report.lines));
            continue;
        }
        if !batch.fits(bytes) {
            send(client, stream, batch.take(), &mut report).await?;
        }
        let entry = Entry {
            data_base64: base64::engine::general_purpose::STANDARD.encode(&line),
            partition_key: key,
        };
        batch.push(entry, bytes);
    }
    send(client, stream, batch.take(), &mut report).await?;
    print_report(stream, &report);
    if report.failed > 0 {
        anyhow::bail!(
            "{} of {} record(s) could not be written (last error: {})",
            report.failed,
            report.lines,
            report.last_error.as_deref().unwrap_or("unknown")
        );
    }
    Ok(())
}

fn print_report(stream: &str, r: &Report) {
    eprintln!(
        "{} record(s) written to {stream}, {} failed, {} retried",
        r.written, r.failed, r.retried
    );
}

/// Sends one batch, retrying failed entries; only errors retrying cannot fix are returned.
async fn send(
    client: &Client,
    stream: &str,
    entries: Vec<Entry>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut pending = entries;
    let mut attempt = 0;
    while !pending.is_empty() {
        attempt += 1;
        let request = PutRecordsRequest {
            stream_name: stream,
            records: pending
                .iter()
                .map(|e| RequestEntry {
                    data: &e.data_base64,
                    partition_key: &e.partition_key,
                })
                .collect(),
        };
        match client
            .call::<_, PutRecordsResponse>("PutRecords", &request)
            .await
        {
            Ok(resp) if resp.records.len() == pending.len() => {
                let mut failed = Vec::new();
                for (entry, result) in pending.into_iter().zip(resp.records) {
                    match result.error_code {
                        None => report.written += 1,
                        Some(code) => {
                            report.last_error = Some(match result.error_message {
                                Some(m) => format!("{code}: {m}"),
                                None => code,
                            });
                            failed.push(entry);
                        }
                    }
                }
                pending = failed;
            }
            Ok(resp) => {
                print_report(stream, report);
                anyhow::bail!(
                    "PutRecords answered {} results for {} records",
                    resp.records.len(),
                    pending.len()
                );
            }
            Err(e) if e.is_retryable() => report.last_error = Some(e.to_string()),
            Err(e) => {
                print_report(stream, report);
                return Err(fatal(e, pending.len()));
            }
        }
        if pending.is_empty() {
            break;
        }
        if attempt >= MAX_ATTEMPTS {
            report.failed += pending.len() as u64;
            return Ok(());
        }
        report.retried += pending.len() as u64;
        tokio::time::sleep(backoff(attempt)).await;
    }
    Ok(())
}

fn fatal(e: CallError, unsent: usize) -> anyhow::Error {
    anyhow::Error::new(e).context(format!(
        "PutRecords failed; {unsent} record(s) in the batch not written"
    ))
}

/// Exponential backoff with jitter: half of `FIRST_BACKOFF * 2^(attempt-1)` (at most
/// `MAX_BACKOFF`) plus a random part up to the other half.
fn backoff(attempt: u32) -> Duration {
    let full = FIRST_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let half = full / 2;
    half + half.mul_f64(rand::thread_rng().gen::<f64>())
}

/// Reads stdin line by line into `tx` until end of file, a read error, or `tx` closing.
pub(super) fn read_lines(tx: &mpsc::Sender<std::io::Result<Vec<u8>>>) {
    let mut stdin = std::io::stdin().lock();
    loop {
        let mut line = Vec::new();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                strip_line_end(&mut line);
                if tx.blocking_send(Ok(line)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    }
}

fn strip_line_end(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            data_base64: String::new(),
            partition_key: "k".into(),
        }
    }

    #[test]
    fn batch_closes_at_500_records_or_5_mib() {
        let mut b = Batch::default();
        for _ in 0..MAX_BATCH_RECORDS {
            assert!(b.fits(1));
            b.push(entry(), 1);
        }
        assert!(!b.fits(1));
        assert_eq!(b.take().len(), MAX_BATCH_RECORDS);
        assert!(b.fits(MAX_BATCH_BYTES));
        b.push(entry(), MAX_BATCH_BYTES - 1);
        assert!(b.fits(1));
        assert!(!b.fits(2));
    }

    #[test]
    fn line_ends_are_stripped_once() {
        for (raw, want) in [
            (&b"a\n"[..], &b"a"[..]),
            (b"a\r\n", b"a"),
            (b"a", b"a"),
            (b"\n", b""),
            (b"a\n\n", b"a\n"),
            (b"a\r", b"a\r"),
        ] {
            let mut line = raw.to_vec();
            strip_line_end(&mut line);
            assert_eq!(line, want, "{raw:?}");
        }
    }

    #[test]
    fn backoff_grows_and_stays_capped() {
        assert!(backoff(1) >= FIRST_BACKOFF / 2 && backoff(1) <= FIRST_BACKOFF);
        assert!(backoff(4) >= FIRST_BACKOFF * 4);
        assert!(backoff(30) <= MAX_BACKOFF);
    }
}
