//! Engine settings.

use std::sync::Arc;
use std::time::Duration;

use crate::commit::CommitObserver;
use crate::error::{Error, Result};
use crate::io::IoMode;
use crate::log::recovery::RecoveryMode;
use crate::log::{LogOptions, ReadMode};

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Once its bytes are on disk (`fdatasync` completed). The default.
    #[default]
    Sync,
    /// Once its bytes are in the page cache: survives a process crash, not a power loss.
    None,
}

impl Durability {
    /// Parses `sync` or `none`.
    pub fn parse(s: &str) -> Option<Durability> {
        match s {
            "sync" => Some(Durability::Sync),
            "none" => Some(Durability::None),
            _ => None,
        }
    }
}

/// Default record size limit: 1 MiB (Kinesis PutRecord `Data`, before base64).
pub const DEFAULT_MAX_RECORD_BYTES: u32 = 1 << 20;
/// Largest configurable record size: 10 MiB (Kinesis `MaxRecordSizeInKiB` up to 10240).
pub const MAX_MAX_RECORD_BYTES: u32 = 10 << 20;
/// Partition keys are 1 to 256 characters (Kinesis API reference, `PartitionKey`).
pub const MAX_PARTITION_KEY_CHARS: usize = 256;
/// Default retention: 24 hours (Kinesis default). Range 24 to 8760 hours.
pub const DEFAULT_RETENTION_HOURS: u32 = 24;
pub const MIN_RETENTION_HOURS: u32 = 24;
pub const MAX_RETENTION_HOURS: u32 = 8760;

/// Checks a retention period against Kinesis's range.
///
/// # Errors
/// [`Error::InvalidInput`] outside 24 to 8760 hours.
pub fn check_retention_hours(hours: u32) -> Result<()> {
    if !(MIN_RETENTION_HOURS..=MAX_RETENTION_HOURS).contains(&hours) {
        return Err(Error::InvalidInput(format!(
            "retention period must be {MIN_RETENTION_HOURS} to {MAX_RETENTION_HOURS} hours, got {hours}"
        )));
    }
    Ok(())
}

/// Checks a record size limit: 1 byte to 10 MiB.
///
/// # Errors
/// [`Error::InvalidInput`] outside that range.
pub fn check_max_record_bytes(bytes: u32) -> Result<()> {
    if bytes == 0 || bytes > MAX_MAX_RECORD_BYTES {
        return Err(Error::InvalidInput(format!(
            "record size limit must be 1 to {MAX_MAX_RECORD_BYTES} bytes, got {bytes}"
        )));
    }
    Ok(())
}

/// Everything the engine can be configured with.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub durability: Durability,
    pub io: IoMode,
    /// Committer threads. io_uring runs every shard's write in parallel from one thread;
    /// the portable backend needs threads to overlap `fdatasync`s of different shards.
    pub committer_threads: Option<usize>,
    pub log: LogOptions,
    /// How often retention and segment age rolls run.
    pub maintenance_interval: Duration,
    /// AWS region and account used to form ARNs.
    pub region: String,
    pub account_id: String,
    /// Told about every group-commit round (the server's metrics).
    pub commit_observer: Option<Arc<dyn CommitObserver>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            durability: Durability::Sync,
            io: IoMode::Auto,
            committer_threads: None,
            log: LogOptions::default(),
            maintenance_interval: Duration::from_secs(30),
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            commit_observer: None,
        }
    }
}

impl EngineConfig {
    /// Sets the recovery mode (builder style, for tools and tests).
    pub fn with_recovery(mut self, mode: RecoveryMode) -> Self {
        self.log.recovery = mode;
        self
    }

    /// Sets how sealed segments are read.
    pub fn with_read_mode(mut self, mode: ReadMode) -> Self {
        self.log.read_mode = mode;
        self
    }
}
