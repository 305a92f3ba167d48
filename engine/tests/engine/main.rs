//! Black-box tests of the engine through its public API, on real files.
//!
//! - `basics`: put, read, reopen; group commit.
//! - `direct`: direct (`O_DIRECT`) writes: padding, and what cuts it off.
//! - `model`: random operations checked against a `Vec` of records per shard (proptest).
//! - `surgery`: crash recovery by file surgery: torn tails, flipped bytes, garbage, indexes.
//! - `faults`: failed writes and fsyncs through a fault-injecting I/O backend.
//! - `leases`: lease tables synced with real reshards, reopen, damaged table files.
//! - `lifecycle`: opening and shutting down.
//! - `lock`: two processes on one data directory.
//! - `races`: readers, writers, rolls and retention at once.
//! - `reshard`: splits and merges, sequence-number order, reopen.
//! - `harness`: what the others share.
//!
//! The modules are `cfg(test)` (as this crate only ever is) so that clippy's
//! `allow-unwrap-in-tests` covers their helper functions too, not only the `#[test]`s.

#[cfg(test)]
mod basics;
#[cfg(test)]
mod direct;
#[cfg(test)]
mod faults;
#[cfg(test)]
mod harness;
#[cfg(test)]
mod leases;
#[cfg(test)]
mod lifecycle;
#[cfg(test)]
mod lock;
#[cfg(test)]
mod model;
#[cfg(test)]
mod races;
#[cfg(test)]
mod reshard;
#[cfg(test)]
mod surgery;
