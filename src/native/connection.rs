//! One native connection: the handshake, reading frames under the window, and the writer.
//!
//! Two tasks per connection. The reader decodes frames and starts each PutBatch and
//! PackedBatch (see [`super::batch`]) and Read ([`super::read`]); the writer sends HelloAck, PutResult,
//! Records and Error frames in the order they are ready, coalescing those that are ready
//! together into one vectored write.
//!
//! # Flow control
//!
//! Each PutBatch and PackedBatch frame takes permits for its length from a semaphore of `window_bytes`
//! before its body is read; the permits travel with the batch and are returned once its
//! answer has been written to the socket. A Read takes permits for its largest answer (see
//! [`super::read`]) after its small frame is read. While the window is full the reader does
//! not read, so the client's sends stall in TCP, whatever it does with its results.
//!
//! # Errors
//!
//! A connection-level error (bad bytes, a frame out of order, shutdown) stops reading. The
//! answers of batches already started are written first, then the Error frame, then the
//! write side is shut down; the reader discards input for a moment so the close is orderly
//! and the client gets to read the Error frame.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::io::IoSlice;

use bytes::{Bytes, BytesMut};
use shardline_protocol::frame::{
    FrameHeader, FrameType, RequestId, PACKED_PROTOCOL_VERSION, PROTOCOL_VERSION,
    READ_PROTOCOL_VERSION,
};
use shardline_protocol::{ErrorCode, ErrorFrame, FrameDecoder, Hello, HelloAck};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::batch::{self, Layout};
use super::read;
use super::NativeConfig;
use crate::api::Api;

/// Bytes read from the socket at a time when no frame body is pending.
const READ_CHUNK_BYTES: usize = 64 << 10;
/// Answers coalesced into one write, at most (a single larger answer is written whole).
const WRITE_COALESCE_BYTES: usize = 256 << 10;
/// A write that makes no progress for this long closes the connection: a client that
/// stopped reading altogether gives its resources back eventually.
const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(120);
/// After a connection-level error: how long to wait for earlier batches' answers to be
/// written before the Error frame, and then to discard input before closing.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Most slices handed to one vectored write (Linux's `IOV_MAX` is 1024).
const MAX_WRITE_SLICES: usize = 512;

/// A frame for the writer, with the window permits it releases once written.
pub struct Outgoing {
    /// The frame, or its first bytes when `chunks` holds the rest.
    pub frame: Vec<u8>,
    /// The rest of the frame, shared with where it was read from (Records' record spans).
    pub chunks: Vec<Bytes>,
    pub permit: Option<OwnedSemaphorePermit>,
}

/// Why a connection stops reading.
#[derive(Debug)]
pub struct Fatal {
    pub code: ErrorCode,
    pub message: String,
}

impl Fatal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Fatal {
        Fatal {
            code,
            message: message.into(),
        }
    }
}

impl From<shardline_protocol::Error> for Fatal {
    fn from(e: shardline_protocol::Error) -> Fatal {
        Fatal::new(e.code(), e.to_string())
    }
}

/// Serves one connection until the client closes it, it fails, or the server shuts down.
pub async fn run(
    socket: TcpStream,
    peer: SocketAddr,
    api: Arc<Api>,
    config: Arc<NativeConfig>,
    shutdown: watch::Receiver<bool>,
) {
    let (rd, wr) = socket.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_loop(wr, rx));
    let window = Arc::new(Semaphore::new(config.window_bytes));
    let mut reader = Reader {
        rd,
        buf: BytesMut::with_capacity(READ_CHUNK_BYTES),
        decoder: FrameDecoder::new(config.max_frame_bytes),
        shutdown,
    };
    let ended = reader.serve(&api, &config, &window, &tx).await;
    // After bad bytes, linger so the client reads the Error frame; not when the server stops.
    let linger = matches!(&ended, Err(f) if f.code != ErrorCode::ShuttingDown);
    if let Err(fatal) = ended {
        tracing::debug!(
            "native connection from {peer}: {}: {}",
            shardline_protocol::error_frame::code_name(fatal.code),
            fatal.message
        );
        // Answers to earlier batches first: every permit back means every one was written.
        let all = u32::try_from(config.window_bytes).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(CLOSE_GRACE, window.acquire_many(all)).await;
        let frame = ErrorFrame {
            request_id: RequestId::CONNECTION,
            code: fatal.code,
            message: &fatal.message,
        }
        .encode();
        let _ = tx.send(Outgoing {
            frame,
            chunks: Vec::new(),
            permit: None,
        });
    }
    // The writer ends once this and every batch's sender are gone, after writing what they
    // sent, and then shuts down the write side.
    drop(tx);
    let _ = writer.await;
    if linger {
        reader.discard_input().await;
    }
}

struct Reader {
    rd: OwnedReadHalf,
    buf: BytesMut,
    decoder: FrameDecoder,
    shutdown: watch::Receiver<bool>,
}

