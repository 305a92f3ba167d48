//! The producer library (`shardline_client::producer`) against the real binary, over both
//! transports: receipts GetRecords confirms, batching triggers, aggregation, and
//! per-partition-key order under throttling (`--emulate-limits`).

mod batching;
mod harness;
mod order;
mod receipts;
