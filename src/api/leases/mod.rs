//! The Lease API (`X-Amz-Target: ShardlineLeases_20261126.<Operation>`): KCL-style lease
//! tables kept by the engine, one module per operation (parse -> apply -> render),
//! dispatched through [`Operation`]. The contract is the "Lease API" section of
//! `docs/api.md`; the rules live in `shardline_engine::leases`.

mod checkpoint;
mod common;
mod delete_lease;
mod delete_lease_table;
mod describe_lease;
mod list_lease_tables;
mod list_leases;
mod ownership;
mod sync_leases;

use super::error::ApiError;
use super::input::Members;
use super::value::Value;
use super::Api;

/// The `X-Amz-Target` prefix of Lease API operations.
pub const TARGET_PREFIX: &str = "ShardlineLeases_20261126.";

macro_rules! operations {
    ($($name:ident),* $(,)?) => {
        /// Every Lease API operation.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Operation { $($name),* }

        impl Operation {
            /// Parses the part of `X-Amz-Target` after [`TARGET_PREFIX`].
            pub fn from_name(s: &str) -> Option<Operation> {
                match s {
                    $(stringify!($name) => Some(Operation::$name),)*
                    _ => None,
                }
            }

            /// The wire name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Operation::$name => stringify!($name),)*
                }
            }
        }
    };
}

operations!(
    SyncLeases,
    ListLeases,
    DescribeLease,
    TakeLease,
    RenewLease,
    EvictLease,
    Checkpoint,
    DeleteLease,
    DeleteLeaseTable,
    ListLeaseTables,
);

/// Runs `op`.
pub async fn dispatch(api: &Api, op: Operation, m: Members<'_>) -> Result<Value, ApiError> {
    match op {
        Operation::SyncLeases => sync_leases::handle(api, m).await,
        Operation::ListLeases => list_leases::handle(api, m),
        Operation::DescribeLease => describe_lease::handle(api, m),
        Operation::TakeLease => ownership::take(api, m).await,
        Operation::RenewLease => ownership::renew(api, m).await,
        Operation::EvictLease => ownership::evict(api, m).await,
        Operation::Checkpoint => checkpoint::handle(api, m).await,
        Operation::DeleteLease => delete_lease::handle(api, m).await,
        Operation::DeleteLeaseTable => delete_lease_table::handle(api, m).await,
        Operation::ListLeaseTables => list_lease_tables::handle(api, m),
    }
}
