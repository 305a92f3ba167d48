//! `GET /metrics`: Prometheus text format (0.0.4) with Kinesis's CloudWatch metrics.
//!
//! Design constraints:
//! - The hot path touches atomics only. Actions look up a shard's handles ([`ShardMetrics`])
//!   once per request and shard, never per record; the map behind the lookup is read-locked
//!   and written only the first time a shard is seen.
//! - Names follow CloudWatch's Kinesis metrics, snake-cased, under the `shardline_` prefix;
//!   the stream and shard are labels. Counters end in `_total`.
//! - Series are never removed: a deleted stream's counters stay until restart, as a
//!   Prometheus counter must not go backwards while the process lives.
//!
//! Metrics (CloudWatch name in brackets):
//!
//! | Name | Type | Labels |
//! |---|---|---|
//! | `shardline_incoming_bytes_total` (IncomingBytes) | counter | stream, shard |
//! | `shardline_incoming_records_total` (IncomingRecords) | counter | stream, shard |
//! | `shardline_get_records_bytes_total` (GetRecords.Bytes, OutgoingBytes) | counter | stream, shard |
//! | `shardline_get_records_records_total` (GetRecords.Records, OutgoingRecords) | counter | stream, shard |
//! | `shardline_get_records_iterator_age_milliseconds` (GetRecords.IteratorAgeMilliseconds; MillisBehindLatest of the last call) | gauge | stream, shard |
//! | `shardline_write_provisioned_throughput_exceeded_total` (WriteProvisionedThroughputExceeded, records) | counter | stream, shard |
//! | `shardline_read_provisioned_throughput_exceeded_total` (ReadProvisionedThroughputExceeded, calls) | counter | stream, shard |
//! | `shardline_subscribe_to_shard_event_records_total` (SubscribeToShardEvent.Records) | counter | stream, shard |
//! | `shardline_subscribe_to_shard_event_bytes_total` (SubscribeToShardEvent.Bytes) | counter | stream, shard |
//! | `shardline_subscribe_to_shard_event_millis_behind_latest` (SubscribeToShardEvent.MillisBehindLatest; of the last event) | gauge | stream, shard |
//! | `shardline_put_records_latency_seconds` (PutRecord.Latency, PutRecords.Latency) | histogram | stream, operation |
//! | `shardline_get_records_latency_seconds` (GetRecords.Latency) | histogram | stream |
//! | `shardline_requests_total` | counter | operation, status |
//! | `shardline_request_errors_total` | counter | operation, error |
//! | `shardline_request_duration_seconds` | histogram | operation |
//! | `shardline_commit_rounds_total` | counter | |
//! | `shardline_commit_writes_total` | counter | |
//! | `shardline_commit_write_errors_total` | counter | |
//! | `shardline_commit_appended_bytes_total` | counter | |
//! | `shardline_commit_round_duration_seconds` | histogram | |
//!
//! Bytes are partition key plus data, the size AWS counts against a shard's quotas. The
//! `commit_` series have no CloudWatch counterpart: they are the engine's group-commit
//! rounds, server-wide ([`commit`]).

mod commit;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use shardline_engine::commit::CommitObserver;
use shardline_engine::{PutRecord, PutResult, ShardId};

use super::actions::Operation;
use super::error::ApiError;

/// `shardline serve --help`'s epilogue: the HTTP endpoints, metric names and logging.
pub const SERVE_HELP: &str = "\
Endpoints:
  POST /         the Kinesis API (X-Amz-Target: Kinesis_20131202.<Operation>)
  GET  /health   ok
  GET  /metrics  Prometheus text format (no authentication)

