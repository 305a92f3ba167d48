//! `shardline consume STREAM --app NAME -- COMMAND ARGS...`: a consumer worker
//! ([`shardline_client::consumer::Worker`]) that runs COMMAND once per shard it processes
//! and drives it with the KCL MultiLangDaemon protocol ([`super::multilang`]).
//!
//! # Child processes
//!
//! Each child starts when its shard's processing starts (after the parents are finished),
//! gets every message on stdin and answers on stdout; its stderr is ours. The child stays
//! in our process group, so a signal to the group reaches the processors too. After
//! `leaseLost`, `shardEnded` or `shutdownRequested` is answered its stdin is closed; it has
//! [`EXIT_GRACE`] to exit before it is killed. A child that exits early or breaks the
//! protocol fails its shard: the lease is handed back and processing resumes from the last
//! checkpoint.
//!
//! SIGTERM or Ctrl-C shut the worker down gracefully: `shutdownRequested` to every child
//! (which may checkpoint), then every lease is handed back.

use std::process::Stdio;
use std::time::Duration;

use shardline_client::consumer::{
    Checkpointer, InitializeInput, ProcessRecordsInput, RecordProcessor, Worker, WorkerConfig,
};
use shardline_client::leases::SHARD_END;
use shardline_client::{Client, Error};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::multilang::{checkpoint_error_name, parse_line, ChildRecord, FromChild, ToChild};