impl Reader {
    /// Reads and handles frames; `Ok` when the client ends the connection between frames.
    async fn serve(
        &mut self,
        api: &Arc<Api>,
        config: &NativeConfig,
        window: &Arc<Semaphore>,
        tx: &mpsc::UnboundedSender<Outgoing>,
    ) -> Result<(), Fatal> {
        // The protocol version agreed by Hello/HelloAck; `None` before Hello.
        let mut version: Option<u16> = None;
        loop {
            let Some(header) = self.next_header().await? else {
                return Ok(());
            };
            if !header.frame_type.is_from_client() {
                return Err(Fatal::new(
                    ErrorCode::ProtocolViolation,
                    format!(
                        "{} frames are sent by servers, not clients",
                        header.frame_type
                    ),
                ));
            }
            let permit = match header.frame_type {
                FrameType::PutBatch | FrameType::PackedBatch => {
                    Some(self.take_window(window, &header).await?)
                }
                _ => None,
            };
            self.fill(header.frame_len()).await?;
            let frame = self
                .decoder
                .decode(&mut self.buf)?
                .ok_or_else(|| Fatal::new(ErrorCode::MalformedFrame, "frame vanished"))?;
            match (frame.frame_type, permit) {
                (FrameType::Hello, _) if version.is_some() => {
                    return Err(Fatal::new(
                        ErrorCode::ProtocolViolation,
                        "a connection sends Hello once",
                    ))
                }
                (FrameType::Hello, _) => {
                    let hello = Hello::decode(&frame.payload)?;
                    let _ = tx.send(Outgoing {
                        frame: hello_ack(&hello, config)?,
                        chunks: Vec::new(),
                        permit: None,
                    });
                    version = Some(hello.protocol_version.min(PROTOCOL_VERSION));
                }
                (FrameType::PutBatch | FrameType::Read | FrameType::PackedBatch, _)
                    if version.is_none() =>
                {
                    return Err(Fatal::new(
                        ErrorCode::ProtocolViolation,
                        "the first frame of a connection must be Hello",
                    ))
                }
                (FrameType::PutBatch, Some(permit)) => {
                    batch::start(
                        api,
                        config,
                        Layout::Table,
                        frame.payload,
                        permit,
                        tx.clone(),
                    )?;
                }
                (FrameType::PackedBatch, _) if version < Some(PACKED_PROTOCOL_VERSION) => {
                    return Err(too_old(
                        FrameType::PackedBatch,
                        PACKED_PROTOCOL_VERSION,
                        version,
                    ));
                }
                (FrameType::PackedBatch, Some(permit)) => {
                    batch::start(
                        api,
                        config,
                        Layout::Packed,
                        frame.payload,
                        permit,
                        tx.clone(),
                    )?;
                }
                (FrameType::Read, _) if version < Some(READ_PROTOCOL_VERSION) => {
                    return Err(too_old(FrameType::Read, READ_PROTOCOL_VERSION, version));
                }
                (FrameType::Read, _) => {
                    let request = read::parse(&frame.payload)?;
                    let need = read::permits_for(&request, config.window_bytes);
                    let permit = self.acquire(window, need).await?;
                    read::start(api, request, permit, tx.clone());
                }
                (t, _) => {
                    return Err(Fatal::new(
                        ErrorCode::ProtocolViolation,
                        format!("unexpected {t} frame"),
                    ))
                }
            }
        }
    }

    /// The next frame's header, reading as needed; `None` at a clean end of input.
    async fn next_header(&mut self) -> Result<Option<FrameHeader>, Fatal> {
        loop {
            if let Some(h) = self.decoder.peek_header(&self.buf)? {
                return Ok(Some(h));
            }
            if self.read_more(READ_CHUNK_BYTES).await? == 0 {
                self.decoder.finish(&self.buf)?;
                return Ok(None);
            }
        }
    }

    /// Waits until the window has room for the frame. Nothing is read meanwhile.
    async fn take_window(
        &mut self,
        window: &Arc<Semaphore>,
        header: &FrameHeader,
    ) -> Result<OwnedSemaphorePermit, Fatal> {
        // The frame limit is at most the window, so the request can always be met.
        let need = u32::try_from(header.frame_len())
            .map_err(|_| Fatal::new(ErrorCode::FrameTooLarge, "frame exceeds the window"))?;
        self.acquire(window, need).await
    }

    /// Waits for `need` permits of the window (at most the window). Nothing is read
    /// meanwhile.
    async fn acquire(
        &mut self,
        window: &Arc<Semaphore>,
        need: u32,
    ) -> Result<OwnedSemaphorePermit, Fatal> {
        tokio::select! {
            _ = self.shutdown.wait_for(|stop| *stop) => Err(shutting_down()),
            p = window.clone().acquire_many_owned(need) => {
                p.map_err(|_| Fatal::new(ErrorCode::InternalFailure, "window closed"))
            }
        }
    }

