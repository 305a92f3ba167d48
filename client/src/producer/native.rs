//! The native protocol transport (`docs/formats/native.md`): one TCP connection, batches
//! pipelined within the server's window, answers matched to batches by request id.
//!
//! Design constraints:
//! - Frames are written whole, one writer at a time, in the order `put` calls reach the
//!   writer; the server appends batches of one connection in that order.
//! - At most `window_bytes` of unanswered batch frames are in flight (a semaphore holds
//!   each frame's bytes until its answer arrives), so the server never stops reading.
//! - A broken connection (closed, unreadable, a connection-level Error frame) fails every
//!   unanswered batch; those are retryable except after a connection-level error other than
//!   `ShuttingDown` (a bug on one side: sending again would break again). The next `put`
//!   connects again.
//! - ListShards has no native form: the shard map comes over HTTP.
//! - Against a server that speaks protocol version 3, batches are PackedBatch frames that
//!   carry every record's hash key, which the producer computed anyway to pick the shard:
//!   the server routes by it and computes no MD5. The routing is the same either way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use bytes::BytesMut;
use shardline_protocol::error_frame::{code_name, is_retryable};
use shardline_protocol::frame::{FrameType, RequestId, PACKED_PROTOCOL_VERSION, PROTOCOL_VERSION};
use shardline_protocol::{
    ErrorCode, ErrorFrame, ExplicitHashKey, FrameDecoder, Hello, HelloAck, PackedBatchBuilder,
    PutBatchBuilder, PutResultView, RawFrame, RecordOutcome,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Semaphore};

use super::http::open_shard_ranges;
use super::transport::{BoxFuture, EntryOutcome, PutEntry, RecordFailure, ShardRange, Transport};
use crate::error::Error;
use crate::http::Client;

/// The answer to one batch.
type Answer = Result<Vec<EntryOutcome>, RecordFailure>;

/// The limits the server announced in HelloAck.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_frame_bytes: usize,
    window_bytes: usize,
    max_batch_records: usize,
}

/// One connection: the write half, the batches awaiting answers, the window.
struct Connection {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: StdMutex<HashMap<u64, oneshot::Sender<Answer>>>,
    window: Arc<Semaphore>,
    /// Set (under the `pending` lock) once the connection is unusable.
    broken: AtomicBool,
    /// The server speaks protocol version 3: batches go as PackedBatch frames.
    packed: bool,
}

/// The native protocol transport.
pub struct NativeTransport {
    addr: String,
    http: Client,
    limits: Limits,
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
    next_request_id: AtomicU64,
}

fn lost(detail: String) -> RecordFailure {
    RecordFailure {
        code: "ConnectionLost".into(),
        message: detail,
        retryable: true,
    }
}

fn io_error(addr: &str, e: &std::io::Error) -> Error {
    Error::Endpoint {
        endpoint: addr.to_owned(),
        detail: format!("native protocol: {e}"),
    }
}

impl NativeTransport {
    /// Connects to the native port `addr` (`host:port`) and shakes hands; `http` lists shards.
    ///
    /// # Errors
    /// [`Error::Endpoint`] when the connection or the handshake fails.
    pub async fn connect(addr: &str, http: Client) -> Result<NativeTransport, Error> {
        let (connection, limits) = open(addr).await?;
        Ok(NativeTransport {
            addr: addr.to_owned(),
            http,
            limits,
            connection: tokio::sync::Mutex::new(Some(connection)),
            next_request_id: AtomicU64::new(1),
        })
    }

    /// The live connection, connecting again if the last one broke.
    async fn connection(&self) -> Result<Arc<Connection>, RecordFailure> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref() {
            if !c.broken.load(Ordering::Acquire) {
                return Ok(c.clone());
            }
        }
        let (c, _) = open(&self.addr).await.map_err(|e| lost(e.to_string()))?;
        *slot = Some(c.clone());
        Ok(c)
    }
}

