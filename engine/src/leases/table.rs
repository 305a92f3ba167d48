//! One application's lease table in memory, and the conditional operations on it.
//!
//! Every operation here is pure: it checks its condition against the table and changes it,
//! or fails and leaves it as it was. Persisting the result is the caller's job
//! ([`super::Leases`] applies an operation to a copy, writes the copy, then swaps it in).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::ids::ShardId;

/// Checkpoint sentinel: start at the oldest retained record.
pub const TRIM_HORIZON: &str = "TRIM_HORIZON";
/// Checkpoint sentinel: start after the newest record.
pub const LATEST: &str = "LATEST";
/// Checkpoint sentinel: start at the table's initial timestamp.
pub const AT_TIMESTAMP: &str = "AT_TIMESTAMP";
/// Checkpoint sentinel: the shard has been processed to its end.
pub const SHARD_END: &str = "SHARD_END";

/// Longest checkpoint value accepted: a sequence number has at most 129 digits (Kinesis
/// `SequenceNumber` pattern `0|([1-9]\d{0,128})`).
pub const MAX_CHECKPOINT_CHARS: usize = 129;

/// Where the first leases of a table start reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    TrimHorizon,
    Latest,
    /// Milliseconds since the Unix epoch.
    AtTimestamp {
        timestamp_ms: u64,
    },
}

impl InitialPosition {
    /// The checkpoint sentinel the first leases get.
    pub fn checkpoint(self) -> &'static str {
        match self {
            InitialPosition::TrimHorizon => TRIM_HORIZON,
            InitialPosition::Latest => LATEST,
            InitialPosition::AtTimestamp { .. } => AT_TIMESTAMP,
        }
    }
}

/// One shard's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The shard this lease covers (the lease key).
    pub shard: ShardId,
    /// The worker holding it; `None` when unowned.
    pub owner: Option<String>,
    /// +1 on every take, renew, evict and checkpoint: workers detect expiry by watching it.
    pub counter: u64,
    /// A sequence number or one of the sentinels ([`TRIM_HORIZON`], ...).
    pub checkpoint: String,
    /// Sub-record index for KPL-aggregated records.
    pub checkpoint_sub_sequence: u64,
    /// Owner changes since the last checkpoint (KCL uses it to spot leases that bounce).
    pub owner_switches_since_checkpoint: u64,
    /// The shard's parents (1 after a split, 2 after a merge): a worker finishes them first.
    pub parents: Vec<ShardId>,
    /// The shard's children, filled in by a sync once the shard has closed.
    pub children: Vec<ShardId>,
    pub hash_start: u128,
    pub hash_end: u128,
}

/// An application's lease table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseTable {
    pub application: String,
    /// The stream the table is bound to.
    pub stream: String,
    /// The directory name of that stream's incarnation, so that a table never follows a
    /// stream deleted and created again under the same name.
    pub stream_incarnation: String,
    pub initial_position: InitialPosition,
    /// Shards with an index below this were considered by an earlier sync: leased, left out
    /// by the initial position, or leased and since deleted. A sync leases only shards at or
    /// above it, so left-out shards and deleted leases never come back.
    pub next_shard_index: u32,
    pub leases: BTreeMap<ShardId, Lease>,
}

/// The owner and counter a conditional operation expects.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub owner: &'a str,
    pub counter: u64,
}

impl LeaseTable {
    fn lease_mut(&mut self, shard: ShardId) -> Result<&mut Lease> {
        let application = &self.application;
        self.leases
            .get_mut(&shard)
            .ok_or_else(|| Error::LeaseNotFound {
                application: application.clone(),
                lease: shard.to_string(),
            })
    }

    /// A lease by shard.
    ///
    /// # Errors
    /// [`Error::LeaseNotFound`].
    pub fn lease(&self, shard: ShardId) -> Result<&Lease> {
        self.leases.get(&shard).ok_or_else(|| Error::LeaseNotFound {
            application: self.application.clone(),
            lease: shard.to_string(),
        })
    }