    /// Reads until the buffer holds `len` bytes.
    async fn fill(&mut self, len: usize) -> Result<(), Fatal> {
        while self.buf.len() < len {
            if self.read_more(len - self.buf.len()).await? == 0 {
                self.decoder.finish(&self.buf)?;
                // finish() reports any leftover bytes; reaching here means none.
                return Err(Fatal::new(ErrorCode::TruncatedFrame, "input ended"));
            }
        }
        Ok(())
    }

    /// One read of up to `want` more bytes; 0 at end of input. I/O errors end the input.
    async fn read_more(&mut self, want: usize) -> Result<usize, Fatal> {
        self.buf.reserve(want);
        tokio::select! {
            _ = self.shutdown.wait_for(|stop| *stop) => Err(shutting_down()),
            r = self.rd.read_buf(&mut self.buf) => Ok(r.unwrap_or(0)),
        }
    }

    /// Reads and drops input until the client closes or [`CLOSE_GRACE`] passes.
    async fn discard_input(&mut self) {
        let mut scratch = vec![0u8; READ_CHUNK_BYTES];
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Ok(n) = self.rd.read(&mut scratch).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

/// A frame type the connection's agreed protocol version does not have.
fn too_old(frame_type: FrameType, needs: u16, agreed: Option<u16>) -> Fatal {
    Fatal::new(
        ErrorCode::ProtocolViolation,
        format!(
            "{frame_type} frames need protocol version {needs}; this connection agreed on {}",
            agreed.unwrap_or_default()
        ),
    )
}

fn shutting_down() -> Fatal {
    Fatal::new(ErrorCode::ShuttingDown, "the server is shutting down")
}

/// The HelloAck for `hello`, or the reason the versions do not meet.
fn hello_ack(hello: &Hello<'_>, config: &NativeConfig) -> Result<Vec<u8>, Fatal> {
    if hello.protocol_version == 0 {
        return Err(Fatal::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "protocol version 0 does not exist; this server speaks 1 to {PROTOCOL_VERSION}"
            ),
        ));
    }
    let clamp = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    Ok(HelloAck {
        protocol_version: hello.protocol_version.min(PROTOCOL_VERSION),
        max_frame_bytes: clamp(config.max_frame_bytes),
        window_bytes: clamp(config.window_bytes),
        max_batch_records: clamp(config.max_batch_records),
        server: concat!("shardline ", env!("CARGO_PKG_VERSION")),
    }
    .encode())
}

/// Writes frames as they come, then shuts down the write side.
async fn write_loop(mut wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    // Small frames are copied into `out`; shared chunks are written in place. `parts`
    // lists what goes out, in order: `Ok(range of out)` or `Err(chunk)`.
    let mut out = Vec::with_capacity(WRITE_COALESCE_BYTES);
    let mut parts: Vec<Result<std::ops::Range<usize>, Bytes>> = Vec::new();
    let mut permits = Vec::new();
    while let Some(first) = rx.recv().await {
        out.clear();
        parts.clear();
        let mut total = 0usize;
        let mut next = Some(first);
        while let Some(o) = next.take() {
            let start = out.len();
            out.extend_from_slice(&o.frame);
            push_range(&mut parts, start..out.len());
            total += o.frame.len();
            for c in o.chunks {
                total += c.len();
                parts.push(Err(c));
            }
            permits.extend(o.permit);
            if total < WRITE_COALESCE_BYTES && parts.len() < MAX_WRITE_SLICES {
                next = rx.try_recv().ok();
            }
        }
        let write = write_parts(&mut wr, &out, &parts);
        match tokio::time::timeout(WRITE_STALL_TIMEOUT, write).await {
            Ok(Ok(())) => permits.clear(),
            // The client is gone or stuck: what is left is dropped, which returns its
            // permits and fails the senders' later sends.
            Ok(Err(_)) | Err(_) => return,
        }
    }
    let _ = wr.shutdown().await;
}

/// Appends a range of the copy buffer, merging it with the previous one if adjacent.
fn push_range(
    parts: &mut Vec<Result<std::ops::Range<usize>, Bytes>>,
    range: std::ops::Range<usize>,
) {
    if let Some(Ok(prev)) = parts.last_mut() {
        if prev.end == range.start {
            prev.end = range.end;
            return;
        }
    }
    parts.push(Ok(range));
}

/// Writes every part, in order, with vectored writes (retrying short writes).
async fn write_parts(
    wr: &mut OwnedWriteHalf,
    out: &[u8],
    parts: &[Result<std::ops::Range<usize>, Bytes>],
) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts
        .iter()
        .map(|p| match p {
            Ok(range) => IoSlice::new(&out[range.clone()]),
            Err(chunk) => IoSlice::new(chunk),
        })
        .filter(|s| !s.is_empty())
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = wr.write_vectored(rest).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}