Metrics (CloudWatch name in brackets; labels stream, shard unless noted):
  shardline_incoming_bytes_total                         [IncomingBytes]
  shardline_incoming_records_total                       [IncomingRecords]
  shardline_get_records_bytes_total                      [GetRecords.Bytes]
  shardline_get_records_records_total                    [GetRecords.Records]
  shardline_get_records_iterator_age_milliseconds        [GetRecords.IteratorAgeMilliseconds] gauge
  shardline_write_provisioned_throughput_exceeded_total  [WriteProvisionedThroughputExceeded]
  shardline_read_provisioned_throughput_exceeded_total   [ReadProvisionedThroughputExceeded]
  shardline_subscribe_to_shard_event_records_total       [SubscribeToShardEvent.Records]
  shardline_subscribe_to_shard_event_bytes_total         [SubscribeToShardEvent.Bytes]
  shardline_subscribe_to_shard_event_millis_behind_latest [SubscribeToShardEvent.MillisBehindLatest] gauge
  shardline_put_records_latency_seconds                  [PutRecord.Latency, PutRecords.Latency] histogram; stream, operation
  shardline_get_records_latency_seconds                  [GetRecords.Latency] histogram; stream
  shardline_requests_total                               operation, status
  shardline_request_errors_total                         operation, error
  shardline_request_duration_seconds                     histogram; operation
  shardline_commit_rounds_total                          group-commit rounds (server-wide)
  shardline_commit_writes_total                          shard writes in those rounds
  shardline_commit_write_errors_total                    failed shard writes or syncs
  shardline_commit_appended_bytes_total                  log bytes the rounds appended
  shardline_commit_round_duration_seconds                histogram; a round's writes and syncs

Logs go to stderr; SHARDLINE_LOG sets the filter (default warn; info logs one line per
request with operation, status, error and duration). stdout carries only the
'listening on http://ADDR' line.";

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Latency bucket bounds in seconds: 0.5 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

fn histogram_family<S: Clone + Hash + Eq>() -> HistogramFamily<S> {
    Family::new_with_constructor(latency_histogram)
}

/// An operation as a label value; `unknown` when the request never named a valid one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationLabel(pub Option<Operation>);

impl Hash for OperationLabel {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // `Operation` is a fieldless enum without `Hash`; its discriminant identifies it.
        self.0.map(|op| op as usize).hash(state);
    }
}

impl std::fmt::Display for OperationLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            // The variant names are the wire names (`Kinesis_20131202.<Name>`).
            Some(op) => write!(f, "{op:?}"),
            None => f.write_str("unknown"),
        }
    }
}

