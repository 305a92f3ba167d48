//! The KCL MultiLangDaemon protocol (reference section 7): one JSON object per line, the
//! daemon's messages on the child's stdin, the child's on its stdout, each with `"action"`.
//!
//! - Daemon -> child: `initialize`, `processRecords`, `leaseLost`, `shardEnded`,
//!   `shutdownRequested`, and the reply to each checkpoint request (`checkpoint` with
//!   `error` null on success, else the KCL exception's simple name).
//! - Child -> daemon: `checkpoint` requests (any number, each answered) and one `status`
//!   per daemon message (`responseFor` names it), which ends that message's exchange.
//! - Blank and non-JSON lines from the child are skipped (a processor may print), as are
//!   JSON lines without a known action; the child's stderr goes to ours.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use shardline_client::consumer::Record;
use shardline_client::Error;

/// A message to the child.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum ToChild {
    #[serde(rename_all = "camelCase")]
    Initialize {
        shard_id: String,
        sequence_number: Option<String>,
        sub_sequence_number: Option<u64>,
    },
    #[serde(rename_all = "camelCase")]
    ProcessRecords {
        millis_behind_latest: Option<u64>,
        records: Vec<ChildRecord>,
    },
    LeaseLost,
    ShardEnded,
    ShutdownRequested,
    /// The answer to a checkpoint request.
    #[serde(rename_all = "camelCase")]
    Checkpoint {
        sequence_number: Option<String>,
        sub_sequence_number: Option<u64>,
        error: Option<String>,
    },
}

impl ToChild {
    /// The `responseFor` the child's status names for this message.
    pub fn action(&self) -> &'static str {
        match self {
            ToChild::Initialize { .. } => "initialize",
            ToChild::ProcessRecords { .. } => "processRecords",
            ToChild::LeaseLost => "leaseLost",
            ToChild::ShardEnded => "shardEnded",
            ToChild::ShutdownRequested => "shutdownRequested",
            ToChild::Checkpoint { .. } => "checkpoint",
        }
    }

    /// The message as one line, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self)
            .expect("invariant: protocol messages serialize to JSON (string keys)");
        line.push('\n');
        line
    }
}

/// A record as the protocol carries it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildRecord {
    /// Always `"record"`.
    action: &'static str,
    /// Base64 of the record's bytes.
    data: String,
    partition_key: String,
    sequence_number: String,
    sub_sequence_number: u64,
    /// Epoch milliseconds.
    approximate_arrival_timestamp: Option<i64>,
}

impl From<&Record> for ChildRecord {
    fn from(r: &Record) -> ChildRecord {
        ChildRecord {
            action: "record",
            data: base64::engine::general_purpose::STANDARD.encode(&r.data),
            partition_key: r.partition_key.clone(),
            sequence_number: r.sequence_number.clone(),
            sub_sequence_number: r.sub_sequence_number,
            approximate_arrival_timestamp: r.approximate_arrival_timestamp_ms,
        }
    }
}

/// A message from the child.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum FromChild {
    /// A checkpoint request; no sequence number means the last delivered record (or
    /// `SHARD_END` in `shardEnded`).
    #[serde(rename_all = "camelCase")]
    Checkpoint {
        #[serde(default)]
        sequence_number: Option<String>,
        #[serde(default)]
        sub_sequence_number: Option<u64>,
    },
    /// The end of the exchange for one daemon message.
    #[serde(rename_all = "camelCase")]
    Status { response_for: String },
}

/// Reads one line from the child: `None` for lines the protocol skips.
pub fn parse_line(line: &str) -> Option<FromChild> {
    let line = line.trim();
    if !line.starts_with('{') {
        return None;
    }
    serde_json::from_str(line).ok()
}

