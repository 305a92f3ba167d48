//! The streaming response body: event-stream messages from a bounded channel.
//!
//! The channel's bound is the backpressure: the subscription task awaits room before it
//! reads more from the log, and hyper takes a message only when the connection can write it
//! (TCP send buffer for HTTP/1.1 chunks, flow-control window for HTTP/2 DATA). A slow
//! subscriber therefore holds at most [`CHANNEL_MESSAGES`] messages of memory, never a queue.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

/// Messages buffered between the subscription task and the connection.
pub const CHANNEL_MESSAGES: usize = 2;

/// A response body that ends when the sending task drops its sender.
#[derive(Debug)]
pub struct EventBody {
    rx: mpsc::Receiver<Bytes>,
}

/// A bounded channel and the body reading it.
pub fn channel() -> (mpsc::Sender<Bytes>, EventBody) {
    let (tx, rx) = mpsc::channel(CHANNEL_MESSAGES);
    (tx, EventBody { rx })
}

impl Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|m| m.map(|b| Ok(Frame::data(b))))
    }
}
