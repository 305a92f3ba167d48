//! Black-box tests of the native ingest protocol (`docs/formats/native.md`) against the real
//! `shardline` binary on loopback, with `shardline-protocol` as the client's codec over a
//! plain tokio `TcpStream`, and the Kinesis HTTP API (GetRecords) to read records back.

// `cfg(test)` holds for every integration test binary; on the modules it also tells clippy
// that helpers outside `#[test]` functions are test code (`allow-unwrap-in-tests`).
#[cfg(test)]
mod errors;
#[cfg(test)]
mod flow_control;
#[cfg(test)]
mod harness;
#[cfg(test)]
mod malformed;
#[cfg(test)]
mod packed;
#[cfg(test)]
mod pipelining;
#[cfg(test)]
mod read;
#[cfg(test)]
mod read_errors;
#[cfg(test)]
mod round_trip;
#[path = "../support/serve.rs"]
mod serve;
#[cfg(test)]
mod shutdown;
