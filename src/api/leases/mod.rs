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

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::http::request::Parts;

use super::error::ApiError;
use super::input::Members;
use super::server::{MAX_BODY_BYTES, SIGNING_SERVICE};
use super::value::{self, Protocol, Value};
use super::{auth, Api};

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

/// Runs a Lease API request whose `X-Amz-Target` is [`TARGET_PREFIX`] + `name`, after the
/// server's method and content-type checks: the rest of the Kinesis envelope in its order
/// (body limit, empty body, body decoding, unknown operation, SigV4 with the `kinesis`
/// scope), then the operation. Returns the operation named, if any, for the log line.
pub async fn serve(
    api: &Api,
    parts: &Parts,
    body: Incoming,
    name: &str,
    protocol: Protocol,
) -> (Option<Operation>, Result<Value, ApiError>) {
    let op = Operation::from_name(name);
    (op, run(api, parts, body, op, protocol).await)
}

async fn run(
    api: &Api,
    parts: &Parts,
    body: Incoming,
    op: Option<Operation>,
    protocol: Protocol,
) -> Result<Value, ApiError> {
    let body = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|_| {
            ApiError::Serialization(Some(format!("Request body exceeds {MAX_BODY_BYTES} bytes")))
        })?
        .to_bytes();
    if body.is_empty() {
        return Err(match op {
            Some(_) => ApiError::Serialization(None),
            None => ApiError::UnknownOperation,
        });
    }
    let members = match protocol {
        Protocol::Json => value::decode_json(&body),
        Protocol::Cbor => value::decode_cbor(&body),
    }
    .map_err(|_| ApiError::Serialization(None))?;
    let op = op.ok_or(ApiError::UnknownOperation)?;
    if let Some(credentials) = &api.config.credentials {
        let signed = auth::SignedRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            authority: parts.uri.authority().map(|a| a.as_str()),
            body: &body,
        };
        auth::verify(credentials, &signed, SIGNING_SERVICE, chrono::Utc::now())?;
    }
    dispatch(api, op, Members::new(&members)).await
}
