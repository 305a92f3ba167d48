//! Starting the server, a raw protocol client, and a minimal Kinesis HTTP client.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use shardline_engine::{SequenceNumber, ShardId};
use shardline_protocol::frame::{FrameType, RequestId, PROTOCOL_VERSION};
use shardline_protocol::{
    ErrorCode, ErrorFrame, FrameDecoder, Hello, HelloAck, PutResultView, RawFrame, RecordOutcome,
    SequenceParts,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A running `shardline serve` with both listeners on ephemeral loopback ports; killed on
/// drop.
pub struct Server {
    child: Child,
    pub http: SocketAddr,
    pub native: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server with `--create-stream` for each `NAME:SHARDS` and `extra` flags.
    pub fn start(streams: &[&str], extra: &[&str]) -> Server {
        Server::spawn(tempfile::tempdir().unwrap(), streams, extra)
    }

    /// Stops this server (it must have exited) and starts another on the same data directory.
    pub fn restart(mut self) -> Server {
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        Server::spawn(dir, &[], &[])
    }

    fn spawn(dir: tempfile::TempDir, streams: &[&str], extra: &[&str]) -> Server {
        let mut args: Vec<&str> = streams
            .iter()
            .flat_map(|s| ["--create-stream", s])
            .collect();
        args.extend_from_slice(extra);
        let started = crate::serve::serve(dir.path(), true, &args, Stdio::inherit());
        Server {
            child: started.child,
            http: started.http,
            native: started.native.expect("asked for the native listener"),
            _dir: dir,
        }
    }

    /// Sends SIGTERM and waits (at most 30 s) for the process to exit; returns its status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server did not exit after SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The server's resident set size in bytes (`VmRSS`).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        kb * 1024
    }

    /// Calls a Kinesis action over HTTP/1.1 with a JSON body; returns the JSON answer.
    pub async fn kinesis(&self, action: &str, body: serde_json::Value) -> serde_json::Value {
        let client = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let req = hyper::Request::post(format!("http://{}/", self.http))
            .header("X-Amz-Target", format!("Kinesis_20131202.{action}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(status.is_success(), "{action}: {status} {bytes:?}");
        if bytes.is_empty() {
            // Actions without output (SplitShard) answer with an empty body.
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Every record of one shard, read from TRIM_HORIZON with GetRecords:
    /// (sequence number, partition key, data).
    pub async fn read_shard(&self, stream: &str, shard: u32) -> Vec<(String, String, Vec<u8>)> {
        use base64::Engine as _;
        let it = self
            .kinesis(
                "GetShardIterator",
                serde_json::json!({
                    "StreamName": stream,
                    "ShardId": ShardId(shard).to_string(),
                    "ShardIteratorType": "TRIM_HORIZON",
                }),
            )
            .await;
        let mut iterator = it["ShardIterator"].as_str().unwrap().to_string();
        let mut out = Vec::new();
        loop {
            let r = self
                .kinesis(
                    "GetRecords",
                    serde_json::json!({"ShardIterator": iterator, "Limit": 10000}),
                )
                .await;
            let records = r["Records"].as_array().unwrap();
            for rec in records {
                out.push((
                    rec["SequenceNumber"].as_str().unwrap().to_string(),
                    rec["PartitionKey"].as_str().unwrap().to_string(),
                    base64::engine::general_purpose::STANDARD
                        .decode(rec["Data"].as_str().unwrap())
                        .unwrap(),
                ));
            }
            if records.is_empty() {
                return out;
            }
            iterator = r["NextShardIterator"].as_str().unwrap().to_string();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The decimal sequence number of a written record, rendered by the engine's seqno module
/// as `docs/formats/native.md` describes.
pub fn render(p: &SequenceParts) -> String {
    SequenceNumber {
        epoch_secs: p.epoch_secs,
        shard: ShardId(p.shard),
        counter: p.counter,
        arrival_secs: p.arrival_secs,
    }
    .to_string()
}

/// The HelloAck's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub protocol_version: u16,
    pub max_frame_bytes: u32,
    pub window_bytes: u32,
    pub max_batch_records: u32,
}

/// An owned record outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Written(SequenceParts),
    Failed(ErrorCode, String),
}

/// A server frame, decoded.
#[derive(Debug)]
pub enum Reply {
    Result(RequestId, Vec<Outcome>),
    Error(RequestId, ErrorCode, String),
}

/// A protocol client over one TCP connection.
pub struct Client {
    pub socket: TcpStream,
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let socket = TcpStream::connect(addr).await.unwrap();
        socket.set_nodelay(true).unwrap();
        Client::over(socket)
    }

    pub fn over(socket: TcpStream) -> Client {
        Client {
            socket,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(64 << 20),
        }
    }

    /// Connects and completes the handshake.
    pub async fn greeted(addr: SocketAddr) -> (Client, Ack) {
        let mut c = Client::connect(addr).await;
        let ack = c.hello().await;
        (c, ack)
    }

    pub async fn hello(&mut self) -> Ack {
        self.send(
            &Hello {
                protocol_version: PROTOCOL_VERSION,
                client: "native-tests",
            }
            .encode(),
        )
        .await;
        let f = self.next_frame().await.expect("HelloAck");
        assert_eq!(f.frame_type, FrameType::HelloAck);
        let a = HelloAck::decode(&f.payload).unwrap();
        Ack {
            protocol_version: a.protocol_version,
            max_frame_bytes: a.max_frame_bytes,
            window_bytes: a.window_bytes,
            max_batch_records: a.max_batch_records,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.socket.write_all(bytes).await.unwrap();
    }

    /// The next frame, or `None` when the server closed the connection between frames.
    pub async fn next_frame(&mut self) -> Option<RawFrame> {
        read_frame(&mut self.socket, &mut self.buf, &self.decoder).await
    }

    /// The socket and any bytes read past the last frame.
    pub fn into_parts(self) -> (TcpStream, BytesMut) {
        (self.socket, self.buf)
    }

    /// The next PutResult or Error frame.
    pub async fn reply(&mut self) -> Reply {
        let f = self
            .next_frame()
            .await
            .expect("a reply, not the end of the connection");
        decode_reply(&f)
    }

    /// Reads to the end of the connection, expecting a connection-level Error frame as the
    /// last frame; returns its code and message and the replies before it.
    pub async fn expect_closed_with(&mut self) -> (ErrorCode, String, Vec<Reply>) {
        let mut before = Vec::new();
        let mut last = None;
        while let Some(f) = self.next_frame().await {
            if let Some(prev) = last.take() {
                before.push(prev);
            }
            last = Some(decode_reply(&f));
        }
        match last {
            Some(Reply::Error(id, code, message)) => {
                assert_eq!(id, RequestId::CONNECTION, "{message}");
                (code, message, before)
            }
            other => {
                panic!("the connection ended without a connection-level Error frame: {other:?}")
            }
        }
    }
}

/// The next frame from `rd`, or `None` when it ends between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    decoder: &FrameDecoder,
) -> Option<RawFrame> {
    loop {
        if let Some(f) = decoder.decode(buf).unwrap() {
            return Some(f);
        }
        // A reset after the server closed counts as closed.
        let n = rd.read_buf(buf).await.unwrap_or_default();
        if n == 0 {
            assert!(buf.is_empty(), "connection ended inside a frame");
            return None;
        }
    }
}

pub fn decode_reply(f: &RawFrame) -> Reply {
    match f.frame_type {
        FrameType::PutResult => {
            let v = PutResultView::parse(&f.payload).unwrap();
            let outcomes = v
                .outcomes()
                .map(|o| match o {
                    RecordOutcome::Written(p) => Outcome::Written(p),
                    RecordOutcome::Failed { code, message } => {
                        Outcome::Failed(code, message.to_string())
                    }
                })
                .collect();
            Reply::Result(v.request_id(), outcomes)
        }
        FrameType::Error => {
            let e = ErrorFrame::decode(&f.payload).unwrap();
            Reply::Error(e.request_id, e.code, e.message.to_string())
        }
        t => panic!("unexpected {t} frame from the server"),
    }
}

/// Checks a PutResult's outcomes against what each record (key, data, valid) should get:
/// written if valid, else InvalidArgument with a message. Returns the written records' keys
/// and data, in batch order.
pub fn written_or_invalid(
    outcomes: &[Outcome],
    records: &[(&str, &[u8], bool)],
) -> Vec<(String, Vec<u8>)> {
    assert_eq!(outcomes.len(), records.len());
    let mut written = Vec::new();
    for (o, (key, data, valid)) in outcomes.iter().zip(records) {
        match (o, valid) {
            (Outcome::Written(_), true) => written.push((key.to_string(), data.to_vec())),
            (Outcome::Failed(code, message), false) => {
                assert_eq!(*code, ErrorCode::InvalidArgument, "{message}");
                assert!(!message.is_empty());
            }
            _ => panic!("record {key:.20}: {o:?}, expected valid = {valid}"),
        }
    }
    written
}
