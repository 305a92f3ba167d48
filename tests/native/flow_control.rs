//! A client that sends without reading is stalled by the window, not buffered.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardline_protocol::frame::RequestId;
use shardline_protocol::{FrameDecoder, PutBatchBuilder};
use tokio::io::AsyncWriteExt;

use crate::harness::{decode_reply, read_frame, Client, Outcome, Reply, Server};

const WINDOW_BYTES: usize = 1 << 20;
/// Records per batch: small records, so that results (16 bytes a record) fill the socket
/// buffers of an unread connection soon.
const RECORDS: usize = 10_000;

/// The most bytes any TCP buffer here can hold (`tcp_rmem`/`tcp_wmem` maxima).
fn max_socket_buffer() -> usize {
    ["/proc/sys/net/ipv4/tcp_rmem", "/proc/sys/net/ipv4/tcp_wmem"]
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .split_whitespace()
                .last()
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .max()
        .unwrap()
}

/// A client writes batches and never reads. Its writes stall after at most the window plus
/// what the socket buffers can hold (input, and results converted back to the input that
/// produced them); while stalled the server's memory does not grow, and another connection
/// is served. Once the client reads, every batch is answered exactly once.
#[tokio::test]
async fn a_client_that_never_reads_is_stalled_and_bounded() {
    let server = Server::start(
        &["flow:1"],
        &["--native-window-bytes", &WINDOW_BYTES.to_string()],
    );
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 << 10).unwrap();
    let mut c = Client::over(socket.connect(server.native).await.unwrap());
    let ack = c.hello().await;
    assert_eq!(ack.window_bytes as usize, WINDOW_BYTES);
    assert_eq!(ack.max_frame_bytes as usize, WINDOW_BYTES);

    let frame_for = |b: &mut PutBatchBuilder, id: u64| {
        for i in 0..RECORDS {
            b.push(["a", "b", "c"][i % 3], None, b"x");
        }
        b.finish(RequestId(id), "flow")
    };
    let frame_len = frame_for(&mut PutBatchBuilder::new(), 0).len();
    let result_len = 16 * RECORDS;
    let buffer = max_socket_buffer();
    // Input buffered: client send + server receive; results buffered: server send + client
    // receive, each result standing for frame_len / result_len bytes of input.
    let bound = WINDOW_BYTES + 2 * buffer + 2 * buffer * frame_len / result_len + 2 * frame_len;
    let total_frames = bound / frame_len + 20;

    let (socket, mut buf) = c.into_parts();
    let (mut rd, mut wr) = socket.into_split();
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Writes frames until told to stop (or past the bound); returns how many it wrote.
    let mut writer = tokio::spawn({
        let (sent, stop) = (sent.clone(), stop.clone());
        async move {
            let mut b = PutBatchBuilder::new();
            let mut n = 0;
            while n < total_frames && !stop.load(Ordering::SeqCst) {
                let f = frame_for(&mut b, n as u64 + 1);
                wr.write_all(&f).await.unwrap();
                n += 1;
                sent.store(n, Ordering::SeqCst);
            }
            n
        }
    });

    // Wait for the writes to stop making progress for 2 s.
    let started = Instant::now();
    let mut last = (0, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = sent.load(Ordering::SeqCst);
        assert!(
            now < total_frames,
            "all {total_frames} frames went through: no back-pressure"
        );
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(2) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never stalled"
        );
    }
    let stalled_at = sent.load(Ordering::SeqCst);
    assert!(
        stalled_at * frame_len <= bound,
        "{stalled_at} frames of {frame_len} bytes > {bound}"
    );

    // Memory does not grow while the client keeps trying to send.
    let rss_before = server.rss_bytes();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = server.rss_bytes();
    assert_eq!(
        sent.load(Ordering::SeqCst),
        stalled_at,
        "writes resumed without reads"
    );
    assert!(
        rss_after <= rss_before + (4 << 20),
        "server RSS grew from {rss_before} to {rss_after} while stalled"
    );

    // Another connection is served meanwhile.
    let (mut other, _) = Client::greeted(server.native).await;
    let mut b = PutBatchBuilder::new();
    b.push("other", None, b"y");
    other.send(&b.finish(RequestId(1), "flow")).await;
    assert!(matches!(
        other.reply().await,
        Reply::Result(RequestId(1), _)
    ));

    // Reading the results lets the writer finish its last frame; each batch is answered
    // exactly once.
    stop.store(true, Ordering::SeqCst);
    let decoder = FrameDecoder::new(64 << 20);
    let mut seen = vec![false; total_frames + 1];
    let (mut answered, mut written) = (0, None);
    while written != Some(answered) {
        tokio::select! {
            n = &mut writer, if written.is_none() => written = Some(n.unwrap()),
            frame = read_frame(&mut rd, &mut buf, &decoder) => {
                let Reply::Result(id, outcomes) = decode_reply(&frame.expect("a PutResult")) else {
                    panic!("expected a PutResult")
                };
                assert!(!std::mem::replace(&mut seen[id.0 as usize], true), "{id} answered twice");
                assert_eq!(outcomes.len(), RECORDS);
                assert!(outcomes.iter().all(|o| matches!(o, Outcome::Written(_))));
                answered += 1;
            }
        }
    }
    assert!(seen[1..=answered].iter().all(|s| *s));
    assert!(
        answered > stalled_at,
        "the stalled writes completed once results were read"
    );
}
