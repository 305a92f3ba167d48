//! The committer's rounds as server-wide series: how often appends reach the disk, how
//! many shards each round writes, and how long a round's writes and syncs take (with
//! durability `sync`, most of an acknowledgement's latency on an idle server).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use shardline_engine::commit::{CommitObserver, Round};

/// Round duration bucket bounds in seconds: 100 µs to 1 s, finer than the request
/// buckets, as a round of a fast disk takes well under a millisecond.
const ROUND_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 1.0,
];

/// Handles on the registered series; the engine's committer threads update them.
#[derive(Debug)]
pub struct CommitMetrics {
    rounds: Counter,
    writes: Counter,
    failed_writes: Counter,
    bytes: Counter,
    round_duration: Histogram,
}

impl CommitMetrics {
    /// Registers the series in `registry` (under its `shardline` prefix).
    pub fn register(registry: &mut Registry) -> CommitMetrics {
        let m = CommitMetrics {
            rounds: Counter::default(),
            writes: Counter::default(),
            failed_writes: Counter::default(),
            bytes: Counter::default(),
            round_duration: Histogram::new(ROUND_BUCKETS),
        };
        registry.register(
            "commit_rounds",
            "Group-commit rounds: each writes every shard with pending appends at once (and syncs them, with durability sync)",
            m.rounds.clone(),
        );
        registry.register(
            "commit_writes",
            "Shard writes in group-commit rounds (one per shard per round)",
            m.writes.clone(),
        );
        registry.register(
            "commit_write_errors",
            "Shard writes or syncs that failed (the shard is then poisoned until restart)",
            m.failed_writes.clone(),
        );
        registry.register_with_unit(
            "commit_appended",
            "Log bytes (record batches with their headers) appended by group-commit rounds",
            Unit::Bytes,
            m.bytes.clone(),
        );
        registry.register_with_unit(
            "commit_round_duration",
            "Time a group-commit round's writes and syncs took, from submission to the I/O backend until all completed",
            Unit::Seconds,
            m.round_duration.clone(),
        );
        m
    }
}

impl CommitObserver for CommitMetrics {
    fn round(&self, round: &Round) {
        self.rounds.inc();
        self.writes.inc_by(round.writes as u64);
        self.failed_writes.inc_by(round.failed as u64);
        self.bytes.inc_by(round.bytes);
        self.round_duration.observe(round.elapsed.as_secs_f64());
    }
}
