//! The HTTP front: HTTP/1.1 and HTTP/2 cleartext (prior knowledge) on one port, the AWS
//! request envelope, and the checks AWS makes before an operation runs, in its order.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use super::actions::{self, Operation};
use super::error::ApiError;
use super::input::Members;
use super::value::{self, Protocol, Value};
use super::Api;

/// Largest request body accepted: a 10 MiB PutRecords base64-encodes to about 13.4 MiB.
pub const MAX_BODY_BYTES: usize = 16 << 20;
const TARGET_PREFIX: &str = "Kinesis_20131202.";

/// Serves connections from `listener` until `shutdown` resolves, then lets in-flight
/// requests finish.
pub async fn serve(listener: TcpListener, api: Arc<Api>, shutdown: impl Future<Output = ()>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let api = api.clone();
                let svc = hyper::service::service_fn(move |req| {
                    let api = api.clone();
                    async move { Ok::<_, Infallible>(handle(api, req).await) }
                });
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("connection ended: {e}");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    graceful.shutdown().await;
}

fn response(
    status: u16,
    content_type: &str,
    request_id: &str,
    body: Vec<u8>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    if let Ok(v) = content_type.parse() {
        h.insert(hyper::header::CONTENT_TYPE, v);
    }
    if let Ok(v) = request_id.parse() {
        h.insert("x-amzn-RequestId", v);
    }
    r
}

/// An error in the protocol's own shape.
pub fn error_response(protocol: Protocol, request_id: &str, e: &ApiError) -> Response<Full<Bytes>> {
    if let ApiError::Internal(detail) = e {
        tracing::error!("request {request_id}: internal failure: {detail}");
    }
    let mut pairs = vec![("__type", Value::str(e.type_name()))];
    if let Some((key, msg)) = e.message() {
        pairs.push((key, Value::String(msg)));
    }
    let mut r = response(
        e.status(),
        protocol.content_type(),
        request_id,
        value::encode(protocol, &Value::map(pairs)),
    );
    if let Ok(v) = e.type_name().parse() {
        r.headers_mut().insert("x-amzn-ErrorType", v);
    }
    r
}

fn xml_error(status: u16, request_id: &str, body: &str) -> Response<Full<Bytes>> {
    response(
        status,
        "application/xml",
        request_id,
        body.as_bytes().to_vec(),
    )
}

async fn handle(api: Arc<Api>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let request_id = uuid::Uuid::new_v4().to_string();
    if req.method() == Method::GET && req.uri().path() == "/health" {
        return response(200, "text/plain", &request_id, b"ok\n".to_vec());
    }
    if req.method() != Method::POST {
        return xml_error(
            403,
            &request_id,
            "<AccessDeniedException>\n  <Message>Unable to determine service/operation name to be authorized</Message>\n</AccessDeniedException>\n",
        );
    }
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let protocol = match media.as_str() {
        "application/x-amz-json-1.1" => Protocol::Json,
        "application/x-amz-cbor-1.1" => Protocol::Cbor,
        "application/json" => {
            return response(
                404,
                "application/json",
                &request_id,
                br#"{"Output":{"__type":"com.amazon.coral.service#UnknownOperationException"},"Version":"1.0"}"#.to_vec(),
            )
        }
        _ => return xml_error(404, &request_id, "<UnknownOperationException/>\n"),
    };
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error_response(
                protocol,
                &request_id,
                &ApiError::Serialization(Some(format!(
                    "Request body exceeds {MAX_BODY_BYTES} bytes"
                ))),
            )
        }
    };
    let op = target
        .strip_prefix(TARGET_PREFIX)
        .and_then(Operation::from_name);
    if body.is_empty() {
        let e = if op.is_some() {
            ApiError::Serialization(None)
        } else {
            ApiError::UnknownOperation
        };
        return error_response(protocol, &request_id, &e);
    }
    let decoded = match protocol {
        Protocol::Json => value::decode_json(&body),
        Protocol::Cbor => value::decode_cbor(&body),
    };
    let Ok(members) = decoded else {
        return error_response(protocol, &request_id, &ApiError::Serialization(None));
    };
    let Some(op) = op else {
        return error_response(protocol, &request_id, &ApiError::UnknownOperation);
    };
    match actions::dispatch(&api, op, Members::new(&members)).await {
        Ok(Value::Null) => response(200, protocol.content_type(), &request_id, Vec::new()),
        Ok(v) => response(
            200,
            protocol.content_type(),
            &request_id,
            value::encode(protocol, &v),
        ),
        Err(e) => error_response(protocol, &request_id, &e),
    }
}
