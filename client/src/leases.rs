//! The typed client of Shardline's lease API (`ShardlineLeases_20261126.*`): the KCL lease
//! table as server operations, every write conditional on the lease's counter.
//!
//! The contract (shared with the server in `src/api/`) is in `docs/api.md`; in short, every
//! lease-changing call names the counter the caller last saw and fails with
//! `ConditionalCheckFailedException` when the stored lease has moved on.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::Error;
use crate::http::Client;

/// The lease API's `X-Amz-Target` prefix.
pub const LEASES_TARGET: &str = "ShardlineLeases_20261126";

/// Checkpoint sentinel: read the shard from its oldest record.
pub const TRIM_HORIZON: &str = "TRIM_HORIZON";
/// Checkpoint sentinel: read only records written after the start.
pub const LATEST: &str = "LATEST";
/// Checkpoint sentinel: read from the table's initial timestamp.
pub const AT_TIMESTAMP: &str = "AT_TIMESTAMP";
/// Checkpoint sentinel: the shard has been processed to its end.
pub const SHARD_END: &str = "SHARD_END";

/// A shard's hash key range (decimal strings).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HashKeyRange {
    pub starting_hash_key: String,
    pub ending_hash_key: String,
}

/// One lease: which worker processes a shard, and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Lease {
    /// The shard id.
    pub lease_key: String,
    #[serde(default)]
    pub stream_name: String,
    /// The worker holding it; `None` when unowned.
    #[serde(default)]
    pub lease_owner: Option<String>,
    /// +1 on every take, renew, evict and checkpoint: the condition of every write.
    pub lease_counter: u64,
    /// A sequence number or a sentinel ([`TRIM_HORIZON`], [`LATEST`], [`AT_TIMESTAMP`],
    /// [`SHARD_END`]).
    pub checkpoint: String,
    #[serde(default)]
    pub checkpoint_sub_sequence_number: u64,
    #[serde(default)]
    pub owner_switches_since_checkpoint: u64,
    #[serde(default)]
    pub parent_shard_ids: Vec<String>,
    #[serde(default)]
    pub child_shard_ids: Vec<String>,
    #[serde(default)]
    pub hash_key_range: Option<HashKeyRange>,
}

impl Lease {
    /// Whether the shard has been processed to its end.
    pub fn is_finished(&self) -> bool {
        self.checkpoint == SHARD_END
    }
}

/// Where a new lease table starts reading the shards that exist when it is created.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InitialPosition {
    TrimHorizon,
    Latest,
    /// Epoch seconds.
    AtTimestamp(f64),
}