async fn open(addr: &str) -> Result<(Arc<Connection>, Limits), Error> {
    let err = |e: std::io::Error| io_error(addr, &e);
    let mut socket = TcpStream::connect(addr).await.map_err(err)?;
    socket.set_nodelay(true).map_err(err)?;
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        client: concat!("shardline-client ", env!("CARGO_PKG_VERSION")),
    };
    socket.write_all(&hello.encode()).await.map_err(err)?;
    let decoder = FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::new();
    let bad = |detail: String| Error::Endpoint {
        endpoint: addr.to_owned(),
        detail: format!("native handshake: {detail}"),
    };
    let frame = read_frame(&mut socket, &mut buf, &decoder)
        .await
        .map_err(bad)?
        .ok_or_else(|| bad("the server closed the connection".into()))?;
    let (limits, packed) = match frame.frame_type {
        FrameType::HelloAck => {
            let ack = HelloAck::decode(&frame.payload).map_err(|e| bad(e.to_string()))?;
            let limits = Limits {
                max_frame_bytes: ack.max_frame_bytes as usize,
                window_bytes: ack.window_bytes as usize,
                max_batch_records: ack.max_batch_records as usize,
            };
            (limits, ack.protocol_version >= PACKED_PROTOCOL_VERSION)
        }
        FrameType::Error => {
            let e = ErrorFrame::decode(&frame.payload).map_err(|e| bad(e.to_string()))?;
            return Err(bad(format!("{}: {}", code_name(e.code), e.message)));
        }
        other => return Err(bad(format!("unexpected {other} frame"))),
    };
    let (reader, writer) = socket.into_split();
    let connection = Arc::new(Connection {
        writer: tokio::sync::Mutex::new(writer),
        pending: StdMutex::new(HashMap::new()),
        window: Arc::new(Semaphore::new(limits.window_bytes)),
        broken: AtomicBool::new(false),
        packed,
    });
    let answers = FrameDecoder::new(limits.max_frame_bytes.max(1 << 20) * 2);
    tokio::spawn(read_answers(connection.clone(), reader, buf, answers));
    Ok((connection, limits))
}

async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    decoder: &FrameDecoder,
) -> Result<Option<RawFrame>, String> {
    loop {
        if let Some(f) = decoder.decode(buf).map_err(|e| e.to_string())? {
            return Ok(Some(f));
        }
        if rd.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
            decoder.finish(buf).map_err(|e| e.to_string())?;
            return Ok(None);
        }
    }
}

/// Reads answers until the connection ends, then fails what is still unanswered.
async fn read_answers(
    connection: Arc<Connection>,
    mut reader: OwnedReadHalf,
    mut buf: BytesMut,
    decoder: FrameDecoder,
) {
    let failure = loop {
        let frame = match read_frame(&mut reader, &mut buf, &decoder).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break lost("the server closed the connection".into()),
            Err(e) => break lost(format!("reading answers: {e}")),
        };
        let (id, answer) = match frame.frame_type {
            FrameType::PutResult => match PutResultView::parse(&frame.payload) {
                Ok(view) => (view.request_id(), Ok(outcomes(&view))),
                Err(e) => break lost(format!("unreadable PutResult: {e}")),
            },
            FrameType::Error => match ErrorFrame::decode(&frame.payload) {
                Ok(e) if e.request_id.0 == 0 => {
                    break RecordFailure {
                        code: code_name(e.code),
                        message: e.message.to_owned(),
                        retryable: is_retryable(e.code),
                    }
                }
                Ok(e) => (e.request_id, Err(failure(e.code, e.message))),
                Err(e) => break lost(format!("unreadable Error frame: {e}")),
            },
            other => break lost(format!("unexpected {other} frame")),
        };
        let waiter = connection
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&id.0));
        if let Some(waiter) = waiter {
            // The caller may have gone away; its batch's outcome is then nobody's concern.
            let _ = waiter.send(answer);
        }
    };
    let waiters: Vec<_> = match connection.pending.lock() {
        Ok(mut pending) => {
            connection.broken.store(true, Ordering::Release);
            pending.drain().map(|(_, w)| w).collect()
        }
        Err(_) => Vec::new(),
    };
    connection.broken.store(true, Ordering::Release);
    for waiter in waiters {
        let _ = waiter.send(Err(failure.clone()));
    }
}

fn failure(code: ErrorCode, message: &str) -> RecordFailure {
    RecordFailure {
        code: code_name(code),
        message: message.to_owned(),
        retryable: is_retryable(code),
    }
}

fn outcomes(view: &PutResultView<'_>) -> Vec<EntryOutcome> {
    view.outcomes()
        .map(|o| match o {
            RecordOutcome::Written(parts) => EntryOutcome::Written {
                shard_id: format!("shardId-{:012}", parts.shard),
                sequence_number: parts.to_string(),
            },
            RecordOutcome::Failed { code, message } => EntryOutcome::Failed(failure(code, message)),
        })
        .collect()
}

