//! Enhanced fan-out retrieval: SubscribeToShard through a registered stream consumer,
//! decoding the `application/vnd.amazon.eventstream` body with `aws-smithy-eventstream`
//! (reference section 6).
//!
//! - [`register_consumer`] registers the consumer (or finds it, if another worker did) and
//!   waits until it is ACTIVE.
//! - A subscription starts at the checkpoint, then after each event's
//!   `ContinuationSequenceNumber`. When a subscription ends (its 5-minute lifetime, a
//!   takeover, a dropped connection, an in-stream exception) the fetcher subscribes again
//!   from there, after [`RESUBSCRIBE_PAUSE`] (AWS allows one call per second per shard and
//!   consumer; ResourceInUseException backs off longer).
//! - The last event of a closed shard has `ChildShards` and no continuation: its records
//!   are delivered, then [`Batch::ShardEnd`].
//! - Subscriptions share one HTTP/2 (h2c) connection, as with the AWS SDKs; events arrive
//!   as DATA frames, and a message may span several.

use std::collections::VecDeque;
use std::time::Duration;

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::json;

use crate::error::Error;
use crate::http::{Client, KINESIS_TARGET};
use crate::kinesis::{ChildShard, IteratorStart, WireRecord};

use super::Batch;
use crate::consumer::record::user_records_of;