impl EncodeLabelValue for OperationLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        write!(encoder, "{self}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ShardLabels {
    stream: String,
    shard: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StreamLabels {
    stream: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StreamOperationLabels {
    stream: String,
    operation: OperationLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    operation: OperationLabel,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorLabels {
    operation: OperationLabel,
    error: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OperationLabels {
    operation: OperationLabel,
}

/// One shard's counters; clones of the registered series, so updates are plain atomics.
#[derive(Debug)]
pub struct ShardMetrics {
    pub incoming_bytes: Counter,
    pub incoming_records: Counter,
    pub get_records_bytes: Counter,
    pub get_records_records: Counter,
    pub iterator_age_ms: Gauge,
    pub write_throughput_exceeded: Counter,
    pub read_throughput_exceeded: Counter,
    pub subscribe_event_records: Counter,
    pub subscribe_event_bytes: Counter,
    pub subscribe_millis_behind: Gauge,
}

/// One stream's latency histograms.
#[derive(Debug)]
pub struct StreamMetrics {
    pub put_record_latency: Histogram,
    pub put_records_latency: Histogram,
    pub get_records_latency: Histogram,
}

/// Every series the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    incoming_bytes: Family<ShardLabels, Counter>,
    incoming_records: Family<ShardLabels, Counter>,
    get_records_bytes: Family<ShardLabels, Counter>,
    get_records_records: Family<ShardLabels, Counter>,
    iterator_age_ms: Family<ShardLabels, Gauge>,
    write_exceeded: Family<ShardLabels, Counter>,
    read_exceeded: Family<ShardLabels, Counter>,
    subscribe_event_records: Family<ShardLabels, Counter>,
    subscribe_event_bytes: Family<ShardLabels, Counter>,
    subscribe_millis_behind: Family<ShardLabels, Gauge>,
    put_latency: HistogramFamily<StreamOperationLabels>,
    get_latency: HistogramFamily<StreamLabels>,
    requests: Family<RequestLabels, Counter>,
    request_errors: Family<ErrorLabels, Counter>,
    request_duration: HistogramFamily<OperationLabels>,
    /// Handles by stream name and shard, so a request finds its series with one lookup.
    shards: RwLock<HashMap<String, HashMap<ShardId, Arc<ShardMetrics>>>>,
    streams: RwLock<HashMap<String, Arc<StreamMetrics>>>,
    commit: Arc<commit::CommitMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// An empty registry with every family registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("shardline");
        let commit = Arc::new(commit::CommitMetrics::register(&mut registry));
        let m = Metrics {
            registry: Registry::default(),
            incoming_bytes: Family::default(),
            incoming_records: Family::default(),
            get_records_bytes: Family::default(),
            get_records_records: Family::default(),
            iterator_age_ms: Family::default(),
            write_exceeded: Family::default(),
            read_exceeded: Family::default(),
            subscribe_event_records: Family::default(),
            subscribe_event_bytes: Family::default(),
            subscribe_millis_behind: Family::default(),
            put_latency: histogram_family(),
            get_latency: histogram_family(),
            requests: Family::default(),
            request_errors: Family::default(),
            request_duration: histogram_family(),
            shards: RwLock::default(),
            streams: RwLock::default(),
            commit,
        };
        let r = &mut registry;
        r.register(
            "incoming_bytes",
            "Bytes (partition key plus data) successfully put to the shard (CloudWatch IncomingBytes)",
            m.incoming_bytes.clone(),
        );
        r.register(
            "incoming_records",
            "Records successfully put to the shard (CloudWatch IncomingRecords)",
            m.incoming_records.clone(),
        );
        r.register(
            "get_records_bytes",
            "Bytes (partition key plus data) returned by GetRecords (CloudWatch GetRecords.Bytes)",
            m.get_records_bytes.clone(),
        );
        r.register(
            "get_records_records",
            "Records returned by GetRecords (CloudWatch GetRecords.Records)",
            m.get_records_records.clone(),
        );
        r.register(
            "get_records_iterator_age_milliseconds",
            "MillisBehindLatest of the shard's last GetRecords call (CloudWatch GetRecords.IteratorAgeMilliseconds)",
            m.iterator_age_ms.clone(),
        );
        r.register(
            "write_provisioned_throughput_exceeded",
            "Records rejected by the shard's write quota (CloudWatch WriteProvisionedThroughputExceeded)",
            m.write_exceeded.clone(),
        );
        r.register(
            "read_provisioned_throughput_exceeded",
            "GetRecords calls rejected by the shard's read quota (CloudWatch ReadProvisionedThroughputExceeded)",
            m.read_exceeded.clone(),
        );
        r.register(
            "subscribe_to_shard_event_records",
            "Records pushed to SubscribeToShard subscribers (CloudWatch SubscribeToShardEvent.Records)",
            m.subscribe_event_records.clone(),
        );
        r.register(
            "subscribe_to_shard_event_bytes",
            "Bytes (partition key plus data) pushed to SubscribeToShard subscribers (CloudWatch SubscribeToShardEvent.Bytes)",
            m.subscribe_event_bytes.clone(),
        );
        r.register(
            "subscribe_to_shard_event_millis_behind_latest",
            "MillisBehindLatest of the shard's last SubscribeToShard event (CloudWatch SubscribeToShardEvent.MillisBehindLatest)",
            m.subscribe_millis_behind.clone(),
        );
        r.register_with_unit(
            "put_records_latency",
            "Time to complete successful PutRecord and PutRecords calls (CloudWatch PutRecord.Latency, PutRecords.Latency)",
            Unit::Seconds,
            m.put_latency.clone(),
        );
        r.register_with_unit(
            "get_records_latency",
            "Time to complete successful GetRecords calls (CloudWatch GetRecords.Latency)",
            Unit::Seconds,
            m.get_latency.clone(),
        );
        r.register(
            "requests",
            "Kinesis API requests by operation and HTTP status",
            m.requests.clone(),
        );
        r.register(
            "request_errors",
            "Kinesis API requests that failed, by operation and error type (__type)",
            m.request_errors.clone(),
        );
        r.register_with_unit(
            "request_duration",
            "Time from request head to response, by operation",
            Unit::Seconds,
            m.request_duration.clone(),
        );
        Metrics { registry, ..m }
    }

    /// What the engine's committer reports its rounds to (`EngineConfig::commit_observer`).
    pub fn commit_observer(&self) -> Arc<dyn CommitObserver> {
        self.commit.clone()
    }

    /// The series of `shard` in `stream`, created on first use.
    pub fn shard(&self, stream: &str, shard: ShardId) -> Arc<ShardMetrics> {
        if let Some(s) = self.shards.read().get(stream).and_then(|m| m.get(&shard)) {
            return s.clone();
        }
        let labels = ShardLabels {
            stream: stream.to_string(),
            shard: shard.to_string(),
        };
        let created = Arc::new(ShardMetrics {
            incoming_bytes: self.incoming_bytes.get_or_create_owned(&labels),
            incoming_records: self.incoming_records.get_or_create_owned(&labels),
            get_records_bytes: self.get_records_bytes.get_or_create_owned(&labels),
            get_records_records: self.get_records_records.get_or_create_owned(&labels),
            iterator_age_ms: self.iterator_age_ms.get_or_create_owned(&labels),
            write_throughput_exceeded: self.write_exceeded.get_or_create_owned(&labels),
            read_throughput_exceeded: self.read_exceeded.get_or_create_owned(&labels),
            subscribe_event_records: self.subscribe_event_records.get_or_create_owned(&labels),
            subscribe_event_bytes: self.subscribe_event_bytes.get_or_create_owned(&labels),
            subscribe_millis_behind: self.subscribe_millis_behind.get_or_create_owned(&labels),
        });
        self.shards
            .write()
            .entry(labels.stream)
            .or_default()
            .entry(shard)
            .or_insert(created)
            .clone()
    }

    /// The latency series of `stream`, created on first use.
    pub fn stream(&self, stream: &str) -> Arc<StreamMetrics> {
        if let Some(s) = self.streams.read().get(stream) {
            return s.clone();
        }
        let put = |op| StreamOperationLabels {
            stream: stream.to_string(),
            operation: OperationLabel(Some(op)),
        };
        let created = Arc::new(StreamMetrics {
            put_record_latency: self
                .put_latency
                .get_or_create_owned(&put(Operation::PutRecord)),
            put_records_latency: self
                .put_latency
                .get_or_create_owned(&put(Operation::PutRecords)),
            get_records_latency: self.get_latency.get_or_create_owned(&StreamLabels {
                stream: stream.to_string(),
            }),
        });
        self.streams
            .write()
            .entry(stream.to_string())
            .or_insert(created)
            .clone()
    }

    /// Records a PutRecord or PutRecords call on `stream` that started at `started`: the
    /// written records per shard, and the latency when the call as a whole succeeded.
    pub fn record_puts(
        &self,
        operation: Operation,
        stream: &str,
        started: Instant,
        recs: &[PutRecord<'_>],
        results: &[Result<PutResult, ApiError>],
    ) {
        // (shard, records, bytes); a batch spans few shards, so a linear scan beats a map.
        let mut per_shard: Vec<(ShardId, u64, u64)> = Vec::new();
        for (rec, result) in recs.iter().zip(results) {
            let Ok(r) = result else { continue };
            let bytes = (rec.partition_key.len() + rec.data.len()) as u64;
            match per_shard.iter_mut().find(|(id, ..)| *id == r.shard) {
                Some((_, n, b)) => {
                    *n += 1;
                    *b += bytes;
                }
                None => per_shard.push((r.shard, 1, bytes)),
            }
        }
        for (id, n, bytes) in per_shard {
            let s = self.shard(stream, id);
            s.incoming_records.inc_by(n);
            s.incoming_bytes.inc_by(bytes);
        }
        let call_failed = operation == Operation::PutRecord && results.iter().any(Result::is_err);
        if !call_failed {
            let m = self.stream(stream);
            let h = if operation == Operation::PutRecord {
                &m.put_record_latency
            } else {
                &m.put_records_latency
            };
            h.observe(started.elapsed().as_secs_f64());
        }
    }

    /// Records a successful GetRecords call on `shard` of `stream` that started at `started`.
    pub fn record_get(
        &self,
        stream: &str,
        shard: ShardId,
        started: Instant,
        records: usize,
        bytes: usize,
        millis_behind: u64,
    ) {
        let s = self.shard(stream, shard);
        s.get_records_records.inc_by(records as u64);
        s.get_records_bytes.inc_by(bytes as u64);
        s.iterator_age_ms
            .set(i64::try_from(millis_behind).unwrap_or(i64::MAX));
        self.stream(stream)
            .get_records_latency
            .observe(started.elapsed().as_secs_f64());
    }

    /// Counts one API request. `error` is the `__type` of a failed request.
    pub fn record_request(
        &self,
        operation: Option<Operation>,
        status: u16,
        error: Option<&'static str>,
        elapsed: Duration,
    ) {
        let operation = OperationLabel(operation);
        self.requests
            .get_or_create(&RequestLabels { operation, status })
            .inc();
        if let Some(error) = error {
            self.request_errors
                .get_or_create(&ErrorLabels { operation, error })
                .inc();
        }
        self.request_duration
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would leave a partial page,
        // which Prometheus rejects as a whole, so log it.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!("encoding metrics: {e}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_names_series_by_stream_and_shard() {
        let m = Metrics::new();
        let s = m.shard("orders", ShardId(3));
        s.incoming_bytes.inc_by(10);
        s.incoming_records.inc_by(2);
        s.iterator_age_ms.set(1500);
        m.stream("orders").put_records_latency.observe(0.003);
        m.record_request(
            Some(Operation::PutRecords),
            200,
            None,
            Duration::from_millis(3),
        );
        m.record_request(
            Some(Operation::GetRecords),
            400,
            Some("ExpiredIteratorException"),
            Duration::from_millis(1),
        );
        m.record_request(None, 400, Some("UnknownOperationException"), Duration::ZERO);
        let text = m.render();
        for line in [
            r#"shardline_incoming_bytes_total{stream="orders",shard="shardId-000000000003"} 10"#,
            r#"shardline_incoming_records_total{stream="orders",shard="shardId-000000000003"} 2"#,
            r#"shardline_get_records_iterator_age_milliseconds{stream="orders",shard="shardId-000000000003"} 1500"#,
            r#"shardline_put_records_latency_seconds_count{stream="orders",operation="PutRecords"} 1"#,
            r#"shardline_requests_total{operation="PutRecords",status="200"} 1"#,
            r#"shardline_request_errors_total{operation="GetRecords",error="ExpiredIteratorException"} 1"#,
            r#"shardline_request_errors_total{operation="unknown",error="UnknownOperationException"} 1"#,
            "# TYPE shardline_write_provisioned_throughput_exceeded_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }

    /// `serve --help` lists every exported family, so the help cannot drift from the code.
    #[test]
    fn serve_help_lists_every_family() {
        let m = Metrics::new();
        m.shard("s", ShardId(0));
        m.stream("s");
        m.record_request(None, 400, Some("X"), Duration::ZERO);
        let text = m.render();
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert_eq!(families.len(), 20, "{text}");
        for f in families {
            assert!(
                SERVE_HELP.contains(&format!("  {f} ")),
                "{f} missing from SERVE_HELP"
            );
        }
    }

    #[test]
    fn a_shard_gets_the_same_handles_every_time() {
        let m = Metrics::new();
        m.shard("s", ShardId(0)).incoming_records.inc();
        m.shard("s", ShardId(0)).incoming_records.inc();
        assert_eq!(m.shard("s", ShardId(0)).incoming_records.get(), 2);
        assert_eq!(m.shard("s", ShardId(1)).incoming_records.get(), 0);
    }
}
