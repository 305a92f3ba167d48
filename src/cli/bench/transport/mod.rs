//! How records reach the server and come back: [`http`] (the Kinesis API), [`native`]
//! (the native protocol's PackedBatch or PutBatch) and [`native_read`] (its Read frames, for replay).

pub mod http;
pub mod native;
pub mod native_read;

use std::sync::Arc;
use std::time::Instant;

use super::workload::{RecordMaker, RecordSize, Schedule};
use super::NativeLayout;

/// What one producer task does.
#[derive(Clone)]
pub struct ProducerPlan {
    /// The producer's number, which also picks its first stream and key.
    pub index: usize,
    /// Batches go to these streams in turn.
    pub streams: Arc<Vec<Arc<str>>>,
    pub batch_records: usize,
    pub record_size: RecordSize,
    pub key_count: usize,
    /// This producer's share of `--rate`, or `None` for as fast as possible.
    pub records_per_sec: Option<f64>,
    /// With a rate, where this producer's batches fall within its batch interval (0 to 1),
    /// so that the producers' batches are spread evenly instead of all due together.
    pub phase: f64,
    /// Requests (HTTP) or batches (native) outstanding at most.
    pub in_flight: usize,
    pub start: Instant,
    pub start_wall_ns: u64,
    pub deadline: Instant,
    /// Native batches' layout (`None`: the best the server speaks).
    pub native_layout: Option<NativeLayout>,
}

impl ProducerPlan {
    fn record_maker(&self) -> RecordMaker {
        RecordMaker::new(self.index, self.record_size, self.key_count)
    }

    fn schedule(&self) -> Schedule {
        Schedule::new(
            self.start,
            self.start_wall_ns,
            self.deadline,
            self.records_per_sec,
            self.batch_records,
            self.phase,
        )
    }
}
