//! Event-stream messages (`application/vnd.amazon.eventstream`), the body of a
//! SubscribeToShard response (wire reference §6).
//!
//! Framing (prelude, headers, payload, two CRC-32s) is `aws-smithy-eventstream`'s, the
//! encoder the AWS SDKs' own decoders are tested against; this module only chooses the
//! headers Kinesis sends:
//! - events: `:event-type`, `:content-type`, `:message-type: event`;
//! - modelled errors: `:exception-type`, `:content-type`, `:message-type: exception`, payload
//!   `{"message":"…"}` in the request's protocol.

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;

use super::error::ApiError;
use super::value::{self, Protocol, Value};

/// The `Content-Type` of a SubscribeToShard response.
pub const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// The `:content-type` of event payloads: JSON clients get `application/json` (as AWS
/// sends), CBOR clients the CBOR media type.
fn payload_type(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Json => "application/json",
        Protocol::Cbor => protocol.content_type(),
    }
}

fn string(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_string().into()))
}

fn frame(message: &Message) -> Bytes {
    let mut out = Vec::with_capacity(message.payload().len() + 128);
    // Only a header over 255 bytes of name or 32 KiB of value, or a payload over 16 MiB,
    // can fail; ours are fixed names and events of at most a few MiB.
    match aws_smithy_eventstream::frame::write_message_to(message, &mut out) {
        Ok(()) => Bytes::from(out),
        Err(e) => {
            tracing::error!("event-stream message not encodable: {e}");
            Bytes::new()
        }
    }
}

/// An event message: `:event-type` `event_type`, payload `body` in `protocol`.
pub fn event(protocol: Protocol, event_type: &str, body: &Value) -> Bytes {
    let payload = value::encode(protocol, body);
    frame(&Message::new_from_parts(
        vec![
            string(":event-type", event_type),
            string(":content-type", payload_type(protocol)),
            string(":message-type", "event"),
        ],
        payload,
    ))
}

/// The first message of every subscription: `initial-response` with an empty structure.
pub fn initial_response(protocol: Protocol) -> Bytes {
    event(protocol, "initial-response", &Value::map([]))
}

/// A modelled error in the stream: `:message-type: exception`, `:exception-type` = the
/// error's type, payload `{"message": …}`.
pub fn exception(protocol: Protocol, e: &ApiError) -> Bytes {
    let body = match e.message() {
        Some((_, text)) => Value::map([("message", Value::String(text))]),
        None => Value::map([]),
    };
    frame(&Message::new_from_parts(
        vec![
            string(":exception-type", e.type_name()),
            string(":content-type", payload_type(protocol)),
            string(":message-type", "exception"),
        ],
        value::encode(protocol, &body),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 104-byte `initial-response` frame of wire reference §6: prelude
    /// `00000068 00000056 4e681724`, 86 header bytes, payload `{}`, CRC `d591c62b`.
    #[test]
    fn initial_response_is_the_reference_frame() {
        let f = initial_response(Protocol::Json);
        assert_eq!(f.len(), 104);
        assert_eq!(hex::encode(&f[..12]), "00000068000000564e681724");
        assert_eq!(&f[98..100], b"{}");
        assert_eq!(hex::encode(&f[100..]), "d591c62b");
        let headers = &f[12..98];
        for name in [":event-type", ":content-type", ":message-type"] {
            assert!(
                headers.windows(name.len()).any(|w| w == name.as_bytes()),
                "{name}"
            );
        }
    }

    #[test]
    fn exceptions_decode_with_their_type_and_message() {
        let f = exception(
            Protocol::Json,
            &ApiError::ResourceInUse("Another active subscription exists".into()),
        );
        let m = aws_smithy_eventstream::frame::read_message_from(&f[..]).unwrap();
        let header = |n: &str| {
            m.headers()
                .iter()
                .find(|h| h.name().as_str() == n)
                .and_then(|h| h.value().as_string().ok())
                .map(|s| s.as_str().to_string())
        };
        assert_eq!(header(":message-type").as_deref(), Some("exception"));
        assert_eq!(
            header(":exception-type").as_deref(),
            Some("ResourceInUseException")
        );
        assert_eq!(
            m.payload().as_ref(),
            br#"{"message":"Another active subscription exists"}"#
        );
    }
}
