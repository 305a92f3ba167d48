//! The native ingest protocol's server (`serve --native-listen`).
//!
//! The protocol (frames, flow control, error codes) is specified in `docs/formats/native.md`;
//! its codec is the `shardline-protocol` crate. This module runs it over TCP against the same
//! [`Api`] state as the Kinesis HTTP API, so streams, limits (`--emulate-limits`) and the
//! per-shard IncomingRecords/IncomingBytes series are shared.
//!
//! # Layout
//!
//! - this file: the listener and its settings.
//! - [`connection`]: one connection: handshake, frame reading under the window, the writer.
//! - [`batch`]: one PutBatch: validation, the engine put, its PutResult.
//! - [`read`]: one Read: the starting position, the engine read, its Records frame (record
//!   bytes sent as they were read from the segment).
//!
//! # Invariants
//!
//! - Nothing a client sends can panic the server or affect another connection: every frame
//!   is checked before use, and each connection has its own tasks and buffers.
//! - Per connection, memory is bounded: at most `window_bytes` of PutBatch frames (and their
//!   results) and of Read answers are unwritten, plus one read buffer of at most one frame
//!   and a chunk.
//! - A connection's batches are handed to the shards in the order they arrive, so two
//!   batches with records for one shard are appended in request order.

pub mod batch;
pub mod connection;
pub mod read;

use std::net::SocketAddr;
use std::sync::Arc;

use shardline_protocol::frame::{DEFAULT_MAX_FRAME_BYTES, DEFAULT_WINDOW_BYTES, MAX_BATCH_RECORDS};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::Api;

/// Settings of the native listener.
#[derive(Debug, Clone)]
pub struct NativeConfig {
    /// Largest frame accepted from a client, header included; at most `window_bytes` so
    /// that any frame fits the window.
    pub max_frame_bytes: usize,
    /// Per-connection bytes of PutBatch frames read ahead of their results.
    pub window_bytes: usize,
    /// Most records per PutBatch.
    pub max_batch_records: usize,
}

impl NativeConfig {
    /// The defaults, with the window set to `window_bytes` (and the frame limit lowered to
    /// fit in it).
    pub fn with_window(window_bytes: usize) -> NativeConfig {
        NativeConfig {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES.min(window_bytes),
            window_bytes,
            max_batch_records: MAX_BATCH_RECORDS,
        }
    }
}

impl Default for NativeConfig {
    fn default() -> Self {
        NativeConfig::with_window(DEFAULT_WINDOW_BYTES)
    }
}

/// How long [`serve`] waits, once shut down, for connections to answer their batches in
/// flight and send their `ShuttingDown` Error frame.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Accepts connections until `shutdown` turns true, then tells every connection to finish
/// and waits for them (at most [`SHUTDOWN_GRACE`]); the engine must stay open until then.
pub async fn serve(
    listener: TcpListener,
    api: Arc<Api>,
    config: NativeConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = Arc::new(config);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((socket, peer)) => {
                // Results are small frames the client waits for; don't let Nagle hold them.
                let _ = socket.set_nodelay(true);
                connections.spawn(connection::run(
                    socket,
                    peer,
                    api.clone(),
                    config.clone(),
                    shutdown.clone(),
                ));
            }
            Err(e) => {
                // Out of descriptors and the like: log, back off, keep serving.
                tracing::warn!("native listener: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        tracing::warn!(
            "native listener: {} connection(s) still open after {SHUTDOWN_GRACE:?}; closing them",
            connections.len()
        );
    }
    // Dropping the set aborts what is left.
}

/// Parses `--native-listen`: `HOST:PORT`, or a bare port, which binds loopback.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("'{s}' is neither HOST:PORT nor a port number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_port_binds_loopback() {
        assert_eq!(
            parse_listen("4568").unwrap(),
            "127.0.0.1:4568".parse().unwrap()
        );
        assert_eq!(
            parse_listen("0.0.0.0:9").unwrap(),
            "0.0.0.0:9".parse().unwrap()
        );
        assert!(parse_listen("localhost").is_err());
    }

    #[test]
    fn the_frame_limit_fits_the_window() {
        let c = NativeConfig::with_window(1 << 20);
        assert_eq!(c.max_frame_bytes, 1 << 20);
        let c = NativeConfig::default();
        assert!(c.max_frame_bytes <= c.window_bytes);
    }
}