/// The pause between subscriptions of one shard.
pub const RESUBSCRIBE_PAUSE: Duration = Duration::from_secs(1);
/// The pause after ResourceInUseException (another subscription younger than 5 s) or
/// throttling.
pub const IN_USE_PAUSE: Duration = Duration::from_secs(2);
/// A subscription silent for this long is considered dead (the server sends an event at
/// least every few seconds, records or not).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`register_consumer`] waits for ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// Registers `consumer_name` on `stream` (or finds it) and returns its ARN once ACTIVE.
///
/// # Errors
/// The server's error (unknown stream, consumer limit), or a consumer not ACTIVE in time.
pub async fn register_consumer(
    client: &Client,
    stream: &str,
    consumer_name: &str,
) -> Result<String, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Summary {
        stream_description_summary: StreamSummary,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct StreamSummary {
        #[serde(rename = "StreamARN")]
        stream_arn: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Consumer {
        #[serde(rename = "ConsumerARN")]
        consumer_arn: String,
        consumer_status: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Described {
        consumer_description: Consumer,
    }
    let summary: Summary = client
        .call("DescribeStreamSummary", &json!({ "StreamName": stream }))
        .await?;
    let stream_arn = summary.stream_description_summary.stream_arn;
    let request = json!({ "StreamARN": stream_arn, "ConsumerName": consumer_name });
    match client
        .call::<_, serde_json::Value>("RegisterStreamConsumer", &request)
        .await
    {
        Ok(_) => {}
        Err(e) if e.kind() == Some("ResourceInUseException") => {}
        Err(e) => return Err(e),
    }
    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let described: Described = client.call("DescribeStreamConsumer", &request).await?;
        let consumer = described.consumer_description;
        if consumer.consumer_status == "ACTIVE" {
            return Ok(consumer.consumer_arn);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::Config {
                detail: format!(
                    "consumer {consumer_name} is still {} after {} s",
                    consumer.consumer_status,
                    ACTIVE_TIMEOUT.as_secs()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One `SubscribeToShardEvent` payload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Event {
    #[serde(default)]
    records: Vec<WireRecord>,
    #[serde(default)]
    continuation_sequence_number: Option<String>,
    #[serde(default)]
    millis_behind_latest: Option<u64>,
    #[serde(default)]
    child_shards: Vec<ChildShard>,
}

/// What one event-stream message means to the fetcher.
#[derive(Debug)]
enum Frame {
    /// `initial-response` or an event type this client does not know: skip.
    Skip,
    Event(Event),
    /// A modelled exception (`:exception-type`) or an unmodelled error (`:error-code`).
    Failure {
        kind: String,
        message: String,
    },
}

fn header<'m>(message: &'m Message, name: &str) -> Option<&'m str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

fn classify(message: &Message, shard_id: &str) -> Result<Frame, Error> {
    match header(message, ":message-type") {
        Some("event") => match header(message, ":event-type") {
            Some("SubscribeToShardEvent") => serde_json::from_slice(message.payload())
                .map(Frame::Event)
                .map_err(|e| Error::EventStream {
                    shard_id: shard_id.to_string(),
                    detail: format!("SubscribeToShardEvent payload: {e}"),
                }),
            _ => Ok(Frame::Skip),
        },
        Some("exception") => {
            #[derive(Deserialize)]
            struct Payload {
                #[serde(default)]
                message: String,
            }
            let message_text = serde_json::from_slice::<Payload>(message.payload())
                .map(|p| p.message)
                .unwrap_or_default();
            Ok(Frame::Failure {
                kind: header(message, ":exception-type")
                    .unwrap_or("UnknownException")
                    .to_string(),
                message: message_text,
            })
        }
        Some("error") => Ok(Frame::Failure {
            kind: header(message, ":error-code")
                .unwrap_or("UnknownError")
                .to_string(),
            message: header(message, ":error-message").unwrap_or("").to_string(),
        }),
        other => Err(Error::EventStream {
            shard_id: shard_id.to_string(),
            detail: format!("message without a known :message-type ({other:?})"),
        }),
    }
}

/// Reads one shard through SubscribeToShard.
pub struct FanOutFetcher {
    client: Client,
    consumer_arn: String,
    shard_id: String,
    /// Where the next subscription starts.
    start: IteratorStart,
    body: Option<hyper::body::Incoming>,
    decoder: MessageFrameDecoder,
    buffer: BytesMut,
    /// Pause before the next subscription.
    pause: Option<Duration>,
    /// Child shards of the final event, once the shard has ended.
    ended: Option<Vec<ChildShard>>,
    ready: VecDeque<Batch>,
}

impl FanOutFetcher {
    /// A fetcher for `shard_id` through the consumer `consumer_arn`, starting at `start`.
    pub fn new(
        client: Client,
        consumer_arn: &str,
        shard_id: &str,
        start: IteratorStart,
    ) -> FanOutFetcher {
        FanOutFetcher {
            client,
            consumer_arn: consumer_arn.to_string(),
            shard_id: shard_id.to_string(),
            start,
            body: None,
            decoder: MessageFrameDecoder::new(),
            buffer: BytesMut::new(),
            pause: None,
            ended: None,
            ready: VecDeque::new(),
        }
    }

    /// The next non-empty batch, or the end of the shard.
    ///
    /// # Errors
    /// A server error that resubscribing cannot fix (e.g. ResourceNotFoundException), or an
    /// undecodable event stream.
    pub async fn next(&mut self) -> Result<Batch, Error> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return Ok(batch);
            }
            if let Some(child_shards) = self.ended.take() {
                return Ok(Batch::ShardEnd { child_shards });
            }
            if self.body.is_none() {
                if let Some(pause) = self.pause.take() {
                    tokio::time::sleep(pause).await;
                }
                match self.subscribe().await {
                    Ok(body) => {
                        self.body = Some(body);
                        self.decoder = MessageFrameDecoder::new();
                        self.buffer.clear();
                    }
                    Err(e) => {
                        self.pause = Some(self.retry_pause(&e)?);
                        continue;
                    }
                }
            }
            match self.next_message().await {
                Ok(Some(message)) => self.handle(&message)?,
                Ok(None) => self.end_subscription(RESUBSCRIBE_PAUSE),
                Err(e) => {
                    tracing::debug!(shard = %self.shard_id, error = %e, "subscription ended");
                    let pause = self.retry_pause(&e)?;
                    self.end_subscription(pause);
                }
            }
        }
    }

    fn end_subscription(&mut self, pause: Duration) {
        self.body = None;
        self.pause = Some(pause);
    }

    /// How long to wait before subscribing again after `e`, or `e` if that cannot help.
    fn retry_pause(&self, e: &Error) -> Result<Duration, Error> {
        match e.kind() {
            Some("ResourceInUseException") | Some("LimitExceededException") => Ok(IN_USE_PAUSE),
            _ if e.is_retryable() => Ok(RESUBSCRIBE_PAUSE),
            _ => Err(Error::EventStream {
                shard_id: self.shard_id.clone(),
                detail: e.to_string(),
            }),
        }
    }

    async fn subscribe(&self) -> Result<hyper::body::Incoming, Error> {
        let position = match &self.start {
            IteratorStart::TrimHorizon => json!({ "Type": "TRIM_HORIZON" }),
            IteratorStart::Latest => json!({ "Type": "LATEST" }),
            IteratorStart::AtTimestamp(ms) => {
                json!({ "Type": "AT_TIMESTAMP", "Timestamp": *ms as f64 / 1000.0 })
            }
            IteratorStart::AtSequenceNumber(s) => {
                json!({ "Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": s })
            }
            IteratorStart::AfterSequenceNumber(s) => {
                json!({ "Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": s })
            }
        };
        let request = json!({
            "ConsumerARN": self.consumer_arn,
            "ShardId": self.shard_id,
            "StartingPosition": position,
        });
        self.client
            .call_streaming(KINESIS_TARGET, "SubscribeToShard", &request)
            .await
    }

    /// The next complete message of the current subscription, `None` at its end.
    async fn next_message(&mut self) -> Result<Option<Message>, Error> {
        let bad = |detail: String| Error::EventStream {
            shard_id: self.shard_id.clone(),
            detail,
        };
        loop {
            match self.decoder.decode_frame(&mut self.buffer) {
                Ok(DecodedFrame::Complete(message)) => return Ok(Some(message)),
                Ok(DecodedFrame::Incomplete) => {}
                Err(e) => return Err(bad(format!("undecodable message: {e}"))),
            }
            let Some(body) = self.body.as_mut() else {
                return Ok(None);
            };
            let frame = match tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await {
                Err(_) => return Err(bad(format!("silent for {} s", IDLE_TIMEOUT.as_secs()))),
                Ok(None) => {
                    if self.buffer.has_remaining() {
                        return Err(bad("the stream ended inside a message".into()));
                    }
                    return Ok(None);
                }
                Ok(Some(Err(e))) => return Err(bad(format!("reading the stream: {e}"))),
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                self.buffer.extend_from_slice(&data);
            }
        }
    }

    fn handle(&mut self, message: &Message) -> Result<(), Error> {
        match classify(message, &self.shard_id)? {
            Frame::Skip => Ok(()),
            Frame::Failure { kind, message } => {
                let e = Error::Service {
                    kind,
                    message,
                    status: hyper::StatusCode::OK,
                };
                tracing::debug!(shard = %self.shard_id, error = %e, "in-stream exception");
                let pause = match e.kind() {
                    Some("ResourceNotFoundException") => {
                        return Err(Error::EventStream {
                            shard_id: self.shard_id.clone(),
                            detail: e.to_string(),
                        })
                    }
                    Some("ResourceInUseException") => IN_USE_PAUSE,
                    _ => RESUBSCRIBE_PAUSE,
                };
                self.end_subscription(pause);
                Ok(())
            }
            Frame::Event(event) => {
                let records = user_records_of(&event.records)?;
                match event.continuation_sequence_number {
                    Some(next) => {
                        self.start = IteratorStart::AfterSequenceNumber(next);
                    }
                    None if !event.child_shards.is_empty() => {
                        self.ended = Some(event.child_shards);
                        self.body = None;
                    }
                    None => {
                        return Err(Error::EventStream {
                            shard_id: self.shard_id.clone(),
                            detail: "event without ContinuationSequenceNumber or ChildShards"
                                .into(),
                        })
                    }
                }
                if !records.is_empty() {
                    self.ready.push_back(Batch::Records {
                        records,
                        millis_behind_latest: event.millis_behind_latest,
                    });
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue};

    fn message(headers: &[(&str, &str)], payload: &str) -> Message {
        let headers = headers
            .iter()
            .map(|(n, v)| Header::new(n.to_string(), HeaderValue::String(v.to_string().into())))
            .collect();
        Message::new_from_parts(headers, payload.as_bytes().to_vec())
    }

    #[test]
    fn classifies_events_exceptions_and_errors() {
        let event = message(
            &[
                (":message-type", "event"),
                (":event-type", "SubscribeToShardEvent"),
            ],
            r#"{"Records":[],"ContinuationSequenceNumber":"42","MillisBehindLatest":0}"#,
        );
        match classify(&event, "s").unwrap() {
            Frame::Event(e) => assert_eq!(e.continuation_sequence_number.as_deref(), Some("42")),
            other => panic!("{other:?}"),
        }
        let initial = message(
            &[
                (":message-type", "event"),
                (":event-type", "initial-response"),
            ],
            "{}",
        );
        assert!(matches!(classify(&initial, "s").unwrap(), Frame::Skip));
        let exception = message(
            &[
                (":message-type", "exception"),
                (":exception-type", "ResourceInUseException"),
            ],
            r#"{"message":"taken over"}"#,
        );
        match classify(&exception, "s").unwrap() {
            Frame::Failure { kind, message } => {
                assert_eq!(
                    (kind.as_str(), message.as_str()),
                    ("ResourceInUseException", "taken over")
                );
            }
            other => panic!("{other:?}"),
        }
        let error = message(
            &[
                (":message-type", "error"),
                (":error-code", "InternalFailure"),
                (":error-message", "boom"),
            ],
            "",
        );
        assert!(
            matches!(classify(&error, "s").unwrap(), Frame::Failure { kind, .. } if kind == "InternalFailure")
        );
        assert!(classify(&message(&[], "{}"), "s").is_err());
    }

    /// Messages split at every byte boundary decode the same (the decoder keeps the prelude
    /// between calls).
    #[test]
    fn decoder_reassembles_messages_split_anywhere() {
        let m = message(
            &[
                (":message-type", "event"),
                (":event-type", "SubscribeToShardEvent"),
            ],
            r#"{"Records":[],"ContinuationSequenceNumber":"7"}"#,
        );
        let mut wire = Vec::new();
        write_message_to(&m, &mut wire).unwrap();
        for split in 1..wire.len() {
            let mut decoder = MessageFrameDecoder::new();
            let mut buffer = BytesMut::from(&wire[..split]);
            assert!(matches!(
                decoder.decode_frame(&mut buffer).unwrap(),
                DecodedFrame::Incomplete
            ));
            buffer.extend_from_slice(&wire[split..]);
            match decoder.decode_frame(&mut buffer).unwrap() {
                DecodedFrame::Complete(got) => assert_eq!(got.payload(), m.payload()),
                DecodedFrame::Incomplete => panic!("incomplete at split {split}"),
            }
        }
    }
}
