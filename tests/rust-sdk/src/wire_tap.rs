//! A loopback TCP proxy that records how each client connection began, so the test checks
//! what the SDK really put on the wire (wire reference §1.8: HTTP/1.1 on `http://`), whatever
//! its connector is called. Same idea as `startWireTap` in `tests/js/server.js`.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// RFC 9113 §3.4: what an HTTP/2 client sends first (with prior knowledge, no Upgrade).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Enough to see a request line or the whole HTTP/2 preface.
const HEAD_BYTES: usize = 256;

/// How one client connection opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opening {
    Http2PriorKnowledge,
    Http11,
    Other,
    /// Closed before sending a full first line.
    Nothing,
}

pub struct WireTap {
    /// `http://127.0.0.1:PORT`, to give to the client instead of the server's address.
    pub endpoint: String,
    openings: Arc<Mutex<Vec<Opening>>>,
    accept: JoinHandle<()>,
}

impl WireTap {
    /// Listens on 127.0.0.1:0 and forwards every connection to `target` (`host:port`).
    ///
    /// # Errors
    /// The listener could not be bound.
    pub async fn start(target: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let openings = Arc::new(Mutex::new(Vec::new()));
        let target = target.to_owned();
        let seen = Arc::clone(&openings);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(client, target.clone(), Arc::clone(&seen)));
            }
        });
        Ok(Self {
            endpoint,
            openings,
            accept,
        })
    }

    /// How each connection seen so far opened, in accept order of first bytes.
    pub fn openings(&self) -> Vec<Opening> {
        self.openings.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

impl Drop for WireTap {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn forward(mut client: TcpStream, target: String, seen: Arc<Mutex<Vec<Opening>>>) {
    let Ok(mut upstream) = TcpStream::connect(&target).await else {
        return;
    };
    let mut head = Vec::with_capacity(HEAD_BYTES);
    let mut buf = [0u8; HEAD_BYTES];
    let opening = loop {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => break Opening::Nothing,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        // "PRI * HTTP/2.0\r\n" ends a line before the preface is complete: keep reading.
        let partial_preface = head.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(&head);
        let line_ended = head.windows(2).any(|w| w == b"\r\n");
        if head.len() >= HEAD_BYTES || (line_ended && !partial_preface) {
            break classify(&head);
        }
    };
    if let Ok(mut seen) = seen.lock() {
        seen.push(opening);
    }
    if upstream.write_all(&head).await.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}

fn classify(head: &[u8]) -> Opening {
    if head.starts_with(H2_PREFACE) {
        return Opening::Http2PriorKnowledge;
    }
    let line_end = head.windows(2).position(|w| w == b"\r\n");
    let line = &head[..line_end.unwrap_or(head.len())];
    let mut parts = line.split(|&b| b == b' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(_target), Some(b"HTTP/1.1"), None)
            if line_end.is_some() && method.iter().all(u8::is_ascii_uppercase) =>
        {
            Opening::Http11
        }
        _ => Opening::Other,
    }
}
