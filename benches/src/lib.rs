//! Benchmarks live in `benches/`; this crate holds shared bench fixtures.