    /// Checks owner (if `owner` is given) and counter.
    fn check(&mut self, shard: ShardId, owner: Option<&str>, counter: u64) -> Result<&mut Lease> {
        let application = self.application.clone();
        let lease = self.lease_mut(shard)?;
        let owner_ok = owner.is_none_or(|o| lease.owner.as_deref() == Some(o));
        if !owner_ok || lease.counter != counter {
            return Err(Error::LeaseConditionFailed {
                application,
                lease: shard,
                held_by: lease.owner.clone(),
                counter: lease.counter,
                expected_owner: owner.map(str::to_string),
                expected_counter: counter,
            });
        }
        Ok(lease)
    }

    /// Takes a lease iff its counter is `expected_counter`, whoever owns it.
    ///
    /// # Errors
    /// [`Error::LeaseNotFound`], [`Error::LeaseConditionFailed`].
    pub fn take(&mut self, shard: ShardId, owner: &str, expected_counter: u64) -> Result<Lease> {
        let lease = self.check(shard, None, expected_counter)?;
        if lease.owner.as_deref() != Some(owner) {
            lease.owner_switches_since_checkpoint += 1;
        }
        lease.owner = Some(owner.to_string());
        lease.counter += 1;
        Ok(lease.clone())
    }

    /// Renews a lease iff `expected` matches its owner and counter.
    ///
    /// # Errors
    /// [`Error::LeaseNotFound`], [`Error::LeaseConditionFailed`].
    pub fn renew(&mut self, shard: ShardId, expected: Expected<'_>) -> Result<Lease> {
        let lease = self.check(shard, Some(expected.owner), expected.counter)?;
        lease.counter += 1;
        Ok(lease.clone())
    }

    /// Clears a lease's owner iff `expected` matches its owner and counter.
    ///
    /// # Errors
    /// [`Error::LeaseNotFound`], [`Error::LeaseConditionFailed`].
    pub fn evict(&mut self, shard: ShardId, expected: Expected<'_>) -> Result<Lease> {
        let lease = self.check(shard, Some(expected.owner), expected.counter)?;
        lease.owner = None;
        lease.counter += 1;
        Ok(lease.clone())
    }

    /// Records a checkpoint iff `expected` matches the lease's owner and counter.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a checkpoint that is neither a decimal sequence number nor
    /// a sentinel; [`Error::LeaseNotFound`], [`Error::LeaseConditionFailed`].
    pub fn checkpoint(
        &mut self,
        shard: ShardId,
        expected: Expected<'_>,
        checkpoint: &str,
        sub_sequence: u64,
    ) -> Result<Lease> {
        check_checkpoint(checkpoint)?;
        let lease = self.check(shard, Some(expected.owner), expected.counter)?;
        lease.checkpoint = checkpoint.to_string();
        lease.checkpoint_sub_sequence = sub_sequence;
        lease.owner_switches_since_checkpoint = 0;
        lease.counter += 1;
        Ok(lease.clone())
    }

    /// Removes a lease (a finished shard's).
    ///
    /// # Errors
    /// [`Error::LeaseNotFound`].
    pub fn delete(&mut self, shard: ShardId) -> Result<Lease> {
        let application = &self.application;
        self.leases
            .remove(&shard)
            .ok_or_else(|| Error::LeaseNotFound {
                application: application.clone(),
                lease: shard.to_string(),
            })
    }
}

/// A checkpoint is a decimal sequence number without leading zeros (at most
/// [`MAX_CHECKPOINT_CHARS`] digits) or a sentinel.
///
/// # Errors
/// [`Error::InvalidInput`] naming the value.
pub fn check_checkpoint(value: &str) -> Result<()> {
    let sentinel = [TRIM_HORIZON, LATEST, AT_TIMESTAMP, SHARD_END].contains(&value);
    let decimal = !value.is_empty()
        && value.len() <= MAX_CHECKPOINT_CHARS
        && value.bytes().all(|b| b.is_ascii_digit())
        && (value == "0" || !value.starts_with('0'));
    if sentinel || decimal {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "checkpoint {value} is neither a sequence number nor one of {TRIM_HORIZON}, {LATEST}, {AT_TIMESTAMP}, {SHARD_END}"
        )))
    }
}