/// SyncLeases' answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SyncOutput {
    pub leases: Vec<Lease>,
    #[serde(default)]
    pub created_lease_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LeaseOutput {
    lease: Lease,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LeasesOutput {
    leases: Vec<Lease>,
}

#[derive(Deserialize)]
struct Empty {}

/// One application's lease table on one endpoint.
#[derive(Clone)]
pub struct LeaseTable {
    client: Client,
    application: String,
}

impl LeaseTable {
    /// The table of `application` (created by the first [`LeaseTable::sync`]).
    pub fn new(client: Client, application: &str) -> LeaseTable {
        LeaseTable {
            client,
            application: application.to_string(),
        }
    }

    /// The application name.
    pub fn application(&self) -> &str {
        &self.application
    }

    async fn call<R: serde::de::DeserializeOwned>(
        &self,
        op: &str,
        request: serde_json::Value,
    ) -> Result<R, Error> {
        self.client.call_target(LEASES_TARGET, op, &request).await
    }

    /// SyncLeases: creates the table on first use, adds leases for new shards, and returns
    /// every lease sorted by key.
    ///
    /// # Errors
    /// ResourceNotFoundException for an unknown stream, InvalidArgumentException for a table
    /// bound to another stream, or a transport failure.
    pub async fn sync(&self, stream: &str, initial: InitialPosition) -> Result<SyncOutput, Error> {
        let mut request = json!({ "ApplicationName": self.application, "StreamName": stream });
        match initial {
            InitialPosition::TrimHorizon => request["InitialPosition"] = json!(TRIM_HORIZON),
            InitialPosition::Latest => request["InitialPosition"] = json!(LATEST),
            InitialPosition::AtTimestamp(t) => {
                request["InitialPosition"] = json!(AT_TIMESTAMP);
                request["Timestamp"] = json!(t);
            }
        }
        self.call("SyncLeases", request).await
    }

    /// ListLeases: every lease of the table, sorted by key.
    ///
    /// # Errors
    /// ResourceNotFoundException if the table does not exist.
    pub async fn list(&self) -> Result<Vec<Lease>, Error> {
        let out: LeasesOutput = self
            .call("ListLeases", json!({ "ApplicationName": self.application }))
            .await?;
        Ok(out.leases)
    }

    /// DescribeLease.
    ///
    /// # Errors
    /// ResourceNotFoundException if the table or lease does not exist.
    pub async fn describe(&self, lease_key: &str) -> Result<Lease, Error> {
        let out: LeaseOutput = self
            .call(
                "DescribeLease",
                json!({ "ApplicationName": self.application, "LeaseKey": lease_key }),
            )
            .await?;
        Ok(out.lease)
    }

    async fn conditional(
        &self,
        op: &str,
        lease_key: &str,
        owner: &str,
        expected_counter: u64,
    ) -> Result<Lease, Error> {
        let request = json!({
            "ApplicationName": self.application,
            "LeaseKey": lease_key,
            "Owner": owner,
            "ExpectedCounter": expected_counter,
        });
        let out: LeaseOutput = self.call(op, request).await?;
        Ok(out.lease)
    }

    /// TakeLease: becomes the owner iff the stored counter is `expected_counter`.
    ///
    /// # Errors
    /// ConditionalCheckFailedException when the lease changed since it was read.
    pub async fn take(
        &self,
        lease_key: &str,
        owner: &str,
        expected_counter: u64,
    ) -> Result<Lease, Error> {
        self.conditional("TakeLease", lease_key, owner, expected_counter)
            .await
    }

    /// RenewLease: counter +1 iff `owner` holds it at `expected_counter`.
    ///
    /// # Errors
    /// ConditionalCheckFailedException when the lease was taken or changed.
    pub async fn renew(
        &self,
        lease_key: &str,
        owner: &str,
        expected_counter: u64,
    ) -> Result<Lease, Error> {
        self.conditional("RenewLease", lease_key, owner, expected_counter)
            .await
    }

    /// EvictLease: hands the lease back (owner cleared) iff `owner` holds it at
    /// `expected_counter`.
    ///
    /// # Errors
    /// ConditionalCheckFailedException when the lease was taken or changed.
    pub async fn evict(
        &self,
        lease_key: &str,
        owner: &str,
        expected_counter: u64,
    ) -> Result<Lease, Error> {
        self.conditional("EvictLease", lease_key, owner, expected_counter)
            .await
    }

    /// Checkpoint: records `sequence_number`/`sub_sequence_number` (or a sentinel) iff
    /// `owner` holds the lease at `expected_counter`.
    ///
    /// # Errors
    /// ConditionalCheckFailedException when the lease was taken or changed.
    pub async fn checkpoint(
        &self,
        lease_key: &str,
        owner: &str,
        expected_counter: u64,
        sequence_number: &str,
        sub_sequence_number: u64,
    ) -> Result<Lease, Error> {
        let request = json!({
            "ApplicationName": self.application,
            "LeaseKey": lease_key,
            "Owner": owner,
            "ExpectedCounter": expected_counter,
            "SequenceNumber": sequence_number,
            "SubSequenceNumber": sub_sequence_number,
        });
        let out: LeaseOutput = self.call("Checkpoint", request).await?;
        Ok(out.lease)
    }

    /// DeleteLease.
    ///
    /// # Errors
    /// ResourceNotFoundException if absent.
    pub async fn delete(&self, lease_key: &str) -> Result<(), Error> {
        let _: Empty = self
            .call(
                "DeleteLease",
                json!({ "ApplicationName": self.application, "LeaseKey": lease_key }),
            )
            .await?;
        Ok(())
    }

    /// DeleteLeaseTable.
    ///
    /// # Errors
    /// ResourceNotFoundException if the table does not exist.
    pub async fn delete_table(&self) -> Result<(), Error> {
        let _: Empty = self
            .call(
                "DeleteLeaseTable",
                json!({ "ApplicationName": self.application }),
            )
            .await?;
        Ok(())
    }
}
