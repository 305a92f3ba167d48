//! DescribeAccountSettings and UpdateAccountSettings.
//!
//! The one account setting, the minimum throughput billing commitment, is kept in
//! `<data dir>/account-settings.json` (`{"version":1,"status":...,"started_ms":...}`),
//! replaced atomically (`datadir::write_atomic`). A missing or unreadable file means "never
//! enabled" (DISABLED).
//!
//! Commitment rules (Kinesis API reference, MinimumThroughputBillingCommitmentInput): a
//! commitment lasts at least 24 hours; disabling it earlier schedules the end at the
//! earliest allowed time (ENABLED_UNTIL_EARLIEST_ALLOWED_END), and enabling it again before
//! then cancels the scheduled end. The scheduled end is applied when the settings are read.

use std::path::PathBuf;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::common::blocking;
use crate::api::error::ApiError;
use crate::api::input::{Members, Validator};
use crate::api::value::Value;
use crate::api::{now_ms, Api};

const SETTINGS_FILE: &str = "account-settings.json";
const FORMAT_VERSION: u32 = 1;
/// Minimum commitment duration (24 hours).
const MIN_COMMITMENT_MS: u64 = 24 * 3_600_000;

/// Serializes read-modify-write of the settings file.
static WRITE_LOCK: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Status {
    Disabled,
    Enabled,
    /// Disabled while inside the minimum window: ends at `earliest_end_ms`.
    EnabledUntilEarliestAllowedEnd,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Commitment {
    version: u32,
    status: Status,
    started_ms: Option<u64>,
    ended_ms: Option<u64>,
    earliest_end_ms: Option<u64>,
}

impl Default for Commitment {
    fn default() -> Self {
        Commitment {
            version: FORMAT_VERSION,
            status: Status::Disabled,
            started_ms: None,
            ended_ms: None,
            earliest_end_ms: None,
        }
    }
}

impl Commitment {
    /// The commitment as of `now`: a scheduled end that has passed has happened.
    fn at(mut self, now: u64) -> Commitment {
        if self.status == Status::EnabledUntilEarliestAllowedEnd
            && self.earliest_end_ms.is_some_and(|e| e <= now)
        {
            self.status = Status::Disabled;
            self.ended_ms = self.earliest_end_ms;
        }
        self
    }

    fn enable(mut self, now: u64) -> Commitment {
        match self.status {
            Status::Enabled => {}
            Status::EnabledUntilEarliestAllowedEnd => {
                self.status = Status::Enabled;
                self.ended_ms = None;
            }
            Status::Disabled => {
                self = Commitment {
                    version: FORMAT_VERSION,
                    status: Status::Enabled,
                    started_ms: Some(now),
                    ended_ms: None,
                    earliest_end_ms: Some(now + MIN_COMMITMENT_MS),
                };
            }
        }
        self
    }

    fn disable(mut self, now: u64) -> Commitment {
        if self.status == Status::Enabled {
            match self.earliest_end_ms {
                Some(e) if e > now => {
                    self.status = Status::EnabledUntilEarliestAllowedEnd;
                    self.ended_ms = Some(e);
                }
                _ => {
                    self.status = Status::Disabled;
                    self.ended_ms = Some(now);
                }
            }
        }
        self
    }

    fn value(&self) -> Value {
        let ts = |ms: Option<u64>| ms.map_or(Value::Null, |ms| Value::Timestamp(ms as i64));
        let status = match self.status {
            Status::Disabled => "DISABLED",
            Status::Enabled => "ENABLED",
            Status::EnabledUntilEarliestAllowedEnd => "ENABLED_UNTIL_EARLIEST_ALLOWED_END",
        };
        Value::map([(
            "MinimumThroughputBillingCommitment",
            Value::map([
                ("Status", Value::str(status)),
                ("StartedAt", ts(self.started_ms)),
                ("EndedAt", ts(self.ended_ms)),
                ("EarliestAllowedEndAt", ts(self.earliest_end_ms)),
            ]),
        )])
    }
}

fn path(api: &Api) -> PathBuf {
    api.engine.path().join(SETTINGS_FILE)
}

fn load(path: &std::path::Path) -> Commitment {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Commitment>(&b).ok())
        .filter(|c| c.version == FORMAT_VERSION)
        .unwrap_or_default()
}

pub fn describe(api: &Api, _m: Members<'_>) -> Result<Value, ApiError> {
    Ok(load(&path(api)).at(now_ms()).value())
}

pub async fn update(api: &Api, m: Members<'_>) -> Result<Value, ApiError> {
    let commitment = m.structure("MinimumThroughputBillingCommitment")?;
    let status = match commitment {
        Some(c) => c.string("Status")?,
        None => None,
    };
    let mut v = Validator::default();
    v.required("minimumThroughputBillingCommitment", commitment.is_some());
    if commitment.is_some() {
        v.required(
            "minimumThroughputBillingCommitment.status",
            status.is_some(),
        );
        v.one_of(
            "minimumThroughputBillingCommitment.status",
            status,
            &["ENABLED", "DISABLED"],
        );
    }
    v.finish()?;
    let enable = status == Some("ENABLED");
    let path = path(api);
    let updated = blocking(move || {
        let _guard = WRITE_LOCK.lock();
        let now = now_ms();
        let current = load(&path).at(now);
        let next = if enable {
            current.enable(now)
        } else {
            current.disable(now)
        };
        let bytes = serde_json::to_vec(&next)
            .map_err(|e| ApiError::Internal(format!("encoding account settings: {e}")))?;
        shardline_engine::datadir::write_atomic(&path, &bytes)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok::<_, ApiError>(next)
    })
    .await??;
    Ok(updated.value())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;

    #[test]
    fn disabling_inside_the_window_ends_at_the_earliest_allowed_time() {
        let c = Commitment::default().enable(0).disable(H);
        assert_eq!(c.status, Status::EnabledUntilEarliestAllowedEnd);
        assert_eq!(c.ended_ms, Some(24 * H));
        let later = c.clone().at(24 * H);
        assert_eq!(
            (later.status, later.ended_ms),
            (Status::Disabled, Some(24 * H))
        );
        // Enabling again before the end cancels it and keeps the original start.
        let again = c.enable(2 * H);
        assert_eq!(again.status, Status::Enabled);
        assert_eq!((again.started_ms, again.ended_ms), (Some(0), None));
    }

    #[test]
    fn disabling_after_the_window_is_immediate() {
        let c = Commitment::default().enable(0).disable(25 * H);
        assert_eq!((c.status, c.ended_ms), (Status::Disabled, Some(25 * H)));
    }
}
