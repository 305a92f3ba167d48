//! The producer library (`shardline_client::producer`) against the real binary, over both
//! transports: receipts GetRecords confirms, batching triggers, aggregation, and
//! per-partition-key order under throttling (`--emulate-limits`).

// `cfg(test)` holds for every integration test binary; on the modules it also tells clippy
// that helpers outside `#[test]` functions are test code (`allow-unwrap-in-tests`).
#[cfg(test)]
mod batching;
#[cfg(test)]
mod harness;
#[cfg(test)]
mod order;
#[cfg(test)]
mod receipts;
#[cfg(test)]
mod reshard;
#[path = "../support/serve.rs"]
mod serve;