/// How long a child may take to exit once its stdin is closed.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// A record processor that is a child process speaking the MultiLangDaemon protocol.
pub struct MultiLangProcessor {
    shard_id: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl MultiLangProcessor {
    /// Starts `command` for `shard_id`.
    ///
    /// # Errors
    /// [`Error::Processor`] if the command cannot be started.
    pub fn spawn(command: &[String], shard_id: &str) -> Result<MultiLangProcessor, Error> {
        let failed = |detail: String| Error::Processor {
            shard_id: shard_id.to_string(),
            detail,
        };
        let (program, args) = command
            .split_first()
            .ok_or_else(|| failed("no command".into()))?;
        let mut child = Command::new(program)
            .args(args)
            .env("SHARDLINE_SHARD_ID", shard_id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("starting {program}: {e}")))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| failed("no stdout pipe".into()))?;
        Ok(MultiLangProcessor {
            shard_id: shard_id.to_string(),
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
        })
    }

    fn failed(&self, detail: String) -> Error {
        Error::Processor {
            shard_id: self.shard_id.clone(),
            detail,
        }
    }

    async fn send(&mut self, message: &ToChild) -> Result<(), Error> {
        let line = message.to_line();
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self.failed("stdin already closed".into()));
        };
        let sent = async {
            stdin.write_all(line.as_bytes()).await?;
            stdin.flush().await
        }
        .await;
        sent.map_err(|e| self.failed(format!("writing to the child: {e}")))
    }

    /// Sends `message` and answers the child's checkpoint requests (through `checkpointer`,
    /// or with InvalidStateException without one) until its status for `message`.
    async fn exchange(
        &mut self,
        message: ToChild,
        mut checkpointer: Option<&mut Checkpointer>,
    ) -> Result<(), Error> {
        self.send(&message).await?;
        let expected = message.action();
        loop {
            let line = match self.stdout.next_line().await {
                Ok(Some(line)) => line,
                Ok(None) => {
                    return Err(self.failed(format!(
                        "the child closed stdout before its status for {expected}"
                    )))
                }
                Err(e) => return Err(self.failed(format!("reading the child's stdout: {e}"))),
            };
            match parse_line(&line) {
                None => continue,
                Some(FromChild::Status { response_for }) if response_for == expected => {
                    return Ok(())
                }
                Some(FromChild::Status { response_for }) => {
                    return Err(self.failed(format!(
                        "status for {response_for} while waiting for {expected}"
                    )))
                }
                Some(FromChild::Checkpoint {
                    sequence_number,
                    sub_sequence_number,
                }) => {
                    let reply = checkpoint(
                        checkpointer.as_deref_mut(),
                        sequence_number,
                        sub_sequence_number,
                    )
                    .await;
                    self.send(&reply).await?;
                }
            }
        }
    }

    /// Closes stdin and waits for the child to exit, killing it after [`EXIT_GRACE`].
    async fn finish(&mut self) {
        self.stdin = None;
        if tokio::time::timeout(EXIT_GRACE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Performs one checkpoint request and builds the reply.
async fn checkpoint(
    checkpointer: Option<&mut Checkpointer>,
    sequence_number: Option<String>,
    sub_sequence_number: Option<u64>,
) -> ToChild {
    let result = match checkpointer {
        None => Err(Error::CheckpointerClosed {
            lease_key: String::new(),
            detail: "no checkpointer in this phase".into(),
        }),
        Some(c) => {
            let done = match &sequence_number {
                None => c.checkpoint().await,
                Some(seq) => c.checkpoint_at(seq, sub_sequence_number.unwrap_or(0)).await,
            };
            done.map(|()| c.current().clone())
        }
    };
    match result {
        Ok(at) => ToChild::Checkpoint {
            sequence_number: Some(at.sequence_number),
            sub_sequence_number: Some(at.sub_sequence_number),
            error: None,
        },
        Err(e) => {
            tracing::info!(error = %e, "checkpoint refused");
            ToChild::Checkpoint {
                sequence_number,
                sub_sequence_number,
                error: Some(checkpoint_error_name(&e).to_string()),
            }
        }
    }
}

impl RecordProcessor for MultiLangProcessor {
    async fn initialize(&mut self, input: InitializeInput) -> Result<(), Error> {
        let message = ToChild::Initialize {
            shard_id: input.shard_id,
            sequence_number: Some(input.checkpoint.sequence_number),
            sub_sequence_number: Some(input.checkpoint.sub_sequence_number),
        };
        self.exchange(message, None).await
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput,
        checkpointer: &mut Checkpointer,
    ) -> Result<(), Error> {
        let message = ToChild::ProcessRecords {
            millis_behind_latest: input.millis_behind_latest,
            records: input.records.iter().map(ChildRecord::from).collect(),
        };
        self.exchange(message, Some(checkpointer)).await
    }

    async fn lease_lost(&mut self) -> Result<(), Error> {
        let result = self.exchange(ToChild::LeaseLost, None).await;
        self.finish().await;
        result
    }

    async fn shard_ended(&mut self, checkpointer: &mut Checkpointer) -> Result<(), Error> {
        let result = self.exchange(ToChild::ShardEnded, Some(checkpointer)).await;
        self.finish().await;
        if result.is_ok() && checkpointer.current().sequence_number != SHARD_END {
            tracing::warn!(shard = %self.shard_id, "the processor did not checkpoint at shardEnded");
        }
        result
    }

    async fn shutdown_requested(&mut self, checkpointer: &mut Checkpointer) -> Result<(), Error> {
        let result = self
            .exchange(ToChild::ShutdownRequested, Some(checkpointer))
            .await;
        self.finish().await;
        result
    }
}

/// Runs the worker until SIGTERM or Ctrl-C.
///
/// # Errors
/// An invalid configuration or a server refusing the lease table (unknown stream, table
/// bound to another stream).
pub async fn run(client: Client, config: WorkerConfig, command: Vec<String>) -> anyhow::Result<()> {
    let factory = move |shard_id: &str| MultiLangProcessor::spawn(&command, shard_id);
    let worker_id = config.worker_id.clone();
    eprintln!(
        "shardline consume: worker {worker_id} of application {} on stream {}",
        config.application, config.stream
    );
    Worker::new(config, client, factory)
        .run(shutdown_signal())
        .await?;
    eprintln!("shardline consume: worker {worker_id} stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the worker");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