/// One batch's frame: PackedBatch with every entry's hash key (the server need not hash),
/// or PutBatch with the explicit hash keys given (for a server older than version 3).
fn batch_frame(packed: bool, id: RequestId, stream: &str, entries: &[PutEntry]) -> Vec<u8> {
    if packed {
        let mut builder = PackedBatchBuilder::new();
        for e in entries {
            builder.push(&e.partition_key, Some(e.hash_key), &e.data);
        }
        builder.finish(id, stream)
    } else {
        let mut builder = PutBatchBuilder::new();
        for e in entries {
            let ehk = e.explicit_hash_key.as_deref().map(ExplicitHashKey::Decimal);
            builder.push(&e.partition_key, ehk, &e.data);
        }
        builder.finish(id, stream)
    }
}

impl Transport for NativeTransport {
    fn put<'a>(
        &'a self,
        stream: &'a str,
        entries: &'a [PutEntry],
    ) -> BoxFuture<'a, Result<Vec<EntryOutcome>, RecordFailure>> {
        Box::pin(async move {
            let connection = self.connection().await?;
            let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
            let frame = batch_frame(connection.packed, RequestId(id), stream, entries);
            if frame.len() > self.limits.max_frame_bytes {
                return Err(RecordFailure {
                    code: "FrameTooLarge".into(),
                    message: format!(
                        "a batch of {} bytes is over the server's {} bytes",
                        frame.len(),
                        self.limits.max_frame_bytes
                    ),
                    retryable: false,
                });
            }
            let permits = frame.len().min(self.limits.window_bytes) as u32;
            let _permit = connection
                .window
                .clone()
                .acquire_many_owned(permits)
                .await
                .map_err(|_| lost("the connection's window closed".into()))?;
            let (tx, rx) = oneshot::channel();
            {
                let mut pending = connection
                    .pending
                    .lock()
                    .map_err(|_| lost("a reader panicked".into()))?;
                if connection.broken.load(Ordering::Acquire) {
                    return Err(lost("the connection broke".into()));
                }
                pending.insert(id, tx);
            }
            let written = connection.writer.lock().await.write_all(&frame).await;
            if let Err(e) = written {
                connection.broken.store(true, Ordering::Release);
                return Err(lost(format!("writing a batch: {e}")));
            }
            rx.await
                .unwrap_or_else(|_| Err(lost("the connection broke".into())))
        })
    }

    fn list_shards<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Vec<ShardRange>, Error>> {
        Box::pin(open_shard_ranges(&self.http, stream))
    }

    fn max_batch_records(&self) -> usize {
        self.limits.max_batch_records
    }

    fn max_batch_bytes(&self) -> usize {
        // Room for the per-record framing the batch adds to keys and data.
        self.limits.max_frame_bytes.min(self.limits.window_bytes) / 2
    }
}

#[cfg(test)]
mod tests {
    use shardline_protocol::frame::HEADER_LEN;
    use shardline_protocol::{PackedBatchView, PutBatchView};

    use super::*;

    fn entries() -> Vec<PutEntry> {
        vec![
            PutEntry {
                partition_key: "a".into(),
                explicit_hash_key: None,
                hash_key: 11,
                data: b"one".to_vec(),
            },
            PutEntry {
                partition_key: "b".into(),
                explicit_hash_key: Some("42".into()),
                hash_key: 42,
                data: Vec::new(),
            },
        ]
    }

    /// Version 3: every entry's hash key travels; older servers get PutBatch with only the
    /// explicit hash keys the user gave, as before.
    #[test]
    fn both_layouts_carry_the_entries_and_their_routing() {
        let packed = batch_frame(true, RequestId(5), "s", &entries());
        let v = PackedBatchView::parse(&packed[HEADER_LEN..]).unwrap();
        assert_eq!((v.request_id(), v.stream_name()), (RequestId(5), "s"));
        let got: Vec<_> = v
            .records()
            .map(|r| (r.partition_key, r.hash_key, r.data))
            .collect();
        assert_eq!(
            got,
            [("a", Some(11), &b"one"[..]), ("b", Some(42), &b""[..])]
        );

        let table = batch_frame(false, RequestId(6), "s", &entries());
        let v = PutBatchView::parse(&table[HEADER_LEN..]).unwrap();
        let got: Vec<_> = v
            .records()
            .map(|r| (r.partition_key(), r.explicit_hash_key().unwrap(), r.data()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", None, &b"one"[..]),
                ("b", Some(ExplicitHashKey::Decimal("42")), &b""[..])
            ]
        );
    }
}