/// The KCL exception a failed checkpoint is reported as.
pub fn checkpoint_error_name(e: &Error) -> &'static str {
    match e {
        Error::CheckpointerClosed { .. } => "InvalidStateException",
        Error::LeaseLost { .. } => "ShutdownException",
        Error::CheckpointBackwards { .. }
        | Error::CheckpointBeyondDelivered { .. }
        | Error::InvalidSequenceNumber { .. } => "IllegalArgumentException",
        e if e.kind() == Some("ProvisionedThroughputExceededException")
            || e.kind() == Some("ThrottlingException") =>
        {
            "ThrottlingException"
        }
        _ => "KinesisClientLibDependencyException",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn as_json(m: &ToChild) -> Value {
        let line = m.to_line();
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        serde_json::from_str(&line).unwrap()
    }

    #[test]
    fn daemon_messages_have_the_kcl_shapes() {
        let init = ToChild::Initialize {
            shard_id: "shardId-000000000001".into(),
            sequence_number: Some("TRIM_HORIZON".into()),
            sub_sequence_number: Some(0),
        };
        assert_eq!(
            as_json(&init),
            json!({"action": "initialize", "shardId": "shardId-000000000001",
                   "sequenceNumber": "TRIM_HORIZON", "subSequenceNumber": 0})
        );
        let record = Record {
            data: b"hi".to_vec(),
            partition_key: "pk".into(),
            sequence_number: "4959".into(),
            sub_sequence_number: 0,
            approximate_arrival_timestamp_ms: Some(1_700_000_000_000),
        };
        let batch = ToChild::ProcessRecords {
            millis_behind_latest: Some(0),
            records: vec![ChildRecord::from(&record)],
        };
        assert_eq!(
            as_json(&batch),
            json!({"action": "processRecords", "millisBehindLatest": 0, "records": [
                {"action": "record", "data": "aGk=", "partitionKey": "pk",
                 "sequenceNumber": "4959", "subSequenceNumber": 0,
                 "approximateArrivalTimestamp": 1_700_000_000_000_i64}]})
        );
        assert_eq!(as_json(&ToChild::LeaseLost), json!({"action": "leaseLost"}));
        assert_eq!(
            as_json(&ToChild::ShardEnded),
            json!({"action": "shardEnded"})
        );
        assert_eq!(
            as_json(&ToChild::ShutdownRequested),
            json!({"action": "shutdownRequested"})
        );
        let reply = ToChild::Checkpoint {
            sequence_number: None,
            sub_sequence_number: None,
            error: Some("ShutdownException".into()),
        };
        assert_eq!(
            as_json(&reply),
            json!({"action": "checkpoint", "sequenceNumber": null,
                   "subSequenceNumber": null, "error": "ShutdownException"})
        );
    }

    #[test]
    fn child_messages_parse_and_junk_is_skipped() {
        assert_eq!(
            parse_line(r#"{"action":"checkpoint","sequenceNumber":"12","subSequenceNumber":3}"#),
            Some(FromChild::Checkpoint {
                sequence_number: Some("12".into()),
                sub_sequence_number: Some(3)
            })
        );
        assert_eq!(
            parse_line(r#"{"action":"checkpoint","sequenceNumber":null}"#),
            Some(FromChild::Checkpoint {
                sequence_number: None,
                sub_sequence_number: None
            })
        );
        assert_eq!(
            parse_line("{\"action\": \"status\", \"responseFor\": \"initialize\"}\r\n"),
            Some(FromChild::Status {
                response_for: "initialize".into()
            })
        );
        for junk in [
            "",
            "   ",
            "hello world",
            "{not json",
            r#"{"action":"dance"}"#,
            "[1]",
        ] {
            assert_eq!(parse_line(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn checkpoint_errors_use_kcl_exception_names() {
        let lost = Error::LeaseLost {
            lease_key: "s".into(),
            detail: "taken".into(),
        };
        assert_eq!(checkpoint_error_name(&lost), "ShutdownException");
        let closed = Error::CheckpointerClosed {
            lease_key: "s".into(),
            detail: "x".into(),
        };
        assert_eq!(checkpoint_error_name(&closed), "InvalidStateException");
        let bad = Error::InvalidSequenceNumber { value: "x".into() };
        assert_eq!(checkpoint_error_name(&bad), "IllegalArgumentException");
    }
}
