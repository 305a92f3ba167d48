//! What the lease operations share: member validation (application names, lease keys,
//! owners, counters) and the `Lease` structure on the wire.

use std::sync::LazyLock;

use regex::Regex;
use shardline_engine::leases::{InitialPosition, Lease, LeaseTable};
use shardline_engine::ShardId;

use crate::api::actions::common::{check_name, NAME_PATTERN, NAME_RE};
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::Api;

/// `ApplicationName`: 1 to 256 of `[a-zA-Z0-9_.-]+`.
pub const MAX_APPLICATION_NAME_CHARS: usize = 256;
/// `Owner` (a worker id): 1 to 256 printable characters.
pub const MAX_OWNER_CHARS: usize = 256;
pub const OWNER_PATTERN: &str = r"[^\p{Cc}]+";
pub static OWNER_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[^\p{Cc}]+$").expect("invariant: static pattern compiles"));

/// Validates a required `ApplicationName`.
pub fn check_application(v: &mut Validator, value: Option<&str>) {
    v.required("applicationName", value.is_some());
    v.pattern("applicationName", value, &NAME_RE, NAME_PATTERN);
    v.length("applicationName", value, 1, MAX_APPLICATION_NAME_CHARS);
}

/// The members every single-lease operation takes.
#[derive(Debug, Clone, Copy)]
pub struct LeaseRef<'a> {
    pub application: Option<&'a str>,
    pub key: Option<&'a str>,
}

impl<'a> LeaseRef<'a> {
    /// Reads `ApplicationName` and `LeaseKey` (types only).
    pub fn parse(m: &Members<'a>) -> Result<LeaseRef<'a>, ApiError> {
        Ok(LeaseRef {
            application: m.string("ApplicationName")?,
            key: m.string("LeaseKey")?,
        })
    }

    /// Both are required; the key has the `ShardId` shape.
    pub fn validate(&self, v: &mut Validator) {
        check_application(v, self.application);
        v.required("leaseKey", self.key.is_some());
        check_name(v, "leaseKey", self.key, 128);
    }

    /// The application and the shard the key names (`shardId-000000000001`, `shardId-1`
    /// or `1`, as ShardId elsewhere). A key that names no shard is not found.
    pub fn resolve(&self, api: &Api) -> Result<(String, ShardId), ApiError> {
        let application = self.application.unwrap_or_default().to_string();
        let key = self.key.unwrap_or_default();
        match ShardId::parse(key) {
            Some(id) => Ok((application, id)),
            None => {
                let leases = api.engine.leases();
                let e = if leases.applications().contains(&application) {
                    shardline_engine::Error::LeaseNotFound {
                        application,
                        lease: key.to_string(),
                    }
                } else {
                    shardline_engine::Error::LeaseTableNotFound { application }
                };
                Err(api.engine_error(e))
            }
        }
    }
}

/// Validates a required `Owner`.
pub fn check_owner(v: &mut Validator, value: Option<&str>) {
    v.required("owner", value.is_some());
    v.pattern("owner", value, &OWNER_RE, OWNER_PATTERN);
    v.length("owner", value, 1, MAX_OWNER_CHARS);
}

/// Validates a required non-negative `ExpectedCounter`.
pub fn check_counter(v: &mut Validator, value: Option<i64>) {
    v.required("expectedCounter", value.is_some());
    v.range("expectedCounter", value, Some(0), None);
}

fn ids(ids: &[ShardId]) -> Value {
    Value::List(ids.iter().map(|id| Value::String(id.to_string())).collect())
}

fn count(n: u64) -> Value {
    Value::Int(i128::from(n))
}

/// The `Lease` structure.
pub fn lease_value(stream: &str, l: &Lease) -> Value {
    Value::map([
        ("LeaseKey", Value::String(l.shard.to_string())),
        ("StreamName", Value::str(stream)),
        (
            "LeaseOwner",
            l.owner.as_ref().map_or(Value::Null, Value::str),
        ),
        ("LeaseCounter", count(l.counter)),
        ("Checkpoint", Value::str(&l.checkpoint)),
        (
            "CheckpointSubSequenceNumber",
            count(l.checkpoint_sub_sequence),
        ),
        (
            "OwnerSwitchesSinceCheckpoint",
            count(l.owner_switches_since_checkpoint),
        ),
        ("ParentShardIds", ids(&l.parents)),
        ("ChildShardIds", ids(&l.children)),
        (
            "HashKeyRange",
            Value::map([
                ("StartingHashKey", Value::String(l.hash_start.to_string())),
                ("EndingHashKey", Value::String(l.hash_end.to_string())),
            ]),
        ),
    ])
}

/// `{"Lease": {...}}`.
pub fn one_lease(stream: &str, l: &Lease) -> Value {
    Value::map([("Lease", lease_value(stream, l))])
}

/// All of a table's leases, by lease key.
pub fn leases_value(t: &LeaseTable) -> Value {
    Value::List(
        t.leases
            .values()
            .map(|l| lease_value(&t.stream, l))
            .collect(),
    )
}

/// `InitialPosition` and, for AT_TIMESTAMP, `Timestamp`.
pub fn position_fields(p: InitialPosition) -> [(&'static str, Value); 2] {
    let ts = match p {
        InitialPosition::AtTimestamp { timestamp_ms } => {
            Value::Timestamp(i64::try_from(timestamp_ms).unwrap_or(i64::MAX))
        }
        InitialPosition::TrimHorizon | InitialPosition::Latest => Value::Null,
    };
    [
        ("InitialPosition", Value::str(p.checkpoint())),
        ("Timestamp", ts),
    ]
}
